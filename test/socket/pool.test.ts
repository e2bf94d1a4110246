/**
 * Invariant: a connector pool runs `connectorCount` connectors per address, each a child with its own
 * restart-plan track (docs/connectors.md#pools, docs/supervision.md). `connections()` lists live connectors only, under ids that stay
 * the same across reconnects. Every exit and, with `watchdog`, every failed connect (refused, unknown
 * host, ...) goes through the plan: `{ restart: ms }` reconnects and runs `init` again, so a pool started
 * before its server comes up and survives its server restarting; once a child has used its `planCount`
 * passes the pool ends with `RestartLimitError` ("reached_max_restart_plan"). Without `watchdog` a
 * failed initial connect rejects the start with `SocketConnectError`, and the connectors already up are
 * stopped. The default plan (`[backoff()]`, `planCount` Infinity) reconnects a connector whatever
 * its reason; under SockErl's strict plan, given as one line, a normal exit deletes one connector and
 * an abnormal one ends the pool, every other connector getting `terminate("shutdown")` once. `pool.stop()` resolves only after every
 * connector has run `terminate` (the server sees every socket close: no orphans, which SockErl left behind).
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  ArgumentError,
  CallbackError,
  type Connection,
  type ExitReason,
  type Handler,
  NoProcError,
  type Pool,
  type PoolOptions,
  RestartLimitError,
  type Server,
  SocketConnectError,
  startConnectorPool,
  startServer,
  whereis,
} from "../../src/index.ts";
import { rejection } from "../helpers/errors.ts";
import { cleanup, closedPort, track, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { EventRecorder, observe, waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

const HOST = "127.0.0.1";

/** SockErl's default plan, now an explicit one-liner: a normal exit deletes, anything else stops the pool. */
const STRICT = (reason: ExitReason) => (reason === "normal" ? "delete" : "stop");

/** Starts a pool and registers it for cleanup. */
async function startPool<S, I>(
  handler: Handler<S, I>,
  init: I,
  addresses: Array<[string, number]>,
  options?: PoolOptions,
): Promise<Pool<S, I>> {
  return trackStop(await startConnectorPool(handler, init, addresses, options));
}

/** Records events and lets a test await a condition, re-checked on every recorded event. */
class Recorder extends EventRecorder {
  inits: unknown[] = [];
  terminated: Array<[conn: Connection, reason: ExitReason]> = [];
  reasons: ExitReason[] = [];

  reasonsOf(conn: Connection): ExitReason[] {
    return this.terminated.filter(([c]) => c === conn).map(([, r]) => r);
  }
}

/**
 * The connectors' handler: `init` records its argument; `call("ping")` → "pong"; `cast("boom")` stops
 * with "boom", `cast("bye")` closes normally; `terminate` is recorded.
 */
function connectorHandler(rec: Recorder): Handler<undefined, unknown> {
  return {
    init(init) {
      rec.inits.push(init);
      rec.changed();
      return undefined;
    },
    handlePacket() {
      return undefined;
    },
    handleCall(request) {
      return { reply: request === "ping" ? "pong" : request };
    },
    handleCast(message) {
      if (message === "boom") return { stop: "boom" };
      if (message === "bye") return { close: true };
      return undefined;
    },
    terminate(reason, _state, meta) {
      rec.terminated.push([meta.connection, reason]);
      rec.changed();
    },
  };
}

/** A server that records its connections' starts and ends (ends in `rec.reasons`). */
function serverHandler(rec: Recorder): Handler<undefined, unknown> {
  return {
    init(_init, meta) {
      rec.inits.push(meta.connection);
      rec.changed();
      return undefined;
    },
    handlePacket() {
      return undefined;
    },
    terminate(reason) {
      rec.reasons.push(reason);
      rec.changed();
    },
  };
}

/** A recording server, and a pool of recording connectors to it (both tracked for cleanup). */
async function poolToServer(options?: PoolOptions, init?: unknown) {
  const srec = new Recorder();
  const server = await recordingServer(srec);
  const rec = new Recorder();
  const pool = await startPool(connectorHandler(rec), init, [[HOST, server.port]], options);
  return { srec, server, rec, pool };
}

/** Starts a recording server on `port` (0 = any) and tracks it for cleanup. */
async function recordingServer(rec: Recorder, port = 0): Promise<Server<undefined, unknown>> {
  const server = await startServer(serverHandler(rec), undefined, port, { hostname: HOST });
  if (server === undefined) throw new Error("server ignored");
  return track(server);
}

function ids(pool: Pool<never, never> | Pool<undefined, unknown>): number[] {
  return pool.connections().map(([id]) => id);
}

describe("starting a pool", () => {
  test("connectorCount 5: connections() lists 5 live connectors with distinct ids, each connected and running init with the pool's init", async () => {
    const { srec, server, rec, pool } = await poolToServer({ connectorCount: 5 }, "init-arg");

    const list = pool.connections();
    expect(list).toHaveLength(5);
    expect(new Set(list.map(([id]) => id)).size).toBe(5);
    expect(new Set(list.map(([, c]) => c)).size).toBe(5);
    expect(rec.inits).toEqual(Array(5).fill("init-arg"));
    for (const [, conn] of list) expect(await conn.call("ping")).toBe("pong");
    await srec.until(() => server.connections().length === 5, 2000, "5 server connections");
  }, 10000);

  test("several addresses: connectorCount connectors to each", async () => {
    const srec1 = new Recorder();
    const srec2 = new Recorder();
    const s1 = await recordingServer(srec1);
    const s2 = await recordingServer(srec2);
    const rec = new Recorder();
    const pool = await startPool(
      connectorHandler(rec),
      undefined,
      [
        [HOST, s1.port],
        [HOST, s2.port],
      ],
      { connectorCount: 2 },
    );
    expect(pool.connections()).toHaveLength(4);
    await srec1.until(() => s1.connections().length === 2, 2000, "2 connections on s1");
    await srec2.until(() => s2.connections().length === 2, 2000, "2 connections on s2");
  }, 10000);

  test("without watchdog, a pool whose server is down rejects with SocketConnectError ECONNREFUSED", async () => {
    const port = await closedPort();
    const error = await rejection(
      startConnectorPool(connectorHandler(new Recorder()), undefined, [[HOST, port]]),
    );
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({
      code: "ECONNREFUSED",
      reason: "econnrefused",
      transport: "tcp",
      host: HOST,
      port,
    });
  }, 10000);

  test("without watchdog, one failed address rejects the start and stops the connectors already up (terminate 'shutdown', the server sees them close, the name is freed)", async () => {
    const srec = new Recorder();
    const server = await recordingServer(srec);
    const down = await closedPort();
    const rec = new Recorder();
    const error = await rejection(
      startConnectorPool(
        connectorHandler(rec),
        undefined,
        [
          [HOST, server.port],
          [HOST, down],
        ],
        { connectorCount: 2, name: "pool-partial" },
      ),
    );
    expect(error).toBeInstanceOf(SocketConnectError);
    expect((error as SocketConnectError).port).toBe(down);
    expect(rec.inits).toHaveLength(2);
    expect(rec.terminated.map(([, r]) => r)).toEqual(["shutdown", "shutdown"]);
    await srec.until(() => srec.reasons.length === 2, 2000, "the server to see both close");
    expect(server.connections()).toEqual([]);
    expect(whereis("pool-partial")).toBeUndefined();
  }, 10000);

  test("init throwing without watchdog rejects the start with CallbackError", async () => {
    captureSink();
    const server = await recordingServer(new Recorder());
    const error = await rejection(
      startConnectorPool(
        {
          init: () => {
            throw new Error("nope");
          },
          handlePacket: () => undefined,
        },
        undefined,
        [[HOST, server.port]],
      ),
    );
    expect(error).toBeInstanceOf(CallbackError);
    expect((error as CallbackError).callback).toBe("init");
  }, 10000);

  test("bad arguments: ArgumentError for addresses, OptionError for options", async () => {
    const h = connectorHandler(new Recorder());
    const notArray = await rejection(startConnectorPool(h, undefined, "127.0.0.1:80" as never));
    expect(notArray).toBeInstanceOf(ArgumentError);
    expect((notArray as ArgumentError).code).toBe("ERR_ARGUMENT");
    const badPair = await rejection(startConnectorPool(h, undefined, [["127.0.0.1"]] as never));
    expect(badPair).toBeInstanceOf(ArgumentError);
    const count = await rejection(startConnectorPool(h, undefined, [[HOST, 1]], { connectorCount: 0 }));
    expect(count).toMatchObject({ code: "ERR_OPTION", option: "connectorCount" });
    const plan = await rejection(startConnectorPool(h, undefined, [[HOST, 1]], { plan: ["bogus" as never] }));
    expect(plan).toMatchObject({ code: "ERR_OPTION", option: "plan[0]" });
  });
});

describe("watchdog and reconnects", () => {
  const RECONNECT: PoolOptions = {
    watchdog: true,
    plan: [{ restart: 50 }],
    planCount: Number.POSITIVE_INFINITY,
  };

  test("a watchdog pool starts before its server, connects once it comes up, reconnects after the server kills its connections and after a server restart on the same port", async () => {
    const port = await closedPort();
    const rec = new Recorder();
    const pool = await startPool(connectorHandler(rec), "again", [[HOST, port]], {
      ...RECONNECT,
      connectorCount: 2,
    });
    // Started anyway: nothing live, no init yet.
    expect(pool.connections()).toEqual([]);
    expect(rec.inits).toEqual([]);
    expect(observe(pool.exited).settled).toBe(false);

    // The server comes up: both connectors connect and run init.
    const srec = new Recorder();
    const server = await recordingServer(srec, port);
    await waitFor(() => pool.connections().length === 2, 3000, "both connectors to connect");
    expect(rec.inits).toEqual(["again", "again"]);
    const slotIds = ids(pool).sort();
    const firstConns = pool.connections().map(([, c]) => c);
    await srec.until(() => server.connections().length === 2, 2000, "the server to see both");

    // The server kills its side of each connection: the connectors exit and reconnect (init again).
    for (const [, conn] of server.connections()) await conn.stop();
    await rec.until(() => rec.inits.length === 4, 3000, "init to run again for both");
    await waitFor(() => pool.connections().length === 2, 3000, "both connectors to be live again");
    expect(ids(pool).sort()).toEqual(slotIds); // ids are stable across reconnects
    for (const [, conn] of pool.connections()) expect(firstConns).not.toContain(conn);
    await srec.until(() => server.connections().length === 2, 2000, "the server to see both again");

    // The server restarts on the same port: the connectors exit, retry while it is down, reconnect.
    await server.stop();
    await waitFor(() => pool.connections().length === 0, 3000, "the connectors to leave while restarting");
    const srec2 = new Recorder();
    const server2 = await recordingServer(srec2, port);
    await srec2.until(
      () => server2.connections().length === 2,
      3000,
      "the connectors to reach the new server",
    );
    await waitFor(() => pool.connections().length === 2, 3000, "both live after the restart");
    expect(rec.inits).toHaveLength(6);
    for (const [, conn] of pool.connections()) expect(await conn.call("ping")).toBe("pong");
    expect(observe(pool.exited).settled).toBe(false);
  }, 15000);

  test("with watchdog any connect failure goes through the plan: an unknown host reaches the plan function as SocketConnectError ENOTFOUND", async () => {
    const rec = new Recorder();
    const seen: Array<[reason: ExitReason, count: number]> = [];
    const pool = await startPool(connectorHandler(rec), undefined, [["no-such-host.invalid", 80]], {
      watchdog: true,
      planCount: Number.POSITIVE_INFINITY,
      plan: [
        (reason, count) => {
          seen.push([reason, count]);
          rec.changed();
          return { restart: 10 };
        },
      ],
    });
    expect(pool.connections()).toEqual([]);
    await rec.until(() => seen.length >= 3, 5000, "three failed connects through the plan");
    for (const [reason] of seen) {
      expect(reason).toBeInstanceOf(SocketConnectError);
      expect(reason).toMatchObject({ code: "ENOTFOUND", host: "no-such-host.invalid", port: 80 });
    }
    expect(seen.slice(0, 3).map(([, count]) => count)).toEqual([1, 2, 3]);
    expect(rec.inits).toEqual([]);
  }, 10000);

  test("with watchdog a pool with one good and one unknown address starts with the good connector live", async () => {
    const server = await recordingServer(new Recorder());
    const rec = new Recorder();
    const pool = await startPool(
      connectorHandler(rec),
      undefined,
      [
        [HOST, server.port],
        ["no-such-host.invalid", 80],
      ],
      RECONNECT,
    );
    expect(pool.connections()).toHaveLength(1);
    expect(await pool.connections()[0]![1].call("ping")).toBe("pong");
  }, 10000);

  test("with watchdog and the default plan, failed connects are retried with backoff: the pool lives on", async () => {
    const port = await closedPort();
    const pool = await startPool(connectorHandler(new Recorder()), undefined, [[HOST, port]], {
      watchdog: true,
    });
    await waitFor(() => pool.info().restarts >= 2, 2000, "two retries (100 ms, then about 200 ms)");
    expect(observe(pool.exited).settled).toBe(false);
    expect(pool.info()).toMatchObject({ size: 1, live: 0, connecting: 1 });
  }, 10000);

  test("with watchdog and SockErl's strict plan, a failed first connect ends the pool with the SocketConnectError", async () => {
    captureSink();
    const port = await closedPort();
    const pool = await startPool(connectorHandler(new Recorder()), undefined, [[HOST, port]], {
      watchdog: true,
      plan: [STRICT],
    });
    const reason = await within(pool.exited, 2000, "pool.exited");
    expect(reason).toBeInstanceOf(SocketConnectError);
    expect((reason as SocketConnectError).code).toBe("ECONNREFUSED");
  }, 10000);

  test("plan exhaustion: [{ restart: 10 }] with planCount 2 ends the pool with RestartLimitError after the passes are used up", async () => {
    const sink = captureSink();
    const port = await closedPort();
    const pool = await startPool(connectorHandler(new Recorder()), undefined, [[HOST, port]], {
      watchdog: true,
      plan: [{ restart: 10 }],
      planCount: 2,
    });
    const reason = await within(pool.exited, 3000, "pool.exited");
    expect(reason).toBeInstanceOf(RestartLimitError);
    const limit = reason as RestartLimitError;
    expect(limit.code).toBe("ERR_RESTART_LIMIT");
    expect(limit.reason).toBe("reached_max_restart_plan");
    expect(limit.childReason).toBeInstanceOf(SocketConnectError);
    expect(pool.connections()).toEqual([]);
    expect(
      sink.reports().some((r) => r.startsWith("** Sockerl pool") && r.includes("reached_max_restart_plan")),
    ).toBe(true);
  }, 10000);

  test("plan exhaustion counts exits of a running connector too: two reconnects, then the third exit ends the pool", async () => {
    captureSink();
    const { rec, pool } = await poolToServer({
      plan: [{ restart: 10 }],
      planCount: 2,
    });
    for (let i = 1; i <= 2; i++) {
      const [[, conn]] = pool.connections() as [[number, Connection]];
      await conn.stop();
      await rec.until(() => rec.inits.length === i + 1, 2000, `reconnect ${i}`);
      await waitFor(() => pool.connections().length === 1, 2000, `connector live after reconnect ${i}`);
    }
    const [[slot, conn]] = pool.connections() as [[number, Connection]];
    await conn.stop();
    const reason = await within(pool.exited, 2000, "pool.exited");
    expect(reason).toBeInstanceOf(RestartLimitError);
    expect((reason as RestartLimitError).childReason).toBe("normal");
    expect((reason as RestartLimitError).childId).toBe(slot);
    expect(rec.inits).toHaveLength(3);
  }, 10000);

  test("plans run per child: one connector using up its passes does not use up another's", async () => {
    captureSink();
    const { rec, pool } = await poolToServer({
      connectorCount: 2,
      plan: [{ restart: 10 }],
      planCount: 1,
    });
    const [[slotA], [slotB]] = pool.connections() as [[number, Connection], [number, Connection]];
    const connOf = (slot: number): Connection => pool.connections().find(([id]) => id === slot)![1];

    await connOf(slotA).stop(); // A: pass 1 used
    await rec.until(() => rec.inits.length === 3, 2000, "A to reconnect");
    await waitFor(() => pool.connections().length === 2, 2000, "A live again");
    await connOf(slotB).stop(); // B: its own pass 1
    await rec.until(() => rec.inits.length === 4, 2000, "B to reconnect");
    await waitFor(() => pool.connections().length === 2, 2000, "B live again");
    expect(observe(pool.exited).settled).toBe(false);

    await connOf(slotA).stop(); // A again: past its planCount
    const reason = await within(pool.exited, 2000, "pool.exited");
    expect(reason).toBeInstanceOf(RestartLimitError);
    expect((reason as RestartLimitError).childId).toBe(slotA);
  }, 10000);
});

describe("crash isolation", () => {
  test("under the default plan an abnormal exit reconnects that connector only", async () => {
    captureSink();
    const { rec, pool } = await poolToServer({ connectorCount: 2 });
    const [[idA, a], [, b]] = pool.connections() as [[number, Connection], [number, Connection]];
    a.cast("boom");
    await rec.until(() => rec.inits.length === 3, 2000, "a to reconnect (after ~100 ms)");
    expect(rec.reasonsOf(a)).toEqual(["boom"]);
    expect(rec.reasonsOf(b)).toEqual([]);
    expect(ids(pool)).toContain(idA);
    expect(observe(pool.exited).settled).toBe(false);
  }, 10000);

  test("under SockErl's strict plan a normal exit deletes only that connector; an abnormal one ends the pool and every other connector gets terminate('shutdown') once", async () => {
    const sink = captureSink();
    const { srec, server, rec, pool } = await poolToServer({
      connectorCount: 3,
      plan: [STRICT],
    });
    const [[, a], [, b], [, c]] = pool.connections() as Array<[number, Connection]> as [
      [number, Connection],
      [number, Connection],
      [number, Connection],
    ];

    a.cast("bye");
    await rec.until(() => rec.terminated.length === 1, 2000, "a to end");
    expect(rec.reasonsOf(a)).toEqual(["normal"]);
    expect(pool.connections().map(([, x]) => x)).toEqual([b, c]);
    await srec.until(() => srec.reasons.length === 1, 2000, "the server to see a close");
    expect(observe(pool.exited).settled).toBe(false);
    expect(sink.reports()).toEqual([]);

    b.cast("boom");
    expect(await within(pool.exited, 2000, "pool.exited")).toBe("boom");
    expect(rec.reasonsOf(b)).toEqual(["boom"]);
    expect(rec.reasonsOf(c)).toEqual(["shutdown"]);
    expect(pool.connections()).toEqual([]);
    await srec.until(() => srec.reasons.length === 3, 2000, "the server to see every connector close");
    expect(server.connections()).toEqual([]);
    const reports = sink.reports();
    expect(reports).toContainEqual(expect.stringContaining(`** Sockerl connector <${b.id}> terminating`));
    expect(reports.some((r) => r.startsWith("** Sockerl pool") && r.includes("boom"))).toBe(true);
  }, 10000);

  test("with plan ['delete'] an abnormal exit only removes that connector", async () => {
    captureSink();
    const { rec, pool } = await poolToServer({
      connectorCount: 2,
      plan: ["delete"],
    });
    const [[, a], [, b]] = pool.connections() as [[number, Connection], [number, Connection]];
    a.cast("boom");
    await rec.until(() => rec.terminated.length === 1, 2000, "a to end");
    expect(pool.connections().map(([, x]) => x)).toEqual([b]);
    expect(await b.call("ping")).toBe("pong");
    expect(observe(pool.exited).settled).toBe(false);
  }, 10000);

  test("with plan ['wait'] an exited connector is kept but not running: it leaves connections(), the pool goes on", async () => {
    const { rec, pool } = await poolToServer({
      connectorCount: 2,
      plan: ["wait"],
    });
    const [[, a], [idB, b]] = pool.connections() as [[number, Connection], [number, Connection]];
    await a.stop();
    expect(pool.connections()).toEqual([[idB, b]]);
    expect(rec.inits).toHaveLength(2); // not restarted
    expect(await b.call("ping")).toBe("pong");
    expect(observe(pool.exited).settled).toBe(false);
  }, 10000);

  test("a connector leaves connections() before its terminate runs", async () => {
    const server = await recordingServer(new Recorder());
    const listed: boolean[] = [];
    let pool: Pool<undefined, unknown> | undefined;
    const rec = new Recorder();
    const base = connectorHandler(rec);
    pool = await startPool<undefined, unknown>(
      {
        ...base,
        terminate(reason, state, meta) {
          listed.push(pool!.connections().some(([, c]) => c === meta.connection));
          base.terminate!(reason, state, meta);
        },
      },
      undefined,
      [[HOST, server.port]],
      { connectorCount: 2 },
    );
    const [[, a]] = pool.connections() as [[number, Connection]];
    await a.stop();
    await pool.stop();
    expect(listed).toEqual([false, false]);
  }, 10000);
});

describe("addConnector", () => {
  test("addConnector(host, port) starts one more connector under the pool's handler, init and plan", async () => {
    captureSink();
    const s1 = await recordingServer(new Recorder());
    const srec2 = new Recorder();
    const s2 = await recordingServer(srec2);
    const rec = new Recorder();
    const pool = await startPool(connectorHandler(rec), "shared", [[HOST, s1.port]], { plan: [STRICT] });
    const added = await within(pool.addConnector(HOST, s2.port), 2000, "addConnector");
    expect(await added.call("ping")).toBe("pong");
    expect(pool.connections()).toHaveLength(2);
    expect(pool.connections().map(([, c]) => c)).toContain(added);
    expect(new Set(ids(pool)).size).toBe(2);
    expect(rec.inits).toEqual(["shared", "shared"]);
    await srec2.until(() => s2.connections().length === 1, 2000, "s2 to see it");

    // It follows the pool's plan: its crash ends the pool.
    added.cast("boom");
    expect(await within(pool.exited, 2000, "pool.exited")).toBe("boom");
  }, 10000);

  test("addConnector to a closed port rejects with SocketConnectError and leaves the pool as it was", async () => {
    const server = await recordingServer(new Recorder());
    const down = await closedPort();
    const pool = await startPool(connectorHandler(new Recorder()), undefined, [[HOST, server.port]]);
    const before = pool.connections();
    const error = await rejection(pool.addConnector(HOST, down));
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ code: "ECONNREFUSED", port: down });
    expect(pool.connections()).toEqual(before);
    expect(observe(pool.exited).settled).toBe(false);
  }, 10000);

  test("addConnector with a bad host or port rejects with ArgumentError", async () => {
    const { server, pool } = await poolToServer();
    const host = await rejection(pool.addConnector(42 as never, server.port));
    expect(host).toBeInstanceOf(ArgumentError);
    const port = await rejection(pool.addConnector(HOST, "80" as never));
    expect(port).toBeInstanceOf(ArgumentError);
    expect(pool.connections()).toHaveLength(1);
  }, 10000);

  test("addConnector on a stopped pool rejects with NoProcError", async () => {
    const { server, pool } = await poolToServer();
    await pool.stop();
    const error = await rejection(pool.addConnector(HOST, server.port));
    expect(error).toBeInstanceOf(NoProcError);
    expect((error as NoProcError).code).toBe("ERR_NOPROC");
  }, 10000);
});

describe("pool.stop()", () => {
  test("stop() terminates every connector with 'shutdown' and resolves after: none left, the server sees every socket close, exited resolves 'normal', no report", async () => {
    const sink = captureSink();
    const { srec, server, rec, pool } = await poolToServer({
      connectorCount: 3,
    });
    const conns = pool.connections().map(([, c]) => c);
    await srec.until(() => server.connections().length === 3, 2000, "the server to see 3");

    await within(pool.stop(), 2000, "pool.stop()");
    expect(pool.connections()).toEqual([]);
    for (const conn of conns) expect(rec.reasonsOf(conn)).toEqual(["shutdown"]);
    expect(await within(pool.exited, 1000, "pool.exited")).toBe("normal");
    await srec.until(() => srec.reasons.length === 3, 2000, "the server to see all disconnect");
    expect(server.connections()).toEqual([]);
    expect(sink.reports()).toEqual([]);
  }, 10000);

  test("stop(reason): exited resolves with the reason; connectors still get 'shutdown'; a second stop shares the first", async () => {
    captureSink();
    const { rec, pool } = await poolToServer();
    const [[, conn]] = pool.connections() as [[number, Connection]];
    await Promise.all([pool.stop("maintenance"), pool.stop("other")]);
    expect(await pool.exited).toBe("maintenance");
    expect(rec.reasonsOf(conn)).toEqual(["shutdown"]);
  }, 10000);

  test("stop() while connectors are reconnecting cancels the retries: no connector starts after stop resolved", async () => {
    const port = await closedPort();
    const RETRY: PoolOptions = {
      watchdog: true,
      plan: [{ restart: 20 }],
      planCount: Number.POSITIVE_INFINITY,
    };
    const rec = new Recorder();
    const pool = await startPool(connectorHandler(rec), undefined, [[HOST, port]], {
      ...RETRY,
      connectorCount: 2,
    });
    await within(pool.stop(), 2000, "pool.stop()");
    // A witness pool with the same retry delay fails its first connect after the stop, so its retry
    // timer fires after any retry timer the stopped pool may have left armed (same delay, armed later).
    const witnessRec = new Recorder();
    const witness = await startPool(connectorHandler(witnessRec), undefined, [[HOST, port]], RETRY);
    const srec = new Recorder();
    const server = await recordingServer(srec, port);
    await witnessRec.until(() => witnessRec.inits.length === 1, 3000, "the witness to connect");
    await witness.stop();
    await srec.until(() => srec.reasons.length === srec.inits.length, 2000, "the server to see every close");
    expect(rec.inits).toEqual([]);
    expect(srec.inits).toHaveLength(1); // the witness only
    expect(server.connections()).toEqual([]);
  }, 10000);

  test("stop() while the first connects are in flight resolves only after those connectors ended: none runs init after stop resolved", async () => {
    const srec = new Recorder();
    const server = await recordingServer(srec);
    const rec = new Recorder();
    const starting = startConnectorPool(connectorHandler(rec), undefined, [[HOST, server.port]], {
      connectorCount: 3,
      name: "pool-inflight",
    });
    const pool = whereis("pool-inflight") as Pool<undefined, unknown>;
    expect(pool).toBeDefined();
    await within(pool.stop(), 4000, "pool.stop()");
    const initsAtStop = rec.inits.length;
    const terminatesAtStop = rec.terminated.length;
    await within(
      starting.then(
        () => undefined,
        () => undefined,
      ),
      4000,
      "the start to settle",
    );
    await srec.until(
      () => srec.reasons.length === srec.inits.length,
      2000,
      "the server to see every socket close",
    );
    expect(terminatesAtStop).toBe(initsAtStop);
    expect(rec.inits.length).toBe(initsAtStop);
    expect(pool.connections()).toEqual([]);
    expect(server.connections()).toEqual([]);
  }, 10000);
});
