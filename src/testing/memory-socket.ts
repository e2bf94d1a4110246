/**
 * One end of the testing kit's in-memory connections: a {@link TransportSocket} whose peer is
 * another {@link MemorySocket} in the same process (the network that pairs them is in
 * `memory-transport.ts`).
 *
 * ```text
 *   end A ── write(bytes) ──▶ B.inbound (≤ window bytes) ── pump (microtask) ──▶ B's events.data
 *         ◀── drain ─────────  room again after B read                          (stops while B paused)
 *   shutdown(): B gets `end` after the bytes before it      end(): FIN then close (close fires inside)
 *   terminate(): B's unread bytes are dropped, B gets close(ECONNRESET)   (as a TCP RST does)
 * ```
 *
 * Each end is either the library's (its events go to the table the library passed to `listen` or
 * `connect`) or a scripted test peer's. Delivery is asynchronous (a microtask after the write, like
 * the kernel's next read), in write order, one `data` event per write, so a test controls exactly how
 * the bytes are cut. Unlike TCP nothing is coalesced or delayed: a test's outcome depends only on
 * what it wrote and in what order.
 *
 * Two traps of real sockets are kept on purpose, so code that works here works on TCP: `end()` with
 * unread bytes resets the connection (the peer loses what it had not read), and a write to an end
 * that has closed makes the writer's socket close with ECONNRESET.
 *
 * @module
 */
import { MemoryUpgradeError } from "../errors.ts";
import type { TransportEvents, TransportSocket } from "../index.ts";
import type { MemoryNetwork } from "./memory-transport.ts";

/** An Error with an errno `code`, as Bun's socket errors are. */
export function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Where the bytes a library end writes go when no peer reads them (the handler driver's sink). */
export type Sink = (bytes: Uint8Array) => void;

/**
 * One end of an in-memory connection: the {@link TransportSocket} the library (or a test peer) holds.
 * The kit's own class: users reach it only as a `TransportSocket`.
 */
export class MemorySocket implements TransportSocket {
  data: unknown = undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** The other end (set by {@link MemoryNetwork.pair}). */
  other!: MemorySocket;
  /** Whoever receives this end's events. */
  events: TransportEvents;
  /** Bytes handed to this end's receiver so far. */
  delivered = 0;
  /** Bytes this end's writes were taken. */
  written = 0;
  /** When set, writes go to this function at once (always taken in full) instead of to the other end. */
  sink: Sink | undefined = undefined;
  /** For a server end: its listener's set of open accepted sockets. */
  acceptedBy: Set<MemorySocket> | undefined = undefined;
  readonly #network: MemoryNetwork;
  #window: number;
  #inbound: Uint8Array[] = [];
  #inboundHead = 0;
  #inboundBytes = 0;
  #paused = false;
  #scheduled = false;
  /** The other end sent FIN; `end` is delivered after the bytes before it. */
  #finPending = false;
  #finDelivered = false;
  #writeShut = false;
  #closed = false;
  /** A write of this end came back short: tell it (drain) when the other end has room again. */
  #wantDrain = false;
  #deliveryWaiters: Array<{ total: number; resolve: () => void }> | undefined = undefined;

  constructor(
    network: MemoryNetwork,
    events: TransportEvents,
    window: number,
    local: { address: string; port: number },
    remote: { address: string; port: number },
  ) {
    this.#network = network;
    this.events = events;
    this.#window = window;
    this.localAddress = local.address;
    this.localPort = local.port;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
  }

  /** 1 while open (also after our own `shutdown()`), -1 once closed, as Bun reports it. */
  get readyState(): number {
    return this.#closed ? -1 : 1;
  }

  /** Whether this end is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether this end sent FIN (shutdown or end). */
  get writeShut(): boolean {
    return this.#writeShut;
  }

  /** Whether the other end's FIN has been delivered to this end's receiver. */
  get finDelivered(): boolean {
    return this.#finDelivered;
  }

  /** Whether reading is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Bytes the other end wrote that this end has not read yet. */
  get unread(): number {
    return this.#inboundBytes;
  }

  /** The receive window in bytes (how much this end buffers unread). */
  get window(): number {
    return this.#window;
  }

  set window(bytes: number) {
    this.#window = bytes;
    this.#roomChanged();
  }

  write(data: Uint8Array | string, byteOffset?: number, byteLength?: number): number {
    if (this.#closed || this.#writeShut) return -1;
    let bytes: Uint8Array = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    if (byteOffset !== undefined || byteLength !== undefined) {
      const start = byteOffset ?? 0;
      bytes = bytes.subarray(start, byteLength === undefined ? undefined : start + byteLength);
    }
    const length = bytes.byteLength;
    if (length === 0) return 0;
    if (this.sink !== undefined) {
      this.written += length;
      this.sink(bytes);
      return length;
    }
    const other = this.other;
    if (other.#closed) {
      // The kernel takes the bytes, the peer answers with RST: our socket closes with ECONNRESET.
      this.written += length;
      queueMicrotask(() => this.#resetBy(errnoError("ECONNRESET", "connection reset by peer")));
      return length;
    }
    const room = other.#window - other.#inboundBytes;
    const taken = room <= 0 ? 0 : Math.min(room, length);
    if (taken < length) this.#wantDrain = true;
    if (taken === 0) return 0;
    // A copy, as a Buffer (what Bun's sockets deliver): the writer may reuse its buffer, and the
    // reader may keep the chunk.
    other.#push(Buffer.from(bytes.subarray(0, taken)));
    this.written += taken;
    return taken;
  }

  /** Half-close: the other end sees `end` after the bytes already written; this end keeps reading. */
  shutdown(): void {
    if (this.#closed || this.#writeShut) return;
    this.#writeShut = true;
    this.other.#fin();
  }

  /** FIN, then close. With unread bytes it is a reset instead, as on TCP (the peer loses its unread bytes). */
  end(): void {
    if (this.#closed) return;
    if (this.#inboundBytes > 0) {
      this.terminate();
      return;
    }
    if (!this.#writeShut) {
      this.#writeShut = true;
      this.other.#fin();
    }
    this.#closeSelf(undefined);
  }

  /** Close at once (RST): the other end drops what it has not read and gets close(ECONNRESET). */
  terminate(): void {
    if (this.#closed) return;
    this.#closeSelf(undefined);
    const other = this.other;
    // The RST overtakes what the other end has not read yet: those bytes are gone at once.
    other.#dropInbound();
    queueMicrotask(() => other.#resetBy(errnoError("ECONNRESET", "connection reset by peer")));
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    if (this.#inboundBytes > 0 || (this.#finPending && !this.#finDelivered)) this.#schedule();
  }

  setNoDelay(): boolean {
    return true;
  }

  setKeepAlive(): boolean {
    return true;
  }

  /**
   * Called by `tls()` for a STARTTLS upgrade. A memory socket has no TLS layer, so the upgrade fails
   * with a typed error that says so (the connection ends with it as the cause).
   */
  upgradeTLS(): never {
    throw new MemoryUpgradeError("TLS");
  }

  /** Resolves once this end's receiver has been handed `total` bytes (or the end closed). */
  whenDelivered(total: number): Promise<void> {
    if (this.delivered >= total || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      (this.#deliveryWaiters ??= []).push({ total, resolve });
    });
  }

  /** Delivers `chunk` to this end's receiver now when it is reading, else queues it (driver's push). */
  inject(chunk: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#paused && this.#inboundBytes === 0) {
      this.delivered += chunk.byteLength;
      this.events.data(this, chunk);
    } else this.#push(chunk);
  }

  /** A description for leak reports. */
  describe(): string {
    return `${this.localAddress}:${this.localPort} <-> ${this.remoteAddress}:${this.remotePort}`;
  }

  #push(chunk: Uint8Array): void {
    this.#inbound.push(chunk);
    this.#inboundBytes += chunk.byteLength;
    this.#schedule();
  }

  #fin(): void {
    this.#finPending = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#pump());
  }

  /** Hands queued bytes (then a pending FIN) to the receiver while it reads. */
  #pump(): void {
    this.#scheduled = false;
    let moved = false;
    while (!this.#paused && !this.#closed && this.#inboundHead < this.#inbound.length) {
      const chunk = this.#inbound[this.#inboundHead]!;
      this.#inbound[this.#inboundHead++] = EMPTY;
      this.#inboundBytes -= chunk.byteLength;
      this.delivered += chunk.byteLength;
      moved = true;
      this.events.data(this, chunk);
    }
    if (this.#inboundHead === this.#inbound.length) {
      this.#inbound = [];
      this.#inboundHead = 0;
    }
    if (moved) {
      this.#roomChanged();
      this.#wakeDelivery();
    }
    if (this.#closed || this.#paused) return;
    if (this.#inboundBytes === 0 && this.#finPending && !this.#finDelivered) {
      this.#finDelivered = true;
      this.events.end(this);
    }
  }

  /** The writer of our inbound bytes waits for room: tell it once there is some. */
  #roomChanged(): void {
    const writer = this.other;
    if (writer === undefined || !writer.#wantDrain || writer.#closed) return;
    if (this.#window - this.#inboundBytes <= 0) return;
    writer.#wantDrain = false;
    queueMicrotask(() => {
      if (!writer.#closed) writer.events.drain(writer);
    });
  }

  #wakeDelivery(): void {
    const waiters = this.#deliveryWaiters;
    if (waiters === undefined) return;
    this.#deliveryWaiters = waiters.filter((w) => {
      if (w.total > this.delivered && !this.#closed) return true;
      w.resolve();
      return false;
    });
  }

  #dropInbound(): void {
    this.#inbound = [];
    this.#inboundHead = 0;
    this.#inboundBytes = 0;
  }

  #resetBy(error: Error): void {
    if (this.#closed) return;
    this.#closeSelf(error);
  }

  #closeSelf(error: Error | undefined): void {
    this.#closed = true;
    this.#dropInbound();
    this.#network.forget(this);
    this.#wakeDelivery();
    // Bun fires close synchronously inside end()/terminate(); the library relies on nothing else.
    this.events.close(this, error);
  }
}

const EMPTY = new Uint8Array(0);
