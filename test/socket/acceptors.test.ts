/**
 * Invariant: a server with `acceptorCount: N` has N listening sockets bound to one port (SO_REUSEPORT;
 * with port 0 the later ones bind to the first one's port), each an acceptor with its own mode.
 * `acceptors()` lists `[id, mode]` for ids 1..N; `acceptorModes()` gives the shared mode, or the list
 * when modes differ; `changeAcceptorModes()` flips every acceptor when they agree and answers
 * "not_allowed" (changing nothing) when they do not. A sleeping acceptor keeps the port bound and holds
 * each arriving connection unserved: no `init`, no reads (the peer's bytes stay in the kernel), not
 * listed by `connections()`. Sleep takes effect at once (SockErl accepted one more connection);
 * wakeup serves the held connections in arrival order, across acceptors. There is no hand-off delay
 * (SockErl's was 500 ms per connection per acceptor), and a pending async `init` holds up no one.
 *
 * Real loopback sockets throughout. Acceptor tracing (`acceptorDebug: ["trace"]`, captured with
 * `sys.setSink`) tells when a connection has been accepted; a counting wrapper around `tcp()` (a
 * user-level custom transport) tells whether the server read a held connection's bytes.
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { AcceptorMode, Connection, Handler } from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer } from "../helpers/server.ts";
import { captureSink, type SinkCapture } from "../helpers/trace.ts";
import { countingTcp } from "../helpers/transport.ts";
import { Log, within } from "../helpers/wait.ts";

const HOST = "127.0.0.1";

// ------------------------------------------------------------------------------------------ helpers

/** The sink's lines: acceptor trace lines (and reports), captured instead of going to stderr. */
let sink: SinkCapture;

beforeEach(() => {
  sink = captureSink();
});

afterEach(cleanup);

/** An echo server that is not under test: a round trip through it proves the event loop has polled. */
async function pollBarrier(): Promise<() => Promise<void>> {
  const listener = Bun.listen({
    hostname: HOST,
    port: 0,
    socket: {
      data(socket, chunk) {
        socket.write(chunk);
      },
    },
  });
  defer(() => listener.stop(true));
  const client = await RawClient.connect(listener.port);
  return () => client.roundTrip(".", 3000);
}

/** Records the peer port of every connection whose `init` runs, in order; echoes packets. */
function echoHandler(inits: Log<number>, conns?: Log<Connection>): Handler<undefined, null> {
  return {
    init(_i, meta) {
      inits.push(meta.remotePort ?? -1);
      conns?.push(meta.connection);
    },
    handlePacket: (packet) => ({ send: packet }),
  };
}

/** Peer ports of the "accepted socket" acceptor trace lines, with the acceptor id, in order. */
function accepted(): { acceptor: string; port: number }[] {
  const out: { acceptor: string; port: number }[] = [];
  for (const line of sink.lines) {
    const m = /^\*DBG\* Sockerl acceptor <(\d+)> accepted socket [\d.]+:(\d+)$/.exec(line);
    if (m !== null) out.push({ acceptor: m[1]!, port: Number(m[2]) });
  }
  return out;
}

/** Connects and waits until the server has accepted the socket (acceptor trace). */
async function connectAccepted(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await sink.until(
    () => accepted().some((a) => a.port === client.localPort),
    3000,
    `the server to accept ${client.localPort}`,
  );
  return client;
}

/** Listening TCP sockets on 127.0.0.1:port, from /proc/net/tcp. */
function listenersOn(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === hex && f[3] === "0A"; // TCP_LISTEN
    }).length;
}

// ------------------------------------------------------------------------- N acceptors, one port

describe("acceptorCount: 10 on port 0", () => {
  test("ten listening sockets share the one port; acceptors() lists ten [id, mode]", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(echoHandler(inits), null, { acceptorCount: 10 });
    expect(server.port).toBeGreaterThan(0);
    expect(server.acceptors()).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, "accept"]));
    expect(server.acceptorList().map((a) => a.listener?.port)).toEqual(Array(10).fill(server.port));
    if (process.platform === "linux") expect(listenersOn(server.port)).toBe(10);
    await server.stop();
    if (process.platform === "linux") expect(listenersOn(server.port)).toBe(0);
  });

  test("connections are spread over the acceptors and every one is served", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(echoHandler(inits), null, {
      acceptorCount: 10,
      acceptorDebug: ["trace"],
    });
    const clients = await Promise.all(Array.from({ length: 40 }, () => RawClient.connect(server.port)));
    await Promise.all(clients.map((c, i) => c.roundTrip(`hello ${i}`, 3000)));
    await inits.until((l) => l.length === 40);
    expect(new Set(inits.items)).toEqual(new Set(clients.map((c) => c.localPort)));
    // SO_REUSEPORT hashes the 4-tuple: 40 connections all landing on one of ten acceptors would be a
    // 1-in-10^39 event.
    expect(new Set(accepted().map((a) => a.acceptor)).size).toBeGreaterThan(1);
  });

  test("changeAcceptorModes flips every acceptor; acceptorModes gives the shared mode", async () => {
    const server = await startTestServer(echoHandler(new Log()), null, { acceptorCount: 10 });
    expect(server.acceptorModes()).toBe("accept");
    expect(server.changeAcceptorModes()).toBe("sleep");
    expect(server.acceptorModes()).toBe("sleep");
    expect(server.acceptors()).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, "sleep"]));
    expect(server.changeAcceptorModes()).toBe("accept");
    expect(server.acceptorModes()).toBe("accept");
    server.sleepAcceptors();
    expect(server.acceptorModes()).toBe("sleep");
    server.wakeupAcceptors();
    expect(server.acceptorModes()).toBe("accept");
  });

  test('mixed modes: acceptorModes lists [id, mode]; changeAcceptorModes is "not_allowed" and changes nothing', async () => {
    const server = await startTestServer(echoHandler(new Log()), null, { acceptorCount: 10 });
    server.acceptorList()[2]!.setMode("sleep");
    const expected = Array.from({ length: 10 }, (_, i): [number, AcceptorMode] => [
      i + 1,
      i === 2 ? "sleep" : "accept",
    ]);
    expect(server.acceptorModes()).toEqual(expected);
    expect(server.acceptors()).toEqual(expected);
    expect(server.changeAcceptorModes()).toBe("not_allowed");
    expect(server.acceptors()).toEqual(expected);
    server.wakeupAcceptors();
    expect(server.acceptorModes()).toBe("accept");
    server.acceptorList()[9]!.setMode("sleep");
    expect(server.changeAcceptorModes()).toBe("not_allowed");
    server.sleepAcceptors();
    expect(server.acceptorModes()).toBe("sleep");
  });
});

// ------------------------------------------------------------------------------ sleeping

describe('acceptorMode: "sleep"', () => {
  test("a held connection gets no init and no reads until wakeup, then is served", async () => {
    const counter = countingTcp();
    const inits = new Log<number>();
    const barrier = await pollBarrier();
    const server = await startTestServer(echoHandler(inits), null, {
      acceptorMode: "sleep",
      acceptorDebug: ["trace"],
      transport: counter.transport,
    });
    expect(server.acceptorModes()).toBe("sleep");
    const client = await connectAccepted(server.port);
    client.write("hello");
    await barrier(); // the event loop has polled since the bytes reached the server's kernel queue
    await barrier();
    expect(inits.items).toEqual([]);
    expect(counter.read()).toBe(0); // the bytes stay in the kernel
    expect(client.received).toBe(0);
    expect(server.connections()).toEqual([]); // not served: not a live child yet

    server.wakeupAcceptors();
    await inits.until((l) => l.length === 1);
    expect(inits.items).toEqual([client.localPort]);
    await client.waitForBytes(5, 3000);
    expect(client.text()).toBe("hello");
    expect(server.connections().length).toBe(1);
  });

  test.each([1, 4])(
    "held connections are served in arrival order at wakeup (acceptorCount %d)",
    async (acceptorCount) => {
      const inits = new Log<number>();
      const server = await startTestServer(echoHandler(inits), null, {
        acceptorMode: "sleep",
        acceptorCount,
        acceptorDebug: ["trace"],
      });
      const clients: RawClient[] = [];
      for (let i = 0; i < 12; i++) clients.push(await connectAccepted(server.port));
      expect(inits.items).toEqual([]);
      server.wakeupAcceptors();
      await inits.until((l) => l.length === 12);
      expect(inits.items).toEqual(clients.map((c) => c.localPort));
      await Promise.all(clients.map((c, i) => c.roundTrip(`#${i}`, 3000)));
    },
  );

  test("changeAcceptorModes waking every acceptor also serves in arrival order", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(echoHandler(inits), null, {
      acceptorMode: "sleep",
      acceptorCount: 3,
      acceptorDebug: ["trace"],
    });
    const clients: RawClient[] = [];
    for (let i = 0; i < 9; i++) clients.push(await connectAccepted(server.port));
    expect(server.changeAcceptorModes()).toBe("accept");
    await inits.until((l) => l.length === 9);
    expect(inits.items).toEqual(clients.map((c) => c.localPort));
  });

  test("sleep takes effect at once: the very next connection is held (no one-more-accept)", async () => {
    const counter = countingTcp();
    const inits = new Log<number>();
    const conns = new Log<Connection>();
    const server = await startTestServer(echoHandler(inits, conns), null, {
      acceptorDebug: ["trace"],
      transport: counter.transport,
    });
    const first = await RawClient.connect(server.port);
    await first.roundTrip("first", 3000);
    server.sleepAcceptors();
    const second = await connectAccepted(server.port);
    second.write("second");
    await first.roundTrip("poll", 3000); // the loop polled, the served connection still works
    await first.roundTrip("poll", 3000);
    expect(inits.items).toEqual([first.localPort]);
    expect(counter.read()).toBe("firstpollpoll".length);
    expect(second.received).toBe(0);
    expect(server.connections().map(([id]) => id)).toEqual([conns.items[0]!.id]);

    server.wakeupAcceptors();
    await inits.until((l) => l.length === 2);
    await second.waitForBytes(6, 3000);
    expect(second.text()).toBe("second");
    // Awake again: a new connection is served at once.
    const third = await RawClient.connect(server.port);
    await third.roundTrip("third", 3000);
    expect(inits.items).toEqual([first.localPort, second.localPort, third.localPort]);
  });

  test("one sleeping acceptor among awake ones holds only what the kernel hands it", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(echoHandler(inits), null, {
      acceptorCount: 2,
      acceptorDebug: ["trace"],
    });
    const sleeper = server.acceptorList()[0]!;
    sleeper.setMode("sleep");
    const clients: RawClient[] = [];
    for (let i = 0; i < 16; i++) clients.push(await connectAccepted(server.port));
    const held = sleeper.held.length;
    await inits.until((l) => l.length === 16 - held);
    expect(server.connections().length).toBe(16 - held);
    sleeper.setMode("accept");
    await inits.until((l) => l.length === 16);
    await Promise.all(clients.map((c, i) => c.roundTrip(`${i}`, 3000)));
  });

  test("a held connection whose peer left is handled at wakeup (init, then disconnect), no hang", async () => {
    const events = new Log<string>();
    const conns = new Log<Connection>();
    const server = await startTestServer<undefined, null>(
      {
        init(_i, meta) {
          events.push("init");
          conns.push(meta.connection);
        },
        handlePacket: (packet) => {
          events.push(`packet:${Buffer.from(packet as Uint8Array).toString()}`);
        },
        handleDisconnect() {
          events.push("disconnect");
        },
      },
      null,
      { acceptorMode: "sleep", acceptorDebug: ["trace"] },
    );
    const client = await connectAccepted(server.port);
    client.write("bye");
    client.socket.end();
    server.wakeupAcceptors();
    await conns.until((l) => l.length === 1);
    expect(await within(conns.items[0]!.exited, 3000, "exit")).toBe("normal");
    expect(events.items).toEqual(["init", "packet:bye", "disconnect"]);
  });

  test("stopping a sleeping server closes held connections without init or terminate", async () => {
    const events = new Log<string>();
    const server = await startTestServer<undefined, null>(
      {
        init() {
          events.push("init");
        },
        handlePacket: () => undefined,
        terminate() {
          events.push("terminate");
        },
      },
      null,
      { acceptorMode: "sleep", acceptorDebug: ["trace"] },
    );
    const client = await connectAccepted(server.port);
    await within(server.stop(), 3000, "stop");
    await within(client.closedPromise, 3000, "the held socket to close");
    expect(events.items).toEqual([]);
    expect(await server.exited).toBe("normal");
  });
});

// ------------------------------------------------------------------------- no hand-off delay

describe("no hand-off delay", () => {
  test("50 simultaneous connections to one acceptor are all accepted, init'ed and served", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(echoHandler(inits), null);
    const clients = await within(
      Promise.all(Array.from({ length: 50 }, () => RawClient.connect(server.port))),
      3000,
      "50 connects",
    );
    await inits.until((l) => l.length === 50, 3000, "50 inits"); // SockErl: 25 s (500 ms each)
    await within(Promise.all(clients.map((c, i) => c.roundTrip(`ping ${i}`, 3000))), 3000, "50 round trips");
    expect(new Set(inits.items)).toEqual(new Set(clients.map((c) => c.localPort)));
  });

  test("a pending async init holds up no other connection", async () => {
    const gate = Promise.withResolvers<void>();
    const inits = new Log<number>();
    let first = true;
    const server = await startTestServer<undefined, null>(
      {
        async init(_i, meta) {
          if (first) {
            first = false;
            await gate.promise;
          }
          inits.push(meta.remotePort ?? -1);
        },
        handlePacket: (packet) => ({ send: packet }),
      },
      null,
    );
    const slow = await RawClient.connect(server.port);
    slow.write("queued");
    const others = await Promise.all(Array.from({ length: 10 }, () => RawClient.connect(server.port)));
    await Promise.all(others.map((c) => c.roundTrip("hi", 3000)));
    expect(inits.items.length).toBe(10);
    gate.resolve();
    await inits.until((l) => l.length === 11);
    await slow.waitForBytes(6, 3000);
    expect(slow.text()).toBe("queued");
  });
});
