/**
 * The scripted peer: the other end of a memory connection, driven by the test. It writes bytes cut
 * exactly where the test says (or at seeded random points), reads what the handler sent (a number of
 * bytes, a frame, up to a delimiter, to the end), stops reading to create backpressure, half-closes
 * and resets.
 *
 * @module
 */
import type { Connection, TransportEvents } from "../index.ts";
import type { MemorySocket } from "./memory-socket.ts";
import { type Bytes, splitBytes, toBytes, type WriteOptions } from "./peer-bytes.ts";
import { PeerReader, type ReadFraming, type ReadOptions } from "./peer-reader.ts";

/** How a peer's connection ended. */
export interface PeerClose {
  /** True when the connection was reset (the handler's side terminated, or wrote to a closed peer). */
  readonly reset: boolean;
  /** The socket error for a reset (`code` `"ECONNRESET"`). */
  readonly error: Error | undefined;
}

/** Options of a peer. */
export interface PeerOptions {
  /** Receive window in bytes: how much the peer buffers unread while paused before the handler's writes come back short. */
  readonly window?: number;
  /** When the handler's side sends FIN, answer with FIN (as most clients do). @default true */
  readonly autoClose?: boolean;
  /** Default real-time limit of every read. @default 2000 */
  readonly readTimeoutMs?: number;
}

/**
 * A scripted peer connected to a handler over memory. Get one from `kit.connect(server)` or from a
 * `kit.listen()` script.
 *
 * @example
 * const peer = await kit.connect(server);
 * await peer.write("PING\r\n", { splitAt: [2] }); // two chunks: "PI", "NG\r\n"
 * expect((await peer.readUntil("\r\n")).toString()).toBe("PONG\r\n");
 */
export class Peer {
  /** Events of every peer socket: dispatched to the peer in `socket.data`. @internal */
  static readonly EVENTS: TransportEvents = {
    open() {},
    data(socket, chunk) {
      (socket.data as Peer).#onData(chunk);
    },
    drain(socket) {
      (socket.data as Peer).#flush();
    },
    end(socket) {
      (socket.data as Peer).#onEnd();
    },
    close(socket, error) {
      (socket.data as Peer).#onClose(error);
    },
    error() {},
    handshake() {},
  };

  /** Resolves when the connection is gone (both sides closed, or reset). */
  readonly closed: Promise<PeerClose>;
  readonly #socket: MemorySocket;
  readonly #autoClose: boolean;
  readonly #reader: PeerReader;
  #resolveClosed!: (close: PeerClose) => void;
  #outbox: Uint8Array[] = [];
  #written = 0;
  #endAfterFlush = false;
  #remoteEnded = false;
  #isClosed = false;
  #connection: Connection | undefined = undefined;

  /** @internal Use `kit.connect()` or `kit.listen()`. */
  constructor(socket: MemorySocket, options: PeerOptions = {}) {
    this.#socket = socket;
    socket.data = this;
    if (options.window !== undefined) socket.window = options.window;
    this.#autoClose = options.autoClose ?? true;
    this.#reader = new PeerReader(this, options.readTimeoutMs ?? 2000);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** The peer's own port: what the handler sees as `meta.remotePort`. */
  get localPort(): number {
    return this.#socket.localPort;
  }

  /** The port the peer is connected to. */
  get remotePort(): number {
    return this.#socket.remotePort;
  }

  /**
   * The server's connection for this peer (from `kit.connect(server)`): `undefined` when the peer
   * is not connected to a kit-started server, or while the server holds the connection unserved
   * (sleeping acceptor, `maxConnections`).
   */
  get connection(): Connection | undefined {
    return this.#connection;
  }

  /** @internal Set by the kit, which sees the connection appear in `server.connections()`. */
  set connection(connection: Connection | undefined) {
    this.#connection = connection;
  }

  /** Whether the handler's side has sent FIN (or the connection is gone). */
  get ended(): boolean {
    return this.#remoteEnded || this.#isClosed;
  }

  /** Whether the connection is gone. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Whether the handler's side is reading its socket. False while it has paused it: a pending async
   * callback, a passive connection not asking for data, or its send queue above `highWaterMark`
   * (what a TCP client would see as its own writes stalling).
   */
  get remoteReading(): boolean {
    const other = this.#socket.other;
    return !other.paused && !other.closed;
  }

  /** Bytes the peer wrote that the handler's side has not read yet (sitting in its receive window). */
  get remoteUnread(): number {
    return this.#socket.other.unread;
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /** Bytes received in all. */
  get received(): number {
    return this.#reader.received;
  }

  /** Bytes of the peer's writes the handler's socket has not taken yet (the handler side is not reading). */
  get pendingWrite(): number {
    let n = 0;
    for (const c of this.#outbox) n += c.byteLength;
    return n;
  }

  /** The receive window in bytes (how much the peer buffers unread while paused). */
  get window(): number {
    return this.#socket.window;
  }

  set window(bytes: number) {
    this.#socket.window = bytes;
  }

  /**
   * Writes bytes, cut into chunks as `options` says (each chunk is one `data` event on the handler's
   * socket). Resolves once the handler's socket has received every byte (it may not have handled them
   * yet); bytes the handler's side does not read stay pending (real flow control), so do not await a
   * write to a connection that is paused on purpose.
   *
   * @example
   * await peer.write(frame, { splitAt: [1, 3] }); // a 4-byte-prefixed frame cut inside its header
   * await peer.write(bigRequest, { seed: 42, maxChunk: 5 }); // reproducible random cuts
   */
  write(data: Bytes, options?: WriteOptions): Promise<void> {
    const bytes = toBytes(data);
    if (this.#isClosed || this.#socket.writeShut || this.#endAfterFlush) return Promise.resolve();
    for (const chunk of splitBytes(bytes, options)) this.#outbox.push(chunk);
    this.#written += bytes.byteLength;
    const target = this.#written;
    this.#flush();
    return this.#socket.other.whenDelivered(target);
  }

  /**
   * Writes one frame for the handler's `packet` framing: a 1, 2 or 4 byte big-endian length prefix
   * and the payload (for `"line"` and delimiters the payload is written as is).
   */
  writeFrame(framing: 1 | 2 | 4, payload: Bytes, options?: WriteOptions): Promise<void> {
    const body = toBytes(payload);
    const header = Buffer.alloc(framing);
    if (framing === 1) header.writeUInt8(body.byteLength);
    else if (framing === 2) header.writeUInt16BE(body.byteLength);
    else header.writeUInt32BE(body.byteLength);
    return this.write(Buffer.concat([header, body]), options);
  }

  /**
   * Reads exactly `length` bytes, or with no length whatever has arrived (at least one byte).
   * Rejects with {@link PeerReadError} on timeout or when the connection ends first.
   */
  read(length?: number, options?: ReadOptions): Promise<Buffer> {
    return this.#reader.read(length, options);
  }

  /** Reads up to and including `needle`, or the length a predicate returns (0 or less: not yet). */
  readUntil(needle: Bytes | ((buffered: Uint8Array) => number), options?: ReadOptions): Promise<Buffer> {
    return this.#reader.readUntil(needle, options);
  }

  /**
   * Reads one frame the handler sent with `packet` framing: the payload for 1, 2 and 4 (the header is
   * stripped, as the handler's own `handlePacket` would see it), the line with its `"\n"` for `"line"`,
   * the frame with its delimiter, or `frameLength` bytes for a codec.
   */
  readFrame(framing: ReadFraming, options?: ReadOptions): Promise<Buffer> {
    return this.#reader.readFrame(framing, options);
  }

  /** Reads everything until the handler's side ends the connection (FIN or reset). */
  readToEnd(options?: ReadOptions): Promise<Buffer> {
    return this.#reader.readToEnd(options);
  }

  /** Stops reading: bytes pile up in the window, then the handler's writes come back short (backpressure). */
  pauseReading(): void {
    this.#socket.pause();
  }

  /** Reads again: the window empties into the peer and the handler's socket drains. */
  resumeReading(): void {
    this.#socket.resume();
  }

  /** Half-closes: FIN after the pending writes; the peer keeps reading. */
  end(): void {
    if (this.#isClosed || this.#socket.writeShut) return;
    if (this.#outbox.length > 0) {
      this.#endAfterFlush = true;
      return;
    }
    this.#finish();
  }

  /** Resets the connection (RST): the handler's side drops what it had not read and sees a reset. */
  reset(): void {
    this.#outbox = [];
    this.#socket.terminate();
  }

  #finish(): void {
    if (this.#remoteEnded) this.#socket.end();
    else this.#socket.shutdown();
  }

  #flush(): void {
    const socket = this.#socket;
    while (this.#outbox.length > 0) {
      const chunk = this.#outbox[0]!;
      const n = socket.write(chunk);
      if (n < 0) {
        this.#outbox = [];
        return;
      }
      if (n < chunk.byteLength) {
        if (n > 0) this.#outbox[0] = chunk.subarray(n);
        return; // drain calls back
      }
      this.#outbox.shift();
    }
    if (this.#endAfterFlush) {
      this.#endAfterFlush = false;
      this.#finish();
    }
  }

  #onData(chunk: Uint8Array): void {
    this.#reader.push(chunk);
  }

  #onEnd(): void {
    this.#remoteEnded = true;
    if (this.#socket.writeShut) this.#socket.end();
    else if (this.#autoClose) this.end();
    this.#reader.service();
  }

  #onClose(error: Error | undefined): void {
    this.#isClosed = true;
    this.#outbox = [];
    this.#reader.service();
    this.#resolveClosed({ reset: error !== undefined, error });
  }
}
