/**
 * Binding a server's acceptors and reading what `listenInit` returned.
 *
 * @module
 */
import {
  BadReturnError,
  describeReason,
  errnoCode,
  errnoInfo,
  OptionError,
  SockerlError,
  SocketListenError,
} from "../errors.ts";
import type { Transport } from "../transport/transport.ts";
import { type Acceptor, LISTEN_EVENTS } from "./acceptor.ts";

/** Where and how a server's acceptors listen. */
export interface BindRequest {
  readonly hostname: string;
  /** The port to bind (0: the first acceptor picks one, the others follow it). */
  readonly port: number;
  readonly reusePort: boolean;
  /** The transport acceptors listen with (the server's, or it wrapped in the PROXY header stage). */
  readonly listenTransport: Transport;
  /** The server's transport (named in errors and traces). */
  readonly transport: Transport;
  /** The open-file guard, for listeners that hold sockets before handing them over. */
  readonly admit: () => boolean;
}

/**
 * Binds every acceptor; returns the bound port. On failure every listener bound so far is closed and
 * a `SocketListenError` (errno `code`) is thrown; a transport refusing its options throws its `OptionError`.
 */
export function bindAcceptors(acceptors: readonly Acceptor[], request: BindRequest): number {
  let port = request.port;
  for (const acceptor of acceptors) {
    try {
      acceptor.listener = request.listenTransport.listen({
        hostname: request.hostname,
        port,
        reusePort: request.reusePort,
        events: LISTEN_EVENTS,
        data: acceptor,
        admit: request.admit,
      });
    } catch (error) {
      closeListeners(acceptors);
      if (error instanceof OptionError) throw error; // a transport refusing its options (tls() without cert)
      const code = errnoCode(error, "ELISTEN");
      throw new SocketListenError({
        code,
        reason: code.toLowerCase(),
        info: errnoInfo(code),
        transport: request.transport.name,
        host: request.hostname,
        port,
        cause: error,
      });
    }
    if (port === 0) port = acceptor.listener.port;
    if (acceptor.dbg !== undefined) {
      acceptor.trace(
        `started for listen socket ${request.hostname}:${port} with options:\n\ttransporter module: '${request.transport.name}'\n\tmode: '${acceptor.mode}'`,
      );
    }
  }
  return port;
}

/** Sockets the listeners hold before handing them over (SNI sniffing, PROXY headers). */
export function pendingSockets(acceptors: readonly Acceptor[]): number {
  let n = 0;
  for (const a of acceptors) n += a.listener?.pendingSockets ?? 0;
  return n;
}

/** Stops every acceptor's listener (the port is released; connections stay). */
export function closeListeners(acceptors: readonly Acceptor[]): void {
  for (const acceptor of acceptors) {
    acceptor.listener?.stop(false);
    acceptor.listener = undefined;
  }
}

/**
 * What a `listenInit` result other than `undefined` and `"ignore"` means: `{ init }` gives the new init
 * argument; `{ stop: reason }` throws the `SockerlError` the start rejects with; anything else throws a
 * `BadReturnError`.
 */
export function listenInitArgument(result: unknown): { init: unknown } {
  const single =
    typeof result === "object" && result !== null && Object.keys(result).length === 1
      ? (result as Record<string, unknown>)
      : undefined;
  if (single !== undefined && "init" in single) return { init: single.init };
  if (single !== undefined && "stop" in single) {
    const reason = single.stop;
    throw new SockerlError(`listenInit stopped the server: ${describeReason(reason)}`, {
      code: "ERR_LISTEN_INIT_STOP",
      reason,
    });
  }
  throw new BadReturnError("listenInit", result, 'expected undefined, { init }, { stop } or "ignore"');
}
