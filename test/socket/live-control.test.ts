/**
 * Invariant: a running server's limits change without dropping a live connection.
 * `setMaxConnections(n)` raised serves the waiting connections at once (no slot has to free first),
 * in arrival order; lowered, it lets every running connection finish and serves no new one until
 * fewer than `n` run. `suspend()` closes the listening sockets, so new connects are refused, while
 * the connections already running keep working; `resume()` listens again on the same port (the one
 * picked for port 0 too) and new connects are served. Checked on loopback with raw clients.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Handler, OptionError, type Server, SocketListenError } from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer } from "../helpers/server.ts";
import { Log, waitFor } from "../helpers/wait.ts";

afterEach(cleanup);

/** An echo server (lines) that logs every init's connection id. */
async function echoServer(
  inits: Log<number>,
  maxConnections?: number,
): Promise<Server<undefined, undefined>> {
  const echo: Handler<undefined, undefined> = {
    init: (_init, meta) => {
      inits.push(meta.connection.id);
      return undefined;
    },
    handlePacket: (line) => ({ send: line }),
    handleDisconnect: () => undefined,
  };
  return startTestServer(echo, undefined, {
    packet: "line",
    ...(maxConnections === undefined ? {} : { maxConnections }),
  });
}

/** Connects `n` raw clients, one after another. */
async function connectMany(port: number, n: number): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  for (let i = 0; i < n; i++) clients.push(await RawClient.connect(port));
  return clients;
}

/** Whether a connect to `port` on loopback is refused (resolves true) or accepted (false). */
async function refused(port: number): Promise<boolean> {
  try {
    const client = await RawClient.connect(port);
    client.terminate();
    return false;
  } catch (error) {
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
    return true;
  }
}

describe("setMaxConnections", () => {
  test("raising it serves the waiting connections at once, in arrival order, with no slot freed", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits, 1);
    const [first] = await connectMany(server.port, 1);
    await first!.roundTrip("one\n");
    const waiting = await connectMany(server.port, 3);
    for (const c of waiting) c.write("waiting\n");
    await waitFor(() => server.info().waiting === 3, 2000, "three waiting connections");
    expect(inits.items.length).toBe(1);
    expect(waiting.every((c) => c.received === 0)).toBe(true); // not served: their lines are unread

    server.setMaxConnections(3);
    // Two of the three are served now, although the first connection is still running.
    await inits.until((ids) => ids.length === 3, 1000, "two more inits right after raising the limit");
    await waiting[0]!.waitForText("waiting\n");
    await waiting[1]!.waitForText("waiting\n");
    expect(server.info()).toMatchObject({ active: 3, waiting: 1, maxConnections: 3 });
    expect(inits.items).toEqual([...inits.items].sort((a, b) => a - b)); // arrival order
    expect(waiting[2]!.received).toBe(0);

    server.setMaxConnections(Number.POSITIVE_INFINITY);
    await waiting[2]!.waitForText("waiting\n", 1000);
    expect(server.info()).toMatchObject({ active: 4, waiting: 0, maxConnections: Number.POSITIVE_INFINITY });
    await first!.roundTrip("still served\n");
  });

  test("lowering it lets the running connections finish and serves a new one only below the new limit", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits, 3);
    const running = await connectMany(server.port, 3);
    for (const c of running) await c.roundTrip("in\n");

    server.setMaxConnections(1);
    expect(server.info()).toMatchObject({ active: 3, maxConnections: 1 });
    for (const c of running) await c.roundTrip("still working\n"); // nobody was dropped
    const late = await RawClient.connect(server.port);
    late.write("late\n");
    await waitFor(() => server.info().waiting === 1, 2000, "the late connection to wait");

    running[0]!.end();
    running[1]!.end();
    await waitFor(() => server.info().ended.normal === 2, 2000, "two connections to end");
    // One still runs: 1 is not below the limit of 1, so the late one still waits.
    await running[2]!.roundTrip("last one\n");
    expect(server.info()).toMatchObject({ active: 1, waiting: 1 });
    expect(inits.items.length).toBe(3);
    expect(late.received).toBe(0);

    running[2]!.end();
    await late.waitForText("late\n", 2000);
    expect(server.info()).toMatchObject({ active: 1, waiting: 0 });
  });

  test("a bad value throws OptionError naming maxConnections and keeps the limit", async () => {
    const server = await echoServer(new Log<number>(), 5);
    for (const bad of [0, -1, 1.5, Number.NaN, "3", null]) {
      let error: unknown;
      try {
        server.setMaxConnections(bad as number);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OptionError);
      expect(String((error as Error).message)).toContain("maxConnections");
    }
    expect(server.info().maxConnections).toBe(5);
  });

  // `undefined` (a JS caller, or a config value that is missing) must not remove the limit.
  test("undefined is a bad value too: it does not remove the limit", async () => {
    const server = await echoServer(new Log<number>(), 5);
    expect(() => server.setMaxConnections(undefined as unknown as number)).toThrow(OptionError);
    expect(server.info().maxConnections).toBe(5);
  });
});

describe("suspend and resume", () => {
  test("suspend refuses new connects while the running connections keep working; resume listens on the same port", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits);
    const port = server.port;
    const running = await connectMany(port, 2);
    for (const c of running) await c.roundTrip("before\n");

    server.suspend();
    expect(await refused(port)).toBe(true);
    for (const c of running) await c.roundTrip("while suspended\n");
    expect(server.info()).toMatchObject({ active: 2, accepted: 2 });
    expect(server.connections().length).toBe(2);

    await server.resume();
    expect(server.port).toBe(port);
    const after = await RawClient.connect(port);
    await after.roundTrip("after resume\n");
    for (const c of running) await c.roundTrip("and the old ones too\n");
    expect(server.info()).toMatchObject({ active: 3, accepted: 3, port });
  });

  test("suspend and resume twice are harmless; a suspended server stops cleanly", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits);
    const port = server.port;
    server.suspend();
    server.suspend();
    expect(await refused(port)).toBe(true);
    await server.resume();
    await server.resume();
    const client = await RawClient.connect(port);
    await client.roundTrip("ok\n");
    server.suspend();
    await server.stop();
    expect(await server.exited).toBe("normal");
    await client.waitForEnd();
    expect(server.info()).toMatchObject({ active: 0, ended: { shutdown: 1 } });
  });

  test("resume throws SocketListenError when the port was taken meanwhile, stays suspended, and works once it is free", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits);
    const port = server.port;
    const running = await RawClient.connect(port);
    await running.roundTrip("x\n");
    server.suspend();
    const squatter = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    defer(() => squatter.stop(true));
    let error: unknown;
    try {
      server.resume();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SocketListenError);
    expect((error as SocketListenError).code).toBe("EADDRINUSE");
    await running.roundTrip("still served\n");
    squatter.stop(true);
    server.resume(); // still suspended, so this binds
    const next = await RawClient.connect(port);
    await next.roundTrip("y\n");
    expect(server.info()).toMatchObject({ active: 2, accepted: 2, port });
  });

  test("a connection that ends while the server is suspended frees its slot for after the resume", async () => {
    const inits = new Log<number>();
    const server = await echoServer(inits, 1);
    const [first] = await connectMany(server.port, 1);
    await first!.roundTrip("x\n");
    server.suspend();
    first!.end();
    await waitFor(() => server.info().active === 0, 2000, "the connection to end");
    await server.resume();
    const next = await RawClient.connect(server.port);
    await next.roundTrip("y\n", 1000);
    expect(server.info()).toMatchObject({ active: 1, waiting: 0, accepted: 2 });
  });
});
