/**
 * The read side of the scripted peer: the bytes received and not yet read, and the queue of reads
 * waiting for them (by length, up to a delimiter or predicate, one frame, to the end). Reads
 * complete in call order, each bounded by a real-time timeout, and fail with {@link PeerReadError}
 * when the connection ends first.
 *
 * @module
 */
import { PeerReadError } from "../errors.ts";
import { type Bytes, preview, toBytes } from "./peer-bytes.ts";

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

/** What the reader needs to know of its peer's connection (the `Peer` itself). */
export interface PeerReadState {
  /** The handler's side has sent FIN, or the connection is gone: no more bytes can come. */
  readonly ended: boolean;
  /** The connection is gone. */
  readonly isClosed: boolean;
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

/** @internal The buffer and the waiting reads of one `Peer`. */
export class PeerReader {
  readonly #state: PeerReadState;
  readonly #readTimeoutMs: number;
  #buffer: Buffer[] = [];
  #buffered = 0;
  #received = 0;
  #waiters: Waiter[] = [];

  constructor(state: PeerReadState, readTimeoutMs: number) {
    this.#state = state;
    this.#readTimeoutMs = readTimeoutMs;
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Bytes received in all. */
  get received(): number {
    return this.#received;
  }

  /** Bytes arrived: buffer them and serve the waiting reads. */
  push(chunk: Uint8Array): void {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#buffer.push(bytes);
    this.#buffered += bytes.byteLength;
    this.#received += bytes.byteLength;
    this.service();
  }

  /** See `Peer.read`. */
  read(length?: number, options?: ReadOptions): Promise<Buffer> {
    const exact = length !== undefined && length > 0;
    return this.#wait(exact ? `read(${length})` : "read()", options, () => {
      if (exact ? this.#buffered < length : this.#buffered === 0) return undefined;
      return this.#take(exact ? length : this.#buffered);
    });
  }

  /** See `Peer.readUntil`. */
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

  /** See `Peer.readFrame`. */
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

  /** See `Peer.readToEnd`. */
  readToEnd(options?: ReadOptions): Promise<Buffer> {
    return this.#wait("readToEnd()", options, () =>
      this.#state.ended ? this.#take(this.#buffered) : undefined,
    );
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
              `peer.${what}: the connection ${this.#state.isClosed ? "closed" : "ended"} first, with ${buffered.byteLength} bytes buffered: ${preview(buffered)}`,
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
      this.service();
    });
  }

  /** Serves waiting reads in order: only the first may take bytes, so reads complete in call order. */
  service(): void {
    while (this.#waiters.length > 0) {
      const first = this.#waiters[0]!;
      if (first.attempt()) continue;
      if (this.#state.ended) {
        first.eof();
        continue;
      }
      return;
    }
  }
}
