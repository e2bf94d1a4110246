/**
 * Invariant: `server.info()` counts exactly what happened on the server, with nothing switched on:
 * every accepted socket once in `accepted`; `active` and `waiting` as the connections now served and
 * now held; every ending once, by kind (`normal`: the handler closed, or the peer closed or reset;
 * `peer`: another peer fault; `crash`: the handler failed; `shutdown`: the server's stop); and every
 * byte read and every byte the kernel took, to the byte. A snapshot is a plain copy, the counters
 * survive the stop, and two servers count apart. Checked after scripted sequences of raw clients on
 * loopback (connects, peer closes, resets, crashes, a stop), each count against what the test did.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Handler, type Server, SHUTDOWN_EVENT, tls } from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer } from "../helpers/server.ts";
import { closeTlsHelpers, pem, TestClient } from "../helpers/tls.ts";
import { captureSink } from "../helpers/trace.ts";
import { Log, waitFor } from "../helpers/wait.ts";

afterEach(cleanup);

const MAX_LINE = 64;

/**
 * Echoes lines; `crash` throws (a crash), `quit` answers `bye` and closes (a normal end by the
 * handler), `stop` stops with a reason of its own (a crash too: not normal, not a peer fault).
 */
function scripted(inits: Log<number>): Handler<undefined, undefined> {
  return {
    init: (_init, meta) => {
      inits.push(meta.connection.id);
      return undefined;
    },
    handlePacket: (line) => {
      if (line === "crash\n") throw new Error("crash on purpose");
      if (line === "quit\n") return { send: "bye\n", close: true };
      if (line === "stop\n") return { stop: "app_reason" };
      return { send: line };
    },
    handleDisconnect: () => undefined,
  };
}

/** A server for the scripted handler: lines as strings, every exit deletes that connection only. */
async function scriptedServer(inits: Log<number>): Promise<Server<undefined, undefined>> {
  return startTestServer(scripted(inits), undefined, {
    packet: "line",
    encoding: "utf8",
    maxPacketSize: MAX_LINE,
    plan: ["delete"],
  });
}

const endedTotal = (server: Server<undefined, undefined>): number => {
  const { normal, peer, crash, shutdown } = server.info().ended;
  return normal + peer + crash + shutdown;
};

describe("server.info()", () => {
  test("a new server: its address, no connection, no byte, startedAt within the start", async () => {
    const before = Date.now();
    const server = await scriptedServer(new Log());
    const after = Date.now();
    const info = server.info();
    expect(info).toEqual({
      port: server.port,
      hostname: "127.0.0.1",
      transport: "tcp",
      active: 0,
      waiting: 0,
      maxConnections: Number.POSITIVE_INFINITY,
      accepted: 0,
      ended: { normal: 0, peer: 0, crash: 0, shutdown: 0 },
      bytesIn: 0,
      bytesOut: 0,
      startedAt: info.startedAt,
    });
    expect(info.startedAt).toBeInstanceOf(Date);
    expect(info.startedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(info.startedAt.getTime()).toBeLessThanOrEqual(after);
  });

  test("counters are exact after connects, a peer close, a reset, a crash, a handler close, an oversize line, a stop reason and a server stop", async () => {
    const sink = captureSink(); // the crash reports go here, not to stderr
    const inits = new Log<number>();
    const server = await scriptedServer(inits);
    let bytesIn = 0;
    let bytesOut = 0;
    const connect = async (): Promise<RawClient> => {
      const client = await RawClient.connect(server.port);
      return client;
    };
    const echo = async (client: RawClient, line: string): Promise<void> => {
      bytesIn += Buffer.byteLength(line);
      bytesOut += Buffer.byteLength(line);
      await client.roundTrip(line);
    };
    const send = (client: RawClient, line: string): void => {
      bytesIn += Buffer.byteLength(line);
      client.write(line);
    };

    // 1. One that stays.
    const stays = await connect();
    await echo(stays, "first, and I stay\n");
    expect(server.info()).toMatchObject({ accepted: 1, active: 1 });

    // 2. A peer close (FIN): normal.
    const closes = await connect();
    await echo(closes, "héllo\n");
    closes.end();
    await waitFor(() => endedTotal(server) === 1, 2000, "the peer close to end");
    expect(server.info().ended).toEqual({ normal: 1, peer: 0, crash: 0, shutdown: 0 });

    // 3. A reset (RST): a disconnect too, so normal.
    const resets = await connect();
    await echo(resets, "about to reset\n");
    resets.terminate();
    await waitFor(() => endedTotal(server) === 2, 2000, "the reset to end");
    expect(server.info().ended).toEqual({ normal: 2, peer: 0, crash: 0, shutdown: 0 });

    // 4. The handler throws: a crash.
    const crashes = await connect();
    await echo(crashes, "before the crash\n");
    send(crashes, "crash\n");
    await crashes.waitForEnd();
    await waitFor(() => endedTotal(server) === 3, 2000, "the crash to end");
    expect(server.info().ended).toEqual({ normal: 2, peer: 0, crash: 1, shutdown: 0 });

    // 5. The handler closes: normal.
    const quits = await connect();
    send(quits, "quit\n");
    bytesOut += "bye\n".length;
    await quits.waitForText("bye\n");
    await quits.waitForEnd();
    await waitFor(() => endedTotal(server) === 4, 2000, "the handler close to end");
    expect(server.info().ended).toEqual({ normal: 3, peer: 0, crash: 1, shutdown: 0 });

    // 6. A line over maxPacketSize: a peer fault.
    const oversize = await connect();
    await echo(oversize, "short\n");
    send(oversize, `${"x".repeat(MAX_LINE * 2)}\n`);
    await oversize.waitForEnd();
    await waitFor(() => endedTotal(server) === 5, 2000, "the oversize line to end");
    expect(server.info().ended).toEqual({ normal: 3, peer: 1, crash: 1, shutdown: 0 });

    // 7. `stop` with a reason of the handler's own: a crash (neither normal nor a peer fault).
    const stops = await connect();
    send(stops, "stop\n");
    await stops.waitForEnd();
    await waitFor(() => endedTotal(server) === 6, 2000, "the handler stop to end");
    expect(server.info().ended).toEqual({ normal: 3, peer: 1, crash: 2, shutdown: 0 });

    // 8. Two more that stay.
    const more = [await connect(), await connect()];
    for (const c of more) await echo(c, "still here\n");

    await inits.until((ids) => ids.length === 9, 2000, "nine inits");
    expect(server.info()).toMatchObject({
      accepted: 9,
      active: 3,
      waiting: 0,
      ended: { normal: 3, peer: 1, crash: 2, shutdown: 0 },
      bytesIn,
      bytesOut,
    });

    // 9. The server stops: the three left end with "shutdown"; the counters stay readable.
    await server.stop();
    expect(server.info()).toMatchObject({
      accepted: 9,
      active: 0,
      waiting: 0,
      ended: { normal: 3, peer: 1, crash: 2, shutdown: 3 },
      bytesIn,
      bytesOut,
    });
    expect(sink.reports().length).toBeGreaterThanOrEqual(2); // the two crashes were reported
  });

  test("a graceful stop: connections that finish within drainMs count under their own reason, the rest as shutdown", async () => {
    const inits = new Log<number>();
    // Connections whose first line is "polite" say goodbye on the shutdown notice; the others ignore it.
    const handler: Handler<boolean, undefined> = {
      init: (_init, meta) => {
        inits.push(meta.connection.id);
        return { state: false };
      },
      handlePacket: (line, polite) => ({ state: polite || line === "polite\n", send: line }),
      handleEvent: (event, polite) =>
        event === SHUTDOWN_EVENT && polite ? { send: "bye\n", close: true } : undefined,
      handleDisconnect: () => undefined,
    };
    const server = await startTestServer(handler, undefined, { packet: "line", encoding: "utf8" });
    const polite = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
    for (const c of polite) await c.roundTrip("polite\n");
    const stubborn = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
    for (const c of stubborn) await c.roundTrip("stubborn\n");
    await server.stop({ drainMs: 100 });
    for (const c of polite) await c.waitForText("bye\n");
    expect(server.info()).toMatchObject({
      accepted: 4,
      active: 0,
      ended: { normal: 2, peer: 0, crash: 0, shutdown: 2 },
    });
  });

  test("on TLS, transport is tls and the bytes are the plaintext the handler saw and sent", async () => {
    const server = await startTestServer(scripted(new Log()), undefined, {
      packet: "line",
      encoding: "utf8",
      transport: tls({ cert: pem.serverCert, key: pem.serverKey }),
    });
    const client = await TestClient.connect(server.port, { ca: pem.ca, serverName: "localhost" });
    defer(closeTlsHelpers);
    const lines = ["secret one\n", "secret two, longer\n"];
    for (const line of lines) {
      client.write(line);
      await client.waitFor(line);
    }
    const plain = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(server.info()).toMatchObject({
      transport: "tls",
      accepted: 1,
      active: 1,
      bytesIn: plain,
      bytesOut: plain,
    });
  });

  test("a snapshot is a plain copy: later events do not change it", async () => {
    const server = await scriptedServer(new Log());
    const first = server.info();
    const client = await RawClient.connect(server.port);
    await client.roundTrip("x\n");
    const second = server.info();
    expect(first).toMatchObject({ accepted: 0, bytesIn: 0, ended: { normal: 0 } });
    expect(second).toMatchObject({ accepted: 1, bytesIn: 2, bytesOut: 2 });
    expect(second).not.toBe(first);
    expect(second.ended).not.toBe(first.ended);
  });

  test("two servers count apart", async () => {
    const a = await scriptedServer(new Log());
    const b = await scriptedServer(new Log());
    const client = await RawClient.connect(a.port);
    await client.roundTrip("only a\n");
    expect(a.info()).toMatchObject({ accepted: 1, active: 1, bytesIn: 7 });
    expect(b.info()).toMatchObject({ accepted: 0, active: 0, bytesIn: 0, bytesOut: 0 });
  });

  test("waiting counts the connections held over maxConnections; they move to active as slots free", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(scripted(inits), undefined, {
      packet: "line",
      encoding: "utf8",
      maxConnections: 1,
    });
    const served = await RawClient.connect(server.port);
    await served.roundTrip("in\n");
    const over = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
    await waitFor(() => server.info().accepted === 3, 2000, "two more accepts");
    expect(server.info()).toMatchObject({ accepted: 3, active: 1, waiting: 2, maxConnections: 1 });
    expect(inits.items.length).toBe(1);
    // The served one leaves: the first waiting one is served, the count moves from waiting to active.
    served.end();
    await inits.until((ids) => ids.length === 2, 2000, "the first waiting connection's init");
    await waitFor(() => server.info().ended.normal === 1, 2000, "the served one to end");
    expect(server.info()).toMatchObject({ accepted: 3, active: 1, waiting: 1 });
    await over[0]!.roundTrip("served now\n");
    expect(over[1]!.received).toBe(0);
  });

  test("a sleeping acceptor's held connections are accepted but not active", async () => {
    const inits = new Log<number>();
    const server = await startTestServer(scripted(inits), undefined, { packet: "line", encoding: "utf8" });
    server.sleepAcceptors();
    const held = await RawClient.connect(server.port);
    held.write("held\n");
    await waitFor(() => server.info().accepted === 1, 2000, "the held accept");
    expect(server.info()).toMatchObject({ accepted: 1, active: 0 });
    expect(inits.items.length).toBe(0);
    server.wakeupAcceptors();
    await held.waitForText("held\n");
    expect(server.info()).toMatchObject({ accepted: 1, active: 1, waiting: 0 });
  });

  test("bytesOut counts what the kernel took, not what was queued: exact once a slow reader read it all", async () => {
    const size = 12 * 1024 * 1024; // well over what loopback buffers of a socket nobody reads hold
    const payload = new Uint8Array(size).fill(97);
    const server = await startTestServer<undefined, undefined>(
      { init: () => ({ send: payload }), handlePacket: () => undefined },
      undefined,
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false });
    await waitFor(() => server.info().active === 1, 2000, "the connection to start");
    await waitFor(() => server.info().bytesOut > 0, 2000, "the kernel to take a first part");
    // The client reads nothing: the kernel's buffers hold a few MiB at most.
    expect(server.info().bytesOut).toBeLessThan(size);
    client.resume();
    await client.waitForBytes(size, 10_000);
    expect(server.info().bytesOut).toBe(size);
    expect(server.info().bytesIn).toBe(0);
  });
});
