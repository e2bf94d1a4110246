/**
 * Invariant: the testing kit runs the library's real connection process over memory, with no port
 * and no real time, and behaves like a socket: bytes arrive in order cut exactly where the peer cut
 * them, a peer that stops reading makes the handler's writes come back short until it reads again,
 * FIN and RST mean what they mean on TCP, the manual clock fires timers in due order only when
 * advanced, connectors and pools reach scripted listeners by port, and clean-up stops everything and
 * fails when something was left running. STARTTLS on memory fails with a typed error saying so.
 */

import { describe, expect, expectTypeOf, spyOn, test } from "bun:test";
import { backoff, type Handler, type Packet, startServer, TlsHandshakeError, tls } from "../../src/index.ts";
import {
  ManualClock,
  MemoryUpgradeError,
  PeerReadError,
  splitBytes,
  TestLeakError,
  testKit,
} from "../../src/testing/index.ts";
import { pem } from "../helpers/tls.ts";
import { captureSink } from "../helpers/trace.ts";

/** Records every packet's bytes, echoes nothing. */
function recorder(): { handler: Handler<undefined>; packets: string[] } {
  const packets: string[] = [];
  return {
    packets,
    handler: {
      init: () => undefined,
      handlePacket: (packet: Packet) => {
        packets.push(packet.toString());
        return undefined;
      },
    },
  };
}

const echo: Handler<undefined> = {
  init: () => undefined,
  handlePacket: (packet) => ({ send: packet }),
};

describe("splitBytes", () => {
  const bytes = Buffer.from("0123456789");

  test("splitAt cuts at the given offsets", () => {
    expect(splitBytes(bytes, { splitAt: [3, 7] }).map((c) => Buffer.from(c).toString())).toEqual([
      "012",
      "3456",
      "789",
    ]);
  });

  test("chunkSize cuts into equal chunks", () => {
    expect(splitBytes(bytes, { chunkSize: 4 }).map((c) => c.byteLength)).toEqual([4, 4, 2]);
  });

  test("the same seed gives the same cuts; the chunks put back together are the bytes", () => {
    const a = splitBytes(bytes, { seed: 7, maxChunk: 3 }).map((c) => c.byteLength);
    const b = splitBytes(bytes, { seed: 7, maxChunk: 3 }).map((c) => c.byteLength);
    expect(a).toEqual(b);
    expect(a.every((n) => n >= 1 && n <= 3)).toBe(true);
    expect(Buffer.concat(splitBytes(bytes, { seed: 7, maxChunk: 3 })).toString()).toBe("0123456789");
  });

  test("offsets out of range are refused", () => {
    expect(() => splitBytes(bytes, { splitAt: [11] })).toThrow(RangeError);
  });
});

describe("ManualClock", () => {
  test("fires due timers in order of due time, including timers they schedule, each at its time", async () => {
    const clock = new ManualClock();
    const fired: Array<[string, number]> = [];
    clock.setTimeout(() => fired.push(["b", clock.now()]), 20);
    clock.setTimeout(() => {
      fired.push(["a", clock.now()]);
      clock.setTimeout(() => fired.push(["a2", clock.now()]), 5);
    }, 10);
    clock.setTimeout(() => fired.push(["late", clock.now()]), 100);
    await clock.advance(30);
    expect(fired).toEqual([
      ["a", 10],
      ["a2", 15],
      ["b", 20],
    ]);
    expect(clock.now()).toBe(30);
    expect(clock.pending).toBe(1);
  });

  test("refresh restarts the countdown; clearTimeout cancels", async () => {
    const clock = new ManualClock();
    let fired = 0;
    const timer = clock.setTimeout(() => fired++, 10);
    await clock.advance(8);
    timer.refresh();
    await clock.advance(8);
    expect(fired).toBe(0);
    await clock.advance(2);
    expect(fired).toBe(1);
    const other = clock.setTimeout(() => fired++, 1);
    clock.clearTimeout(other);
    await clock.advance(5);
    expect(fired).toBe(1);
  });

  test("0 ms timers run on their own at the next turn", async () => {
    const clock = new ManualClock();
    const { promise, resolve } = Promise.withResolvers<number>();
    clock.setTimeout(() => resolve(clock.now()), 0);
    expect(await promise).toBe(0);
  });
});

describe("peer and memory transport", () => {
  test("bytes arrive in order, one data event per chunk the peer cut", async () => {
    await using kit = testKit();
    const { handler, packets } = recorder();
    const server = await kit.startServer(handler, undefined);
    const peer = await kit.connect(server);
    await peer.write("hello world", { splitAt: [3, 7] });
    expect(packets).toEqual(["hel", "lo w", "orld"]);
  });

  test("reads by length, by delimiter, by frame and to the end", async () => {
    await using kit = testKit();
    const server = await kit.startServer<undefined>(
      {
        init: () => ({ send: ["ab", "cd\r\n", Buffer.from([0, 0, 0, 2, 0x68, 0x69]), "line\n", "tail"] }),
        handlePacket: () => undefined,
        handleCall: () => ({ close: true, reply: "ok" }),
      },
      undefined,
    );
    const peer = await kit.connect(server);
    expect((await peer.read(1)).toString()).toBe("a");
    expect((await peer.readUntil("\r\n")).toString()).toBe("bcd\r\n");
    expect((await peer.readFrame(4)).toString()).toBe("hi");
    expect((await peer.readFrame("line")).toString()).toBe("line\n");
    await peer.connection!.call("close");
    expect((await peer.readToEnd()).toString()).toBe("tail");
    expect(await peer.closed).toEqual({ reset: false, error: undefined });
  });

  test("a read that cannot complete fails with PeerReadError naming what was buffered", async () => {
    await using kit = testKit({ readTimeoutMs: 20 });
    const server = await kit.startServer<undefined>(
      { init: () => ({ send: "abc" }), handlePacket: () => undefined },
      undefined,
    );
    const peer = await kit.connect(server);
    const error = await peer.read(5).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PeerReadError);
    expect((error as PeerReadError).code).toBe("ERR_PEER_READ");
    expect((error as PeerReadError).reason).toBe("timeout");
    expect((error as PeerReadError).message).toContain('"abc"');
  });

  test("a peer that stops reading makes the handler's writes come back short, then drain", async () => {
    await using kit = testKit();
    const server = await kit.startServer<undefined>(
      {
        init: () => undefined,
        handlePacket: () => undefined,
        handleCast: () => ({ send: Buffer.alloc(10_000, 0x61) }),
        handleCall: (_r, _f, _s, meta) => ({
          reply: (meta as unknown as { queuedBytes?: number }).queuedBytes,
        }),
      },
      undefined,
    );
    const peer = await kit.connect(server, { window: 1000 });
    peer.pauseReading();
    peer.connection!.cast("go");
    await Bun.sleep(0);
    expect(peer.buffered).toBe(0);
    peer.resumeReading();
    expect((await peer.read(10_000)).byteLength).toBe(10_000);
    expect(peer.received).toBe(10_000);
  });

  test("a handler side that does not read stalls the peer's writes past its window", async () => {
    await using kit = testKit();
    const held = await kit.startServer(echo, undefined, { acceptorMode: "sleep" }); // held: not read
    const peer = await kit.connect(held, { handlerWindow: 100 });
    void peer.write(Buffer.alloc(1000));
    await Bun.sleep(0);
    expect(peer.remoteUnread).toBe(100);
    expect(peer.pendingWrite).toBe(900);
    held.wakeupAcceptors();
    expect((await peer.read(1000)).byteLength).toBe(1000); // echoed once it reads
    expect(peer.pendingWrite).toBe(0);
  });

  test("the peer's half-close reaches handleDisconnect; the handler's goodbye still arrives", async () => {
    await using kit = testKit();
    const server = await kit.startServer<undefined>(
      { init: () => undefined, handlePacket: () => undefined, handleDisconnect: () => ({ send: "bye" }) },
      undefined,
    );
    const peer = await kit.connect(server);
    const conn = peer.connection!;
    peer.end();
    expect((await peer.readToEnd()).toString()).toBe("bye");
    expect(await conn.exited).toBe("normal");
    expect((await peer.closed).reset).toBe(false);
  });

  test("a reset drops what the handler had not read and ends it as a disconnect", async () => {
    await using kit = testKit();
    const { handler, packets } = recorder();
    const server = await kit.startServer(handler, undefined);
    const peer = await kit.connect(server);
    const conn = peer.connection!;
    await peer.write("seen");
    void peer.write("never seen"); // in the same turn as the reset: not read yet
    peer.reset();
    expect(await conn.exited).toBe("normal");
    expect(packets).toEqual(["seen"]);
  });

  test("the handler's terminate is a reset for the peer; meta shows the peer's address", async () => {
    await using kit = testKit();
    let seen = "";
    const server = await kit.startServer<undefined>(
      {
        init: (_i, meta) => {
          seen = `${meta.remoteAddress}:${meta.remotePort}`;
          return undefined;
        },
        handlePacket: () => ({ close: true }),
      },
      undefined,
    );
    const peer = await kit.connect(server, { remoteAddress: "10.1.2.3", remotePort: 5555 });
    expect(seen).toBe("10.1.2.3:5555");
    expect(peer.localPort).toBe(5555);
    await peer.write("x");
    expect((await peer.closed).reset).toBe(false);
  });

  test("several acceptors share a memory port; a sleeping acceptor holds connections until wakeup", async () => {
    await using kit = testKit();
    const server = await kit.startServer(echo, undefined, { acceptorCount: 2, acceptorMode: "sleep" });
    const a = await kit.connect(server);
    const b = await kit.connect(server);
    expect(a.connection).toBeUndefined(); // held, not served: not in connections() yet
    expect(a.remoteReading).toBe(false);
    void a.write("a"); // stays in the transport: a held connection is not read
    expect(server.connections()).toEqual([]);
    server.wakeupAcceptors();
    await b.write("b");
    expect((await a.read(1)).toString()).toBe("a");
    expect((await b.read(1)).toString()).toBe("b");
    expect(server.connections().length).toBe(2);
  });

  test("a memory listener's stop(true) resets only its own connections", async () => {
    await using kit = testKit();
    const one = await kit.startServer(echo, undefined);
    const two = await kit.startServer(echo, undefined);
    const a = await kit.connect(one);
    const b = await kit.connect(two);
    const listener = kit.transport.listen({
      hostname: "127.0.0.1",
      port: 0,
      reusePort: false,
      data: undefined,
      events: { open() {}, data() {}, drain() {}, end() {}, close() {}, error() {}, handshake() {} },
    });
    const c = await kit.connect(listener.port);
    listener.stop(true);
    expect((await c.closed).reset).toBe(true);
    expect(a.isClosed || b.isClosed).toBe(false);
  });

  test("connecting to a memory port nobody listens on is ECONNREFUSED", async () => {
    await using kit = testKit();
    const error = await kit.connect(4242).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
  });

  test("STARTTLS on a memory socket ends the connection with a typed error that says so", async () => {
    await using kit = testKit();
    const sink = captureSink();
    const server = await kit.startServer<undefined>(
      {
        init: () => undefined,
        handlePacket: () => ({ transport: tls({ cert: pem.serverCert, key: pem.serverKey }) }),
      },
      undefined,
    );
    const peer = await kit.connect(server);
    const conn = peer.connection!;
    await peer.write("STARTTLS\r\n");
    const reason = await conn.exited;
    expect(reason).toBeInstanceOf(TlsHandshakeError);
    const cause = (reason as Error).cause;
    expect(cause).toBeInstanceOf(MemoryUpgradeError);
    expect((cause as MemoryUpgradeError).code).toBe("ERR_MEMORY_UPGRADE");
    expect((cause as Error).message).toContain("memory transport");
    sink.restore();
  });
});

describe("connectors and pools", () => {
  test("a connector reaches a scripted listener by port", async () => {
    await using kit = testKit();
    const upstream = kit.listen(async (peer) => {
      const line = await peer.readUntil("\n");
      await peer.write(`+${line.toString()}`);
    });
    const got: string[] = [];
    const conn = await kit.startConnector<undefined>(
      {
        init: () => ({ send: "PING\n" }),
        handlePacket: (p) => {
          got.push(p.toString());
          return undefined;
        },
        handleCall: () => ({ reply: got.join("") }),
      },
      undefined,
      upstream,
    );
    const peer = await upstream.accept();
    await peer.readUntil("never", { timeoutMs: 5 }).catch(() => undefined);
    expect(await conn!.call("got")).toBe("+PING\n");
    expect(upstream.peers.length).toBe(1);
  });

  test("a connector to a memory server, and a pool of three", async () => {
    await using kit = testKit();
    const server = await kit.startServer(echo, undefined);
    const client: Handler<string> = {
      init: () => ({ state: "", send: "hi" }),
      handlePacket: (p, s) => ({ state: s + p.toString() }),
      handleCall: (_r, _f, s) => ({ reply: s }),
    };
    const conn = await kit.startConnector(client, undefined, server);
    const pool = await kit.startPool(client, undefined, [server], { connectorCount: 3 });
    expect(pool.connections().length).toBe(3);
    await Bun.sleep(0);
    expect(await conn!.call("state")).toBe("hi");
    for (const [, c] of pool.connections()) expect(await c.call("state")).toBe("hi");
    expect(server.connections().length).toBe(4);
  });

  test("a connector to a black hole times out with ETIMEDOUT after connectTimeout", async () => {
    await using kit = testKit();
    const nowhere = kit.blackhole();
    const pending = kit
      .startConnector(echo, undefined, nowhere, { connectTimeout: 20 })
      .catch((e: unknown) => e);
    await kit.clock.advance(20); // for a connect timer on the library's clock (a real one fires by itself)
    const error = await pending;
    expect((error as { code?: string }).code).toBe("ETIMEDOUT");
  });

  test("a connector to a port nobody listens on rejects with ECONNREFUSED", async () => {
    await using kit = testKit();
    const error = await kit.startConnector(echo, undefined, 999).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
  });
});

describe("types", () => {
  test("kit.startServer checks a handler as startServer does: encoding types the packet, unknown action fields fail", async () => {
    await using kit = testKit();
    const server = await kit.startServer(
      {
        init: () => undefined,
        handlePacket: (packet) => {
          expectTypeOf(packet).toEqualTypeOf<string>();
          return { send: packet.toUpperCase() };
        },
      },
      undefined,
      { encoding: "utf8" },
    );
    const peer = await kit.connect(server);
    await peer.write("abc");
    expect((await peer.read(3)).toString()).toBe("ABC");
    const typeOnly = () =>
      // @ts-expect-error `sned` is not an action field
      kit.startServer({ init: () => undefined, handlePacket: (p: Uint8Array) => ({ sned: p }) }, undefined);
    expect(typeof typeOnly).toBe("function");
  });
});

describe("the real process: plans and tracing", () => {
  test("connectorDebug trace lines come out as on TCP", async () => {
    const sink = captureSink();
    await using kit = testKit();
    const server = await kit.startServer(echo, undefined, { connectorDebug: ["trace"] });
    const peer = await kit.connect(server);
    await peer.write("foo");
    await peer.read(3);
    const id = peer.connection!.id;
    expect(sink.lines).toContain(`*DBG* Sockerl connector <${id}> got packet "foo"`);
    await kit.close(); // the last trace lines (terminating) go to the capture too
    sink.restore();
  });

  test("a pool follows its plan: the scripted server drops a connector, it reconnects", async () => {
    await using kit = testKit();
    const upstream = kit.listen();
    const pool = await kit.startPool(
      { init: () => undefined, handlePacket: () => undefined },
      undefined,
      [upstream],
      { plan: [{ restart: 0 }] },
    );
    const first = await upstream.accept();
    const [[idBefore]] = pool.connections() as [[number, unknown]];
    first.reset();
    const second = await upstream.accept();
    expect(second).not.toBe(first);
    await Bun.sleep(0);
    expect(pool.connections().length).toBe(1);
    expect(pool.connections()[0]![0]).toBe(idBefore);
  });
});

describe("backoff delays run on the kit's clock", () => {
  test("a pool under backoff({ initialMs: 30_000 }) reconnects when the clock is advanced 30 s, not before", async () => {
    await using kit = testKit();
    const upstream = kit.listen();
    const pool = await kit.startPool(
      { init: () => undefined, handlePacket: () => undefined },
      undefined,
      [upstream],
      { plan: [backoff({ initialMs: 30_000, maxMs: 60_000, jitter: 0 })] },
    );
    const first = await upstream.accept();
    first.reset();
    await Bun.sleep(0);
    expect(pool.connections().length).toBe(0);
    await kit.clock.advance(29_000);
    expect(pool.connections().length).toBe(0);
    await kit.clock.advance(1_000);
    const second = await upstream.accept();
    expect(second).not.toBe(first);
  });
});

describe("driver", () => {
  test("push delivers synchronously; sends are counted and collected", async () => {
    await using kit = testKit();
    const driver = await kit.driver(echo, undefined, { packet: "line", collect: true });
    driver.push("one\ntw");
    driver.push("o\n");
    expect(driver.take().toString()).toBe("one\ntwo\n");
    expect(driver.bytesOut).toBe(8);
    expect(driver.connection).toBeDefined();
  });
});

describe("clean-up and leak check", () => {
  test("close stops what the kit started and resets open peers; nothing leaks", async () => {
    const kit = testKit();
    const server = await kit.startServer(echo, undefined);
    const peer = await kit.connect(server, { autoClose: false });
    await kit.close();
    expect(await server.exited).toBe("normal");
    expect(peer.isClosed).toBe(true);
    expect(kit.leaks()).toEqual([]);
  });

  test("a server started on kit.transport but never stopped is reported by close", async () => {
    const kit = testKit();
    const server = await startServer(echo, undefined, 0, { transport: kit.transport });
    const error = await kit.close().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TestLeakError);
    expect((error as TestLeakError).code).toBe("ERR_TEST_LEAK");
    expect((error as TestLeakError).leaks).toEqual([`memory port ${server!.port} is still listening`]);
    await server!.stop();
  });

  test("a listen script that throws fails the clean-up", async () => {
    const kit = testKit();
    kit.listen(() => {
      throw new Error("script bug");
    });
    await kit.startConnector(echo, undefined, { port: 1 }).catch(() => undefined);
    const error = await kit.close().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TestLeakError);
    expect((error as TestLeakError).message).toContain("script bug");
  });

  test("a stop that hangs on a pending callback is reported, not waited for forever", async () => {
    const kit = testKit({ stopTimeoutMs: 20 });
    const server = await kit.startServer<undefined>(
      { init: () => undefined, handlePacket: () => new Promise<undefined>(() => {}) },
      undefined,
    );
    const peer = await kit.connect(server);
    await peer.write("hang");
    const error = await kit.close().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TestLeakError);
    expect((error as TestLeakError).leaks[0]).toBe(
      `server on memory port ${server.port} did not stop within 20 ms (a callback still pending?)`,
    );
  });

  test("a kit left open is cleaned up by the next one, with a warning (its clock would freeze later tests)", async () => {
    const warn = spyOn(console, "warn").mockImplementation(() => {});
    try {
      const first = testKit();
      const server = await first.startServer(echo, undefined);
      const peer = await first.connect(server);
      const second = testKit();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]?.[0])).toContain("never closed");
      await peer.closed; // the abandoned kit's sockets were reset
      const realTime = testKit({ clock: false }); // no clock: no take-over
      await realTime.close();
      await second.close();
      await server.stop();
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  test("assertNoLeaks names open sockets while a test runs", async () => {
    await using kit = testKit();
    const server = await kit.startServer(echo, undefined);
    await kit.connect(server);
    expect(() => kit.assertNoLeaks()).toThrow(TestLeakError);
  });
});
