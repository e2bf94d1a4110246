/**
 * The object users hold: the {@link Connection} handle, which is also the {@link Meta} given to every
 * callback (one small object per connection, made at start). It reaches the process through a private
 * field, so nothing internal shows through it (`Object.keys`, autocomplete, `(meta as any).socket`).
 *
 * @module
 */
import type { Connection, ExitReason, LastMessage, Meta, Outgoing, ReceiveMode } from "../handler.ts";
import {
  CALLBACK_NAMES,
  CB_MASK,
  CB_SHIFT,
  type ConnectionProcess,
  F_PASSIVE,
  F_SOCKET_CLOSED,
  F_WRITE_HELD,
} from "./process.ts";
import { call, cast, exited, notify, sendAsync, sendSync, stop } from "./requests.ts";
import { queuedBytes, sendChecked } from "./writer.ts";

let processOfView: (view: ViewMethods) => ConnectionProcess;

/** The methods of {@link ConnectionView} (see there why they live on a class of their own). */
class ViewMethods implements Connection, Meta<unknown> {
  readonly #p: ConnectionProcess;

  static {
    processOfView = (view) => (view as ViewMethods).#p;
  }

  /** @internal */
  constructor(p: ConnectionProcess) {
    this.#p = p;
  }

  // ---------------------------------------------------------------- Connection

  get id(): number {
    return this.#p.id;
  }
  call<R = unknown>(request: unknown, timeoutMs?: number): Promise<R> {
    return call(this.#p, request, timeoutMs) as Promise<R>;
  }
  cast(message: unknown): void {
    cast(this.#p, message);
  }
  notify(event: unknown): void {
    notify(this.#p, event);
  }
  sendSync(packet: Outgoing): Promise<void> {
    return sendSync(this.#p, packet);
  }
  sendAsync(packet: Outgoing): void {
    sendAsync(this.#p, packet);
  }
  stop(reason?: ExitReason): Promise<void> {
    return stop(this.#p, reason);
  }
  get exited(): Promise<ExitReason> {
    return exited(this.#p);
  }
  get queuedBytes(): number {
    return queuedBytes(this.#p);
  }

  // ---------------------------------------------------------------- Meta

  get connection(): Connection {
    return this;
  }
  get transport(): string {
    return this.#p.spec.transport.name;
  }
  get secure(): boolean {
    // Not until the handshake is done: a STARTTLS upgrade that fails leaves the connection insecure.
    return this.#p.spec.transport.secure && (this.#p.flags & F_WRITE_HELD) === 0;
  }
  get timeout(): number {
    return this.#p.timers?.idle?.ms ?? Number.POSITIVE_INFINITY;
  }
  get srtimeout(): number {
    return this.#p.timers?.srMs ?? Number.POSITIVE_INFINITY;
  }
  get length(): number {
    return this.#p.rare?.length ?? 0;
  }
  get mode(): ReceiveMode {
    return (this.#p.flags & F_PASSIVE) !== 0 ? "passive" : "active";
  }
  get options(): Readonly<Record<string, unknown>> {
    return this.#p.spec.settings.options;
  }
  get lastMessage(): LastMessage | undefined {
    return this.#p.rare?.lastMessage;
  }
  get lastCallback(): string | undefined {
    return CALLBACK_NAMES[(this.#p.flags & CB_MASK) >> CB_SHIFT];
  }
  get remoteAddress(): string | undefined {
    const proxy = this.#p.rare?.proxy as { sourceAddress?: string } | undefined;
    if (proxy?.sourceAddress !== undefined) return proxy.sourceAddress;
    return this.#p.socket?.remoteAddress ?? this.#p.spec.host;
  }
  get remotePort(): number | undefined {
    const proxy = this.#p.rare?.proxy as { sourcePort?: number } | undefined;
    if (proxy?.sourcePort !== undefined) return proxy.sourcePort;
    return this.#p.socket?.remotePort ?? this.#p.spec.port;
  }
  get localPort(): number | undefined {
    return this.#p.socket?.localPort;
  }
  get alpnProtocol(): string | undefined {
    const alpn = this.#p.socket?.alpnProtocol;
    return typeof alpn === "string" ? alpn : undefined;
  }
  get peerCertificate(): unknown {
    if (!this.#p.spec.transport.secure) return undefined;
    return this.#p.socket?.getPeerCertificate?.();
  }
  get proxy(): unknown {
    return this.#p.rare?.proxy;
  }
  get state(): unknown {
    return this.#p.state;
  }
  send(packet: Outgoing): void {
    const p = this.#p;
    if (p.socket === undefined || (p.flags & F_SOCKET_CLOSED) !== 0) return;
    const error = sendChecked(p, packet);
    if (error !== undefined) throw error;
  }
}

/**
 * A connection's handle and meta (see the module notes). The methods live one class up: JSC sizes
 * an object from the properties of its own prototype, so with ~30 getters right on it every view
 * took a 64-byte cell; with them one level up it takes 32 (measured with `bun:jsc`).
 */
export class ConnectionView extends ViewMethods {
  // Written out: the implicit one of a derived class passes `...arguments` on, an array per view.
  constructor(p: ConnectionProcess) {
    super(p);
  }
}

/** The view of a process (made on first use). */
export function viewOf(p: ConnectionProcess): ConnectionView {
  let view = p.view;
  if (view === undefined) view = p.view = new ConnectionView(p);
  return view;
}

/** The process behind a handle, or undefined for anything else. */
export function processOf(value: unknown): ConnectionProcess | undefined {
  return value instanceof ConnectionView ? processOfView(value) : undefined;
}
