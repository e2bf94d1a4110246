/**
 * Starting servers in tests and cleaning up after them: {@link startTestServer} binds a server on
 * 127.0.0.1 with port 0 and registers it, {@link trackStop} registers a connector or a pool,
 * {@link defer} any other teardown, and {@link cleanup} (for `afterEach`) stops and closes all of it,
 * terminates every raw client and restores the debug sink, so no test leaks a socket into the next.
 *
 * @module
 */
import type { Connection, Handler, Plan, Server, ServerOptions } from "../../src/index.ts";
import { startServer } from "../../src/index.ts";
import { closeAllClients, RawClient } from "./client.ts";
import { restoreSink } from "./trace.ts";
import { within } from "./wait.ts";

const servers = new Set<Server<never, never>>();
const stoppables = new Set<{ stop(): Promise<unknown> }>();
const deferred: Array<() => unknown> = [];

/** Registers a server for {@link cleanup}. */
export function track<S, I>(server: Server<S, I>): Server<S, I> {
  servers.add(server as unknown as Server<never, never>);
  return server;
}

/**
 * Registers a connector, a pool, or anything else with a `stop()`, for {@link cleanup}: they are all
 * stopped at once, before the servers, bounded to 3 s.
 */
export function trackStop<T extends { stop(): Promise<unknown> }>(thing: T): T {
  stoppables.add(thing);
  return thing;
}

/**
 * Registers `fn` (sync or async) to run in {@link cleanup}, after the connectors and pools stop and
 * before the raw clients close and the servers stop; the last registered runs first. For teardown that
 * is neither a server, a connector, a pool nor a raw client (a bare Bun listener, a child process).
 */
export function defer(fn: () => unknown): void {
  deferred.push(fn);
}

/**
 * Starts a server on 127.0.0.1, port 0 (read `server.port`), and registers it for {@link cleanup}.
 * Fails the test if the start resolves to `undefined` (`listenInit` returned `"ignore"`).
 */
export async function startTestServer<S, I>(
  handler: Handler<S, I>,
  init: I,
  options: ServerOptions = {},
): Promise<Server<S, I>> {
  const server = await startServer(handler, init, 0, { hostname: "127.0.0.1", ...options });
  if (server === undefined) throw new Error("startServer resolved to undefined");
  return track(server);
}

/** A port on 127.0.0.1 that was just bound and released: nothing listens on it (a connect is refused). */
export async function closedPort(): Promise<number> {
  const server = await startTestServer({ init: () => undefined, handlePacket: () => undefined }, undefined);
  const port = server.port;
  await server.stop();
  return port;
}

/**
 * Connects a raw client to `server`, sends `hello` and awaits its echo (the server must echo), and
 * returns the client with its connection's server-side handle.
 */
export async function connectOne<S, I>(server: Server<S, I>, hello = "hi"): Promise<[RawClient, Connection]> {
  const before = new Set(server.connections().map(([id]) => id));
  const client = await RawClient.connect(server.port);
  client.write(hello);
  await client.waitForText(hello);
  const conn = server.connections().find(([id]) => !before.has(id));
  if (conn === undefined) throw new Error("the new connection is not listed");
  return [client, conn[1]];
}

/**
 * Stops every tracked connector and pool (bounded), runs the deferred teardown, terminates every raw
 * client, stops every tracked server (bounded) and restores the sink. Every step runs even when an
 * earlier one fails; the first failure is thrown at the end.
 */
export async function cleanup(): Promise<void> {
  let failure: unknown;
  const fail = (error: unknown): void => {
    failure ??= error;
  };
  const stopping = [...stoppables];
  stoppables.clear();
  if (stopping.length > 0) {
    await within(
      Promise.all(stopping.map((s) => s.stop())),
      3000,
      "connectors and pools to stop in cleanup",
    ).catch(fail);
  }
  for (const fn of deferred.splice(0).reverse()) {
    try {
      await fn();
    } catch (error) {
      fail(error);
    }
  }
  closeAllClients();
  const list = [...servers];
  servers.clear();
  await within(Promise.all(list.map((s) => s.stop())), 3000, "servers to stop in cleanup").catch(fail);
  restoreSink();
  if (failure !== undefined) throw failure;
}

/**
 * SockErl's own default plan, now an explicit choice: a `"normal"` exit deletes the connection, any
 * other reason stops the whole server (or pool). The library's default deletes every connection.
 */
export const SOCKERL_PLAN: Plan = [(reason) => (reason === "normal" ? "delete" : "stop")];
