/**
 * A raw Bun TCP client for tests: it talks to a server over a real loopback socket, collects every
 * byte it receives, never loses a byte it writes (Bun's `write()` drops what the kernel does not take,
 * so this keeps its own queue and flushes it on `drain`), and can stop reading (`pause()`) to exert real
 * backpressure on the server.
 *
 * Every client is registered for {@link closeAllClients} (called from `afterEach` via
 * `cleanup()` in `./server.ts`), so a failing test never leaks a socket.
 *
 * Also the byte helpers tests build and check wire data with: {@link frame}, {@link unframe4},
 * {@link pattern}, {@link sha256}, {@link hex}, {@link concatBytes}, {@link packetText}.
 *
 * @module
 */
import type { Socket } from "bun";
import type { Packet } from "../../src/index.ts";
import { WaitTimeoutError } from "./wait.ts";

/** Options of {@link RawClient.connect}. */
export interface RawClientOptions {
  /** Address of the server. @default "127.0.0.1" */
  hostname?: string;
  /** Keep the received chunks (for `bytes()` / `text()`). Turn off for huge transfers checked by hash. @default true */
  keep?: boolean;
  /** Feed received bytes to a SHA-256 hasher (read with `digest()`). @default false */
  hash?: boolean;
  /** Pause reading right at connect (before any byte is read). @default false */
  paused?: boolean;
}

interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
}

const live = new Set<RawClient>();

/** A raw TCP client that collects bytes. Create with {@link RawClient.connect}. */
export class RawClient {
  /** The Bun socket (for `localPort`, etc.). */
  readonly socket: Socket<RawClient>;
  /** Bytes received so far. */
  received = 0;
  /** Received chunks (when `keep`). */
  readonly chunks: Uint8Array[] = [];
  /** Number of `data` events (chunks) received. */
  dataEvents = 0;
  /** True once the peer's FIN (`end`) or the close arrived. */
  ended = false;
  /** True once the socket is closed. */
  closed = false;
  /** The error the socket closed with (ECONNRESET …), if any. */
  closeError: Error | undefined = undefined;
  /** Errors Bun reported to the `error` handler (none expected on plain TCP). */
  readonly errors: Error[] = [];
  /** Resolves when the socket closes (with the close error, if any). */
  readonly closedPromise: Promise<Error | undefined>;

  #keep: boolean;
  #hasher: Bun.CryptoHasher | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #waiters: Waiter[] = [];
  #drainWaiters: Array<() => void> = [];
  #resolveClosed!: (error: Error | undefined) => void;

  private constructor(socket: Socket<RawClient>, options: RawClientOptions) {
    this.socket = socket;
    this.#keep = options.keep ?? true;
    this.#hasher = options.hash ? new Bun.CryptoHasher("sha256") : undefined;
    this.closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Connects to `port` on loopback. Resolves once the TCP connection is up. */
  static async connect(port: number, options: RawClientOptions = {}): Promise<RawClient> {
    let client: RawClient | undefined;
    const early: Uint8Array[] = [];
    const socket = await Bun.connect<RawClient | undefined>({
      hostname: options.hostname ?? "127.0.0.1",
      port,
      data: undefined,
      socket: {
        open(s) {
          if (options.paused) s.pause();
        },
        data(s, chunk) {
          if (s.data === undefined) early.push(chunk);
          else s.data.#onData(chunk);
        },
        drain(s) {
          const c = s.data;
          if (c !== undefined) c.#onDrain();
        },
        end(s) {
          const c = s.data;
          if (c !== undefined) c.#onEnd();
        },
        close(s, error) {
          const c = s.data;
          if (c !== undefined) c.#onClose(error);
        },
        error(s, error) {
          s.data?.errors.push(error);
        },
      },
    });
    client = new RawClient(socket as Socket<RawClient>, options);
    socket.data = client;
    live.add(client);
    for (const chunk of early) client.#onData(chunk);
    return client;
  }

  #onData(chunk: Uint8Array): void {
    this.received += chunk.length;
    this.dataEvents++;
    if (this.#keep) this.chunks.push(chunk);
    this.#hasher?.update(chunk);
    this.#check();
  }

  #onEnd(): void {
    this.ended = true;
    this.#check();
  }

  #onClose(error: Error | undefined): void {
    if (this.closed) return;
    this.ended = true;
    this.closed = true;
    this.closeError = error;
    live.delete(this);
    this.#queue = [];
    this.#queued = 0;
    this.#resolveClosed(error);
    this.#check();
  }

  #check(): void {
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (w.check()) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }

  /** Writes `data` (a string is UTF-8), in order, never dropping bytes: what the kernel refuses is queued and retried on drain. */
  write(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    if (bytes.length === 0 || this.closed) return;
    if (this.#queued > 0) {
      this.#queue.push(bytes);
      this.#queued += bytes.length;
      return;
    }
    const n = this.socket.write(bytes);
    if (n < 0 || n === bytes.length) return;
    const rest = bytes.subarray(n);
    this.#queue.push(rest);
    this.#queued += rest.length;
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const n = this.socket.write(head);
      if (n < 0) return;
      this.#queued -= n;
      if (n < head.length) {
        this.#queue[0] = head.subarray(n);
        break;
      }
      this.#queue.shift();
    }
    this.#check();
  }

  #onDrain(): void {
    const drained = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const resolve of drained) resolve();
    this.#flush();
  }

  /**
   * Resolves on the next `drain` event: the kernel can take more. For a test that writes through
   * `socket.write()` itself and must stall on a full kernel buffer (unbounded: bound the caller).
   */
  drained(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push(resolve);
    return promise;
  }

  /** The client's local port: what the server sees as `meta.remotePort`. */
  get localPort(): number {
    return this.socket.localPort;
  }

  /** Bytes written by the test that the kernel has not taken yet (the peer is not reading). */
  get pendingBytes(): number {
    return this.#queued;
  }

  /**
   * Resolves once `check()` holds, re-checking it on every data, drain, end and close event; rejects
   * with {@link WaitTimeoutError} after `timeoutMs`.
   */
  until(check: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new WaitTimeoutError(
            `client timed out after ${timeoutMs} ms waiting for ${what} (received ${this.received} bytes, ended ${this.ended})`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Resolves once at least `n` bytes have been received. */
  waitForBytes(n: number, timeoutMs = 2000): Promise<void> {
    return this.until(() => this.received >= n, timeoutMs, `${n} bytes`);
  }

  /** Resolves once the received text contains `text` (needs `keep`). */
  waitForText(text: string, timeoutMs = 2000): Promise<void> {
    return this.until(() => this.text().includes(text), timeoutMs, JSON.stringify(text));
  }

  /** Writes `text` and resolves once as many more bytes have arrived (an echo round trip). */
  roundTrip(text: string, timeoutMs = 2000): Promise<void> {
    const target = this.received + Buffer.byteLength(text);
    this.write(text);
    return this.waitForBytes(target, timeoutMs);
  }

  /** Resolves once the peer's FIN or the close has arrived. */
  waitForEnd(timeoutMs = 2000): Promise<void> {
    return this.until(() => this.ended, timeoutMs, "the end of the stream");
  }

  /** Resolves once every byte written has been taken by the kernel. */
  waitWritten(timeoutMs = 2000): Promise<void> {
    return this.until(() => this.#queued === 0 || this.closed, timeoutMs, "written bytes to drain");
  }

  /** Everything received, as one buffer (needs `keep`). */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Everything received, decoded as UTF-8 (needs `keep`). */
  text(): string {
    return this.bytes().toString("utf8");
  }

  /** Hex SHA-256 of everything received (needs `hash`). */
  digest(): string {
    if (this.#hasher === undefined) throw new Error("RawClient was connected without { hash: true }");
    return this.#hasher.digest("hex");
  }

  /** Forgets what has been received so far (chunks and count). */
  clear(): void {
    this.chunks.length = 0;
    this.received = 0;
  }

  /** Stops reading: the kernel buffers fill and the server's writes stall. */
  pause(): void {
    this.socket.pause();
  }

  /** Reads again. */
  resume(): void {
    this.socket.resume();
  }

  /** FIN and close (Bun's `end()` closes at once; the server sees a peer close). */
  end(): void {
    this.socket.end();
  }

  /** Half-close: FIN, keep reading. */
  shutdown(): void {
    this.socket.shutdown();
  }

  /** Closes at once with RST. */
  terminate(): void {
    this.socket.terminate();
  }
}

/** A packet as text: a string as it is, bytes decoded as UTF-8. */
export function packetText(packet: Packet): string {
  return typeof packet === "string" ? packet : Buffer.from(packet).toString();
}

/** Hex of a byte array: readable failure messages and exact comparisons regardless of Buffer/Uint8Array. */
export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The byte arrays one after another, as one plain `Uint8Array` (not a Buffer). */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** SHA-256 (hex) of `bytes`, to compare with {@link RawClient.digest}. */
export function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/**
 * A `packet: 1 | 2 | 4` frame, built independently of the library's codec: a `bytes`-byte big-endian
 * length, then the payload (a string is UTF-8).
 */
export function frame(bytes: 1 | 2 | 4, payload: string | Uint8Array): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  const head = Buffer.alloc(bytes);
  head.writeUIntBE(body.length, 0, bytes);
  return Buffer.concat([head, body]);
}

/** A `packet: 4` frame: 4-byte big-endian length, then the payload. */
export function frame4(payload: string | Uint8Array): Buffer {
  return frame(4, payload);
}

/** Splits a `packet: 4` byte stream into frames (throws on a trailing partial frame). */
export function unframe4(stream: Uint8Array): Buffer[] {
  const buf = Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength);
  const frames: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 4 > buf.length) throw new Error(`partial frame header at ${at}`);
    const size = buf.readUInt32BE(at);
    if (at + 4 + size > buf.length) throw new Error(`partial frame at ${at}`);
    frames.push(buf.subarray(at + 4, at + 4 + size));
    at += 4 + size;
  }
  return frames;
}

/**
 * `size` bytes of a distinctive, non-periodic pattern: each 4-byte word is a hash of its index, so a
 * lost, duplicated or reordered chunk changes the checksum.
 */
export function pattern(size: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i + seed, 2654435761) ^ (i >>> 7);
  for (let i = words.length * 4; i < size; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** Terminates every client still open (for `afterEach`). */
export function closeAllClients(): void {
  for (const client of [...live]) {
    live.delete(client);
    if (!client.closed) client.terminate();
  }
}
