/**
 * Invariant: a graceful stop loses nothing and leaves nothing behind. `server.stop({ drainMs })` stops
 * listening at once (new connects are refused), tells every running connection with
 * `handleEvent("shutdown")`, lets those that finish within `drainMs` end with their own reason, and
 * terminates the rest with `terminate("shutdown")` once `drainMs` has passed; `pool.stop({ drainMs })`
 * does the same for connectors. Every byte queued by a connection that closes normally reaches the peer
 * (a 16 MiB send followed by `close: true`, read slowly, arrives whole, then the FIN), during a stop too.
 * After a stop no connection is left: `connections()` is empty, every `terminate` ran once, every peer
 * socket is closed, even when the stop lands in the middle of a connect stampede.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  type Connection,
  type ExitReason,
  type Handler,
  SocketConnectError,
  startConnector,
  startConnectorPool,
} from "../../src/index.ts";
import { packetText, pattern, RawClient, sha256 } from "../helpers/client.ts";
import { cleanup, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

beforeEach(() => {
  captureSink();
});
afterEach(cleanup);

const MiB = 1024 * 1024;
const BIG = pattern(16 * MiB, 3);
const BIG_SHA = sha256(BIG);

/**
 * Reads slowly (alternately pauses and resumes the client's socket every `periodMs`) until the peer's
 * FIN or the close; rejects after `timeoutMs`.
 */
async function readSlowlyToEnd(client: RawClient, timeoutMs: number, periodMs = 5): Promise<void> {
  let reading = true;
  const timer = setInterval(() => {
    reading = !reading;
    if (client.closed) return;
    if (reading) client.socket.resume();
    else client.socket.pause();
  }, periodMs);
  try {
    await client.waitForEnd(timeoutMs);
  } finally {
    clearInterval(timer);
    if (!client.closed) client.socket.resume();
  }
}

/** Connecting to a stopped port is refused. */
async function expectRefused(port: number): Promise<void> {
  const error = await startConnector(
    { init: () => undefined, handlePacket: () => undefined },
    undefined,
    "127.0.0.1",
    port,
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SocketConnectError);
  expect((error as SocketConnectError).code).toBe("ECONNREFUSED");
}

type Role = "quick" | "finisher" | "stubborn";

describe("server.stop({ drainMs })", () => {
  test("stops accepting at once; handlers get handleEvent('shutdown'); those done within drainMs end with their own reason, the rest get terminate('shutdown') after drainMs", async () => {
    const DRAIN = 300;
    const roles: Role[] = ["quick", "finisher", "stubborn"];
    const events: Array<[Role, unknown]> = [];
    const ended: Array<[Role, ExitReason, number]> = [];
    const conns = new Map<Role, Connection>();
    let t0 = 0;
    const handler: Handler<Role, undefined> = {
      init(_i, meta) {
        const role = roles[conns.size]!;
        conns.set(role, meta.connection);
        return { state: role, send: `${role};` };
      },
      handlePacket: (packet) => ({ send: packet }),
      handleEvent(event, role, meta) {
        events.push([role, event]);
        if (role === "quick") return { send: "bye;", close: true };
        // Finishes its own work a little later, well within drainMs.
        if (role === "finisher") setTimeout(() => meta.connection.cast("done"), 50);
        return undefined; // stubborn: ignores it
      },
      handleCast: () => ({ stop: "finished my work" }),
      terminate(reason, role) {
        ended.push([role, reason, performance.now() - t0]);
      },
    };
    const server = await startTestServer(handler, undefined, { plan: ["delete"] });
    const clients: RawClient[] = [];
    for (const role of roles) {
      const client = await RawClient.connect(server.port);
      await client.waitForText(`${role};`);
      clients.push(client);
    }
    t0 = performance.now();
    const stopping = server.stop({ drainMs: DRAIN });
    await expectRefused(server.port);
    await within(stopping, DRAIN + 2000, "the stop");
    const took = performance.now() - t0;

    expect(events.map(([role, event]) => `${role}:${String(event)}`).sort()).toEqual([
      "finisher:shutdown",
      "quick:shutdown",
      "stubborn:shutdown",
    ]);
    const byRole = new Map(ended.map(([role, reason, at]) => [role, { reason, at }]));
    expect(byRole.get("quick")?.reason).toBe("normal");
    expect(byRole.get("finisher")?.reason).toBe("finished my work");
    expect(byRole.get("stubborn")?.reason).toBe("shutdown");
    expect(byRole.get("quick")!.at).toBeLessThan(DRAIN);
    expect(byRole.get("finisher")!.at).toBeLessThan(DRAIN);
    expect(byRole.get("stubborn")!.at).toBeGreaterThanOrEqual(DRAIN - 5);
    expect(ended.length).toBe(3);
    expect(took).toBeGreaterThanOrEqual(DRAIN - 5);
    expect(await conns.get("quick")!.exited).toBe("normal");
    expect(await conns.get("stubborn")!.exited).toBe("shutdown");
    expect(await server.exited).toBe("normal");
    expect(server.connections()).toEqual([]);
    // No orphan: every peer socket is closed, and the quick one got its goodbye first.
    await Promise.all(clients.map((c) => within(c.closedPromise, 2000, "the peer socket to close")));
    expect(clients[0]!.text()).toBe("quick;bye;");
  });

  test("when every connection finishes early, stop resolves without waiting for drainMs", async () => {
    let terminated = 0;
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => ({ send: "up;" }),
        handlePacket: () => undefined,
        handleEvent: () => ({ close: true }),
        terminate: () => void terminated++,
      },
      undefined,
    );
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(server.port)));
    await Promise.all(clients.map((c) => c.waitForText("up;")));
    const t0 = performance.now();
    await within(server.stop({ drainMs: 10_000 }), 2000, "the stop");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(terminated).toBe(20);
    await Promise.all(clients.map((c) => within(c.closedPromise, 2000, "the peer socket to close")));
  });

  test("a callback that never settles does not hold the stop forever: it is abandoned after closeTimeout", async () => {
    const started = Promise.withResolvers<void>();
    const reasons: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket: () => {
          started.resolve();
          return new Promise<undefined>(() => {}); // never settles
        },
        terminate: (reason) => void reasons.push(reason),
      },
      undefined,
      { closeTimeout: 200 },
    );
    const client = await RawClient.connect(server.port);
    client.write("hang");
    await within(started.promise, 2000, "the hanging callback");
    const t0 = performance.now();
    await within(server.stop({ drainMs: 100 }), 2000, "the stop");
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(reasons).toEqual(["shutdown"]);
    await within(client.closedPromise, 2000, "the peer socket to close");
  });
});

describe("no byte lost on a normal close", () => {
  test("16 MiB sent with close: true, read slowly, arrives whole before the FIN", async () => {
    const server = await startTestServer<undefined, undefined>(
      { init: () => ({ send: BIG, close: true }), handlePacket: () => undefined },
      undefined,
    );
    const client = await RawClient.connect(server.port, { keep: false, hash: true });
    await readSlowlyToEnd(client, 15_000);
    expect(client.received).toBe(BIG.length);
    expect(client.digest()).toBe(BIG_SHA);
    expect(client.closeError).toBeUndefined();
  }, 20_000);

  test("16 MiB sent in answer to handleEvent('shutdown') with close: true arrives whole, after stop() resolved", async () => {
    const up = Promise.withResolvers<void>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => void up.resolve(),
        handlePacket: () => undefined,
        handleEvent: (event) => (event === "shutdown" ? { send: BIG, close: true } : undefined),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port, { keep: false, hash: true, paused: true });
    await within(up.promise, 2000, "init");
    await within(server.stop({ drainMs: 2000 }), 3000, "the stop");
    expect(server.connections()).toEqual([]);
    // The socket outlives the stop until its queue is flushed (bounded by closeTimeout).
    await readSlowlyToEnd(client, 15_000);
    expect(client.received).toBe(BIG.length);
    expect(client.digest()).toBe(BIG_SHA);
  }, 20_000);
});

describe("pool.stop({ drainMs })", () => {
  test("connectors get handleEvent('shutdown'); one done within drainMs ends with its own reason, the others get terminate('shutdown'); a 16 MiB goodbye reaches the server whole", async () => {
    const DRAIN = 300;
    // The server side: hashes what each connection receives, reading slowly (an async handler).
    const received = new Map<
      number,
      { hasher: Bun.CryptoHasher; bytes: number; done: PromiseWithResolvers<void> }
    >();
    const serverUp = new Map<number, PromiseWithResolvers<void>>();
    let serverConns = 0;
    const server = await startTestServer<number, undefined>(
      {
        init() {
          const n = ++serverConns;
          received.set(n, {
            hasher: new Bun.CryptoHasher("sha256"),
            bytes: 0,
            done: Promise.withResolvers(),
          });
          return { state: n };
        },
        async handlePacket(packet, n) {
          const r = received.get(n)!;
          r.hasher.update(packet as Uint8Array);
          r.bytes += packet.length;
          await new Promise((resolve) => setTimeout(resolve, 1)); // slow reader
          return undefined;
        },
        handleDisconnect(n) {
          received.get(n)!.done.resolve();
        },
      },
      undefined,
      { plan: ["delete"] },
    );
    void serverUp;
    const roles = ["sender", "stubborn", "finisher"] as const;
    const ended: Array<[string, ExitReason, number]> = [];
    let started = 0;
    let t0 = 0;
    const pool = await startConnectorPool<string, undefined>(
      {
        init: () => ({ state: roles[started++]! }),
        handlePacket: () => undefined,
        handleEvent(event, role) {
          if (event !== "shutdown") return undefined;
          if (role === "sender") return { send: BIG, close: true };
          if (role === "finisher") return { stop: "my own reason" };
          return undefined;
        },
        terminate(reason, role) {
          ended.push([role, reason, performance.now() - t0]);
        },
      },
      undefined,
      [["127.0.0.1", server.port]],
      { connectorCount: 3 },
    );
    trackStop(pool);
    await waitFor(() => serverConns === 3, 2000, "three server connections");
    t0 = performance.now();
    await within(pool.stop({ drainMs: DRAIN }), DRAIN + 3000, "the pool to stop");
    expect(pool.connections()).toEqual([]);
    expect(await pool.exited).toBe("normal");
    const byRole = new Map(ended.map(([role, reason, at]) => [role, { reason, at }]));
    expect(byRole.get("sender")?.reason).toBe("normal");
    expect(byRole.get("finisher")?.reason).toBe("my own reason");
    expect(byRole.get("stubborn")?.reason).toBe("shutdown");
    expect(byRole.get("stubborn")!.at).toBeGreaterThanOrEqual(DRAIN - 5);
    expect(byRole.get("finisher")!.at).toBeLessThan(DRAIN);
    // Every server-side connection sees its connector go; the sender's 16 MiB arrived whole first.
    await Promise.all([...received.values()].map((r) => within(r.done.promise, 15_000, "the disconnects")));
    const sizes = [...received.values()].map((r) => r.bytes).sort((a, b) => a - b);
    expect(sizes).toEqual([0, 0, BIG.length]);
    const sender = [...received.values()].find((r) => r.bytes === BIG.length)!;
    expect(sender.hasher.digest("hex")).toBe(BIG_SHA);
    await waitFor(() => server.connections().length === 0, 2000, "the server connections to end");
  }, 20_000);
});

describe("no orphan connection after a stop", () => {
  test("a stop in the middle of a 300-connection stampede: every accepted connection ran terminate once, every client socket closes, connections() is empty", async () => {
    let inits = 0;
    let ready = 0;
    let terminates = 0;
    const server = await startTestServer<undefined, undefined>(
      {
        init: async () => {
          inits++;
          await new Promise((resolve) => setTimeout(resolve, 1)); // some inits are pending at the stop
          ready++;
          return { send: "up;" };
        },
        handlePacket: (packet) => ({ send: packet }),
        terminate: () => void terminates++,
      },
      undefined,
    );
    const attempts = Array.from({ length: 300 }, (_, i) =>
      (async () => {
        if (i > 150) await Bun.sleep(0);
        return RawClient.connect(server.port).catch(() => undefined);
      })(),
    );
    await waitFor(() => inits >= 100 && ready >= 20, 5000, "a hundred connections, twenty of them served");
    await within(server.stop({ drainMs: 50 }), 5000, "the stop");
    const clients = (await Promise.all(attempts)).filter((c) => c !== undefined);
    expect(server.connections()).toEqual([]);
    // Every connection whose init began ran terminate (init completed) or ended as a start failure.
    expect(terminates).toBeLessThanOrEqual(inits);
    await Promise.all(clients.map((c) => within(c.closedPromise, 5000, "every client socket to close")));
    const served = clients.filter((c) => c.text().startsWith("up;")).length;
    expect(served).toBeGreaterThan(0);
    expect(terminates).toBe(served);
  }, 15_000);
});

describe("stop reasons", () => {
  test("stop(reason) ends the server with that reason; the children still get 'shutdown'", async () => {
    const reasons: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => ({ send: "up;" }),
        handlePacket: () => undefined,
        terminate: (r) => void reasons.push(r),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    await client.waitForText("up;");
    await server.stop({ reason: "maintenance", drainMs: 0 });
    expect(await server.exited).toBe("maintenance");
    expect(reasons).toEqual(["shutdown"]);
    await within(client.closedPromise, 2000, "the peer socket to close");
    expect(packetText(client.bytes())).toBe("up;");
  });
});
