/**
 * The one place that builds `Bun.listen` / `Bun.connect` option blocks, for every built-in transport
 * (tcp, tls, unix) and the `sni` listener, so that the settings every socket needs cannot drift apart:
 *
 * - `allowHalfOpen: true`: the library decides when to close after the peer's FIN (a server may still
 *   answer a half-closed client); Bun's default closes right after `end`.
 * - `reusePort` / `ipv6Only` on listen: Bun honours them there although its listen types omit them.
 * - one handler table shared by all sockets, dispatching through `socket.data` (no closure per socket).
 *
 * See docs/bun-sockets.md for the Bun behaviours behind these choices.
 *
 * @module
 * @internal
 */
import type { TransportEvents, TransportSocket } from "./transport.ts";

/**
 * Where a socket listens or connects: a TCP host and port, a Unix socket path, or (connect only) a
 * descriptor already connected elsewhere (`Bun.connect({ fd })`, see src/dial.ts).
 */
export type Endpoint =
  | { readonly hostname: string; readonly port: number }
  | { readonly unix: string }
  | { readonly fd: number };

/**
 * Marks a transport whose `connect` takes over a connected descriptor given as `fd` in the request
 * (connectors then connect with a cancellable dial first).
 */
export const TAKES_FD: unique symbol = Symbol("sockerl.takesFd");

/**
 * Marks a transport whose sockets copy what `write` takes before it returns (Bun's sockets: the kernel
 * or the TLS layer has the bytes), so the library may reuse the buffer it wrote from. A transport that
 * keeps a reference to written bytes (a user's, the testing kit's) must not carry it.
 */
export const COPIES_WRITES: unique symbol = Symbol("sockerl.copiesWrites");

/** A connect request that may carry a connected descriptor (for transports marked {@link TAKES_FD}). */
export interface FdConnectRequest {
  readonly fd?: number | undefined;
}

/** What a transport wants of one `Bun.listen` / `Bun.connect` call. */
export interface BunSocketSetup {
  readonly endpoint: Endpoint;
  /** The library's event table, or a transport's own (the `sni` listener's sniffing table). */
  readonly handlers: TransportEvents | object;
  /** `socket.data` of the new socket(s). */
  readonly data: unknown;
  /** Bun TLS options (already validated and converted). */
  readonly tls?: object;
  /** Listen only: SO_REUSEPORT (several acceptors on one port). */
  readonly reusePort?: boolean;
  /** Listen only: restrict a `"::"` listener to IPv6. */
  readonly ipv6Only?: boolean;
}

/** The Bun socket surface used by TLS upgrades (`upgradeTLS` also takes the undocumented `initialData`). */
export interface UpgradableSocket extends TransportSocket {
  upgradeTLS(options: {
    isServer?: boolean;
    tls: object;
    socket: unknown;
    data: unknown;
    initialData?: Uint8Array;
  }): [TransportSocket, TransportSocket] | undefined;
}

/**
 * Bun's handler table for our events (Bun calls them with its own Socket type).
 *
 * @example
 * socket.upgradeTLS({ tls, socket: bunHandlers(request.events), data: request.data });
 */
export function bunHandlers(events: TransportEvents | object): Bun.SocketHandler<unknown> {
  return events as unknown as Bun.SocketHandler<unknown>;
}

/**
 * The option block of a `Bun.listen` (`forListen`) or `Bun.connect` call.
 *
 * @example
 * Bun.listen(bunSocketOptions({ endpoint: { hostname, port }, handlers, data, reusePort }, true) as never);
 */
export function bunSocketOptions(setup: BunSocketSetup, forListen: boolean): Record<string, unknown> {
  const block: Record<string, unknown> = {
    ...setup.endpoint,
    socket: bunHandlers(setup.handlers),
    data: setup.data,
    allowHalfOpen: true,
  };
  if (setup.tls !== undefined) block.tls = setup.tls;
  if (forListen) {
    if (setup.reusePort !== undefined) block.reusePort = setup.reusePort;
    if (setup.ipv6Only !== undefined) block.ipv6Only = setup.ipv6Only;
  }
  return block;
}

/** A bound Bun listener, as the transports use it (TCP and Unix listeners alike). */
export interface BunListener {
  readonly port: number;
  /** The bound address (a Unix listener has none: unix.ts reports its path instead). */
  readonly hostname: string;
  stop(closeActive?: boolean): void;
}

/**
 * `Bun.listen` with {@link bunSocketOptions}; throws Bun's errno error (`EADDRINUSE`, …).
 *
 * @example
 * const listener = bunListen({ endpoint: { hostname: "127.0.0.1", port: 0 }, handlers, data });
 */
export function bunListen(setup: BunSocketSetup): BunListener {
  // One call site for both overloads: the block has `hostname`/`port` or `unix`, as Bun expects.
  return Bun.listen<unknown>(bunSocketOptions(setup, true) as unknown as Bun.TCPSocketListenOptions<unknown>);
}

/**
 * `Bun.connect` with {@link bunSocketOptions}; rejects with Bun's errno error (`ECONNREFUSED`, …).
 *
 * @example
 * const socket = await bunConnect({ endpoint: { hostname: "127.0.0.1", port }, handlers, data });
 */
export function bunConnect(setup: BunSocketSetup): Promise<TransportSocket> {
  return Bun.connect<unknown>(
    bunSocketOptions(setup, false) as unknown as Bun.TCPSocketConnectOptions<unknown>,
  ) as Promise<TransportSocket>;
}
