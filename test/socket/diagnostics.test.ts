/**
 * Invariant: the library's `node:diagnostics_channel` channels fire once per event, with the
 * documented message, and not at all when nobody subscribes: `sockerl:server:listen` once per
 * listening server (`{ server, port, hostname, transport }`), `sockerl:server:stop` once per stop
 * (`{ server, reason }`), `sockerl:connection:start` once per `init` that completed
 * (`{ connection, server }` for a server's connection, `{ connection, pool }` for a pool's),
 * `sockerl:connection:exit` once per started connection that ended (`{ connection, reason,
 * peerFault }`), and a pool's `sockerl:pool:connector:up` / `down` (`{ pool, connection, id }`,
 * `down` with the `reason`). A channel without subscribers builds no message: its `publish` is never
 * called. Checked on loopback with raw clients, a pool and the real channels.
 */
import { afterEach, describe, expect, test } from "bun:test";
import diagnostics from "node:diagnostics_channel";
import {
  CallbackError,
  type Connection,
  FrameTooLargeError,
  type Handler,
  startConnector,
  startConnectorPool,
  startServer,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer, track, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { Log, waitFor } from "../helpers/wait.ts";

afterEach(cleanup);

const CHANNELS = [
  "sockerl:connection:start",
  "sockerl:connection:exit",
  "sockerl:server:listen",
  "sockerl:server:stop",
  "sockerl:pool:connector:up",
  "sockerl:pool:connector:down",
] as const;
type ChannelName = (typeof CHANNELS)[number];

interface Published {
  channel: ChannelName;
  message: Record<string, unknown>;
}

/** Subscribes to every channel for the test (unsubscribed in cleanup); the log gets each message. */
function subscribeAll(): Log<Published> {
  const log = new Log<Published>();
  for (const channel of CHANNELS) {
    const listener = (message: unknown): void =>
      log.push({ channel, message: message as Record<string, unknown> });
    diagnostics.subscribe(channel, listener);
    defer(() => diagnostics.unsubscribe(channel, listener));
  }
  return log;
}

const on = (log: Log<Published>, channel: ChannelName): Array<Record<string, unknown>> =>
  log.items.filter((p) => p.channel === channel).map((p) => p.message);

/** Echo lines; `crash` throws. */
const echo: Handler<undefined, undefined> = {
  init: () => undefined,
  handlePacket: (line) => {
    if (String(line) === "crash\n") throw new Error("crash on purpose");
    return { send: line };
  },
  handleDisconnect: () => undefined,
};

describe("server and connection channels", () => {
  test("listen, start, exit and stop fire once each with the documented message", async () => {
    captureSink(); // the crash report
    const log = subscribeAll();
    const server = track(
      (await startServer(echo, undefined, 0, {
        hostname: "127.0.0.1",
        packet: "line",
        encoding: "utf8",
        plan: ["delete"],
      }))!,
    );
    expect(log.items).toEqual([
      {
        channel: "sockerl:server:listen",
        message: { server, port: server.port, hostname: "127.0.0.1", transport: "tcp" },
      },
    ]);

    // A peer close: start, then exit "normal" (a peer fault: the peer ended it).
    const closes = await RawClient.connect(server.port);
    await closes.roundTrip("hi\n");
    const [[, first]] = server.connections() as [[number, Connection]];
    expect(on(log, "sockerl:connection:start")).toEqual([{ connection: first, server }]);
    closes.end();
    await log.until((items) => items.length === 3, 2000, "the exit");
    expect(on(log, "sockerl:connection:exit")).toEqual([
      { connection: first, reason: "normal", peerFault: true },
    ]);

    // A crash: exit with the CallbackError, not a peer fault.
    const crashes = await RawClient.connect(server.port);
    await crashes.roundTrip("ok\n");
    const second = server.connections()[0]![1];
    crashes.write("crash\n");
    await log.until((items) => items.length === 5, 2000, "the crash's exit");
    const crash = on(log, "sockerl:connection:exit")[1]!;
    expect(crash.connection).toBe(second);
    expect(crash.reason).toBeInstanceOf(CallbackError);
    expect(crash.peerFault).toBe(false);

    // The stop: the running one exits "shutdown", then the server's stop.
    const stays = await RawClient.connect(server.port);
    await stays.roundTrip("ok\n");
    const third = server.connections()[0]![1];
    await server.stop("maintenance");
    expect(log.items.slice(5)).toEqual([
      { channel: "sockerl:connection:start", message: { connection: third, server } },
      {
        channel: "sockerl:connection:exit",
        message: { connection: third, reason: "shutdown", peerFault: false },
      },
      { channel: "sockerl:server:stop", message: { server, reason: "maintenance" } },
    ]);
    expect(log.items.map((p) => p.channel)).toEqual([
      "sockerl:server:listen",
      "sockerl:connection:start",
      "sockerl:connection:exit",
      "sockerl:connection:start",
      "sockerl:connection:exit",
      "sockerl:connection:start",
      "sockerl:connection:exit",
      "sockerl:server:stop",
    ]);
  });

  test("a peer fault other than a close: exit with the typed reason and peerFault true", async () => {
    const log = subscribeAll();
    const server = await startTestServer(echo, undefined, { packet: "line", maxPacketSize: 8 });
    const client = await RawClient.connect(server.port);
    await client.roundTrip("short\n");
    const [[, conn]] = server.connections() as [[number, Connection]];
    client.write("much too long for eight bytes\n");
    await log.until((items) => items.some((p) => p.channel === "sockerl:connection:exit"), 2000, "the exit");
    const [exit] = on(log, "sockerl:connection:exit");
    expect(exit!.connection).toBe(conn);
    expect(exit!.reason).toBeInstanceOf(FrameTooLargeError);
    expect(exit!.peerFault).toBe(true);
    expect(on(log, "sockerl:connection:exit").length).toBe(1);
  });

  test("a standalone connector's start and exit carry neither server nor pool", async () => {
    const server = await startTestServer(echo, undefined, { packet: "line" });
    const log = subscribeAll();
    const conn = await startConnector(
      { init: () => undefined, handlePacket: () => undefined } as Handler<undefined, undefined>,
      undefined,
      "127.0.0.1",
      server.port,
    );
    trackStop(conn!);
    await log.until((items) => items.length >= 2, 2000, "the connector's and the server's starts");
    const starts = on(log, "sockerl:connection:start");
    const mine = starts.find((m) => m.connection === conn);
    expect(mine).toEqual({ connection: conn });
    await conn!.stop();
    const exits = on(log, "sockerl:connection:exit").filter((m) => m.connection === conn);
    expect(exits).toEqual([{ connection: conn, reason: "normal", peerFault: true }]);
  });

  test("listen fires once per server, not per acceptor, and again on resume (it listens again); stop fires once", async () => {
    const log = subscribeAll();
    const server = await startTestServer(echo, undefined, { acceptorCount: 2 });
    server.suspend();
    server.resume();
    await Promise.all([server.stop(), server.stop()]);
    const listen = {
      channel: "sockerl:server:listen" as const,
      message: { server, port: server.port, hostname: "127.0.0.1", transport: "tcp" },
    };
    expect(log.items).toEqual([
      listen,
      listen,
      { channel: "sockerl:server:stop", message: { server, reason: "normal" } },
    ]);
  });

  test("a connection that never started publishes neither start nor exit", async () => {
    const log = subscribeAll();
    const server = await startTestServer(
      { init: () => "ignore", handlePacket: () => undefined } as Handler<undefined, undefined>,
      undefined,
    );
    const client = await RawClient.connect(server.port);
    await client.waitForEnd();
    await waitFor(
      () => server.info().accepted === 1 && server.info().active === 0,
      2000,
      "the ignored connection",
    );
    expect(log.items.map((p) => p.channel)).toEqual(["sockerl:server:listen"]);
  });
});

describe("pool channels", () => {
  test("connector up on connect, down with the reason when it leaves, up again on reconnect", async () => {
    const log = subscribeAll();
    const server = await startTestServer(echo, undefined, { packet: "line" });
    const client: Handler<undefined, undefined> = { init: () => undefined, handlePacket: () => undefined };
    const pool = trackStop(
      await startConnectorPool(client, undefined, [["127.0.0.1", server.port]], {
        connectorCount: 1,
        plan: [{ restart: 10 }],
      }),
    );
    await log.until(
      (items) => items.some((p) => p.channel === "sockerl:pool:connector:up"),
      2000,
      "the connector to be up",
    );
    const [[id, conn]] = pool.connections() as [[number, Connection]];
    expect(on(log, "sockerl:pool:connector:up")).toEqual([{ pool, connection: conn, id }]);
    expect(on(log, "sockerl:connection:start")).toContainEqual({ connection: conn, pool });

    // The server drops every connection: the connector goes down, then comes back.
    for (const [, c] of server.connections()) await c.stop();
    await log.until(
      (items) => items.filter((p) => p.channel === "sockerl:pool:connector:up").length === 2,
      3000,
      "the reconnect",
    );
    const down = on(log, "sockerl:pool:connector:down");
    expect(down.length).toBe(1);
    expect(down[0]).toMatchObject({ pool, connection: conn, id });
    expect(down[0]!.reason).toBeDefined();
    const again = on(log, "sockerl:pool:connector:up")[1]!;
    expect(again.pool).toBe(pool);
    expect(again.id).toBe(id);
  });
});

describe("no subscriber, no message", () => {
  test("channels nobody subscribes to are never published on; unsubscribing stops the messages", async () => {
    captureSink();
    const published = new Map<string, number>();
    for (const name of CHANNELS) {
      const channel = diagnostics.channel(name);
      // A channel swaps its prototype as it gains and loses subscribers (the inactive one's publish
      // does nothing), so the spy calls whatever publish the prototype has now, and the cleanup
      // removes the spy instead of pinning one publish on the channel for later tests.
      channel.publish = (message: unknown) => {
        published.set(name, (published.get(name) ?? 0) + 1);
        (Object.getPrototypeOf(channel) as { publish(m: unknown): void }).publish.call(channel, message);
      };
      defer(() => Reflect.deleteProperty(channel, "publish"));
    }
    // Subscribe and unsubscribe first: afterwards the channels must be as quiet as never used.
    const heard: unknown[] = [];
    const listener = (message: unknown): void => {
      heard.push(message);
    };
    for (const name of CHANNELS) diagnostics.subscribe(name, listener);
    for (const name of CHANNELS) diagnostics.unsubscribe(name, listener);
    for (const name of CHANNELS) expect(diagnostics.channel(name).hasSubscribers).toBe(false);

    const server = await startTestServer(echo, undefined, { packet: "line", plan: ["delete"] });
    const a = await RawClient.connect(server.port);
    await a.roundTrip("x\n");
    a.end();
    const b = await RawClient.connect(server.port);
    b.write("crash\n");
    await b.waitForEnd();
    const pool = trackStop(
      await startConnectorPool(
        { init: () => undefined, handlePacket: () => undefined } as Handler<undefined, undefined>,
        undefined,
        [["127.0.0.1", server.port]],
        { connectorCount: 2 },
      ),
    );
    await pool.stop();
    await server.stop();
    expect(heard).toEqual([]);
    expect(Object.fromEntries(published)).toEqual({});
  });
});
