/**
 * Invariant: a pool routes requests. `pool.call / cast / notify / sendAsync / sendSync` go to a live
 * connector chosen by `strategy` (round-robin reaches every connector; least-busy avoids a busy one; a
 * function picks among the live ones). With none live a request waits, in order, at most `maxWaiting`
 * of them (`PoolFullError` past it) and at most `waitTimeout` ms (`PoolTimeoutError`), and goes out as
 * soon as a connector is up (a call made while the server is down completes when it comes up). A
 * request still in the mailbox of a connector that loses its socket is routed again: never lost, never
 * duplicated; the call its handler had already taken rejects with `NoProcError`. `from.reject(error)`
 * rejects the call with that error. A stopped pool rejects with `NoProcError`. The default plan
 * reconnects with backoff forever (`planCount` Infinity), so `plan: [{ restart: 20 }]` survives repeated
 * drops. `conn.stop()` on a connector preempts its mailbox: the pool calls queued there are routed again.
 * Writes of the calls routed in one tick leave as one socket write (auto-cork). Connector up/down
 * are published on the diagnostics channels. All on real loopback sockets.
 */
import { afterEach, describe, expect, test } from "bun:test";
import diagnostics from "node:diagnostics_channel";
import {
  BadReturnError,
  CallbackError,
  type Connection,
  type From,
  type Handler,
  NoProcError,
  OptionError,
  type Pool,
  PoolFullError,
  type PoolOptions,
  PoolTimeoutError,
  type Server,
  startConnectorPool,
  startServer,
  type Transport,
  type TransportEvents,
  type TransportSocket,
  tcp,
} from "../../src/index.ts";
import { cleanup, closedPort, defer, startTestServer, track, trackStop } from "../helpers/server.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

const HOST = "127.0.0.1";

async function startPool<S, I>(
  handler: Handler<S, I>,
  init: I,
  port: number,
  options?: PoolOptions,
): Promise<Pool<S, I>> {
  // Line framing: every reply is one packet, however the replies of pipelined calls are chunked.
  return trackStop(
    await startConnectorPool(handler, init, [[HOST, port]], { packet: "line", encoding: "utf8", ...options }),
  );
}

/** A line server: answers each line `x` with `x` (its echo), and records every line it got. */
async function lineServer(seen: string[] = [], port = 0): Promise<Server<undefined, undefined>> {
  const server = await startServer(
    {
      init: () => undefined,
      handlePacket(packet) {
        seen.push(String(packet).trimEnd());
        return { send: packet };
      },
    },
    undefined,
    port,
    { hostname: HOST, packet: "line", encoding: "utf8" },
  );
  if (server === undefined) throw new Error("server ignored");
  return track(server);
}

/** Connector state: callers waiting for their line, oldest first. */
interface LineState {
  waiting: From[];
}

/** A line client: `call(x)` writes `x\n` and resolves with the echoed line; `call("who")` replies with its id. */
const lineClient: Handler<LineState> = {
  init: () => ({ state: { waiting: [] } }),
  handleCall(request, from, state, meta) {
    if (request === "who") return { reply: meta.connection.id };
    if (request === "fail") {
      from.reject(new RangeError("refused by the handler"));
      return undefined;
    }
    state.waiting.push(from);
    return { send: `${String(request)}\n` };
  },
  handlePacket(packet, state) {
    state.waiting.shift()?.reply(String(packet).trimEnd());
    return undefined;
  },
  handleDisconnect: () => undefined,
};

describe("routing", () => {
  test("round-robin reaches every connector, each in turn", async () => {
    const server = await lineServer();
    const pool = await startPool(lineClient, undefined, server.port, { connectorCount: 4 });
    const ids = await Promise.all(Array.from({ length: 12 }, () => pool.call("who")));
    const live = pool.connections().map(([, c]) => c.id);
    expect(new Set(ids)).toEqual(new Set(live));
    for (const id of live) expect(ids.filter((i) => i === id)).toHaveLength(3);
    expect(await pool.call("hello")).toBe("hello");
  });

  test("least-busy sends to the connector with the fewest calls in flight", async () => {
    const silent = await startTestServer({ init: () => undefined, handlePacket: () => undefined }, undefined);
    const pool = await startPool(lineClient, undefined, silent.port, {
      connectorCount: 3,
      strategy: "least-busy",
    });
    // Two calls that will never be answered occupy two connectors...
    const stuck = [pool.call("a", 10_000), pool.call("b", 10_000)];
    for (const s of stuck) s.catch(() => undefined);
    await waitFor(() => pool.info().inFlight === 2, 1000, "two calls in flight");
    // ... so every "who" goes to the third.
    const ids = await Promise.all([pool.call("who"), pool.call("who"), pool.call("who")]);
    expect(new Set(ids).size).toBe(1);
  });

  test("a strategy function picks among the live connectors", async () => {
    const server = await lineServer();
    const seen: number[] = [];
    const pool = await startPool(lineClient, undefined, server.port, {
      connectorCount: 3,
      strategy: (live: readonly Connection[], request: unknown) => {
        seen.push(live.length);
        return request === "who" ? live[live.length - 1]! : live[0]!;
      },
    });
    const last = pool.connections().at(-1)![1].id;
    expect(await pool.call("who")).toBe(last);
    expect(seen).toEqual([3]);
  });

  test("cast, notify, sendAsync and sendSync are routed too", async () => {
    const seen: string[] = [];
    const server = await lineServer(seen);
    const events: unknown[] = [];
    const handler: Handler<LineState> = {
      ...lineClient,
      handleCast: (message) => ({ send: `cast:${String(message)}\n` }),
      handleEvent: (event) => {
        events.push(event);
        return undefined;
      },
    };
    const pool = await startPool(handler, undefined, server.port, { connectorCount: 2 });
    pool.cast("c1");
    pool.notify("e1");
    pool.sendAsync("async\n");
    await pool.sendSync("sync\n");
    await waitFor(() => seen.length === 3, 2000, "the server to get 3 lines");
    expect(seen.sort()).toEqual(["async", "cast:c1", "sync"]);
    expect(events).toEqual(["e1"]);
  });

  test("from.reject(error) rejects the call with that error", async () => {
    const server = await lineServer();
    const pool = await startPool(lineClient, undefined, server.port);
    const error = await pool.call("fail").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RangeError);
    expect((error as Error).message).toBe("refused by the handler");
    expect(await pool.call("still fine")).toBe("still fine");
  });
});

describe("waiting for a live connector", () => {
  test("a call made while the server is down completes once it comes up", async () => {
    const port = await closedPort();
    const pool = await startPool(lineClient, undefined, port, {
      connectorCount: 2,
      watchdog: true,
      plan: [{ restart: 20 }],
    });
    expect(pool.info().live).toBe(0);
    const pending = pool.call("late", 5000);
    expect(pool.info().waiting).toBe(1);
    await lineServer([], port);
    expect(await within(pending, 3000, "the waiting call")).toBe("late");
    await within(pool.ready({ count: 2 }), 3000, "both connectors");
    expect(pool.info()).toMatchObject({ size: 2, live: 2, waiting: 0 });
  });

  test("past waitTimeout a waiting call rejects with PoolTimeoutError", async () => {
    const port = await closedPort();
    const pool = await startPool(lineClient, undefined, port, {
      watchdog: true,
      plan: [{ restart: 50 }],
      waitTimeout: 100,
    });
    const started = performance.now();
    const error = await pool.call("never").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as PoolTimeoutError).code).toBe("ERR_POOL_TIMEOUT");
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(pool.info().waiting).toBe(0);
    const ready = await pool.ready({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(ready).toBeInstanceOf(PoolTimeoutError);
  });

  test("past maxWaiting a request rejects at once with PoolFullError", async () => {
    const port = await closedPort();
    const pool = await startPool(lineClient, undefined, port, {
      watchdog: true,
      plan: [{ restart: 50 }],
      maxWaiting: 2,
    });
    const waiting = [pool.call("1"), pool.call("2")];
    for (const w of waiting) w.catch(() => undefined);
    const error = await pool.call("3").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PoolFullError);
    expect((error as PoolFullError).code).toBe("ERR_POOL_FULL");
    expect(() => pool.cast("4")).toThrow(PoolFullError);
    expect(pool.info().waiting).toBe(2);
  });

  test("a stopped pool rejects with NoProcError, the waiting requests included", async () => {
    const port = await closedPort();
    const pool = await startPool(lineClient, undefined, port, { watchdog: true, plan: [{ restart: 50 }] });
    const waiting = pool.call("w");
    const ready = pool.ready();
    await pool.stop();
    expect(await waiting.catch((e: unknown) => e)).toBeInstanceOf(NoProcError);
    expect(await ready.catch((e: unknown) => e)).toBeInstanceOf(NoProcError);
    expect(await pool.call("after").catch((e: unknown) => e)).toBeInstanceOf(NoProcError);
    expect(() => pool.cast("after")).toThrow(NoProcError);
  });
});

describe("re-routing", () => {
  test("calls queued in a connector that loses its socket go to another one: no loss, no duplicate", async () => {
    const seen: string[] = [];
    // Server side: record which connection serves which client port, to drop exactly one of them.
    const byPeerPort = new Map<number, Connection>();
    const server = await startTestServer(
      {
        init(_init, meta) {
          if (meta.remotePort !== undefined) byPeerPort.set(meta.remotePort, meta.connection);
          return undefined;
        },
        handlePacket(packet) {
          seen.push(String(packet).trimEnd());
          return { send: packet };
        },
      },
      undefined,
      { packet: "line", encoding: "utf8" },
    );
    const gate = Promise.withResolvers<void>();
    const localPorts = new Map<number, number>();
    let target = 0;
    const handler: Handler<LineState> = {
      ...lineClient,
      init(_init, meta) {
        if (meta.localPort !== undefined) localPorts.set(meta.connection.id, meta.localPort);
        return { state: { waiting: [] } };
      },
      async handleCall(request, from, state, meta) {
        // The first call on the target holds it, so the calls routed behind it queue in its mailbox.
        if (request === "hold") {
          state.waiting.push(from);
          await gate.promise;
          return { send: "hold\n" };
        }
        return lineClient.handleCall!(request, from, state, meta);
      },
    };
    const pool = await startPool(handler, undefined, server.port, {
      connectorCount: 2,
      plan: [{ restart: 20 }],
      strategy: (live: readonly Connection[]) => live.find((c) => c.id === target) ?? live[0]!,
    });
    await waitFor(() => byPeerPort.size === 2, 2000, "2 server connections");
    target = pool.connections()[0]![1].id;
    const held = pool.call("hold");
    const queued = Array.from({ length: 20 }, (_, i) => pool.call(`q${i}`));
    expect(pool.info().inFlight).toBe(21);
    // The target's socket goes away while 20 calls wait in its mailbox.
    await byPeerPort.get(localPorts.get(target)!)!.stop();
    const results = await within(Promise.allSettled(queued), 5000, "the re-routed calls");
    gate.resolve();
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : r.reason))).toEqual(
      Array.from({ length: 20 }, (_, i) => `q${i}`),
    );
    // The call its handler had taken may have been written: it rejects, the application decides.
    expect(
      await within(
        held.catch((e: unknown) => e),
        3000,
        "the held call",
      ),
    ).toBeInstanceOf(NoProcError);
    // Every queued call reached the server exactly once, and the held one never.
    const counts = new Map<string, number>();
    for (const line of seen) counts.set(line, (counts.get(line) ?? 0) + 1);
    for (let i = 0; i < 20; i++) expect(counts.get(`q${i}`)).toBe(1);
    expect(counts.get("hold")).toBeUndefined();
  });
});

describe("re-routing when a connector is stopped", () => {
  test("conn.stop() preempts the mailbox: the queued pool calls go to another connector", async () => {
    const seen: string[] = [];
    const server = await lineServer(seen);
    const gate = Promise.withResolvers<void>();
    let target = 0;
    const handler: Handler<LineState> = {
      ...lineClient,
      async handleCall(request, from, state, meta) {
        if (request === "hold") {
          await gate.promise;
          return { reply: "held" };
        }
        return lineClient.handleCall!(request, from, state, meta);
      },
    };
    const pool = await startPool(handler, undefined, server.port, {
      connectorCount: 2,
      plan: [{ restart: 20 }],
      strategy: (live: readonly Connection[]) => live.find((c) => c.id === target) ?? live[0]!,
    });
    const [, a] = pool.connections()[0]!;
    target = a.id;
    const held = pool.call("hold");
    const queued = Array.from({ length: 10 }, (_, i) => pool.call(`s${i}`));
    const stopping = a.stop("maintenance");
    gate.resolve(); // the running callback finishes; nothing queued behind it runs on a
    expect(await within(held, 2000, "the held call")).toBe("held");
    const replies = await within(Promise.all(queued), 3000, "the re-routed calls");
    expect(replies).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
    await stopping;
    for (let i = 0; i < 10; i++) expect(seen.filter((l) => l === `s${i}`)).toHaveLength(1);
  });
});

describe("supervision defaults", () => {
  test("plan [{ restart: 20 }] survives repeated drops with the default planCount", async () => {
    let accepted = 0;
    const server = await startTestServer(
      {
        init() {
          accepted++;
          // The first 5 connections are dropped at once; the 6th is served.
          return accepted <= 5 ? { close: true } : undefined;
        },
        handlePacket: (packet) => ({ send: packet }),
      },
      undefined,
      { packet: "line", encoding: "utf8" },
    );
    const pool = await startPool(lineClient, undefined, server.port, {
      plan: [{ restart: 20 }],
      watchdog: true,
    });
    // (A call sent while a connection is being dropped may have been written: it rejects. So call
    // once the served connection is up.)
    await waitFor(() => accepted >= 6, 3000, "6 connections");
    await within(pool.ready(), 3000, "a live connector");
    expect(await within(pool.call("survived", 5000), 5000, "a call after 5 drops")).toBe("survived");
    expect(pool.exited).toBeDefined();
    expect(pool.info().restarts).toBeGreaterThanOrEqual(5);
  });

  test("the default plan reconnects a pool whose server restarted", async () => {
    const server = await lineServer();
    const port = server.port;
    const pool = await startPool(lineClient, undefined, port, { connectorCount: 2 });
    await server.stop();
    await waitFor(() => pool.info().live === 0, 2000, "the connectors to drop");
    await lineServer([], port);
    expect(await within(pool.call("back", 5000), 5000, "a call after the restart")).toBe("back");
    await within(pool.ready({ count: 2, timeoutMs: 3000 }), 4000, "both connectors back");
  });
});

describe("auto-cork", () => {
  /** tcp() that counts write calls on connecting sockets. */
  function countingWrites(): { transport: Transport; writes: () => number } {
    const inner = tcp();
    let writes = 0;
    const transport: Transport = {
      name: "tcp",
      secure: false,
      listen: (request) => inner.listen(request),
      connect(request) {
        const events: TransportEvents = {
          ...request.events,
          open(socket: TransportSocket) {
            const write = socket.write.bind(socket);
            socket.write = (data, offset, length) => {
              writes++;
              return offset === undefined ? write(data) : write(data, offset, length);
            };
            request.events.open(socket);
          },
        };
        return inner.connect({ ...request, events });
      },
    };
    return { transport, writes: () => writes };
  }

  test("50 pool calls made in one tick leave as one socket write", async () => {
    const seen: string[] = [];
    const server = await lineServer(seen);
    const counter = countingWrites();
    const pool = await startPool(lineClient, undefined, server.port, { transport: counter.transport });
    const before = counter.writes();
    const calls = Array.from({ length: 50 }, (_, i) => pool.call(`p${i}`));
    const replies = await within(Promise.all(calls), 3000, "50 replies");
    expect(replies).toEqual(Array.from({ length: 50 }, (_, i) => `p${i}`));
    expect(counter.writes() - before).toBe(1);
  });
});

describe("lifecycle you can see", () => {
  test("info() counts; connector up and down are published on the diagnostics channels", async () => {
    const ups: unknown[] = [];
    const downs: unknown[] = [];
    const onUp = (m: unknown) => ups.push(m);
    const onDown = (m: unknown) => downs.push(m);
    diagnostics.subscribe("sockerl:pool:connector:up", onUp);
    diagnostics.subscribe("sockerl:pool:connector:down", onDown);
    defer(() => {
      diagnostics.unsubscribe("sockerl:pool:connector:up", onUp);
      diagnostics.unsubscribe("sockerl:pool:connector:down", onDown);
    });
    const server = await lineServer();
    const pool = await startPool(lineClient, undefined, server.port, {
      connectorCount: 3,
      plan: [{ restart: 20 }],
    });
    expect(pool.info()).toEqual({ size: 3, live: 3, connecting: 0, waiting: 0, inFlight: 0, restarts: 0 });
    expect(ups).toHaveLength(3);
    expect(ups[0]).toMatchObject({ pool, id: expect.any(Number) });
    const [, first] = server.connections()[0]!;
    await first.stop();
    await waitFor(() => downs.length === 1 && ups.length === 4, 2000, "a down and a new up");
    expect(downs[0]).toMatchObject({ pool, id: expect.any(Number) });
    expect(pool.info()).toMatchObject({ size: 3, live: 3, restarts: 1 });
  });
});

describe("routing options", () => {
  test("a bad strategy, maxWaiting or waitTimeout is an OptionError naming it", async () => {
    const server = await lineServer();
    const bad: Array<[PoolOptions, string]> = [
      [{ strategy: "random" as never }, "strategy"],
      [{ maxWaiting: -1 }, "maxWaiting"],
      [{ maxWaiting: 1.5 }, "maxWaiting"],
      [{ waitTimeout: -5 }, "waitTimeout"],
    ];
    for (const [options, option] of bad) {
      const error = await startConnectorPool(lineClient, undefined, [[HOST, server.port]], options).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).option).toBe(option);
    }
  });

  test("a strategy that throws or returns a stranger rejects that request only", async () => {
    const server = await lineServer();
    let mode = "throw";
    const pool = await startPool(lineClient, undefined, server.port, {
      strategy: (live: readonly Connection[]) => {
        if (mode === "throw") throw new Error("no idea");
        if (mode === "stranger") return {} as Connection;
        return live[0]!;
      },
    });
    expect(await pool.call("x").catch((e: unknown) => e)).toBeInstanceOf(CallbackError);
    mode = "stranger";
    expect(await pool.call("x").catch((e: unknown) => e)).toBeInstanceOf(BadReturnError);
    mode = "ok";
    expect(await pool.call("x")).toBe("x");
  });
});
