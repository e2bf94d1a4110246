/**
 * Starting servers in tests and cleaning up after them: {@link startTestServer} binds a server on
 * 127.0.0.1 with port 0 and registers it, and {@link cleanup} (for `afterEach`) terminates every raw
 * client, stops every server and restores the debug sink, so no test leaks a socket into the next.
 *
 * @module
 */
import type { Handler, Server, ServerOptions } from "../../src/index.ts";
import { startServer } from "../../src/index.ts";
import { closeAllClients } from "./client.ts";
import { restoreSink } from "./trace.ts";
import { within } from "./wait.ts";

const servers = new Set<Server<never, never>>();

/** Registers a server for {@link cleanup}. */
export function track<S, I>(server: Server<S, I>): Server<S, I> {
  servers.add(server as unknown as Server<never, never>);
  return server;
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

/** Terminates every raw client, stops every tracked server (bounded), restores the sink. */
export async function cleanup(): Promise<void> {
  closeAllClients();
  const list = [...servers];
  servers.clear();
  await within(Promise.all(list.map((s) => s.stop())), 3000, "servers to stop in cleanup");
  restoreSink();
}
