/**
 * Transports (SockErl's `sockerl_transporter`): how bytes move. The library drives every transport
 * through the same small interface, so TCP, TLS, Unix sockets and user-written transports are
 * interchangeable, and a live connection can swap one for another (STARTTLS).
 *
 * ## Writing a transport
 * A transport creates sockets and reports their events to the {@link TransportEvents} table it is given.
 * The library sets `socket.data` to its connection and dispatches every event through it, so a transport
 * must (1) call `events.open(socket)` once a socket is usable, with `socket.data` set to the `data` it was
 * given, (2) call `events.data(socket, bytes)` for every received chunk (a chunk it will not mutate later),
 * `events.drain(socket)` when a short write can be retried, `events.end(socket)` when the peer half-closes,
 * `events.close(socket, error?)` exactly once when the socket is gone, and (3) offer a socket whose
 * `write` returns the number of bytes taken (never buffering silently: the library keeps the queue),
 * and whose `pause`/`resume` stop and restart reading. A listener that holds accepted sockets before
 * calling `open` (to read a header first) (4) counts them in {@link TransportListener.pendingSockets}
 * and closes them when it stops. The simplest custom transport wraps {@link tcp} and transforms the
 * bytes in both directions; see the README.
 *
 * @module
 */
// tcp() and the Bun handler cast live in files of their own; importers of this module keep finding them here.
export { bunHandlers } from "./bun-options.ts";
export { type TcpOptions, tcp } from "./tcp.ts";

/** The socket surface the library uses (a subset of Bun's `Socket`). */
export interface TransportSocket {
  /** The library's per-socket slot; a transport must carry it from `data` in the request. */
  data: unknown;
  /** Writes bytes; returns how many the kernel took (0 when full, -1 when closed). Must never buffer. */
  write(data: Uint8Array | string, byteOffset?: number, byteLength?: number): number;
  /** FIN, then close. */
  end(): unknown;
  /** Half-close: FIN, keep reading. */
  shutdown(halfClose?: boolean): void;
  /** Close at once (RST). */
  terminate(): unknown;
  /** Stop reading (real flow control). */
  pause(): void;
  /** Restart reading. */
  resume(): void;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localPort?: number | undefined;
  readonly readyState?: number;
  readonly alpnProtocol?: string | false | null;
  readonly authorized?: boolean;
  setNoDelay?(noDelay?: boolean): boolean;
  setKeepAlive?(enable?: boolean, initialDelayMs?: number): boolean;
  getPeerCertificate?(): unknown;
}

/** The events a transport reports; the library passes its own table (shared by all sockets). */
export interface TransportEvents {
  /** The socket is usable; `socket.data` must already be the `data` of the request. Once per socket. */
  open(socket: TransportSocket): void;
  /** Bytes arrived. The transport must not change `chunk` afterwards (the library may keep a view). */
  data(socket: TransportSocket, chunk: Uint8Array): void;
  /** A write that took fewer bytes than offered can be retried: the kernel has room again. */
  drain(socket: TransportSocket): void;
  /** The peer half-closed (FIN): no more data will arrive; writing may go on. */
  end(socket: TransportSocket): void;
  /** The socket is gone (with the error that ended it, if any). Exactly once per socket, last. */
  close(socket: TransportSocket, error?: Error): void;
  /** A socket error (a TLS protocol alert, say). It does not say the socket is gone: `close` does. */
  error(socket: TransportSocket, error: Error): void;
  /** TLS only: the handshake finished (or failed). */
  handshake(socket: TransportSocket, success: boolean, authorizationError: Error | null): void;
}

/**
 * A bound listener.
 *
 * A listener that holds accepted sockets for a while before it hands them to the library (reading a
 * TLS ClientHello to pick a certificate, reading a PROXY protocol header) reports how many it holds
 * in `pendingSockets`. Each of them is an open file descriptor the library never saw: the server's
 * open-file guard adds them to its own count, so that sockets parked in a listener cannot take the
 * process to its descriptor limit unnoticed. A listener that hands every socket over in `open` leaves
 * it undefined (= 0). Sockets still pending when the listener stops are the listener's to close.
 *
 * @example
 * class SniffingListener implements TransportListener {
 *   readonly #held = new Set<TransportSocket>();
 *   get pendingSockets(): number {
 *     return this.#held.size;
 *   }
 *   // port, hostname, stop(): close the held sockets too
 * }
 */
export interface TransportListener {
  /** The bound port (0 for Unix sockets). */
  readonly port: number;
  readonly hostname: string;
  /** Sockets accepted and still held by the listener, not yet handed to the library (`open` not called). @default 0 */
  readonly pendingSockets?: number;
  /** Stops listening; `closeActive` also closes accepted sockets. */
  stop(closeActive?: boolean): void;
}

/** Arguments of {@link Transport.listen}. */
export interface ListenRequest {
  readonly hostname: string;
  readonly port: number;
  /** Bind with SO_REUSEPORT (several acceptors on one port). */
  readonly reusePort: boolean;
  readonly events: TransportEvents;
  /** The initial `socket.data` of accepted sockets (the library replaces it in `open`). */
  readonly data: unknown;
  /**
   * For listeners that hold accepted sockets before handing them to the library (reading a ClientHello
   * or a PROXY header): call it for each socket they accept; `false` means the server is near its
   * open-file limit, so reset that socket at once (`terminate()`) instead of holding it.
   */
  readonly admit?: () => boolean;
}

/** Arguments of {@link Transport.connect}. */
export interface ConnectRequest {
  readonly hostname: string;
  readonly port: number;
  readonly events: TransportEvents;
  /** `socket.data` of the new socket, set before `open`. */
  readonly data: unknown;
}

/** Arguments of {@link Transport.upgrade}. */
export interface UpgradeRequest {
  /** Whether this side accepted the connection (TLS server role). */
  readonly isServer: boolean;
  readonly events: TransportEvents;
  readonly data: unknown;
  /** Bytes already received behind the upgrade command (a pipelined ClientHello). */
  readonly initialData: Uint8Array | undefined;
}

/**
 * A transport. `tcp()`, `tls()` and `unix()` are built in; anything implementing this works.
 */
export interface Transport {
  /** Name shown in `meta.transport` and traces, e.g. `"tcp"`. */
  readonly name: string;
  /** Whether bytes are encrypted (`meta.secure`). When true, the library waits for `handshake` before `init` and holds writes until then. */
  readonly secure: boolean;
  /** Binds and listens; throws (with an errno `code`) on failure. */
  listen(request: ListenRequest): TransportListener;
  /** Connects; rejects (with an errno `code`) on failure. May resolve before `open`. */
  connect(request: ConnectRequest): Promise<TransportSocket>;
  /** Takes over a live socket of another transport (STARTTLS). Returns the new socket; the old one must stop reporting events. */
  upgrade?(socket: TransportSocket, request: UpgradeRequest): TransportSocket;
  /** After `handshake`: an Error when the handshake must count as failed, else undefined. When present, its verdict is final (Bun's `success` flag is only an input). */
  handshakeError?(
    socket: TransportSocket,
    success: boolean,
    authorizationError: Error | null,
    isServer: boolean,
  ): Error | undefined;
}

/** Whether `value` looks like a {@link Transport}. */
export function isTransport(value: unknown): value is Transport {
  if (value === null || typeof value !== "object") return false;
  const t = value as Partial<Transport>;
  return (
    typeof t.name === "string" &&
    typeof t.secure === "boolean" &&
    typeof t.listen === "function" &&
    typeof t.connect === "function"
  );
}
