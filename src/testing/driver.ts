/**
 * The handler driver: one real connection process whose socket is a function call. `push(chunk)` is
 * the socket's `data` event, delivered synchronously, and every write of the connection lands in a
 * counter (or a list) at once, so a benchmark measures the handler plus the library's per-packet
 * work and nothing else: no kernel, no event loop turn, no peer.
 *
 * @module
 */
import type { Connection, Server, ServerOptions, TransportEvents } from "../index.ts";
import type { MemorySocket } from "./memory-socket.ts";
import type { MemoryNetwork } from "./memory-transport.ts";

/** Options of `kit.driver()`: the server options of the handler, plus what to do with its output. */
export interface HandlerDriverOptions extends Omit<ServerOptions, "transport"> {
  /** Keep what the handler sends (read it with {@link HandlerDriver.take}); otherwise only count it. @default false */
  readonly collect?: boolean;
}

/** The far end of a driver's connection: nobody reads it, it only answers FIN with FIN. */
const FAR_END: TransportEvents = {
  open() {},
  data() {},
  drain() {},
  end(socket) {
    socket.end();
  },
  close() {},
  error() {},
  handshake() {},
};

/**
 * Drives one connection of a handler synchronously. Get one from `kit.driver(handler, init, options)`.
 *
 * @example
 * const driver = await kit.driver(echo, undefined, { packet: 4 });
 * driver.push(frame);           // handlePacket ran (a synchronous handler), its reply is counted
 * driver.bytesOut;              // bytes the handler sent so far
 */
export class HandlerDriver {
  readonly #socket: MemorySocket;
  readonly #server: Server<unknown, unknown>;
  readonly #collected: Uint8Array[] | undefined;
  #bytesOut = 0;
  #writes = 0;
  #connection: Connection | undefined = undefined;

  private constructor(socket: MemorySocket, server: Server<unknown, unknown>, collect: boolean) {
    this.#socket = socket;
    this.#server = server;
    this.#collected = collect ? [] : undefined;
    socket.sink = (bytes) => {
      this.#bytesOut += bytes.byteLength;
      this.#writes++;
      // A copy: the library may reuse the buffer it wrote from.
      this.#collected?.push(bytes.slice());
    };
  }

  /** @internal Connects a driver to `server` (already started on `network`). */
  static open<S, I>(network: MemoryNetwork, server: Server<S, I>, collect: boolean): HandlerDriver {
    const before = new Set(server.connections().map(([id]) => id));
    const far = network.dial(server.port, FAR_END);
    const driver = new HandlerDriver(far.other, server as Server<unknown, unknown>, collect);
    driver.#connection = server.connections().find(([id]) => !before.has(id))?.[1];
    return driver;
  }

  /**
   * Delivers `chunk` to the connection as one socket read, synchronously: a synchronous handler has
   * run (and its sends are counted) when `push` returns. While the connection is busy with an async
   * callback, chunks queue as they would in the kernel and are delivered when it reads again.
   */
  push(chunk: Uint8Array | string): void {
    this.#socket.inject(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk);
  }

  /** Bytes the handler has sent. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Socket writes the connection made (one per batch of sends: writes are corked per turn). */
  get writes(): number {
    return this.#writes;
  }

  /** The connection being driven (for `call`, `cast`, `notify`). */
  get connection(): Connection | undefined {
    return this.#connection;
  }

  /** What the handler sent since the last `take()` (with `collect: true`; empty otherwise). */
  take(): Buffer {
    const chunks = this.#collected;
    if (chunks === undefined || chunks.length === 0) return Buffer.alloc(0);
    const out = Buffer.concat(chunks);
    chunks.length = 0;
    return out;
  }

  /** The peer half-closes: the handler's `handleDisconnect` runs. */
  end(): void {
    this.#socket.other.shutdown();
  }

  /** Stops the driver's server (the kit also does at clean-up). */
  close(): Promise<void> {
    return this.#server.stop();
  }
}
