/**
 * Invariant: no fault a peer (or a handler) can cause takes the server down, leaks a connection or a
 * timer, or spins the CPU (each of these is a failure SockErl itself had). A peer reset
 * during an async `init`, during a pending async callback or in the middle of a large write is a
 * disconnect: `handleDisconnect`, then `terminate("normal")`, and the server serves on under the
 * default plan. A half-closing peer still receives what `handleDisconnect` sends. 10,000 connections
 * opened and closed (FIN and RST) leave no connection entry and no timer behind. A slowloris peer is
 * dropped by its read deadline (`srtimeout`). At the open-file limit (EMFILE) the server resets new
 * connections instead of spinning, and serves again once descriptors are free. A handler that throws
 * (or rejects, or returns a hostile thenable) in every callback position never crashes the process.
 * Garbage on a TLS port is a failed handshake for that connection only.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  type Connection,
  type ExitReason,
  type Handler,
  HandshakeTimeoutError,
  SocketSendError,
  TlsHandshakeError,
  type Transport,
  tls,
} from "../../src/index.ts";
import { CONNECTION_CALLBACKS } from "../helpers/callbacks.ts";
import { type Child, spawnFixture } from "../helpers/child.ts";
import { packetText, pattern, RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer } from "../helpers/server.ts";
import { closeTlsHelpers, pem, TestClient } from "../helpers/tls.ts";
import { captureSink, type SinkCapture } from "../helpers/trace.ts";
import { type CountingTcp, countingTcp } from "../helpers/transport.ts";
import { observe, waitFor, within } from "../helpers/wait.ts";

let sink: SinkCapture;
beforeEach(() => {
  sink = captureSink();
});
afterEach(cleanup);

const MiB = 1024 * 1024;
const FULL = process.env.FULL !== undefined && process.env.FULL !== "" && process.env.FULL !== "0";

/** Records the callbacks a connection went through. */
interface Trail {
  events: string[];
  exits: ExitReason[];
}

/** A server under the DEFAULT plan (an abnormal exit would stop it) that records what happens. */
async function recordingServer(handler: Partial<Handler<undefined, undefined>>, transport?: Transport) {
  const trail: Trail = { events: [], exits: [] };
  const conns: Connection[] = [];
  const server = await startTestServer<undefined, undefined>(
    {
      init: (_i, meta) => {
        conns.push(meta.connection);
        return undefined;
      },
      handlePacket: (packet) => ({ send: packet }),
      handleDisconnect() {
        trail.events.push("handleDisconnect");
        return undefined;
      },
      terminate(reason) {
        trail.exits.push(reason);
      },
      ...handler,
    },
    undefined,
    transport === undefined ? {} : { transport },
  );
  return { server, trail, conns };
}

/** The server still serves: a fresh client gets its echo. */
async function stillServes(port: number): Promise<void> {
  const client = await RawClient.connect(port);
  client.write("still serving");
  await client.waitForText("still serving");
  client.end();
}

// ---------------------------------------------------------------------------------- peer resets

/**
 * Resets `client` while a callback of its connection is held, waits for the server to see the reset,
 * then releases the callback: the connection must run `handleDisconnect` and end "normal".
 */
async function resetThenRelease(
  watch: CountingTcp,
  client: RawClient,
  release: PromiseWithResolvers<void>,
  conn: Connection,
  trail: Trail,
): Promise<void> {
  const closed = watch.nextClose();
  client.terminate();
  await within(closed, 2000, "the server to see the reset");
  release.resolve();
  expect(await within(conn.exited, 2000, "the exit")).toBe("normal");
  expect(trail.events).toEqual(["handleDisconnect"]);
  expect(trail.exits).toEqual(["normal"]);
}

describe("a peer reset is a disconnect, never a crash (default plan)", () => {
  test("during an async init: init completes, handleDisconnect runs, terminate('normal'), the server serves on", async () => {
    const watch = countingTcp();
    const initEntered = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const { server, trail, conns } = await recordingServer(
      {
        async init(_i, meta) {
          conns.push(meta.connection);
          initEntered.resolve();
          await release.promise;
          return { send: "welcome" }; // written to a socket that is gone
        },
      },
      watch.transport,
    );
    const client = await RawClient.connect(server.port);
    await within(initEntered.promise, 2000, "init");
    await resetThenRelease(watch, client, release, conns[0]!, trail);
    expect(server.connections()).toEqual([]);
    await stillServes(server.port);
    expect(sink.reports()).toEqual([]);
  });

  test("during a pending async callback: it settles, then handleDisconnect, terminate('normal')", async () => {
    const watch = countingTcp();
    const entered = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const { server, trail, conns } = await recordingServer(
      {
        async handlePacket(packet) {
          if (packetText(packet) !== "slow") return { send: packet };
          entered.resolve();
          await release.promise;
          return { send: "late answer" };
        },
      },
      watch.transport,
    );
    const client = await RawClient.connect(server.port);
    client.write("slow");
    await within(entered.promise, 2000, "the slow callback");
    await resetThenRelease(watch, client, release, conns[0]!, trail);
    await stillServes(server.port);
    expect(sink.reports()).toEqual([]);
  });

  test("mid-write while the server pushes 16 MiB: the pending sendSync rejects with SocketSendError, the connection ends 'normal'", async () => {
    const started = Promise.withResolvers<Connection>();
    const { server, trail } = await recordingServer({
      init: (_i, meta) => void started.resolve(meta.connection),
    });
    const client = await RawClient.connect(server.port, { keep: false });
    const conn = await within(started.promise, 2000, "init");
    const sent = observe(conn.sendSync(pattern(16 * MiB, 4)));
    await client.waitForBytes(MiB, 5000);
    client.terminate();
    await within(
      sent.promise.catch(() => undefined),
      2000,
      "the sendSync to settle",
    );
    expect(sent.error).toBeInstanceOf(SocketSendError);
    expect((sent.error as SocketSendError).code).toBe("ERR_SOCKET_SEND");
    expect(await within(conn.exited, 2000, "the exit")).toBe("normal");
    expect(trail.events).toEqual(["handleDisconnect"]);
    expect(trail.exits).toEqual(["normal"]);
    await stillServes(server.port);
    expect(sink.reports()).toEqual([]);
  });
});

describe("a reset noticed while reading is paused", () => {
  test("20 rounds: a peer that reads 1 MiB of a 16 MiB push and resets, while the server is paused above highWaterMark, is noticed at once every time", async () => {
    // Bun does not report the close of a paused socket; its next write returns -1 (docs/bun-sockets.md#pause-and-resume).
    // The connection must close the socket itself then, or it would hold its 12 MiB queue forever.
    const big = pattern(16 * MiB, 6);
    let conn: Connection | undefined;
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => {
          conn = meta.connection;
          return undefined;
        },
        handlePacket: () => undefined,
      },
      undefined,
    );
    for (let round = 0; round < 20; round++) {
      conn = undefined;
      const client = await RawClient.connect(server.port, { keep: false });
      await waitFor(() => conn !== undefined, 2000, "init");
      const c = conn!;
      const sent = c.sendSync(big).then(
        () => "sent",
        (e: Error) => e.name,
      );
      await client.waitForBytes(MiB, 5000);
      client.terminate();
      expect(await within(sent, 2000, `round ${round}: the reset to be noticed`)).toBe("SocketSendError");
      expect(await within(c.exited, 2000, "the exit")).toBe("normal");
    }
    expect(server.connections()).toEqual([]);
    expect(sink.reports()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------- half-close

describe("a half-closing peer", () => {
  test("client shutdown(): bytes sent before it are handled, handleDisconnect runs, and what it sends reaches the peer before the FIN", async () => {
    const { server, trail, conns } = await recordingServer({
      handlePacket: (packet) => ({ send: `echo:${packetText(packet)};` }),
      handleDisconnect() {
        trail.events.push("handleDisconnect");
        return { send: "goodbye after your FIN;" };
      },
    });
    const client = await RawClient.connect(server.port);
    client.write("last words");
    await client.waitForText("echo:last words;");
    client.shutdown();
    await client.waitForEnd();
    expect(client.text()).toBe("echo:last words;goodbye after your FIN;");
    expect(await within(conns[0]!.exited, 2000, "the exit")).toBe("normal");
    expect(trail.events).toEqual(["handleDisconnect"]);
    expect(trail.exits).toEqual(["normal"]);
    await within(client.closedPromise, 2000, "the close");
    expect(client.closeError).toBeUndefined();
  });

  test("a large answer sent in handleDisconnect to a half-closed peer arrives whole", async () => {
    const big = pattern(4 * MiB, 8);
    const { server } = await recordingServer({ handleDisconnect: () => ({ send: big }) });
    const client = await RawClient.connect(server.port, { keep: false, hash: true });
    client.shutdown();
    await client.waitForEnd(5000);
    expect(client.received).toBe(big.length);
    expect(client.digest()).toBe(new Bun.CryptoHasher("sha256").update(big).digest("hex"));
  });
});

// ---------------------------------------------------------------------------------------- churn

describe("connect/close churn", () => {
  test("10,000 connections in batches of 200 (FIN and RST, with and without data): no failure, no entry left, and no timer keeps the process alive after stop", async () => {
    const child = spawnFixture("churn-fixture.ts", ["10000", "200"]);
    defer(() => child.kill());
    const done = JSON.parse(await child.next("DONE", 20_000));
    const t0 = performance.now();
    const { code, stderr } = await child.exit(5000);
    const exitMs = performance.now() - t0;
    if (FULL) console.log(`churn: ${JSON.stringify(done)}; exited ${Math.round(exitMs)} ms after DONE`);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    // The connections hold 30 s timers: exiting well before that proves every one was cleared.
    expect(exitMs).toBeLessThan(3000);
    expect(done.failureCount).toBe(0);
    expect(done.endedDuringChurn).toBe("running");
    expect(done.inits).toBe(10_000);
    expect(done.terminates).toBe(10_000);
    expect(done.disconnects).toBe(10_000);
    expect(done.echoes).toBe(2500);
    expect(done.fin + done.rst).toBe(10_000);
    expect(done.leftAfterChurn).toBe(0);
    expect(done.leftAfterStop).toBe(0);
    expect(done.reports).toEqual([]);
  }, 30_000);
});

// ------------------------------------------------------------------------------------ slowloris

describe("slow and silent peers are dropped by timeouts", () => {
  test("slowloris: one byte every 50 ms never completes a 64-byte read; srtimeout (a read deadline, not reset by partial data) drops it while a normal client is served", async () => {
    const reasons: Array<[string, ExitReason, number]> = [];
    const t0 = performance.now();
    const server = await startTestServer<string, undefined>(
      {
        init: () => ({ state: "waiting", mode: "passive", length: 64, srtimeout: 250 }),
        handlePacket: (packet) => ({ state: "served", send: packet }),
        srtimeout: () => ({ state: "dropped", close: true }),
        terminate: (reason, state) => void reasons.push([state, reason, performance.now() - t0]),
      },
      undefined,
    );
    const loris = await RawClient.connect(server.port);
    const drip = setInterval(() => loris.write("x"), 50);
    try {
      const good = await RawClient.connect(server.port);
      good.write("y".repeat(64));
      await good.waitForText("y".repeat(64));
      await within(loris.closedPromise, 2000, "the slowloris to be dropped");
    } finally {
      clearInterval(drip);
    }
    expect(loris.received).toBe(0);
    const dropped = reasons.find(([state]) => state === "dropped");
    expect(dropped?.[1]).toBe("normal");
    expect(dropped![2]).toBeGreaterThanOrEqual(240);
    expect(dropped![2]).toBeLessThan(1500);
  });

  test("a peer that connects and sends nothing is dropped by the idle timeout", async () => {
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => ({ timeout: 100 }),
        handlePacket: () => undefined,
        timeout: () => ({ send: "idle, bye", close: true }),
      },
      undefined,
    );
    const t0 = performance.now();
    const silent = await RawClient.connect(server.port);
    await within(silent.closedPromise, 2000, "the silent peer to be dropped");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(silent.text()).toBe("idle, bye");
  });
});

// ---------------------------------------------------------------------------------------- EMFILE

describe("the open-file limit (EMFILE)", () => {
  async function atLimit(mode: "sockerl" | "raw") {
    const child = spawnFixture("emfile-fixture.ts", [mode], { fdLimit: 64 });
    defer(() => child.kill());
    const [port, limit] = (await child.next("READY", 5000)).split(" ").map(Number) as [number, number];
    // More connections than the child has descriptors. A connection the server resets at once may
    // fail as early as the connect itself.
    const clients: RawClient[] = [];
    let refused = 0;
    for (let i = 0; i < 100; i++) {
      const client = await RawClient.connect(port).catch(() => undefined);
      if (client === undefined) refused++;
      else clients.push(client);
    }
    return { child, port, limit, clients, refused };
  }

  /** CPU used by the child over ~1 s, in cores. */
  async function cpuOverOneSecond(child: Child): Promise<number> {
    const c0 = await child.cpuSeconds();
    const t0 = performance.now();
    await Bun.sleep(1000); // a measurement window, not a synchronisation
    return ((await child.cpuSeconds()) - c0) / ((performance.now() - t0) / 1000);
  }

  test("with `ulimit -n 64` and 100 clients: the server resets what it cannot hold instead of spinning, and serves new clients once others close", async () => {
    const { child, port, limit, clients, refused } = await atLimit("sockerl");
    expect(limit).toBe(64);
    await Promise.all(
      clients.map((c) => c.until(() => c.text() === "hi\n" || c.closed, 5000, "hi or reset")),
    );
    const held = clients.filter((c) => !c.closed);
    const reset = clients.filter((c) => c.closed);
    expect(held.length).toBeGreaterThan(20);
    expect(held.length).toBeLessThan(64);
    expect(reset.length + refused).toBe(100 - held.length);
    const [served, fds] = (await child.ask("count", "COUNT")).split(" ").map(Number) as [number, number];
    expect(served).toBe(held.length);
    expect(fds).toBeLessThan(64);

    // While at the limit with clients still knocking, the child is idle: no busy loop.
    const knocking = (
      await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(port).catch(() => undefined)))
    ).filter((c) => c !== undefined);
    const cpu = await cpuOverOneSecond(child);
    if (FULL)
      console.log(
        `EMFILE: held ${held.length}, reset ${reset.length + refused}, CPU ${cpu.toFixed(3)} cores`,
      );
    expect(cpu).toBeLessThan(0.25);
    await Promise.all(knocking.map((c) => within(c.closedPromise, 2000, "the knocking clients to be reset")));

    // Clients go away: descriptors are free again and new clients are served.
    for (const c of held) c.end();
    const deadline = performance.now() + 5000;
    for (;;) {
      const [left] = (await child.ask("count", "COUNT")).split(" ").map(Number) as [number];
      if (left === 0) break;
      if (performance.now() > deadline)
        throw new Error(`${left} connections still served 5 s after the clients left`);
      await Bun.sleep(10);
    }
    const fresh = await Promise.all(Array.from({ length: 10 }, () => RawClient.connect(port)));
    for (const c of fresh) {
      await c.waitForText("hi\n");
      c.write("ping");
      await c.waitForText("hi\nping");
      c.end();
    }
    const done = JSON.parse(await child.ask("stop", "DONE"));
    expect(done.connections).toBe(0);
    expect(done.sink.some((l: string) => l.includes("near the open file limit (64)"))).toBe(true);
    const { code, stderr } = await child.exit(5000);
    expect(stderr).toBe("");
    expect(code).toBe(0);
  }, 20_000);

  test.if(FULL)(
    "baseline (FULL=1): a bare Bun.listen server spins at EMFILE (what the guard prevents)",
    async () => {
      const { child, clients } = await atLimit("raw");
      await waitFor(
        () => clients.filter((c) => c.text() === "hi\n").length > 40,
        5000,
        "the raw server to fill up",
      );
      const cpu = await cpuOverOneSecond(child);
      console.log(`EMFILE baseline (bare Bun.listen): CPU ${cpu.toFixed(3)} cores`);
      expect(cpu).toBeGreaterThan(0.5);
      child.kill();
    },
    20_000,
  );
});

// ------------------------------------------------------------------------------ throwing handler

describe("a handler that fails in every callback position", () => {
  test("throw, reject, throw a non-Error or return a hostile thenable: the connection ends with CallbackError naming the callback, the process never crashes, the server serves on", async () => {
    const child = spawnFixture("throw-fixture.ts");
    defer(() => child.kill());
    const result = JSON.parse(await child.next("RESULT", 20_000));
    const { code, stderr } = await child.exit(5000);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const styles = ["throw", "reject", "throw-string", "bad-thenable"];
    const positions = CONNECTION_CALLBACKS.filter((position) => position !== "init");
    for (const style of styles) {
      expect(result.results[`init/${style}`]).toEqual({ closed: true, report: "CallbackError ERR_CALLBACK" });
      for (const position of positions) {
        const r = result.results[`${position}/${style}`];
        expect({ key: `${position}/${style}`, ...r }).toMatchObject({
          key: `${position}/${style}`,
          name: "CallbackError",
          code: "ERR_CALLBACK",
          callback: position,
          socketClosed: true,
        });
        expect(String(r.cause)).toContain(position);
      }
      expect(result.results[`handleCall/${style}`].call).toBe("NoProcError");
      expect(result.results[`listenInit/${style}`]).toEqual({
        name: "CallbackError",
        code: "ERR_CALLBACK",
        callback: "listenInit",
      });
      expect(result.results[`codeChange/${style}`]).toEqual({
        outcome: { name: "CallbackError", code: "ERR_CALLBACK", callback: "codeChange" },
        alive: "ok",
      });
    }
    expect(result.results["connector-init/throw"]).toEqual({
      name: "CallbackError",
      code: "ERR_CALLBACK",
      callback: "init",
    });
    expect(result.served).toBe("still serving");
    expect(result.serverEndedEarly).toBe(false);
    expect(result.leftBeforeStop).toBe(0);
  }, 30_000);
});

// ------------------------------------------------------------------------------- TLS garbage

describe("garbage on a TLS port", () => {
  afterEach(closeTlsHelpers);

  test("random bytes, a bogus record header, plain HTTP, a cut ClientHello: each fails only its own handshake (TlsHandshakeError or HandshakeTimeoutError); the server keeps serving TLS clients (default plan)", async () => {
    const server = await startTestServer<undefined, undefined>(
      { init: () => ({ send: "hi;" }), handlePacket: (packet) => ({ send: packet }) },
      undefined,
      { transport: tls({ cert: pem.serverCert, key: pem.serverKey }), handshakeTimeout: 300 },
    );
    const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const garbage: Array<[string, (c: RawClient) => void]> = [
      ["random bytes", (c) => c.write(rand(3000))],
      [
        "a record header announcing 64 KiB, then nothing",
        (c) => c.write(Buffer.from([0x16, 3, 1, 0xff, 0xff])),
      ],
      ["an alert record", (c) => c.write(Buffer.from([0x15, 3, 3, 0, 2, 2, 40]))],
      ["plain HTTP", (c) => c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
      [
        "a cut ClientHello, then RST",
        (c) => {
          c.write(Buffer.from([0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, ...rand(20)]));
          c.terminate();
        },
      ],
      [
        "a cut ClientHello, then FIN",
        (c) => {
          c.write(Buffer.from([0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, ...rand(20)]));
          c.shutdown();
        },
      ],
    ];
    const reasons: Array<[string, ExitReason]> = [];
    for (const [what, send] of garbage) {
      const client = await RawClient.connect(server.port);
      await waitFor(() => server.connections().length === 1, 2000, "the handshaking connection");
      const [, conn] = server.connections()[0]!;
      send(client);
      reasons.push([what, await within(conn.exited, 2000, `the handshake of "${what}" to fail`)]);
      await within(client.closedPromise, 2000, "the garbage client to be closed");
    }
    for (const [what, reason] of reasons) {
      expect({
        what,
        failed: reason instanceof TlsHandshakeError || reason instanceof HandshakeTimeoutError,
      }).toEqual({
        what,
        failed: true,
      });
    }
    // Nothing was started: no init, no plan decision; the server is untouched.
    const client = await TestClient.connect(server.port, { ca: pem.ca, serverName: "localhost" });
    await client.waitFor("hi;");
    client.write("ping;");
    await client.waitFor("hi;ping;");
  });
});
