/**
 * `startServer`: validates the handler and the port, builds the {@link Server} and binds it. Its
 * overload checks an object-literal handler more closely than `Handler<S>` alone can (see below).
 *
 * @module
 */
import type { Handler } from "../handler.ts";
import type { CheckedActions, Encoding, PacketFor, UnlessIgnored } from "../handler-check.ts";
import { handlerArgument, portArgument, type ServerOptions } from "../options.ts";
import { Server } from "./server.ts";

/**
 * Starts a server on `port` (0 picks a free one; read `server.port`). Resolves once listening, or to
 * `undefined` when `listenInit` returns `"ignore"`.
 *
 * Written as an object literal (or with `satisfies Handler<S>`), the handler is checked more
 * closely than `Handler<S>` alone can: its state type is inferred from `init`, its packets are
 * `string` with `encoding: "utf8"` and `Uint8Array` otherwise, an action with an unknown field
 * (`{ sned: p }`) is a compile error, and the result has no `undefined` unless `listenInit` can
 * return `"ignore"`.
 *
 * @example
 * const server = await startServer(
 *   { init: () => ({ state: 0 }), handlePacket: (p, n) => ({ state: n + 1, send: p }) },
 *   undefined, 0, { hostname: "127.0.0.1" },
 * );
 * console.log(server.port);
 */
export function startServer<
  S = undefined,
  I = unknown,
  E extends Encoding | undefined = undefined,
  T = Handler<S, I, PacketFor<E>>,
>(
  handler: Handler<S, I, PacketFor<E>> & T & NoInfer<CheckedActions<T>>,
  init: I,
  port: number,
  options?: ServerOptions & { encoding?: E },
): Promise<UnlessIgnored<T, "listenInit", Server<S, I>>>;
export async function startServer<S, I>(
  handler: Handler<S, I>,
  init: I,
  port: number,
  options?: ServerOptions,
): Promise<Server<S, I> | undefined> {
  handlerArgument(handler);
  const checkedPort = portArgument(port);
  const server = new Server<S, I>(handler, init, options);
  return (await server.listen(checkedPort)) ? server : undefined;
}
