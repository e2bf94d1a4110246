/**
 * Invariant: the `sni` listener reads a ClientHello in time linear in its bytes, however the peer cuts
 * them. A crafted hello as large as the listener accepts (64 KiB, the server name in its very last
 * bytes), sent 1 byte per write or in small chunks, is handled (handed to the TLS layer, which fails
 * it) for a bounded CPU cost, and the server then serves a fresh TLS client. The server runs in a child
 * process (test/tls/sni-server-fixture.ts) so that its CPU time is its own; the figure is printed, and
 * the bound asserted is generous (timing on a shared machine is never tight).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Child, spawnFixture } from "../helpers/child.ts";
import { closeTlsHelpers, pem, TestClient } from "../helpers/tls.ts";
import { within } from "../helpers/wait.ts";
import { craftedHello } from "./hello-bytes.ts";

let child: Child | undefined;
const sockets: Bun.Socket<undefined>[] = [];

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.terminate();
  closeTlsHelpers();
  child?.kill();
  child = undefined;
});

/**
 * Sends `bytes` to 127.0.0.1:`port`, `chunk` bytes per write (one TCP segment each: TCP_NODELAY), waiting
 * on drain when the kernel is full; `paced` yields to the event loop after each write, so that most
 * writes reach the server as reads of their own. Resolves when the server closes the socket.
 */
async function sendInChunks(
  port: number,
  bytes: Uint8Array,
  chunk: number,
  paced: boolean,
): Promise<{ answered: boolean }> {
  const closed = Promise.withResolvers<void>();
  let drained = Promise.withResolvers<void>();
  let answered = false;
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(s) {
        // The TLS layer answered (an alert): the hello was handled. Nothing more to say.
        answered = true;
        s.end();
      },
      drain: () => drained.resolve(),
      close: () => closed.resolve(),
      error() {},
    },
  });
  sockets.push(socket);
  let at = 0;
  while (at < bytes.length && socket.readyState === 1) {
    const n = socket.write(bytes.subarray(at, Math.min(at + chunk, bytes.length)));
    if (n < 0) break; // closed by the server
    at += n;
    if (n === 0) {
      await drained.promise;
      drained = Promise.withResolvers<void>();
    } else if (paced) {
      // Let the segment go out alone, as a slow peer's would: the server then reads it as one chunk.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  await within(closed.promise, 10_000, "the server to close the flooding socket");
  return { answered };
}

async function cpuMicros(c: Child): Promise<number> {
  return Number(await c.ask("cpu", "CPU"));
}

describe("a crafted 64 KiB ClientHello on an sni listener", () => {
  const hello = craftedHello(65_500, "alt.example"); // 4 records, 65,520 bytes: just under the cap

  // Unpaced 1-byte writes: ~65,000 segments the server reads as fast as it can. Paced 16-byte writes:
  // ~4,000 reads of their own (re-reading from the start on each would cost ~150 ms of parsing alone).
  for (const [chunk, paced] of [
    [1, false],
    [16, true],
    [256, true],
  ] as const) {
    test(`sent ${chunk} byte(s) per write${paced ? ", paced" : ""}: handled for bounded CPU, then a fresh TLS client is served`, async () => {
      const c = spawnFixture("../tls/sni-server-fixture.ts");
      child = c;
      const port = Number(await c.next("READY", 10_000));
      const before = await cpuMicros(c);
      const result = await sendInChunks(port, hello, chunk, paced);
      const spentMs = ((await cpuMicros(c)) - before) / 1000;
      console.log(
        `sni listener: crafted ${hello.length}-byte ClientHello, ${chunk} B/write${paced ? " paced" : ""}: server CPU ${spentMs.toFixed(1)} ms (answered: ${result.answered})`,
      );
      // Linear is ~80-220 ms here, most of it the reads themselves (65,000 of them for 1-byte
      // writes); re-parsing from the start on each read would scan ~2 GB for those: seconds.
      expect(spentMs).toBeLessThan(600);
      expect(await c.ask("pending", "PENDING")).toBe("0");

      const client = await TestClient.connect(port, { ca: pem.ca, serverName: "alt.example" });
      const hs = await within(client.handshake, 3000, "a good handshake after the flood");
      expect(hs).toMatchObject({ success: true, peerCN: "alt.example" });
      client.write("still here");
      await client.waitFor("still here");
      client.end();
      await c.ask("stop", "DONE");
      expect((await c.exit()).code).toBe(0);
    });
  }

  test("a socket still sending its ClientHello counts in the listener's pendingSockets until it goes", async () => {
    const c = spawnFixture("../tls/sni-server-fixture.ts");
    child = c;
    const port = Number(await c.next("READY", 10_000));
    const closed = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: { data() {}, close: () => closed.resolve(), error() {} },
    });
    sockets.push(socket);
    socket.write(hello.subarray(0, 3)); // inside the first record header: still sniffing
    const deadline = Date.now() + 3000;
    let pending = await c.ask("pending", "PENDING");
    while (pending !== "1" && Date.now() < deadline) pending = await c.ask("pending", "PENDING");
    expect(pending).toBe("1");
    socket.terminate();
    await closed.promise;
    pending = await c.ask("pending", "PENDING");
    while (pending !== "0" && Date.now() < deadline) pending = await c.ask("pending", "PENDING");
    expect(pending).toBe("0");
    await c.ask("stop", "DONE");
  });
});
