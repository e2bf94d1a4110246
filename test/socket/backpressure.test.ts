/**
 * Invariant: writes never lose data (Bun's `write()` drops what the kernel does not take: docs/bun-sockets.md#write-drops). Whatever the kernel does not take
 * is queued in order and flushed on drain, however long the peer stops reading, so a 32 MiB push to a
 * client that pauses arrives byte for byte. While more than `highWaterMark` bytes are queued the
 * connection stops reading (the peer's writes stall in the kernel) and reads again once the queue has
 * drained. `conn.sendSync` resolves only once its bytes are with the kernel and rejects with
 * SocketSendError when the connection dies first. `close: true` after a large send flushes every byte
 * before the FIN. Other events (calls) are still served while the queue is full.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Connection, type Handler, SocketSendError } from "../../src/index.ts";
import { packetText, pattern, RawClient, sha256 } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { observe, waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

const MiB = 1024 * 1024;
const BIG = pattern(32 * MiB, 7);
const BIG_SHA = sha256(BIG);

describe("writes never lose data", () => {
  test.each(["conn.sendSync", "send in an action"] as const)(
    "a 32 MiB push (%s) to a client that stops reading for ~300 ms arrives byte for byte",
    async (how) => {
      const started = Promise.withResolvers<Connection>();
      const handled = Promise.withResolvers<void>();
      const server = await startTestServer<undefined, undefined>(
        {
          init: (_i, meta) => void started.resolve(meta.connection),
          handlePacket(packet) {
            handled.resolve();
            return packetText(packet) === "push" ? { send: BIG } : undefined;
          },
          handleCall: () => ({ reply: "served" }),
        },
        undefined,
      );
      const client = await RawClient.connect(server.port, { paused: true, keep: false, hash: true });
      const conn = await within(started.promise, 2000, "init");
      let sent: ReturnType<typeof observe<void>> | undefined;
      if (how === "conn.sendSync") {
        sent = observe(conn.sendSync(BIG));
      } else {
        client.write("push");
        await within(handled.promise, 2000, "the push request");
      }
      // The client does not read for ~300 ms: the kernel buffers (a few MiB) fill up.
      await Bun.sleep(300);
      expect(client.received).toBe(0);
      if (sent !== undefined) expect(sent.settled).toBe(false); // 32 MiB cannot all be with the kernel yet
      // The connection still serves calls while its queue is full.
      expect(await conn.call("still there?")).toBe("served");
      client.resume();
      if (sent !== undefined) await within(sent.promise, 5000, "sendSync");
      await client.waitForBytes(BIG.length, 5000);
      expect(client.received).toBe(BIG.length);
      expect(client.digest()).toBe(BIG_SHA);
    },
  );

  test("sendAsync, sendSync and action sends keep their order through a full queue", async () => {
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void started.resolve(meta.connection),
        handlePacket: () => undefined,
        handleCast: (message) => ({ send: message as string }),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false, hash: true });
    const conn = await within(started.promise, 2000, "init");
    const first = BIG.subarray(0, 12 * MiB);
    const second = BIG.subarray(12 * MiB);
    conn.sendAsync("<a>");
    const sync = conn.sendSync(first);
    conn.cast("<cast>");
    conn.sendAsync(second);
    const last = conn.sendSync("<end>");
    client.resume();
    await within(Promise.all([sync, last]), 5000, "both sendSyncs");
    const total = 3 + first.length + 6 + second.length + 5;
    await client.waitForBytes(total, 5000);
    const expected = Buffer.concat([
      Buffer.from("<a>"),
      first,
      Buffer.from("<cast>"),
      second,
      Buffer.from("<end>"),
    ]);
    expect(client.received).toBe(total);
    expect(client.digest()).toBe(sha256(expected));
  });
});

describe("highWaterMark", () => {
  test("reading pauses while more than highWaterMark bytes are queued, and resumes once the peer reads", async () => {
    const started = Promise.withResolvers<Connection>();
    const pushed = Promise.withResolvers<void>();
    const push = BIG.subarray(0, 8 * MiB);
    let bytesIn = 0;
    let packets = 0;
    const handler: Handler<undefined, undefined> = {
      init: (_i, meta) => void started.resolve(meta.connection),
      handlePacket(packet) {
        packets++;
        bytesIn += packet.length;
        if (packets === 1 && packetText(packet) === "push") {
          pushed.resolve();
          return { send: push };
        }
        return undefined;
      },
    };
    const server = await startTestServer(handler, undefined, { highWaterMark: 64 * 1024 });
    const client = await RawClient.connect(server.port, { paused: true, keep: false, hash: true });
    await within(started.promise, 2000, "init");
    client.write("push");
    await within(pushed.promise, 2000, "the push request");
    // The server now has ~8 MiB minus what the kernel took queued, far above 64 KiB: it stops reading.
    const upload = pattern(16 * MiB, 3);
    for (let at = 0; at < upload.length; at += 64 * 1024) client.write(upload.subarray(at, at + 64 * 1024));
    // 16 MiB is more than the kernel buffers hold: the client's writes stall.
    expect(client.pendingBytes).toBeGreaterThan(0);
    // Observation window: the client keeps offering data, the server handles none of it.
    await Bun.sleep(150);
    expect(packets).toBe(1);
    expect(bytesIn).toBe(4);
    expect(client.pendingBytes).toBeGreaterThan(0);
    // The client reads: the server's queue drains, it reads again, and every uploaded byte arrives.
    client.resume();
    await client.waitForBytes(push.length, 5000);
    expect(client.digest()).toBe(sha256(push));
    await client.waitWritten(5000);
    await waitFor(() => bytesIn === 4 + upload.length, 5000, "the whole upload to be handled");
    expect(packets).toBeGreaterThan(1);
  });
});

describe("sendSync", () => {
  test("resolves once its bytes are with the kernel: at once when there is room", async () => {
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer<undefined, undefined>(
      { init: (_i, meta) => void started.resolve(meta.connection), handlePacket: () => undefined },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await within(started.promise, 2000, "init");
    await within(conn.sendSync("small"), 1000, "sendSync");
    await client.waitForText("small");
  });

  test("rejects with SocketSendError when the peer resets while it is pending", async () => {
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer<undefined, undefined>(
      { init: (_i, meta) => void started.resolve(meta.connection), handlePacket: () => undefined },
      undefined,
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false });
    const conn = await within(started.promise, 2000, "init");
    const sent = observe(conn.sendSync(BIG));
    // One turn of the event loop: the kernel took a few MiB at most, the rest is queued.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent.settled).toBe(false);
    client.terminate();
    const error = await within(sent.promise, 2000, "sendSync to reject").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketSendError);
    expect((error as SocketSendError).code).toBe("ERR_SOCKET_SEND");
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
  });

  test("rejects when the connection stops before the bytes went out", async () => {
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer<undefined, undefined>(
      { init: (_i, meta) => void started.resolve(meta.connection), handlePacket: () => undefined },
      undefined,
      { closeTimeout: 50 },
    );
    await RawClient.connect(server.port, { paused: true, keep: false });
    const conn = await within(started.promise, 2000, "init");
    const sent = observe(conn.sendSync(BIG));
    await conn.stop();
    const error = await within(sent.promise, 2000, "sendSync to reject").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketSendError);
    expect((error as SocketSendError).code).toBe("ERR_SOCKET_SEND");
  });
});

describe("stopping with unread bytes", () => {
  test("server.stop does not wait for a peer that never reads; the socket is dropped after closeTimeout", async () => {
    const started = Promise.withResolvers<Connection>();
    const terminated: unknown[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void started.resolve(meta.connection),
        handlePacket: () => undefined,
        terminate: (reason) => void terminated.push(reason),
      },
      undefined,
      { closeTimeout: 100 },
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false });
    const conn = await within(started.promise, 2000, "init");
    conn.sendAsync(BIG);
    await within(server.stop(), 1000, "server.stop");
    expect(terminated).toEqual(["shutdown"]);
    expect(await within(server.exited, 1000, "exited")).toBe("normal");
    // The client does not read for three closeTimeouts: the server gives up on the flush and resets.
    await Bun.sleep(300);
    client.resume();
    await within(client.closedPromise, 3000, "the client socket to close");
    expect(client.received).toBeLessThan(BIG.length);
    expect(client.closeError).toHaveProperty("code", "ECONNRESET");
  });
});

describe("close after a large send", () => {
  test("close: true flushes every queued byte before the FIN", async () => {
    const terminated = Promise.withResolvers<void>();
    const payload = BIG.subarray(0, 16 * MiB);
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket: () => ({ send: payload, close: true }),
        terminate: () => terminated.resolve(),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false, hash: true });
    client.write("bye");
    await within(terminated.promise, 2000, "terminate");
    // The connection has ended; its queue (most of the 16 MiB) is still being flushed.
    client.resume();
    await client.waitForEnd(5000);
    expect(client.received).toBe(payload.length);
    expect(client.digest()).toBe(sha256(payload));
    await within(client.closedPromise, 2000, "close");
    expect(client.closeError).toBeUndefined(); // a FIN, not a reset
  });

  test("stop: reason after a large send flushes too", async () => {
    const payload = BIG.subarray(0, 8 * MiB);
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket: () => ({ send: payload, stop: "normal" }),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port, { keep: false, hash: true });
    client.write("bye");
    await client.waitForEnd(5000);
    expect(client.received).toBe(payload.length);
    expect(client.digest()).toBe(sha256(payload));
  });
});
