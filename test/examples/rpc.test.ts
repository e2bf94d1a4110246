/**
 * Invariant: examples/rpc.ts carries JSON requests and replies over `packet: 4` through a pool:
 * every call resolves with its own result (replies are matched by id, many in flight per
 * connector), a method that throws rejects that call only with RpcError, messages far larger than a
 * TCP segment arrive whole, and the pool spreads calls over all its connectors. A raw client framing
 * by hand gets the same replies (the wire format is just a 4-byte big-endian length and JSON).
 */

import { afterEach, expect, test } from "bun:test";
import { RpcError, rpc, startRpcPool, startRpcServer } from "../../examples/rpc.ts";
import type { Pool, Server } from "../../src/index.ts";
import { closeAllClients, frame4, RawClient, unframe4 } from "../helpers/client.ts";

let server: Server<number, unknown> | undefined;
let pool: Pool<unknown, undefined> | undefined;

afterEach(async () => {
  closeAllClients();
  await pool?.stop();
  pool = undefined;
  await server?.stop();
  server = undefined;
});

async function setup(connectorCount = 4) {
  server = await startRpcServer(0);
  const p = await startRpcPool("127.0.0.1", server.port, { connectorCount });
  pool = p as unknown as Pool<unknown, undefined>;
  return p;
}

test("1,000 concurrent calls each resolve with their own result", async () => {
  const p = await setup();
  const calls = Array.from({ length: 1000 }, (_, i) =>
    i % 3 === 0
      ? rpc(p, "add", i, 1)
      : i % 3 === 1
        ? rpc(p, "upper", `s${i}x`)
        : rpc(p, "echo", { i, list: [i, "x"] }),
  );
  const results = await Promise.all(calls);
  results.forEach((r, i) => {
    expect(r).toEqual(i % 3 === 0 ? i + 1 : i % 3 === 1 ? `S${i}X` : { i, list: [i, "x"] });
  });
  // Spread over every connector: each server connection served some of them.
  const served = await Promise.all(server!.connections().map(([, c]) => c.call("served") as Promise<number>));
  expect(served.length).toBe(4);
  for (const n of served) expect(n).toBeGreaterThan(0);
  expect(served.reduce((a, b) => a + b, 0)).toBe(1000);
});

test("a method that throws rejects that call only, with RpcError", async () => {
  const p = await setup(1);
  const [bad, good, unknown] = await Promise.allSettled([
    rpc(p, "fail", "on purpose"),
    rpc(p, "add", 1, 2),
    rpc(p, "nope"),
  ]);
  expect(bad.status).toBe("rejected");
  expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(RpcError);
  expect(((bad as PromiseRejectedResult).reason as Error).message).toBe("on purpose");
  expect(good).toEqual({ status: "fulfilled", value: 3 });
  expect(((unknown as PromiseRejectedResult).reason as Error).message).toBe("no method nope");
  expect(await rpc(p, "upper", "still up")).toBe("STILL UP");
});

test("messages much larger than a TCP segment arrive whole", async () => {
  const p = await setup(2);
  const numbers = Array.from({ length: 100_000 }, (_, i) => i % 1000);
  const big = "z".repeat(600_000);
  const [sum, echoed] = await Promise.all([rpc(p, "sum", numbers), rpc<string>(p, "echo", big)]);
  expect(sum).toBe(numbers.reduce((a, b) => a + b, 0));
  expect(echoed.length).toBe(big.length);
  expect(echoed === big).toBe(true);
});

test("the wire format: a raw client framing by hand gets the same replies", async () => {
  server = await startRpcServer(0);
  const c = await RawClient.connect(server.port);
  const requests = [
    { id: 7, method: "add", params: [40, 2] },
    { id: 8, method: "upper", params: ["abc"] },
  ];
  // Both requests in one write, the second cut in half across two writes.
  const bytes = Buffer.concat(requests.map((r) => frame4(JSON.stringify(r))));
  c.write(bytes.subarray(0, bytes.length - 5));
  c.write(bytes.subarray(bytes.length - 5));
  await c.until(() => unframe4(c.bytes()).length === 2, 2000, "two replies");
  expect(unframe4(c.bytes()).map((b) => JSON.parse(b.toString()))).toEqual([
    { id: 7, result: 42 },
    { id: 8, result: "ABC" },
  ]);
});
