/**
 * Invariant: a server supervises its connections with a restart plan (docs/supervision.md; Director 17.9 plans).
 * Under the default plan a connection that ends abnormally (a `stop` reason, a throw) ends the whole
 * server: every other connection gets `terminate("shutdown")` exactly once and its socket is closed,
 * the port is released, `server.exited` resolves with the crashing connection's reason, and a
 * `** Sockerl server ... terminating` report goes to the sink; a normal exit (close, peer close, peer
 * reset) only removes that connection and prints nothing. `plan: ["delete"]` isolates crashes. Server
 * connections cannot restart, so `"restart"` and `"wait"` mean delete. Every connection has its own plan
 * track, and a server connection exits only once, so a plan function always sees `restartCount` 1 and
 * only the plan's first element ever runs; `planCount: 0` makes the first exit end the server with
 * `RestartLimitError`. `server.stop()` terminates every connection and resolves only once all have run
 * `terminate` and left `connections()` (SockErl left them running, orphaned, after its server stopped).
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  BadReturnError,
  CallbackError,
  type ExitReason,
  type Handler,
  type PlanElement,
  RestartLimitError,
  type Server,
  type ServerOptions,
  startServer,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, SOCKERL_PLAN, startTestServer, track } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { EventRecorder, observe, within } from "../helpers/wait.ts";

afterEach(cleanup);

/** Line framing and text packets: one command per line. */
const LINES: ServerOptions = { packet: "line", encoding: "utf8" };
/** SockErl's default, now explicit: a `"normal"` exit deletes, anything else stops the server. */
const STRICT: ServerOptions = { ...LINES, plan: SOCKERL_PLAN };

/** What the handler saw, with event-driven waits (re-checked on every recorded event). */
class Recorder extends EventRecorder {
  readonly inits: number[] = [];
  readonly terminated: Array<[id: number, reason: ExitReason]> = [];
  /** For each terminate: whether the connection was still listed in `server.connections()`. */
  readonly listedAtTerminate: boolean[] = [];

  /** Reasons `terminate` saw for connection `id`, in order. */
  reasonsOf(id: number): ExitReason[] {
    return this.terminated.filter(([tid]) => tid === id).map(([, reason]) => reason);
  }
}

interface LineState {
  id: number;
}

/**
 * A line server: greets with `hello <id>`, echoes `echo <cmd>`, and on `boom` stops with "boom", on
 * `throw` throws, on `bye` closes normally. `terminate` is recorded (and may be held by `holdTerminate`).
 */
function lineHandler(
  rec: Recorder,
  server: () => Server<LineState, unknown> | undefined = () => undefined,
  holdTerminate?: Promise<void>,
): Handler<LineState, unknown> {
  return {
    init(_init, meta) {
      const id = meta.connection.id;
      rec.inits.push(id);
      rec.changed();
      return { state: { id }, send: `hello ${id}\n` };
    },
    handlePacket(packet) {
      const cmd = String(packet).trim();
      if (cmd === "boom") return { stop: "boom" };
      if (cmd === "throw") throw new Error("kaboom");
      if (cmd === "bye") return { close: true };
      return { send: `echo ${cmd}\n` };
    },
    async terminate(reason, _state, meta) {
      const id = meta.connection.id;
      const listed =
        server()
          ?.connections()
          .some(([cid]) => cid === id) ?? false;
      if (holdTerminate !== undefined) await holdTerminate;
      rec.listedAtTerminate.push(listed);
      rec.terminated.push([id, reason]);
      rec.changed();
    },
  };
}

/** A line server whose `terminate` records whether the connection was still listed (`listedAtTerminate`). */
async function listingLineServer(rec: Recorder, options = LINES): Promise<Server<LineState, unknown>> {
  let srv: Server<LineState, unknown> | undefined;
  srv = await startTestServer(
    lineHandler(rec, () => srv),
    undefined,
    options,
  );
  return srv;
}

/** A raw client that has been greeted: `id` is its server connection's id. */
async function greeted(port: number): Promise<{ c: RawClient; id: number }> {
  const c = await RawClient.connect(port);
  await c.waitForText("\n", 2000);
  const match = /hello (\d+)/.exec(c.text());
  if (match === null) throw new Error(`no greeting: ${JSON.stringify(c.text())}`);
  return { c, id: Number(match[1]) };
}

/** One request/response on a greeted client: proves its connection still serves. */
async function roundTrip(c: RawClient, word: string): Promise<void> {
  c.write(`${word}\n`);
  await c.waitForText(`echo ${word}\n`, 2000);
}

/** The port is closed: a connect is refused. */
async function expectRefused(port: number): Promise<void> {
  const error = await RawClient.connect(port).then(
    (c) => {
      c.terminate();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code: "ECONNREFUSED" });
}

describe("SockErl's strict plan (explicit): an abnormal exit ends the server", () => {
  test("a connection that stops with a reason ends the server: others get terminate('shutdown') once and EOF, the port is released, exited resolves with the reason, a report is printed", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await listingLineServer(rec, STRICT);
    const port = srv.port;
    const a = await greeted(port);
    const b = await greeted(port);
    const c = await greeted(port);
    expect(
      srv
        .connections()
        .map(([id]) => id)
        .sort(),
    ).toEqual([a.id, b.id, c.id].sort());

    a.c.write("boom\n");
    expect(await within(srv.exited, 2000, "server.exited")).toBe("boom");

    // When `exited` resolves, every child has already run terminate and left the list.
    expect(srv.connections()).toEqual([]);
    expect(rec.reasonsOf(a.id)).toEqual(["boom"]);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
    expect(rec.reasonsOf(c.id)).toEqual(["shutdown"]);
    expect(rec.listedAtTerminate).toEqual([false, false, false]);

    // Every socket is closed: the raw clients see EOF.
    await within(
      Promise.all([a.c.waitForEnd(), b.c.waitForEnd(), c.c.waitForEnd()]),
      2000,
      "every client to see EOF",
    );

    // The port is released: connects are refused, and a new server can bind it.
    await expectRefused(port);
    const again = await startServer(lineHandler(new Recorder()), undefined, port, {
      ...LINES,
      hostname: "127.0.0.1",
    });
    expect(again).toBeDefined();
    track(again!);
    expect(again!.port).toBe(port);

    const reports = sink.reports();
    expect(reports).toContainEqual(expect.stringContaining(`** Sockerl connector <${a.id}> terminating`));
    const serverReport = reports.find((r) => r.startsWith("** Sockerl server"));
    expect(serverReport).toBeDefined();
    expect(serverReport).toContain("terminating");
    expect(serverReport).toContain("** Reason for termination == boom");
    // The connections the server shut down exited normally ("shutdown"): no report for them.
    expect(reports.some((r) => r.includes(`<${b.id}> terminating`))).toBe(false);
    expect(reports.some((r) => r.includes(`<${c.id}> terminating`))).toBe(false);
  }, 10000);

  test("a connection whose callback throws ends the server with the CallbackError", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, STRICT);
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);

    a.c.write("throw\n");
    const reason = await within(srv.exited, 2000, "server.exited");
    expect(reason).toBeInstanceOf(CallbackError);
    expect((reason as CallbackError).code).toBe("ERR_CALLBACK");
    expect((reason as CallbackError).callback).toBe("handlePacket");
    expect(((reason as CallbackError).cause as Error).message).toBe("kaboom");

    expect(rec.reasonsOf(a.id)).toEqual([reason]);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
    await within(b.c.waitForEnd(), 2000, "b to see EOF");
    await expectRefused(srv.port);
    const serverReport = sink.reports().find((r) => r.startsWith("** Sockerl server"));
    expect(serverReport).toContain("CallbackError");
    expect(serverReport).toContain("kaboom");
  }, 10000);

  test("a { stop: reason } plan element ends the server with that reason, not the child's", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, { ...LINES, plan: [{ stop: "custom" }] });
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    a.c.write("boom\n");
    expect(await within(srv.exited, 2000, "server.exited")).toBe("custom");
    expect(rec.reasonsOf(a.id)).toEqual(["boom"]);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
  }, 10000);

  test("a server connection stopped from outside with an abnormal reason ends the server too", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, STRICT);
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    const conn = srv.connections().find(([id]) => id === a.id)![1];
    await within(conn.stop("kicked"), 2000, "conn.stop");
    expect(await within(srv.exited, 2000, "server.exited")).toBe("kicked");
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
  }, 10000);
});

describe("normal exits and crash isolation", () => {
  test("normal exits (close, peer close, peer reset) remove only that connection and print no report", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, LINES);
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    const c = await greeted(srv.port);
    const d = await greeted(srv.port);

    a.c.write("bye\n"); // close: true
    b.c.end(); // peer FIN
    c.c.terminate(); // peer RST: a disconnect, not a crash (SockErl let it kill the server)
    await rec.until(() => rec.terminated.length === 3, 2000, "three terminates");
    expect(rec.reasonsOf(a.id)).toEqual(["normal"]);
    expect(rec.reasonsOf(b.id)).toEqual(["normal"]);
    expect(rec.reasonsOf(c.id)).toEqual(["normal"]);

    await roundTrip(d.c, "still-here");
    expect(srv.connections().map(([id]) => id)).toEqual([d.id]);
    expect(observe(srv.exited).settled).toBe(false);
    expect(sink.reports()).toEqual([]);
  }, 10000);

  test("with plan ['delete'] a crash ends only that connection: the server and the other connections go on", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, { ...LINES, plan: ["delete"] });
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    const c = await greeted(srv.port);

    a.c.write("boom\n");
    await within(a.c.waitForEnd(), 2000, "a to see EOF");
    await rec.until(() => rec.terminated.length === 1, 2000, "a's terminate");
    b.c.write("throw\n");
    await within(b.c.waitForEnd(), 2000, "b to see EOF");
    await rec.until(() => rec.terminated.length === 2, 2000, "b's terminate");

    await roundTrip(c.c, "alive");
    expect(srv.connections().map(([id]) => id)).toEqual([c.id]);
    expect(rec.reasonsOf(c.id)).toEqual([]);
    expect(observe(srv.exited).settled).toBe(false);
    // A new connection is still accepted.
    const d = await greeted(srv.port);
    await roundTrip(d.c, "new");

    // The crashed connections report; the server does not.
    const reports = sink.reports();
    expect(reports).toContainEqual(expect.stringContaining(`** Sockerl connector <${a.id}> terminating`));
    expect(reports).toContainEqual(expect.stringContaining(`** Sockerl connector <${b.id}> terminating`));
    expect(reports.some((r) => r.startsWith("** Sockerl server"))).toBe(false);
  }, 10000);

  test("a connection whose init throws is a start failure: the server survives even under the default plan", async () => {
    captureSink();
    const rec = new Recorder();
    const base = lineHandler(rec);
    let first = true;
    const srv = await startTestServer<LineState, unknown>(
      {
        ...base,
        init(init, meta) {
          if (first) {
            first = false;
            throw new Error("init failed");
          }
          return base.init(init, meta);
        },
      },
      undefined,
      LINES,
    );
    const failed = await RawClient.connect(srv.port);
    await within(failed.waitForEnd(), 2000, "the failed connection to close");
    const ok = await greeted(srv.port);
    await roundTrip(ok.c, "fine");
    expect(rec.terminated).toEqual([]); // init never completed: no terminate
    expect(observe(srv.exited).settled).toBe(false);
  }, 10000);

  for (const element of ["restart", "wait"] as const) {
    test(`plan ['${element}'] on a server means delete: the crashed connection is gone and never restarted`, async () => {
      captureSink();
      const rec = new Recorder();
      const srv = await startTestServer(lineHandler(rec), undefined, { ...LINES, plan: [element] });
      const a = await greeted(srv.port);
      const b = await greeted(srv.port);
      a.c.write("boom\n");
      await within(a.c.waitForEnd(), 2000, "a to see EOF");
      await rec.until(() => rec.terminated.length === 1, 2000, "a's terminate");
      await roundTrip(b.c, "after");
      expect(srv.connections().map(([id]) => id)).toEqual([b.id]);
      expect(rec.inits).toEqual([a.id, b.id]); // no init ran again
      expect(observe(srv.exited).settled).toBe(false);
    }, 10000);
  }
});

describe("per-connection plan tracks and planCount", () => {
  test("each server connection has its own track: a plan function always sees restartCount 1 and the child's id, so count < 3 never stops the server", async () => {
    captureSink();
    const rec = new Recorder();
    const calls: Array<[reason: ExitReason, count: number, id: number]> = [];
    const plan: PlanElement[] = [
      (reason, count, id) => {
        calls.push([reason, count, id]);
        return count < 3 ? "delete" : "stop";
      },
    ];
    const srv = await startTestServer(lineHandler(rec), undefined, { ...LINES, plan, planCount: 5 });
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const x = await greeted(srv.port);
      ids.push(x.id);
      x.c.write("boom\n");
      await within(x.c.waitForEnd(), 2000, `crash ${i} to close`);
      await rec.until(() => rec.terminated.length === i + 1, 2000, `crash ${i} terminate`);
    }
    expect(calls).toEqual(ids.map((id) => ["boom", 1, id]));
    const survivor = await greeted(srv.port);
    await roundTrip(survivor.c, "ok");
    expect(observe(srv.exited).settled).toBe(false);
  }, 10000);

  test("only the plan's first element ever runs for a server connection: ['delete', 'stop'] never stops", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, { ...LINES, plan: ["delete", "stop"] });
    for (let i = 0; i < 3; i++) {
      const x = await greeted(srv.port);
      x.c.write("boom\n");
      await within(x.c.waitForEnd(), 2000, `crash ${i} to close`);
    }
    const survivor = await greeted(srv.port);
    await roundTrip(survivor.c, "ok");
    expect(observe(srv.exited).settled).toBe(false);
  }, 10000);

  test("planCount 0: the first exit of any connection, even a normal one, ends the server with RestartLimitError", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, {
      ...LINES,
      plan: ["delete"],
      planCount: 0,
    });
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    a.c.write("bye\n");
    const reason = await within(srv.exited, 2000, "server.exited");
    expect(reason).toBeInstanceOf(RestartLimitError);
    const limit = reason as RestartLimitError;
    expect(limit.code).toBe("ERR_RESTART_LIMIT");
    expect(limit.reason).toBe("reached_max_restart_plan");
    expect(limit.childReason).toBe("normal");
    expect(limit.childId).toBe(a.id);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
    await within(b.c.waitForEnd(), 2000, "b to see EOF");
  }, 10000);
});

describe("plan functions that fail", () => {
  test("a plan function that throws ends the server with CallbackError('plan')", async () => {
    captureSink();
    const rec = new Recorder();
    const thrown = new Error("plan broke");
    const srv = await startTestServer(lineHandler(rec), undefined, {
      ...LINES,
      plan: [
        () => {
          throw thrown;
        },
      ],
    });
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    a.c.write("bye\n");
    const reason = await within(srv.exited, 2000, "server.exited");
    expect(reason).toBeInstanceOf(CallbackError);
    expect((reason as CallbackError).callback).toBe("plan");
    expect((reason as CallbackError).cause).toBe(thrown);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
  }, 10000);

  test("a plan function that returns a non-element ends the server with BadReturnError", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, {
      ...LINES,
      plan: [() => "explode" as never],
    });
    const a = await greeted(srv.port);
    a.c.write("bye\n");
    const reason = await within(srv.exited, 2000, "server.exited");
    expect(reason).toBeInstanceOf(BadReturnError);
    expect((reason as BadReturnError).code).toBe("ERR_BAD_RETURN");
    expect((reason as BadReturnError).returned).toBe("explode");
  }, 10000);
});

describe("server.stop()", () => {
  test("stop() terminates every connection with 'shutdown' and resolves only once all have ended: none left, every client sees EOF, no report", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await listingLineServer(rec);
    const clients = [await greeted(srv.port), await greeted(srv.port), await greeted(srv.port)];

    await within(srv.stop(), 2000, "server.stop()");
    // Nothing to wait for: stop() resolved after every terminate.
    expect(srv.connections()).toEqual([]);
    for (const { id } of clients) expect(rec.reasonsOf(id)).toEqual(["shutdown"]);
    expect(rec.listedAtTerminate).toEqual([false, false, false]);
    expect(await within(srv.exited, 1000, "server.exited")).toBe("normal");
    await within(Promise.all(clients.map(({ c }) => c.waitForEnd())), 2000, "every client to see EOF");
    await expectRefused(srv.port);
    expect(sink.reports()).toEqual([]);
  }, 10000);

  test("stop() waits for an async terminate before resolving", async () => {
    captureSink();
    const rec = new Recorder();
    const hold = Promise.withResolvers<void>();
    const srv = await startTestServer(lineHandler(rec, undefined, hold.promise), undefined, LINES);
    const a = await greeted(srv.port);

    const stopping = observe(srv.stop());
    // A macrotask later, terminate is still held: stop must still be pending.
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopping.settled).toBe(false);
    expect(rec.terminated).toEqual([]);
    hold.resolve();
    await within(stopping.promise, 2000, "server.stop()");
    expect(rec.reasonsOf(a.id)).toEqual(["shutdown"]);
  }, 10000);

  test("stop() lets a pending async callback settle first (callbacks never overlap), then runs terminate('shutdown')", async () => {
    captureSink();
    const order: string[] = [];
    const pending = Promise.withResolvers<void>();
    const entered = Promise.withResolvers<void>();
    const srv = await startTestServer<undefined, unknown>(
      {
        init: () => undefined,
        async handlePacket() {
          order.push("handlePacket:start");
          entered.resolve();
          await pending.promise;
          order.push("handlePacket:end");
          return undefined;
        },
        terminate(reason) {
          order.push(`terminate:${String(reason)}`);
        },
      },
      undefined,
    );
    const client = await RawClient.connect(srv.port);
    client.write("x");
    await within(entered.promise, 2000, "handlePacket to start");
    const stopping = observe(srv.stop());
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopping.settled).toBe(false);
    pending.resolve();
    await within(stopping.promise, 2000, "server.stop()");
    expect(order).toEqual(["handlePacket:start", "handlePacket:end", "terminate:shutdown"]);
  }, 10000);

  test("stop() is bounded even when a handler's promise never settles: after closeTimeout the connection is terminated", async () => {
    const order: string[] = [];
    const entered = Promise.withResolvers<void>();
    const srv = await startTestServer<undefined, unknown>(
      {
        init: () => undefined,
        handlePacket() {
          entered.resolve();
          return new Promise<undefined>(() => {}); // never settles
        },
        terminate(reason) {
          order.push(`terminate:${String(reason)}`);
        },
      },
      undefined,
      { closeTimeout: 100 },
    );
    const client = await RawClient.connect(srv.port);
    client.write("x");
    await within(entered.promise, 2000, "handlePacket to start");
    await within(srv.stop(), 2000, "server.stop() despite a callback that never settles");
    expect(order).toEqual(["terminate:shutdown"]);
    expect(srv.connections()).toEqual([]);
  }, 10000);

  test("stop(reason): exited resolves with it, children still get 'shutdown', an abnormal reason is reported", async () => {
    const sink = captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, LINES);
    const a = await greeted(srv.port);
    await within(srv.stop("maintenance"), 2000, "server.stop()");
    expect(await srv.exited).toBe("maintenance");
    expect(rec.reasonsOf(a.id)).toEqual(["shutdown"]);
    const serverReport = sink.reports().find((r) => r.startsWith("** Sockerl server"));
    expect(serverReport).toContain("** Reason for termination == maintenance");
  }, 10000);

  test("stop() is idempotent: a second call shares the first and the first reason wins", async () => {
    captureSink();
    const rec = new Recorder();
    const srv = await startTestServer(lineHandler(rec), undefined, LINES);
    const a = await greeted(srv.port);
    const first = srv.stop("first");
    const second = srv.stop("second");
    await within(Promise.all([first, second]), 2000, "both stops");
    expect(await srv.exited).toBe("first");
    expect(rec.reasonsOf(a.id)).toEqual(["shutdown"]);
    await within(srv.stop(), 1000, "a stop after the end");
  }, 10000);

  test("a crash while the server is already stopping does not run the plan again", async () => {
    captureSink();
    const rec = new Recorder();
    const hold = Promise.withResolvers<void>();
    const srv = await startTestServer(lineHandler(rec, undefined, hold.promise), undefined, LINES);
    const a = await greeted(srv.port);
    const b = await greeted(srv.port);
    const stopping = srv.stop("planned");
    a.c.write("boom\n"); // arrives while terminate is held; the connection is already exiting
    hold.resolve();
    await within(stopping, 2000, "server.stop()");
    expect(await srv.exited).toBe("planned");
    expect(rec.reasonsOf(a.id)).toEqual(["shutdown"]);
    expect(rec.reasonsOf(b.id)).toEqual(["shutdown"]);
  }, 10000);
});
