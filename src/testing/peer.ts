/**
 * The scripted peer: the other end of a memory connection, driven by the test. It writes bytes cut
 * exactly where the test says (or at seeded random points), reads what the handler sent (a number of
 * bytes, a frame, up to a delimiter, to the end), stops reading to create backpressure, half-closes
 * and resets.
 *
 * @module
 */
import { PeerReadError } from "../errors.ts";
import type { Connection, TransportEvents } from "../index.ts";
import type { MemorySocket } from "./memory-socket.ts";

/** How {@link Peer.write} cuts its bytes into the chunks the handler's socket receives. */
export interface WriteOptions {
  /** Offsets to cut at: `[3, 7]` delivers bytes 0–2, 3–6 and 7–end as three chunks. */
  readonly splitAt?: readonly number[];
  /** Cut into chunks of this many bytes (1 = one byte per chunk). */
  readonly chunkSize?: number;
  /** Cut at random points from this seed (the same seed gives the same cuts), chunks of 1..`maxChunk` bytes. */
  readonly seed?: number;
  /** Largest chunk for `seed` splits. @default 16 */
  readonly maxChunk?: number;
}

/** Options of one read. */
export interface ReadOptions {
  /** Real milliseconds to wait before failing with {@link PeerReadError} (the kit's clock does not apply). */
  readonly timeoutMs?: number;
}

/** How the handler's side framed what it sent (for {@link Peer.readFrame}). */
export type ReadFraming =
  | 1
  | 2
  | 4
  | "line"
  | { readonly delimiter: string | Uint8Array }
  | { frameLength(buffered: Uint8Array): number };

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

/** Bytes to write or look for: a string (UTF-8) or bytes. */
export type Bytes = string | Uint8Array;

function toBytes(data: Bytes): Buffer {
  return typeof data === "string"
    ? Buffer.from(data, "utf8")
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A small seeded PRNG (mulberry32): the same seed gives the same split points on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The chunks `bytes` is cut into for `options`. */
export function splitBytes(bytes: Uint8Array, options: WriteOptions = {}): Uint8Array[] {
  const n = bytes.byteLength;
  const cuts: number[] = [];
  if (options.splitAt !== undefined) {
    for (const at of options.splitAt) {
      if (!Number.isInteger(at) || at < 0 || at > n) {
        throw new RangeError(`Expected \`splitAt\` offsets to be integers in 0..${n}, got \`${at}\``);
      }
      cuts.push(at);
    }
  } else if (options.chunkSize !== undefined) {
    if (!Number.isInteger(options.chunkSize) || options.chunkSize < 1) {
      throw new RangeError(`Expected \`chunkSize\` to be a positive integer, got \`${options.chunkSize}\``);
    }
    for (let at = options.chunkSize; at < n; at += options.chunkSize) cuts.push(at);
  } else if (options.seed !== undefined) {
    const max = options.maxChunk ?? 16;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Expected \`maxChunk\` to be a positive integer, got \`${max}\``);
    }
    const random = prng(options.seed);
    for (let at = 1 + Math.floor(random() * max); at < n; at += 1 + Math.floor(random() * max)) cuts.push(at);
  }
  const sorted = [...new Set(cuts)].filter((c) => c > 0 && c < n).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const at of sorted) {
    chunks.push(bytes.subarray(from, at));
    from = at;
  }
  if (from < n) chunks.push(bytes.subarray(from));
  return chunks;
}

/** Bytes for messages: printable ones quoted, others as hex. */
function preview(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 48);
  const printable = head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09);
  const shown = printable
    ? JSON.stringify(Buffer.from(head).toString("latin1"))
    : `<<${Buffer.from(head)
        .toString("hex")
        .replace(/(..)(?!$)/g, "$1 ")}>>`;
  return bytes.byteLength > head.byteLength ? `${shown}... (${bytes.byteLength} bytes)` : shown;
}

function indexOf(haystack: Buffer, needle: Uint8Array): number {
  return haystack.indexOf(needle);
}

interface Waiter {
  readonly what: string;
  /** Takes its bytes when they are there; returns true when done. */
  attempt(): boolean;
  /** Called when no more bytes can come. */
  eof(): void;
  fail(error: PeerReadError): void;
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
  readonly #readTimeoutMs: number;
  #resolveClosed!: (close: PeerClose) => void;
  #buffer: Buffer[] = [];
  #buffered = 0;
  #received = 0;
  #outbox: Uint8Array[] = [];
  #written = 0;
  #endAfterFlush = false;
  #remoteEnded = false;
  #isClosed = false;
  #waiters: Waiter[] = [];
  #connection: Connection | undefined = undefined;

  /** @internal Use `kit.connect()` or `kit.listen()`. */
  constructor(socket: MemorySocket, options: PeerOptions = {}) {
    this.#socket = socket;
    socket.data = this;
    if (options.window !== undefined) socket.window = options.window;
    this.#autoClose = options.autoClose ?? true;
    this.#readTimeoutMs = options.readTimeoutMs ?? 2000;
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
    return this.#buffered;
  }

  /** Bytes received in all. */
  get received(): number {
    return this.#received;
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
    const exact = length !== undefined && length > 0;
    return this.#wait(exact ? `read(${length})` : "read()", options, () => {
      if (exact ? this.#buffered < length : this.#buffered === 0) return undefined;
      return this.#take(exact ? length : this.#buffered);
    });
  }

  /** Reads up to and including `needle`, or the length a predicate returns (0 or less: not yet). */
  readUntil(needle: Bytes | ((buffered: Uint8Array) => number), options?: ReadOptions): Promise<Buffer> {
    if (typeof needle === "function") {
      return this.#wait("readUntil(predicate)", options, () => {
        if (this.#buffered === 0) return undefined;
        const n = needle(this.#peek());
        return n > 0 ? this.#take(Math.min(n, this.#buffered)) : undefined;
      });
    }
    const bytes = toBytes(needle);
    return this.#wait(`readUntil(${preview(bytes)})`, options, () => {
      if (this.#buffered < bytes.byteLength) return undefined;
      const at = indexOf(this.#peek(), bytes);
      return at < 0 ? undefined : this.#take(at + bytes.byteLength);
    });
  }

  /**
   * Reads one frame the handler sent with `packet` framing: the payload for 1, 2 and 4 (the header is
   * stripped, as the handler's own `handlePacket` would see it), the line with its `"\n"` for `"line"`,
   * the frame with its delimiter, or `frameLength` bytes for a codec.
   */
  readFrame(framing: ReadFraming, options?: ReadOptions): Promise<Buffer> {
    if (framing === "line") return this.readUntil("\n", options);
    if (typeof framing === "object" && "delimiter" in framing)
      return this.readUntil(framing.delimiter, options);
    if (typeof framing === "object") return this.readUntil((b) => framing.frameLength(b), options);
    const size = framing;
    return this.#wait(`readFrame(${size})`, options, () => {
      if (this.#buffered < size) return undefined;
      const head = this.#peek();
      const length =
        size === 1 ? head.readUInt8(0) : size === 2 ? head.readUInt16BE(0) : head.readUInt32BE(0);
      if (this.#buffered < size + length) return undefined;
      return this.#take(size + length).subarray(size);
    });
  }

  /** Reads everything until the handler's side ends the connection (FIN or reset). */
  readToEnd(options?: ReadOptions): Promise<Buffer> {
    return this.#wait("readToEnd()", options, () => (this.ended ? this.#take(this.#buffered) : undefined));
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
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#buffer.push(bytes);
    this.#buffered += bytes.byteLength;
    this.#received += bytes.byteLength;
    this.#service();
  }

  #onEnd(): void {
    this.#remoteEnded = true;
    if (this.#socket.writeShut) this.#socket.end();
    else if (this.#autoClose) this.end();
    this.#service();
  }

  #onClose(error: Error | undefined): void {
    this.#isClosed = true;
    this.#outbox = [];
    this.#service();
    this.#resolveClosed({ reset: error !== undefined, error });
  }

  #peek(): Buffer {
    if (this.#buffer.length > 1) this.#buffer = [Buffer.concat(this.#buffer, this.#buffered)];
    return this.#buffer[0] ?? Buffer.alloc(0);
  }

  #take(n: number): Buffer {
    const all = this.#peek();
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#buffer = rest.byteLength > 0 ? [rest] : [];
    this.#buffered -= n;
    return out;
  }

  #wait(what: string, options: ReadOptions | undefined, attempt: () => Buffer | undefined): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = options?.timeoutMs ?? this.#readTimeoutMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
      };
      const waiter: Waiter = {
        what,
        attempt: () => {
          const bytes = attempt();
          if (bytes === undefined) return false;
          done();
          resolve(bytes);
          return true;
        },
        eof: () => {
          done();
          const buffered = Buffer.from(this.#peek());
          reject(
            new PeerReadError(
              `peer.${what}: the connection ${this.#isClosed ? "closed" : "ended"} first, with ${buffered.byteLength} bytes buffered: ${preview(buffered)}`,
              "closed",
              buffered,
            ),
          );
        },
        fail: (error) => {
          done();
          reject(error);
        },
      };
      this.#waiters.push(waiter);
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        timer = setTimeout(() => {
          const buffered = Buffer.from(this.#peek());
          waiter.fail(
            new PeerReadError(
              `peer.${what}: nothing matched within ${timeoutMs} ms; ${buffered.byteLength} bytes buffered: ${preview(buffered)}`,
              "timeout",
              buffered,
            ),
          );
        }, timeoutMs);
      }
      this.#service();
    });
  }

  /** Serves waiting reads in order: only the first may take bytes, so reads complete in call order. */
  #service(): void {
    while (this.#waiters.length > 0) {
      const first = this.#waiters[0]!;
      if (first.attempt()) continue;
      if (this.ended) {
        first.eof();
        continue;
      }
      return;
    }
  }
}
