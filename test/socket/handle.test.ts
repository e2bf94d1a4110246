/**
 * Invariant: users get the `Connection` handle and the `Meta` view, never the connection process.
 * Nothing internal is reachable from either: no own enumerable keys, no internal method names, and
 * the handle a server lists is the very object its callbacks get as `meta` (and `meta.connection`).
 */
import { afterEach, expect, test } from "bun:test";
import type { Connection, Meta } from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { Log } from "../helpers/wait.ts";

afterEach(cleanup);

const INTERNAL = [
  "attach",
  "detach",
  "release",
  "shutdown",
  "replaceStateNow",
  "listIndex",
  "socket",
  "spec",
  "flags",
  "gate",
  "mailbox",
  "owner",
  "rare",
  "out",
  "cork",
  "decoder",
];

test("a handle and a meta expose only the public interface", async () => {
  const metas = new Log<Meta<undefined>>();
  const server = await startTestServer<undefined, undefined>(
    {
      init(_i, meta) {
        metas.push(meta);
      },
      handlePacket: (packet) => ({ send: packet }),
    },
    undefined,
  );
  const client = await RawClient.connect(server.port);
  await metas.until((l) => l.length === 1);
  const meta = metas.items[0]!;
  const [[, handle]] = server.connections() as [[number, Connection]];
  expect(handle).toBe(meta.connection);
  expect(meta.connection).toBe(meta as unknown as Connection);
  for (const target of [meta, handle]) {
    expect(Object.keys(target)).toEqual([]);
    expect(Object.getOwnPropertyNames(target)).toEqual([]);
    for (const name of INTERNAL) expect((target as unknown as Record<string, unknown>)[name]).toBeUndefined();
  }
  // What is there works: the public members.
  expect(typeof handle.call).toBe("function");
  expect(meta.remotePort).toBe(client.localPort);
  expect(JSON.stringify(Object.keys(Object.getPrototypeOf(Object.getPrototypeOf(handle))).sort())).toBe("[]");
});
