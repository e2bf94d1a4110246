/**
 * Invariant: each accepted socket is one connection process that runs the handler contract of
 * docs/handlers.md on real loopback sockets. `init` gives the first state; `handlePacket`, `handleCall`
 * (answered by `reply` in the action or later by `from.reply`), `handleCast`, `handleEvent` (via
 * `conn.notify`), `handleDisconnect` (peer close) and `timeout` (an idle timer re-armed by every event)
 * each see the last committed state; `terminate` runs exactly once on every exit of a started
 * connection, with the exit reason, and never after `init` returned "ignore". A callback that throws or
 * rejects ends only its own connection with a `CallbackError` whose `cause` is what it threw, and that
 * error is what `conn.exited` resolves with. The callbacks of one connection never overlap, even when
 * async, and packets, calls and casts are handled in the order they arrived.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  CallbackError,
  CallTimeoutError,
  type Connection,
  type ExitReason,
  type From,
  type Handler,
  type Meta,
  NoProcError,
  type Packet,
} from "../../src/index.ts";
import { CONNECTION_CALLBACKS, type ConnectionCallback } from "../helpers/callbacks.ts";
import { frame4, packetText, RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { Log, waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

/** Collects the connections a handler's `init` saw; `nth(n)` resolves with the `n`th once it started. */
function connections() {
  const log = new Log<Connection>();
  return {
    seen: log.items,
    /** Call from `init`. */
    add(meta: Meta<unknown>): void {
      log.push(meta.connection);
    },
    /** Call from `init`: records the connection and returns `action`. */
    started<A>(meta: Meta<unknown>, action: A): A {
      this.add(meta);
      return action;
    },
    /** The `n`th connection (0-based), once its `init` ran. */
    nth: (n: number): Promise<Connection> => log.nth(n, 2000, `connection #${n} to start`),
  };
}

describe("init and handlePacket", () => {
  test("init gets the init argument and meta; its state is the state the first handlePacket sees", async () => {
    const conns = connections();
    const handler: Handler<{ base: number; seen: string[] }, number> = {
      init(base, meta) {
        conns.add(meta);
        return { state: { base, seen: [] } };
      },
      handlePacket(packet, state) {
        const seen = [...state.seen, packetText(packet)];
        return { state: { base: state.base, seen }, send: `${state.base + seen.length}:${seen.join(",")};` };
      },
      handleCall(_request, _from, state) {
        return { reply: state };
      },
    };
    const server = await startTestServer(handler, 40);
    const client = await RawClient.connect(server.port);
    client.write("a");
    await client.waitForText("41:a;");
    client.write("b");
    await client.waitForText("42:a,b;");
    const conn = await conns.nth(0);
    expect(await conn.call("state")).toEqual({ base: 40, seen: ["a", "b"] });
  });

  test("handlePacket gets bytes as a Buffer by default", async () => {
    const got: Packet[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          got.push(packet);
          return { send: "k" };
        },
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    client.write(new Uint8Array([0, 1, 2, 255]));
    await client.waitForText("k");
    expect(got).toHaveLength(1);
    expect(got[0]).toBeInstanceOf(Buffer);
    expect([...(got[0] as Buffer)]).toEqual([0, 1, 2, 255]);
  });
});

describe("handleCall", () => {
  test("`reply` in the action answers the call at once, and the state is kept", async () => {
    const conns = connections();
    const server = await startTestServer<number, undefined>(
      {
        init: (_i, meta) => conns.started(meta, { state: 7 }),
        handlePacket: () => undefined,
        handleCall: (request, _from, n) => ({ state: n + 1, reply: [request, n] }),
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    expect(await conn.call("a")).toEqual(["a", 7]);
    expect(await conn.call("b")).toEqual(["b", 8]);
  });

  test("from.reply answers a call later, from a timer", async () => {
    const conns = connections();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleCall(request, from) {
          setTimeout(() => from.reply(`late ${String(request)}`), 10);
          return undefined;
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    expect(await conn.call("x", 1000)).toBe("late x");
  });

  test("from.reply answers a call later, from another event (a cast); a second reply is ignored", async () => {
    const conns = connections();
    const replies: boolean[] = [];
    const server = await startTestServer<From | undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleCall: (_request, from) => ({ state: from }),
        handleCast(message, from) {
          replies.push(from!.reply(message));
          replies.push(from!.reply("again"));
          return { state: undefined };
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    const answer = conn.call("wait for it", 1000);
    conn.cast("answered by a cast");
    expect(await answer).toBe("answered by a cast");
    expect(replies).toEqual([true, false]);
  });

  test("a call that is never answered rejects with CallTimeoutError after its timeout; the connection lives on", async () => {
    const conns = connections();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleCall: (request) => (request === "ping" ? { reply: "pong" } : undefined),
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    const started = performance.now();
    const error = await conn.call("never", 40).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect((error as CallTimeoutError).code).toBe("ERR_CALL_TIMEOUT");
    expect((error as CallTimeoutError).timeoutMs).toBe(40);
    expect(performance.now() - started).toBeGreaterThanOrEqual(35);
    expect(await conn.call("ping")).toBe("pong");
    expect(server.connections()).toHaveLength(1);
  });

  test("calling a stopped connection rejects with NoProcError", async () => {
    const conns = connections();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleCall: () => ({ reply: 1 }),
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    await conn.stop();
    const error = await conn.call("x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoProcError);
    expect((error as NoProcError).code).toBe("ERR_NOPROC");
  });
});

describe("a stopped connection", () => {
  test("sendSync rejects with NoProcError; cast, notify and sendAsync are ignored", async () => {
    const conns = connections();
    const server = await startTestServer<undefined, undefined>(
      { init: (_i, meta) => void conns.add(meta), handlePacket: () => undefined },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    await conn.stop();
    const error = await conn.sendSync("late").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoProcError);
    expect(() => {
      conn.cast("x");
      conn.notify("x");
      conn.sendAsync("x");
    }).not.toThrow();
    await conn.stop(); // stopping again resolves at once
    expect(await conn.exited).toBe("normal");
  });

  test("a call that timed out while queued behind a slow callback is never handled", async () => {
    const conns = connections();
    const gate = Promise.withResolvers<void>();
    const handled: unknown[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleCast: () => gate.promise.then(() => undefined),
        handleCall(request) {
          handled.push(request);
          return { reply: request };
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    conn.cast("slow");
    const stale = await conn.call("stale", 20).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(CallTimeoutError);
    gate.resolve();
    expect(await conn.call("fresh")).toBe("fresh");
    expect(handled).toEqual(["fresh"]);
  });
});

describe("handleCast, handleEvent, handleDisconnect", () => {
  test("conn.cast reaches handleCast and conn.notify reaches handleEvent, each with the current state", async () => {
    const conns = connections();
    const server = await startTestServer<string[], undefined>(
      {
        init: (_i, meta) => conns.started(meta, { state: [] }),
        handlePacket: () => undefined,
        handleCast: (message, log) => ({ state: [...log, `cast:${String(message)}`] }),
        handleEvent: (event, log) => ({ state: [...log, `event:${String(event)}`] }),
        handleCall: (_r, _f, log) => ({ reply: log }),
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    conn.cast("a");
    conn.notify("b");
    conn.cast("c");
    expect(await conn.call("log")).toEqual(["cast:a", "event:b", "cast:c"]);
  });

  test("a peer close calls handleDisconnect with the state, then terminate('normal'); the connection leaves the list", async () => {
    const conns = connections();
    const calls: string[] = [];
    const server = await startTestServer<number, undefined>(
      {
        init: (_i, meta) => conns.started(meta, { state: 0 }),
        handlePacket: (_p, n) => ({ state: n + 1, send: "ok" }),
        handleDisconnect(n) {
          calls.push(`disconnect ${n}`);
          return { state: n + 100 };
        },
        terminate(reason, n) {
          calls.push(`terminate ${String(reason)} ${n}`);
        },
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    client.write("x");
    await client.waitForText("ok");
    const conn = await conns.nth(0);
    expect(server.connections().map(([id]) => id)).toEqual([conn.id]);
    client.end();
    expect(await within(conn.exited, 2000, "exit after disconnect")).toBe("normal");
    expect(calls).toEqual(["disconnect 1", "terminate normal 101"]);
    expect(server.connections()).toEqual([]);
  });

  test("bytes the peer sent just before closing are handled before handleDisconnect", async () => {
    const conns = connections();
    const log: string[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        async handlePacket(packet) {
          await Bun.sleep(1);
          log.push(packetText(packet));
        },
        handleDisconnect: () => void log.push("disconnect"),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    client.write("last words");
    client.end();
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
    expect(log.join("")).toBe("last wordsdisconnect");
    expect(log.at(-1)).toBe("disconnect");
  });

  test("a peer reset is a disconnect too, not a crash", async () => {
    const conns = connections();
    const sink = captureSink();
    let disconnects = 0;
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleDisconnect: () => void disconnects++,
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    client.terminate();
    expect(await within(conn.exited, 2000, "exit after reset")).toBe("normal");
    expect(disconnects).toBe(1);
    expect(sink.reports()).toEqual([]);
  });

  test("handleDisconnect returning stop ends the connection with that reason", async () => {
    const conns = connections();
    const sink = captureSink();
    const reasons: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        handleDisconnect: () => ({ stop: "peer_gone" }),
        terminate: (reason) => void reasons.push(reason),
      },
      undefined,
      { plan: ["delete"] },
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    client.end();
    expect(await within(conn.exited, 2000, "exit")).toBe("peer_gone");
    expect(reasons).toEqual(["peer_gone"]);
    expect(sink.reports().join("\n")).toContain("peer_gone");
  });
});

describe("timeout (idle timer)", () => {
  test("fires every period while idle, until an action changes it to Infinity", async () => {
    const conns = connections();
    const fired: number[] = [];
    const done = Promise.withResolvers<void>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => conns.started(meta, { timeout: 20 }),
        handlePacket: () => undefined,
        handleCall: (_r, _f, _s, meta) => ({ reply: meta.timeout }),
        timeout() {
          fired.push(performance.now());
          if (fired.length < 4) return undefined;
          done.resolve();
          return { timeout: Number.POSITIVE_INFINITY };
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    await within(done.promise, 2000, "four timeouts");
    for (let i = 1; i < fired.length; i++) {
      // Each period is measured from the previous firing (the callback itself is an event).
      expect(fired[i]! - fired[i - 1]!).toBeGreaterThanOrEqual(17);
    }
    expect(await conn.call("timeout?")).toBe(Number.POSITIVE_INFINITY);
    // Observation window of five periods: a timer that kept running would fire again in it.
    await Bun.sleep(100);
    expect(fired).toHaveLength(4);
  });

  /**
   * Checks the idle-timer contract on a log of handled events and timeout firings: every firing comes
   * at least `ms` after the event before it (so events postpone it), and the traffic phase really had
   * gaps shorter than `ms` (so the check is not vacuous). Robust under CPU load: a gap that grew past
   * `ms` may legitimately let the timeout fire, and that is allowed.
   */
  function checkIdleTimer(log: Array<{ kind: "event" | "timeout"; at: number }>, ms: number): void {
    let lastEvent: number | undefined;
    let shortGaps = 0;
    let gaps = 0;
    for (const entry of log) {
      if (entry.kind === "timeout") {
        expect(lastEvent).toBeDefined();
        expect(entry.at - lastEvent!).toBeGreaterThanOrEqual(ms - 2);
      } else if (lastEvent !== undefined) {
        gaps++;
        if (entry.at - lastEvent < ms) shortGaps++;
      }
      lastEvent = entry.at; // the timeout callback is an event too
    }
    expect(shortGaps).toBeGreaterThan(gaps / 2);
  }

  test("every event re-arms it: steady traffic postpones it, and it fires once traffic stops", async () => {
    const conns = connections();
    const log: Array<{ kind: "event" | "timeout"; at: number }> = [];
    let quiet = false;
    const firedWhenQuiet = Promise.withResolvers<void>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => {
          log.push({ kind: "event", at: performance.now() });
          return conns.started(meta, { timeout: 80 });
        },
        handlePacket() {
          log.push({ kind: "event", at: performance.now() });
          return { send: "." };
        },
        timeout() {
          log.push({ kind: "timeout", at: performance.now() });
          if (quiet) firedWhenQuiet.resolve();
          return undefined;
        },
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    await conns.nth(0);
    // Traffic paced every ~15 ms for ~250 ms (three periods; pacing, not synchronisation).
    for (let i = 1; i <= 16; i++) {
      client.write("x");
      await client.waitForBytes(i);
      await Bun.sleep(15);
    }
    quiet = true;
    await within(firedWhenQuiet.promise, 1000, "the timeout after traffic stopped");
    checkIdleTimer(log, 80);
    expect(log.filter((e) => e.kind === "event")).toHaveLength(17);
  });

  test("a cast, an event and a call are events too: they postpone the timeout", async () => {
    const conns = connections();
    const log: Array<{ kind: "event" | "timeout"; at: number }> = [];
    const event = (): undefined => void log.push({ kind: "event", at: performance.now() });
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => {
          event();
          return conns.started(meta, { timeout: 80 });
        },
        handlePacket: () => undefined,
        handleCast: event,
        handleEvent: event,
        handleCall() {
          event();
          return { reply: "ok" };
        },
        timeout: () => void log.push({ kind: "timeout", at: performance.now() }),
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    for (let i = 0; i < 16; i++) {
      if (i % 3 === 0) conn.cast(i);
      else if (i % 3 === 1) conn.notify(i);
      else expect(await conn.call(i)).toBe("ok");
      await Bun.sleep(15);
    }
    checkIdleTimer(log, 80);
  });
});

describe("terminate", () => {
  type Trigger = "conn.stop" | "close" | "stop action" | "crash" | "peer close" | "server.stop";
  const cases: [Trigger, (reason: ExitReason) => void][] = [
    ["conn.stop", (r) => expect(r).toBe("bye")],
    ["close", (r) => expect(r).toBe("normal")],
    ["stop action", (r) => expect(r).toEqual({ custom: "reason" })],
    ["crash", (r) => expect(r).toBeInstanceOf(CallbackError)],
    ["peer close", (r) => expect(r).toBe("normal")],
    ["server.stop", (r) => expect(r).toBe("shutdown")],
  ];

  test.each(cases)("runs exactly once, with the reason, on exit by %s", async (trigger, checkReason) => {
    const conns = connections();
    const sink = captureSink();
    const reasons: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket(packet) {
          const what = packetText(packet);
          if (what === "close") return { close: true };
          if (what === "stop") return { stop: { custom: "reason" } };
          if (what === "crash") throw new Error("boom");
          return undefined;
        },
        terminate(reason) {
          reasons.push(reason);
        },
      },
      undefined,
      { plan: ["delete"] },
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    if (trigger === "conn.stop") await conn.stop("bye");
    else if (trigger === "close") client.write("close");
    else if (trigger === "stop action") client.write("stop");
    else if (trigger === "crash") client.write("crash");
    else if (trigger === "peer close") client.end();
    else await server.stop();
    const reason = await within(conn.exited, 2000, "exit");
    checkReason(reason);
    // Let any duplicate exit path (socket close, peer FIN) run before counting.
    await client.waitForEnd();
    await within(client.closedPromise, 2000, "client close");
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBe(reason);
    sink.restore();
  });

  test("conn.stop resolves after terminate ran and the connection left the list", async () => {
    const conns = connections();
    let terminated = false;
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        async terminate() {
          await Bun.sleep(5);
          terminated = true;
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    await conn.stop();
    expect(terminated).toBe(true);
    expect(server.connections()).toEqual([]);
  });

  test("meta.send in terminate says goodbye before the socket closes", async () => {
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket: () => ({ close: true }),
        terminate: (_r, _s, meta) => meta.send("goodbye\n"),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    client.write("x");
    await client.waitForEnd();
    expect(client.text()).toBe("goodbye\n");
  });
});

describe('init returning "ignore"', () => {
  test("closes the connection quietly: no handlePacket, no terminate, no report, not listed", async () => {
    const conns = connections();
    const sink = captureSink();
    const called: string[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init(_i, meta) {
          conns.add(meta);
          return "ignore";
        },
        handlePacket: () => void called.push("handlePacket"),
        terminate: () => void called.push("terminate"),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    client.write("hello");
    const conn = await conns.nth(0);
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
    await client.waitForEnd();
    expect(called).toEqual([]);
    expect(server.connections()).toEqual([]);
    expect(sink.lines).toEqual([]);
    // The server is unaffected.
    const again = await RawClient.connect(server.port);
    await again.waitForEnd();
    expect(await (await conns.nth(1)).exited).toBe("normal");
  });
});

/**
 * Builds a handler where `failing` throws (sync) or rejects (async) with `thrown`, plus a trigger that
 * makes the test reach that callback.
 */
describe("callback errors", () => {
  const table = CONNECTION_CALLBACKS.flatMap((name) => [
    [name, "a synchronous throw"] as const,
    [name, "a rejected promise"] as const,
  ]);

  test.each(table)(
    "%s: %s ends only that connection with CallbackError(cause); conn.exited resolves with it; the server (plan delete) lives on",
    async (failing, how) => {
      const sink = captureSink();
      const conns = connections();
      const thrown = new Error(`${failing} failed`);
      const terminated: ExitReason[] = [];
      const fail = (): never => {
        throw thrown;
      };
      /** Fails when `name` is the failing callback and this is the first connection. */
      const maybeFail = (name: ConnectionCallback, meta: Meta<number>): undefined | Promise<undefined> => {
        if (name !== failing || meta.connection !== conns.seen[0]) return undefined;
        if (how === "a synchronous throw") fail();
        return Promise.reject(thrown);
      };
      const handler: Handler<number, undefined> = {
        init(_i, meta) {
          const first = conns.seen.length === 0;
          conns.add(meta);
          if (!first) return { state: 0 };
          if (failing === "timeout") return { state: 0, timeout: 5 };
          if (failing === "srtimeout") return { state: 0, mode: "passive", srtimeout: 5 };
          return maybeFail("init", meta) ?? { state: 0 };
        },
        handlePacket(packet, n, meta) {
          if (meta.connection === conns.seen[0]) return maybeFail("handlePacket", meta);
          return { state: n + 1, send: packet };
        },
        handleCall: (_r, _f, _s, meta) => maybeFail("handleCall", meta),
        handleCast: (_m, _s, meta) => maybeFail("handleCast", meta),
        handleEvent: (_e, _s, meta) => maybeFail("handleEvent", meta),
        handleDisconnect: (_s, meta) => maybeFail("handleDisconnect", meta),
        timeout: (_s, meta) => maybeFail("timeout", meta),
        srtimeout: (_s, meta) => maybeFail("srtimeout", meta),
        terminate(reason, _s, meta) {
          if (meta.connection === conns.seen[0]) terminated.push(reason);
          return maybeFail("terminate", meta);
        },
      };
      const server = await startTestServer(handler, undefined, { plan: ["delete"] });
      const client = await RawClient.connect(server.port);
      const conn = await conns.nth(0);
      let call: Promise<unknown> | undefined;
      switch (failing) {
        case "handlePacket":
          client.write("boom");
          break;
        case "handleCall":
          call = conn.call("boom", 2000).catch((e: unknown) => e);
          break;
        case "handleCast":
          conn.cast("boom");
          break;
        case "handleEvent":
          conn.notify("boom");
          break;
        case "handleDisconnect":
          client.end();
          break;
        case "terminate":
          void conn.stop("asked");
          break;
        default:
          break; // init, timeout, srtimeout fail by themselves
      }
      const reason = await within(conn.exited, 2000, `${failing} to fail`);
      expect(reason).toBeInstanceOf(CallbackError);
      const error = reason as CallbackError;
      expect(error.code).toBe("ERR_CALLBACK");
      expect(error.callback).toBe(failing);
      expect(error.cause).toBe(thrown);
      if (failing === "init") {
        expect(terminated).toEqual([]); // a start failure: terminate never runs
      } else if (failing === "terminate") {
        expect(terminated).toEqual(["asked"]);
      } else {
        expect(terminated).toHaveLength(1);
        expect(terminated[0]).toBe(reason);
      }
      if (call !== undefined) expect(await call).toBeInstanceOf(NoProcError);
      if (failing !== "init") {
        await waitFor(() => sink.reports().length > 0, 1000, "the crash report");
        expect(sink.reports()[0]).toContain(`** Sockerl connector <${conn.id}> terminating`);
        expect(sink.reports()[0]).toContain(`${failing} failed`);
      }
      expect(server.connections().map(([id]) => id)).not.toContain(conn.id);
      // The server survives and serves a new connection.
      const next = await RawClient.connect(server.port);
      next.write("echo");
      await next.waitForText("echo");
      let serverEnded = false;
      void server.exited.then(() => {
        serverEnded = true;
      });
      await Promise.resolve();
      expect(serverEnded).toBe(false);
    },
  );
});

describe("ordering", () => {
  /** Resolves after a random small delay: a microtask, a macrotask or a 0–1 ms timer. */
  function jitter(i: number): Promise<void> {
    switch (Math.floor(Math.random() * 4)) {
      case 0:
        return Promise.resolve();
      case 1:
        return new Promise((resolve) => setImmediate(resolve));
      case 2:
        return new Promise((resolve) => setTimeout(resolve, 0));
      default:
        return i % 8 === 0 ? new Promise((resolve) => setTimeout(resolve, 1)) : Promise.resolve();
    }
  }

  interface Tracker {
    inFlight: number;
    maxInFlight: number;
    log: string[];
  }

  /** Wraps an async callback body so that overlapping runs are counted. */
  async function tracked<T>(t: Tracker, entry: string, i: number, body: () => T): Promise<T> {
    t.inFlight++;
    t.maxInFlight = Math.max(t.maxInFlight, t.inFlight);
    t.log.push(entry);
    try {
      await jitter(i);
      return body();
    } finally {
      t.inFlight--;
    }
  }

  test("1,000 length-prefixed packets to an async handlePacket arrive in order, one at a time, with calls and casts in order among themselves", async () => {
    const conns = connections();
    const t: Tracker = { inFlight: 0, maxInFlight: 0, log: [] };
    let seq = 0;
    const server = await startTestServer<number, undefined>(
      {
        init: (_i, meta) => conns.started(meta, { state: 0 }),
        handlePacket: (packet, n) =>
          tracked(t, `p${packetText(packet)}`, seq++, () => ({
            state: n + 1,
            send: n % 100 === 99 ? "ack" : [],
          })),
        handleCall: (request, _from, n) =>
          tracked(t, `call${String(request)}`, seq++, () => ({ reply: [request, n] })),
        handleCast: (message) => tracked(t, `cast${String(message)}`, seq++, () => undefined),
      },
      undefined,
      { packet: 4 },
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    const frames: Buffer[] = [];
    for (let i = 0; i < 1000; i++) frames.push(frame4(String(i)));
    // One burst: all 1,000 frames in a single write, so they arrive coalesced.
    client.write(Buffer.concat(frames));
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 2 === 0) conn.cast(i);
      else replies.push(conn.call(i, 4000));
    }
    const answers = await within(Promise.all(replies), 5000, "all calls");
    await client.until(() => client.text().split("ack").length - 1 === 10, 5000, "ten acks (1,000 packets)");
    expect(t.maxInFlight).toBe(1);
    const packets = t.log.filter((e) => e.startsWith("p")).map((e) => Number(e.slice(1)));
    expect(packets).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    const messages = t.log.filter((e) => !e.startsWith("p"));
    expect(messages).toEqual(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? `cast${i}` : `call${i}`)));
    // Each call saw the packets handled before it, and the count never goes down.
    const counts = answers.map((a) => (a as [number, number])[1]);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(await conn.call("final")).toEqual(["final", 1000]);
  });

  test("a raw burst to an async handlePacket is delivered in order, byte for byte, one callback at a time", async () => {
    const conns = connections();
    const t: Tracker = { inFlight: 0, maxInFlight: 0, log: [] };
    const received: string[] = [];
    let seq = 0;
    const server = await startTestServer<number, undefined>(
      {
        init: (_i, meta) => conns.started(meta, { state: 0 }),
        handlePacket: (packet, n) =>
          tracked(t, "p", seq++, () => {
            received.push(packetText(packet));
            return { state: n + packet.length };
          }),
        handleCall: (_r, _f, n) => ({ reply: n }),
        handleCast: (message) => tracked(t, `cast${String(message)}`, seq++, () => undefined),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    let expected = "";
    for (let i = 0; i < 1000; i++) {
      const line = `${String(i).padStart(4, "0")}\n`;
      expected += line;
      client.write(line); // 1,000 small writes: coalesced or not, as the kernel pleases
      if (i % 50 === 0) conn.cast(i);
    }
    await waitFor(() => received.join("").length >= expected.length, 5000, "all raw bytes");
    expect(received.join("")).toBe(expected);
    expect(t.maxInFlight).toBe(1);
    // The call queues behind every cast: once it is answered, all casts have run.
    expect(await conn.call("bytes")).toBe(expected.length);
    expect(t.log.filter((e) => e !== "p")).toEqual(Array.from({ length: 20 }, (_, k) => `cast${k * 50}`));
  });

  test("while an async callback is pending, calls, casts and events wait and then run in order", async () => {
    const conns = connections();
    const gate = Promise.withResolvers<void>();
    const log: string[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void conns.add(meta),
        handlePacket: () => undefined,
        async handleCast(message) {
          log.push(`cast ${String(message)} start`);
          if (message === "slow") await gate.promise;
          log.push(`cast ${String(message)} end`);
        },
        handleEvent: (event) => void log.push(`event ${String(event)}`),
        handleCall(request) {
          log.push(`call ${String(request)}`);
          return { reply: request };
        },
      },
      undefined,
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    conn.cast("slow");
    conn.notify("e1");
    const reply = conn.call("c1");
    conn.cast("fast");
    await Bun.sleep(10); // give a broken implementation the chance to overlap
    expect(log).toEqual(["cast slow start"]);
    gate.resolve();
    expect(await reply).toBe("c1");
    expect(await conn.call("c2")).toBe("c2");
    expect(log).toEqual([
      "cast slow start",
      "cast slow end",
      "event e1",
      "call c1",
      "cast fast start",
      "cast fast end",
      "call c2",
    ]);
  });
});
