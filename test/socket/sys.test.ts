/**
 * Invariant: `sys` inspects and changes live processes without breaking their ordering guarantee.
 * Statistics count exactly what a connection handled from the moment they were switched on (payload
 * bytes, framing excluded). `getState` returns the last committed state at once; `replaceState` and
 * `changeCode` are applied in order with the connection's other events (after the callback in progress,
 * before anything queued behind them) and are served even while the connection is suspended. A
 * suspended connection reads nothing and handles nothing until `resume`; what arrived meanwhile is then
 * handled in order. `changeCode` on a server or pool migrates every live connection through
 * `codeChange` and gives the new handler to connections started later; a `codeChange` that throws
 * leaves that connection on its old handler and state. Targets resolve from handles, acceptor refs
 * and registry names; anything else fails with `ArgumentError`, an ended process with `NoProcError`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  ArgumentError,
  CallbackError,
  type Connection,
  type Handler,
  NoProcError,
  sendSync,
  startConnector,
  startConnectorPool,
  sys,
  type TraceSink,
} from "../../src/index.ts";
import { frame, RawClient } from "../helpers/client.ts";
import { thrown } from "../helpers/errors.ts";
import { cleanup, connectOne, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { observe, waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

/** An echo handler counting packets, casts and events in its state; calls reply `req:state`. */
const counting: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet }),
  handleCall: (request, _from, n) => ({ reply: `${String(request)}:${n}` }),
  handleCast: (_message, n) => ({ state: n + 1 }),
};

describe("sys.statistics", () => {
  test("counts packets, payload bytes (framing excluded), calls and casts exactly, from when switched on", async () => {
    const server = await startTestServer(counting, undefined, { packet: 2 });
    const client = await RawClient.connect(server.port);
    client.write(frame(2, "before"));
    await client.waitForBytes(8);
    const [[, conn]] = server.connections() as [[number, Connection]];
    expect(sys.statistics(conn)).toBeUndefined();

    const switchedOn = Date.now();
    sys.statistics(conn, true);
    client.write(frame(2, "abc"));
    await client.waitForBytes(8 + 5);
    client.write(frame(2, "hello"));
    await client.waitForBytes(8 + 5 + 7);
    expect(await conn.call("one")).toBe("one:3");
    conn.cast("a");
    conn.cast("b");
    conn.cast("c");
    expect(await conn.call("two")).toBe("two:6");
    await conn.sendSync("zz");
    await client.waitForBytes(8 + 5 + 7 + 4);

    const stats = sys.statistics(conn);
    expect(stats).toEqual({
      startTime: expect.any(Date),
      packetsIn: 2,
      bytesIn: 3 + 5,
      packetsOut: 3,
      bytesOut: 3 + 5 + 2,
      calls: 2,
      casts: 3,
      accepted: 0,
      queueLength: 0,
    });
    expect(stats!.startTime.getTime()).toBeGreaterThanOrEqual(switchedOn - 1);

    sys.statistics(conn, false);
    expect(sys.statistics(conn)).toBeUndefined();
    sys.statistics(conn, true);
    expect(sys.statistics(conn)?.packetsIn).toBe(0);
  }, 10_000);

  test("a server reports its acceptors' accepted sockets and each connection's counts", async () => {
    const server = await startTestServer(counting, undefined, {
      acceptorDebug: ["statistics"],
      connectorDebug: ["statistics"],
    });
    const [, conn1] = await connectOne(server, "ab");
    const [client2, conn2] = await connectOne(server, "c");
    client2.write("de");
    await client2.waitForText("cde");
    const counts = (packets: number, bytes: number) => ({
      startTime: expect.any(Date),
      packetsIn: packets,
      bytesIn: bytes,
      packetsOut: packets,
      bytesOut: bytes,
      calls: 0,
      casts: 0,
      accepted: 0,
      queueLength: 0,
    });
    expect(sys.statistics(server)).toEqual({
      acceptors: [
        [
          1,
          {
            startTime: expect.any(Date),
            packetsIn: 0,
            bytesIn: 0,
            packetsOut: 0,
            bytesOut: 0,
            calls: 0,
            casts: 0,
            accepted: 2,
            queueLength: 0,
          },
        ],
      ],
      connections: [
        [conn1.id, counts(1, 2)],
        [conn2.id, counts(2, 3)],
      ],
    });
    expect(sys.statistics({ server, acceptor: 1 })?.accepted).toBe(2);

    sys.statistics(server, false);
    expect(sys.statistics(server)).toEqual({ acceptors: [], connections: [] });
    const [, conn3] = await connectOne(server, "x");
    expect(sys.statistics(conn3)).toBeUndefined();
  }, 10_000);
});

describe("sys.getState / sys.replaceState", () => {
  test("getState returns the last committed state; replaceState applies after the callback in progress", async () => {
    const gate = Promise.withResolvers<void>();
    const started = Promise.withResolvers<void>();
    const handler: Handler<number> = {
      ...counting,
      handleCast: async (_message, n) => {
        started.resolve();
        await gate.promise;
        return { state: n + 1 };
      },
    };
    const server = await startTestServer(handler, undefined);
    const [, conn] = await connectOne(server);
    expect(sys.getState(conn)).toBe(1);

    conn.cast("slow");
    await within(started.promise, 2000, "the slow cast to start");
    const replaced = observe(sys.replaceState<number>(conn, (n) => n * 10));
    const call = observe(conn.call("after"));
    expect(sys.getState(conn)).toBe(1); // the cast has not committed yet
    await Promise.resolve();
    expect(replaced.settled).toBe(false);

    gate.resolve();
    expect(await within(replaced.promise, 2000, "replaceState")).toBe(20);
    expect(await within(call.promise, 2000, "the call")).toBe("after:20");
    expect(sys.getState(conn)).toBe(20);
  }, 10_000);

  test("an async replaceState function holds the events behind it until it settles", async () => {
    const server = await startTestServer(counting, undefined);
    const [, conn] = await connectOne(server);
    const gate = Promise.withResolvers<void>();
    const replaced = sys.replaceState<number>(conn, async (n) => {
      await gate.promise;
      return n + 100;
    });
    const call = observe(conn.call("q"));
    await Promise.resolve();
    expect(call.settled).toBe(false);
    gate.resolve();
    expect(await replaced).toBe(101);
    expect(await call.promise).toBe("q:101");
  }, 10_000);

  test("a replaceState function that throws rejects with its error and leaves the state and the connection alone", async () => {
    const server = await startTestServer(counting, undefined);
    const [client, conn] = await connectOne(server);
    const error = new Error("no");
    const rejected = await sys
      .replaceState(conn, () => {
        throw error;
      })
      .catch((e: unknown) => e);
    expect(rejected).toBe(error);
    expect(sys.getState(conn)).toBe(1);
    client.write("!");
    await client.waitForText("hi!");
    expect(await conn.call("ok")).toBe("ok:2");
  }, 10_000);

  test("getState, replaceState, suspend and trace on an ended connection fail with NoProcError", async () => {
    const server = await startTestServer(counting, undefined);
    const [, conn] = await connectOne(server);
    await conn.stop();
    for (const act of [
      () => sys.getState(conn),
      () => sys.suspend(conn),
      () => sys.resume(conn),
      () => sys.trace(conn, true),
      () => sys.getLog(conn),
    ]) {
      expect(act).toThrow(NoProcError);
      try {
        act();
      } catch (e) {
        expect((e as NoProcError).code).toBe("ERR_NOPROC");
      }
    }
    const rejected = await sys.replaceState(conn, (s) => s).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(NoProcError);
    expect((rejected as NoProcError).code).toBe("ERR_NOPROC");
  }, 10_000);
});

describe("sys.suspend / sys.resume", () => {
  test("a suspended connection handles nothing until resume; a call made meanwhile is answered after", async () => {
    const handled: string[] = [];
    const handler: Handler<number> = {
      init: () => ({ state: 0 }),
      handlePacket: (packet, n) => {
        handled.push(`packet ${String(packet)}`);
        return { state: n + 1, send: packet };
      },
      handleCall: (request, _from, n) => {
        handled.push(`call ${String(request)}`);
        return { reply: n };
      },
      handleCast: (message, n) => {
        handled.push(`cast ${String(message)}`);
        return { state: n + 1 };
      },
    };
    const server = await startTestServer(handler, undefined, { connectorDebug: ["statistics"] });
    const [client, conn] = await connectOne(server, "a");
    const [witness] = await connectOne(server, "w");
    handled.length = 0;

    sys.suspend(conn);
    client.write("x");
    await client.waitWritten();
    const call = observe(conn.call("c"));
    conn.cast("k");
    // The witness connection is served by the same server and event loop: by the time its echo is
    // back, the suspended connection would have handled "x" if it were reading.
    witness.write("1");
    await witness.waitForText("w1");
    expect(handled).toEqual(["packet 1"]);
    expect(call.settled).toBe(false);
    expect(sys.statistics(conn)?.queueLength).toBe(2);
    expect(client.text()).toBe("a");

    // sys requests are still served while suspended.
    expect(
      await within(
        sys.replaceState<number>(conn, (n) => n + 10),
        2000,
        "replaceState",
      ),
    ).toBe(11);
    expect(sys.getState(conn)).toBe(11);

    sys.resume(conn);
    expect(await within(call.promise, 2000, "the call")).toBe(11);
    await client.waitForText("ax");
    expect(handled).toEqual(["packet 1", "call c", "cast k", "packet x"]);
    expect(sys.getState(conn)).toBe(13);
  }, 10_000);
});

describe("sys.changeCode", () => {
  const v1: Handler<{ n: number }> = {
    init: () => ({ state: { n: 0 } }),
    handlePacket: (packet, s) => ({ state: { n: s.n + 1 }, send: `v1:${String(packet)}` }),
    handleCall: (_request, _from, s) => ({ reply: ["v1", s] }),
  };
  type V2State = { count: number; migrated: unknown };
  const codeChanges: Array<[unknown, unknown, unknown]> = [];
  const v2: Handler<V2State> = {
    init: () => ({ state: { count: 100, migrated: "fresh" } }),
    handlePacket: (packet, s) => ({ state: { ...s, count: s.count + 1 }, send: `v2:${String(packet)}` }),
    handleCall: (_request, _from, s) => ({ reply: ["v2", s] }),
    codeChange: (oldVsn, state, extra) => {
      codeChanges.push([oldVsn, state, extra]);
      return { count: (state as unknown as { n: number }).n, migrated: extra };
    },
  };

  test("swaps a live connection's handler, migrating its state through codeChange; others keep theirs", async () => {
    codeChanges.length = 0;
    const server = await startTestServer(v1, undefined);
    const [client1, conn1] = await connectOne(server, "a");
    const [client2, conn2] = await connectOne(server, "b");
    await client1.waitForText("v1:a");
    await sys.changeCode(conn1, v2, "1.0.0", { note: "x" });
    expect(codeChanges).toEqual([["1.0.0", { n: 1 }, { note: "x" }]]);
    expect(await conn1.call("state")).toEqual(["v2", { count: 1, migrated: { note: "x" } }]);
    client1.write("c");
    await client1.waitForText("v1:av2:c");
    expect(await conn2.call("state")).toEqual(["v1", { n: 1 }]);
    client2.write("d");
    await client2.waitForText("v1:bv1:d");
  }, 10_000);

  test("is applied after the callback in progress, with the state it committed", async () => {
    codeChanges.length = 0;
    const gate = Promise.withResolvers<void>();
    const started = Promise.withResolvers<void>();
    const slow: Handler<{ n: number }> = {
      ...v1,
      handlePacket: async (_packet, s) => {
        started.resolve();
        await gate.promise;
        return { state: { n: s.n + 41 } };
      },
    };
    const server = await startTestServer(slow, undefined);
    const client = await RawClient.connect(server.port);
    client.write("go");
    await within(started.promise, 2000, "the slow packet callback to start");
    const [[, conn]] = server.connections() as [[number, Connection]];
    const changed = observe(sys.changeCode(conn, v2, "v1", "e"));
    await Promise.resolve();
    expect(changed.settled).toBe(false);
    gate.resolve();
    await within(changed.promise, 2000, "changeCode");
    expect(codeChanges).toEqual([["v1", { n: 41 }, "e"]]);
  }, 10_000);

  test("on a server, migrates every live connection and gives the new handler to later ones", async () => {
    codeChanges.length = 0;
    const server = await startTestServer(v1, undefined);
    const [, conn1] = await connectOne(server, "a");
    const [, conn2] = await connectOne(server, "b");
    await sys.changeCode(server, v2, 1, "up");
    expect(codeChanges).toEqual([
      [1, { n: 1 }, "up"],
      [1, { n: 1 }, "up"],
    ]);
    expect(await conn1.call("s")).toEqual(["v2", { count: 1, migrated: "up" }]);
    expect(await conn2.call("s")).toEqual(["v2", { count: 1, migrated: "up" }]);
    const [client3, conn3] = await connectOne(server, "c");
    expect(client3.text()).toBe("v2:c");
    expect(await conn3.call("s")).toEqual(["v2", { count: 101, migrated: "fresh" }]);
    expect(codeChanges).toHaveLength(2);
  }, 10_000);

  test("a connection held by a sleeping acceptor starts with the new handler, without codeChange", async () => {
    codeChanges.length = 0;
    const server = await startTestServer(v1, undefined, { acceptorMode: "sleep" });
    const client = await RawClient.connect(server.port);
    client.write("h");
    await client.waitWritten();
    await waitFor(() => server.acceptorList()[0]!.held.length === 1, 2000, "the connection to be held");
    await within(sys.changeCode(server, v2, 1, "up"), 2000, "changeCode with a held connection");
    expect(codeChanges).toEqual([]);
    server.wakeupAcceptors();
    await client.waitForText("v2:h");
  }, 10_000);

  test("a codeChange that throws rejects with CallbackError and leaves the old handler and state", async () => {
    const failure = new Error("cannot migrate");
    const broken: Handler<{ n: number }> = {
      ...v1,
      handlePacket: (packet) => ({ send: `broken:${String(packet)}` }),
      codeChange: () => {
        throw failure;
      },
    };
    const server = await startTestServer(v1, undefined);
    const [client, conn] = await connectOne(server, "a");
    const error = await sys.changeCode(conn, broken, 0, undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallbackError);
    expect((error as CallbackError).code).toBe("ERR_CALLBACK");
    expect((error as CallbackError).callback).toBe("codeChange");
    expect((error as CallbackError).cause).toBe(failure);
    client.write("b");
    await client.waitForText("v1:av1:b");
    expect(sys.getState(conn)).toEqual({ n: 2 });
  }, 10_000);

  test("is served while the connection is suspended; queued packets then go to the new handler", async () => {
    codeChanges.length = 0;
    const server = await startTestServer(v1, undefined);
    const [client, conn] = await connectOne(server, "a");
    sys.suspend(conn);
    client.write("b");
    await client.waitWritten();
    await within(sys.changeCode(conn, v2, "old", null), 2000, "changeCode while suspended");
    expect(codeChanges).toEqual([["old", { n: 1 }, null]]);
    sys.resume(conn);
    await client.waitForText("v1:av2:b");
  }, 10_000);
});

describe("pools", () => {
  test("sys.trace, statistics and changeCode act on every connector of a pool", async () => {
    const { lines } = captureSink();
    const echo = await startTestServer(
      { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
      undefined,
    );
    const got = Promise.withResolvers<void>();
    const connector: Handler<number> = {
      init: () => ({ state: 0 }),
      handlePacket: (_packet, n) => {
        got.resolve();
        return { state: n + 1 };
      },
      handleCall: (_request, _from, n) => ({ reply: ["old", n] }),
    };
    const pool = await startConnectorPool(connector, undefined, [["127.0.0.1", echo.port]], {
      connectorCount: 2,
    });
    trackStop(pool);
    const [[, c1], [, c2]] = pool.connections() as [[number, Connection], [number, Connection]];

    sys.trace(pool, true);
    sys.statistics(pool, true);
    await c1.sendSync("ping");
    await within(got.promise, 2000, "the echo");
    expect(lines.map((l) => l.replace(`<${c1.id}>`, "<c1>").replace(/<call \d+>/g, "<call>"))).toEqual([
      '*DBG* Sockerl connector <c1> got synchronous request for sending packet "ping" from <call>',
      '*DBG* Sockerl connector <c1> sent packet "ping"',
      "*DBG* Sockerl connector <c1> sent ok to <call>",
      '*DBG* Sockerl connector <c1> got packet "ping"',
    ]);
    const stats = sys.statistics(pool);
    expect(stats.acceptors).toEqual([]);
    expect(stats.connections.map(([id, s]) => [id, s.packetsIn, s.packetsOut])).toEqual([
      [c1.id, 1, 1],
      [c2.id, 0, 0],
    ]);
    sys.trace(pool, false);

    const upgraded: Handler<number> = {
      ...connector,
      handleCall: (_request, _from, n) => ({ reply: ["new", n] }),
      codeChange: (_old, n) => n + 10,
    };
    await sys.changeCode(pool, upgraded, 1, undefined);
    expect(await c1.call("s")).toEqual(["new", 11]);
    expect(await c2.call("s")).toEqual(["new", 10]);
    // Connectors added later get the new handler and inherit the pool's debug options.
    sys.log(pool, true);
    const added = await pool.addConnector("127.0.0.1", echo.port);
    expect(await added.call("s")).toEqual(["new", 0]);
    expect(sys.getLog(added).map((l) => l.replace(/<\d+>/, "<c3>").replace(/<call \d+>/g, "<call>"))).toEqual(
      [
        '*DBG* Sockerl connector <c3> got call "s" from <call>',
        '*DBG* Sockerl connector <c3> sent [ "new", 0 ] to <call>',
      ],
    );
    expect(lines).toHaveLength(4);
  }, 10_000);
});

describe("targets", () => {
  test("a registry name resolves to its server; unknown names fail with NoProcError", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, { name: "sys-test-server" });
    sys.trace("sys-test-server", true);
    const [, conn] = await connectOne(server);
    expect(lines.map((l) => l.replace(/<\d+>/g, "<id>").replace(/:\d+/g, ":PORT"))).toEqual([
      "*DBG* Sockerl acceptor <id> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <id> gave socket 127.0.0.1:PORT to connection handler <id>",
      '*DBG* Sockerl connector <id> got packet "hi"',
      '*DBG* Sockerl connector <id> sent packet "hi"',
    ]);
    expect(sys.statistics("sys-test-server")).toEqual({ acceptors: [], connections: [] });
    sys.log("sys-test-server", true);
    await conn.call("x");
    expect(sys.getLog("sys-test-server")).toHaveLength(2);

    for (const act of [() => sys.trace("no-such-name", true), () => sys.getLog("no-such-name")]) {
      expect(act).toThrow(NoProcError);
    }
    const rejected = await sys.changeCode("no-such-name", counting).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(NoProcError);
  }, 10_000);

  test("a named connector is a connection target: state, statistics and tracing by name", async () => {
    const { lines } = captureSink();
    const echo = await startTestServer(
      { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
      undefined,
    );
    const got = Promise.withResolvers<void>();
    const handler: Handler<string> = {
      init: () => ({ state: "" }),
      handlePacket: (packet, s) => {
        got.resolve();
        return { state: s + String(packet) };
      },
    };
    const conn = await startConnector(handler, undefined, "127.0.0.1", echo.port, { name: "sys-connector" });
    try {
      sys.trace("sys-connector", true);
      sys.statistics("sys-connector", true);
      await sendSync("sys-connector", "pong");
      await within(got.promise, 2000, "the echo");
      expect(sys.getState("sys-connector")).toBe("pong");
      expect(sys.statistics("sys-connector")).toMatchObject({ packetsIn: 1, bytesIn: 4, packetsOut: 1 });
      expect(lines.map((l) => l.replace(/<\d+>/, "<c>").replace(/<call \d+>/g, "<call>"))).toEqual([
        '*DBG* Sockerl connector <c> got synchronous request for sending packet "pong" from <call>',
        '*DBG* Sockerl connector <c> sent packet "pong"',
        "*DBG* Sockerl connector <c> sent ok to <call>",
        '*DBG* Sockerl connector <c> got packet "pong"',
      ]);
    } finally {
      await conn?.stop();
    }
  }, 10_000);

  test("bad targets and flags fail with ArgumentError (ERR_ARGUMENT)", async () => {
    const server = await startTestServer(counting, undefined);
    const [, conn] = await connectOne(server);
    const bad: Array<() => unknown> = [
      () => sys.trace(42 as never, true),
      () => sys.trace({} as never, true),
      () => sys.trace(conn, "yes" as never),
      () => sys.statistics(conn, 1 as never),
      () => sys.getState(server as never),
      () => sys.suspend({ server, acceptor: 1 } as never),
      () => sys.trace({ server, acceptor: 1.5 }, true),
      () => sys.trace({ server: conn as never, acceptor: 1 }, true),
      () => sys.setSink("stderr" as never),
    ];
    for (const act of bad) {
      const error = thrown(act);
      expect(error).toBeInstanceOf(ArgumentError);
      expect((error as ArgumentError).code).toBe("ERR_ARGUMENT");
    }
    const onAcceptor = await sys.changeCode({ server, acceptor: 1 }, counting).catch((e: unknown) => e);
    expect(onAcceptor).toBeInstanceOf(ArgumentError);
    const badHandler = await sys.changeCode(conn, {} as never).catch((e: unknown) => e);
    expect(badHandler).toBeInstanceOf(ArgumentError);
    expect(() => sys.trace({ server, acceptor: 9 }, true)).toThrow(NoProcError);
    expect(await conn.call("still")).toBe("still:1");
  }, 10_000);

  test("setSink returns the previous sink; no argument restores the default", () => {
    const mine: TraceSink = () => undefined;
    const original = sys.setSink(mine);
    try {
      expect(sys.setSink()).toBe(mine);
      const restored = sys.setSink(original);
      expect(typeof restored).toBe("function");
      expect(restored).not.toBe(mine);
    } finally {
      sys.setSink(original);
    }
  });
});
