/**
 * The testing kit's in-memory network: a {@link Transport} whose sockets are pairs of ends in one
 * process, built only on the public transport contract (so the library runs its real connection
 * process over it, exactly as over TCP).
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
import type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportEvents,
  TransportListener,
  TransportSocket,
} from "../index.ts";

/** Default receive window of a memory socket in bytes: what it buffers unread before writes come back short. */
export const DEFAULT_WINDOW = 256 * 1024;

/** An Error with an errno `code`, as Bun's socket errors are. */
function errnoError(code: string, message: string): Error {
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

/** A listener on the memory network: the library's (events from `listen`) or a test script's. */
export interface MemoryAcceptor {
  /** Called with the server end of each new connection. */
  accept(socket: MemorySocket): void;
  /** The events table the server end reports to. */
  readonly events: TransportEvents;
}

class MemoryListener implements TransportListener {
  #stopped = false;
  /** Server ends this listener accepted and still open (for `stop(true)`). */
  readonly accepted = new Set<MemorySocket>();
  constructor(
    readonly network: MemoryNetwork,
    readonly port: number,
    readonly hostname: string,
    readonly acceptor: MemoryAcceptor,
    readonly reusePort: boolean,
  ) {}

  get stopped(): boolean {
    return this.#stopped;
  }

  stop(closeActive?: boolean): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.network.unbind(this, closeActive === true);
  }
}

/** Options of one memory connection. */
export interface MemoryConnectOptions {
  /** Receive window of the connecting end, in bytes. */
  readonly window?: number;
  /** Receive window of the accepting end, in bytes. */
  readonly serverWindow?: number;
  /** The connecting end's address as the listener sees it (`meta.remoteAddress`). @default "127.0.0.1" */
  readonly remoteAddress?: string;
  /** The connecting end's port as the listener sees it (`meta.remotePort`). @default an ephemeral port from 49152 */
  readonly remotePort?: number;
}

/**
 * The kit's network: memory listeners by port and every open memory socket, so a test can connect
 * to a server by port and the leak check can see what is still open.
 */
export class MemoryNetwork {
  readonly #ports = new Map<number, MemoryListener[]>();
  readonly #roundRobin = new Map<number, number>();
  readonly #open = new Set<MemorySocket>();
  readonly #blackholes = new Set<number>();
  #nextPort = 1;
  #nextEphemeral = 49152;
  /** Receive window of new sockets, in bytes. */
  window: number;

  constructor(window = DEFAULT_WINDOW) {
    this.window = window;
  }

  /** Binds `acceptor` on `port` (0 picks the next free memory port). Throws EADDRINUSE like the kernel. */
  bind(port: number, hostname: string, acceptor: MemoryAcceptor, reusePort: boolean): TransportListener {
    let bound = port;
    if (bound === 0) {
      while (this.#ports.has(this.#nextPort)) this.#nextPort++;
      bound = this.#nextPort++;
    }
    const list = this.#ports.get(bound);
    if (list !== undefined && !(reusePort && list.every((l) => l.reusePort))) {
      throw errnoError("EADDRINUSE", `memory port ${bound} is in use`);
    }
    const listener = new MemoryListener(this, bound, hostname, acceptor, reusePort);
    if (list === undefined) this.#ports.set(bound, [listener]);
    else list.push(listener);
    return listener;
  }

  /** @internal */
  unbind(listener: MemoryListener, closeActive: boolean): void {
    const list = this.#ports.get(listener.port);
    if (list !== undefined) {
      const rest = list.filter((l) => l !== listener);
      if (rest.length === 0) this.#ports.delete(listener.port);
      else this.#ports.set(listener.port, rest);
    }
    if (closeActive) for (const socket of [...listener.accepted]) socket.terminate();
  }

  /** Makes `port` a black hole: connects to it never complete, as when a firewall drops the SYN. */
  blackhole(port: number): number {
    let bound = port;
    if (bound === 0) {
      while (this.#ports.has(this.#nextPort) || this.#blackholes.has(this.#nextPort)) this.#nextPort++;
      bound = this.#nextPort++;
    }
    this.#blackholes.add(bound);
    return bound;
  }

  /** Whether connects to `port` hang. */
  isBlackhole(port: number): boolean {
    return this.#blackholes.has(port);
  }

  /** Whether something listens on `port`. */
  listening(port: number): boolean {
    return this.#ports.has(port);
  }

  /**
   * Opens a connection to `port`: the listener accepts the server end, then `clientEvents` gets the
   * client end (its `open` is the caller's business). Throws ECONNREFUSED when nothing listens.
   */
  dial(port: number, clientEvents: TransportEvents, options: MemoryConnectOptions = {}): MemorySocket {
    const list = this.#ports.get(port);
    if (list === undefined || list.length === 0) {
      throw errnoError("ECONNREFUSED", `nothing listens on memory port ${port}`);
    }
    // Several listeners on one port (acceptorCount > 1, SO_REUSEPORT): spread round-robin.
    const turn = this.#roundRobin.get(port) ?? 0;
    this.#roundRobin.set(port, turn + 1);
    const listener = list[turn % list.length]!;
    const clientAddress = options.remoteAddress ?? "127.0.0.1";
    const clientPort = options.remotePort ?? this.#nextEphemeral++;
    const serverAddress = listener.hostname === "0.0.0.0" ? "127.0.0.1" : listener.hostname;
    const client = new MemorySocket(
      this,
      clientEvents,
      options.window ?? this.window,
      { address: clientAddress, port: clientPort },
      { address: serverAddress, port },
    );
    const server = new MemorySocket(
      this,
      listener.acceptor.events,
      options.serverWindow ?? this.window,
      { address: serverAddress, port },
      { address: clientAddress, port: clientPort },
    );
    client.other = server;
    server.other = client;
    this.#open.add(client);
    this.#open.add(server);
    listener.accepted.add(server);
    server.acceptedBy = listener.accepted;
    listener.acceptor.accept(server);
    return client;
  }

  /** @internal A socket closed. */
  forget(socket: MemorySocket): void {
    this.#open.delete(socket);
    socket.acceptedBy?.delete(socket);
  }

  /** Open sockets (either end of a connection). */
  openSockets(): MemorySocket[] {
    return [...this.#open];
  }

  /** Bound listeners, as `[port, hostname]`. */
  listeners(): Array<[port: number, hostname: string]> {
    const out: Array<[number, string]> = [];
    for (const [port, list] of this.#ports) for (const l of list) out.push([port, l.hostname]);
    return out;
  }

  /** Unbinds every listener and resets every open socket (the kit's last clean-up). */
  shutdown(): void {
    for (const list of [...this.#ports.values()]) for (const l of list) l.stop(false);
    for (const socket of [...this.#open]) socket.terminate();
  }
}

/** A listener table for the library: its `open` gets the server end with `socket.data` set. */
function libraryAcceptor(request: ListenRequest): MemoryAcceptor {
  return {
    events: request.events,
    accept(socket) {
      socket.data = request.data;
      request.events.open(socket);
    },
  };
}

/** The memory {@link Transport}: `listen` binds on the kit's network, `connect` dials it by port. */
class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly secure = false;
  readonly #network: MemoryNetwork;

  constructor(network: MemoryNetwork) {
    this.#network = network;
  }

  listen(request: ListenRequest): TransportListener {
    return this.#network.bind(request.port, request.hostname, libraryAcceptor(request), request.reusePort);
  }

  async connect(request: ConnectRequest): Promise<TransportSocket> {
    // Connecting takes a turn, as a real connect does: the caller's code after connect() runs first.
    await Promise.resolve();
    // A black hole drops the SYN: the connect never completes (the connector's connectTimeout decides).
    if (this.#network.isBlackhole(request.port)) return new Promise<never>(() => {});
    const socket = this.#network.dial(request.port, request.events);
    socket.data = request.data;
    request.events.open(socket);
    return socket;
  }
}

/** The memory transport of `network`. @internal Use `testKit().transport`. */
export function memoryTransport(network: MemoryNetwork): Transport {
  return new MemoryTransport(network);
}
