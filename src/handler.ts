/**
 * The handler contract (SockErl's `sockerl` behaviour): the callbacks a server, connector or pool
 * calls, the {@link Action} they return, and the {@link Meta} view they get.
 *
 * @module
 */
import type { Transport } from "./transport/transport.ts";

/** Why a connection, server or pool ended: `"normal"`, `"shutdown"`, an `Error`, or any value a handler stopped with. */
export type ExitReason = unknown;

/**
 * The callbacks of a connection, numbered as the connection process records the last one run
 * (`meta.lastCallback`); index 0 is "none yet".
 */
export const CALLBACK_NAMES = [
  undefined,
  "init",
  "handlePacket",
  "handleCall",
  "handleCast",
  "handleEvent",
  "handleDisconnect",
  "timeout",
  "srtimeout",
  "codeChange",
  "handleDrain",
] as const;

/** What arrives in `handlePacket`: bytes (a Bun `Buffer`) by default, a string with `encoding: "utf8"`. */
export type Packet = Uint8Array | string;

/** What may be sent: a string (UTF-8), bytes, an ArrayBuffer, or an array of them. */
export type Outgoing =
  | string
  | ArrayBufferView
  | ArrayBuffer
  | readonly (string | ArrayBufferView | ArrayBuffer)[];

/** `"active"`: every chunk (or frame) is pushed to `handlePacket`. `"passive"`: read `length` bytes when ready. */
export type ReceiveMode = "active" | "passive";

/**
 * What a callback returns. `undefined` means "continue unchanged". The fields of one object apply in
 * this fixed order: `state`, `send`, `reply`, `timeout`, `srtimeout`, `length`, `mode`, `transport`, then
 * `close` or `stop`. An array of actions applies element by element, in order.
 *
 * @example
 * handlePacket(packet, count) {
 *   return { state: count + 1, send: packet };          // echo and count
 * }
 */
export type Action<S> = ActionObject<S> | readonly Action<S>[] | undefined;

/** One action object; see {@link Action}. */
export interface ActionObject<S> {
  /** The new state. */
  state?: S;
  /** Packet(s) to write now (framed when `packet` framing is on). */
  send?: Outgoing;
  /** Answers the call being handled (only in `handleCall`). */
  reply?: unknown;
  /** Idle timeout in ms: `timeout()` fires after this long without events, every period. `Infinity` = none. */
  timeout?: number;
  /** Passive-mode receive timeout in ms: `srtimeout()` fires when no data came in time. `Infinity` = none. */
  srtimeout?: number;
  /** Passive read length in bytes; 0 = whatever has arrived. */
  length?: number;
  /** Switch between active and passive receiving. */
  mode?: ReceiveMode;
  /** Swap the transport of the live connection, e.g. `tls(...)` for STARTTLS. */
  transport?: Transport;
  /** Terminate with reason `"normal"` after the other fields applied (queued bytes are flushed first). */
  close?: boolean;
  /** Terminate with this reason after the other fields applied. */
  stop?: ExitReason;
}

/** A caller waiting for a reply from `handleCall`; answer later with `from.reply(value)`. */
export interface From {
  /** Answers the call. Later replies are ignored; returns whether this one was delivered. */
  reply(value: unknown): boolean;
  /** Makes the call reject with `error` (a protocol error in a reply, say); returns whether it was delivered. */
  reject(error: unknown): boolean;
}

/** The handle of one connection process (server connection or connector). */
export interface Connection {
  /** Unique process id, as printed in traces (`<7>`). */
  readonly id: number;
  /** Sends a request to `handleCall` and resolves with its reply. Rejects with `CallTimeoutError` after `timeoutMs` (default 5000), `NoProcError` if the connection is gone. */
  call<R = unknown>(request: unknown, timeoutMs?: number): Promise<R>;
  /** Sends a message to `handleCast` (fire and forget). */
  cast(message: unknown): void;
  /** Sends an event to `handleEvent` (fire and forget). */
  notify(event: unknown): void;
  /** Sends bytes in order with the connection's other events; resolves once they are with the kernel. Rejects with `SocketSendError` if the connection dies first. */
  sendSync(packet: Outgoing): Promise<void>;
  /** Sends bytes in order with the connection's other events, without waiting. */
  sendAsync(packet: Outgoing): void;
  /** Terminates the connection with `reason` (default `"normal"`); resolves once `terminate` ran and it left its server's or pool's list. */
  stop(reason?: ExitReason): Promise<void>;
  /** Resolves with the exit reason when the connection has ended. */
  readonly exited: Promise<ExitReason>;
  /** Bytes sent and not yet taken by the kernel (corked or queued). */
  readonly queuedBytes: number;
}

/**
 * A live view of the connection given to every callback (SockErl's metadata). It is not a copy: read
 * what you need during the callback.
 */
export interface Meta<S = unknown> {
  /** The connection's handle. */
  readonly connection: Connection;
  /** Transport name: `"tcp"`, `"tls"`, `"unix"` or a custom one. */
  readonly transport: string;
  /** Whether the transport is encrypted. */
  readonly secure: boolean;
  /** The current idle timeout in ms (`Infinity` = none). */
  readonly timeout: number;
  /** The current passive receive timeout in ms (`Infinity` = none). */
  readonly srtimeout: number;
  /** The current passive read length (0 = any). */
  readonly length: number;
  readonly mode: ReceiveMode;
  /** The options the server, pool or connector was started with. */
  readonly options: Readonly<Record<string, unknown>>;
  /** The last event handled: `{ type: "packet" | "call" | "cast" | "event" | ..., value }`. */
  readonly lastMessage: LastMessage | undefined;
  /** The name of the last callback that completed. */
  readonly lastCallback: string | undefined;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localPort: number | undefined;
  /** Negotiated ALPN protocol (TLS), or undefined. */
  readonly alpnProtocol: string | undefined;
  /** The peer's certificate (TLS), or undefined. */
  readonly peerCertificate: unknown;
  /** Bytes sent and not yet taken by the kernel: a producer can pause above `highWaterMark` (see `handleDrain`). */
  readonly queuedBytes: number;
  /** The PROXY protocol header the connection arrived with (servers with `proxyProtocol`), else undefined. */
  readonly proxy: unknown;
  /** Writes directly (usable in `terminate` to say goodbye). */
  send(packet: Outgoing): void;
  /** The current state (the last committed one). */
  readonly state: S;
}

/** Kind and value of the last event a connection handled. */
export interface LastMessage {
  readonly type: "packet" | "call" | "cast" | "event" | "send" | "timeout" | "srtimeout" | "disconnect";
  readonly value: unknown;
}

/** What `listenInit` learns about the listening socket. */
export interface ListenerInfo {
  readonly port: number;
  readonly hostname: string;
  readonly transport: string;
}

/** `listenInit` result: keep init (`undefined`), replace it, stop the start, or ignore (start resolves to `undefined`). */
export type ListenInitResult<I> = undefined | { init: I } | { stop: unknown } | "ignore";

/** A value or a promise of it: what a callback may return. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The callbacks of a server, connector or pool. One handler object is shared by all connections;
 * per-connection data lives only in `state`. Callbacks of one connection never overlap, even when async.
 *
 * @typeParam S - the per-connection state.
 * @typeParam I - the init argument.
 * @typeParam P - the packet `handlePacket` gets: `string` with `encoding: "utf8"`, `Uint8Array`
 *   otherwise. The start functions infer it from the options; the default allows both.
 */
export interface Handler<S = undefined, I = unknown, P = Packet> {
  /** Servers only: called once after the port is bound. */
  listenInit?(init: I, listener: ListenerInfo): MaybePromise<ListenInitResult<I>>;
  /** Called when the connection is up (after the TLS handshake). `"ignore"` closes it quietly. */
  init(init: I, meta: Meta<S>): MaybePromise<Action<S> | "ignore">;
  /** Called for every packet (active) or every read (passive). */
  handlePacket(packet: P, state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** Called for `conn.call(request)`; answer with `reply` in the action or later with `from.reply`. */
  handleCall?(request: unknown, from: From, state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** Called for `conn.cast(message)`. */
  handleCast?(message: unknown, state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** Called for `conn.notify(event)`. */
  handleEvent?(event: unknown, state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** The peer closed (or reset) the connection. Terminates with `"normal"` unless it returns `stop`. */
  handleDisconnect?(state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /**
   * The outbound queue, having gone above `highWaterMark`, fell back under it (Node's `'drain'`):
   * producers that push on their own (timers, subscriptions) resume here.
   */
  handleDrain?(state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** The idle timeout fired. */
  timeout?(state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** A passive read got no data within `srtimeout`. */
  srtimeout?(state: S, meta: Meta<S>): MaybePromise<Action<S>>;
  /** Called once on every exit of a running connection. */
  terminate?(reason: ExitReason, state: S, meta: Meta<S>): MaybePromise<void>;
  /** Hot code change (`sys.changeCode`): returns the new state. */
  codeChange?(oldVsn: unknown, state: S, extra: unknown): MaybePromise<S>;
}
