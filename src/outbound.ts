/**
 * The outbound queue of one connection. Bun's `write()` has no buffer: it returns how many bytes the
 * kernel took and drops the rest (docs/bun-sockets.md#write-drops). Whatever the kernel did not take waits here, in
 * order, and is retried on `drain`. Small chunks are coalesced into one write (one syscall) per flush.
 *
 * @module
 */
import type { TransportSocket } from "./transport/transport.ts";

/** Chunks smaller than this are merged with their neighbours when flushing. */
const COALESCE_BELOW = 16 * 1024;
/** Largest merged write. */
const COALESCE_MAX = 256 * 1024;

interface Waiter {
  readonly mark: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** Result of {@link OutboundQueue.flush}. */
export const FLUSH_EMPTY = 0;
export const FLUSH_PENDING = 1;
export const FLUSH_CLOSED = 2;

export class OutboundQueue {
  #chunks: (Uint8Array | undefined)[] = [];
  #head = 0;
  /** Bytes queued now. */
  bytes = 0;
  /** Bytes ever queued. */
  enqueued = 0;
  /** Bytes of the queue the kernel has taken. */
  flushed = 0;
  #waiters: Waiter[] | undefined;

  get empty(): boolean {
    return this.bytes === 0;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.bytes += chunk.length;
    this.enqueued += chunk.length;
  }

  /** Resolves `resolve` once every byte queued so far has been taken by the kernel. */
  waitFlushed(resolve: () => void, reject: (error: Error) => void): void {
    if (this.flushed >= this.enqueued) {
      resolve();
      return;
    }
    (this.#waiters ??= []).push({ mark: this.enqueued, resolve, reject });
  }

  /** Writes as much as the kernel takes. */
  flush(socket: TransportSocket): number {
    const chunks = this.#chunks;
    let result = FLUSH_EMPTY;
    while (this.#head < chunks.length) {
      let chunk = chunks[this.#head]!;
      if (chunk.length < COALESCE_BELOW && this.#head + 1 < chunks.length) chunk = this.#coalesce();
      const n = socket.write(chunk);
      if (n < 0) {
        result = FLUSH_CLOSED;
        break;
      }
      this.bytes -= n;
      this.flushed += n;
      if (n < chunk.length) {
        chunks[this.#head] = n === 0 ? chunk : chunk.subarray(n);
        result = FLUSH_PENDING;
        break;
      }
      chunks[this.#head++] = undefined;
    }
    if (this.#head === chunks.length) {
      chunks.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > chunks.length) {
      this.#chunks = chunks.slice(this.#head);
      this.#head = 0;
    }
    this.#settleWaiters();
    return result;
  }

  /** Merges small chunks at the head into one buffer (replacing them in place). */
  #coalesce(): Uint8Array {
    const chunks = this.#chunks;
    let end = this.#head;
    let size = 0;
    while (end < chunks.length) {
      const c = chunks[end]!;
      if (size > 0 && size + c.length > COALESCE_MAX) break;
      size += c.length;
      end++;
      if (c.length >= COALESCE_BELOW) break;
    }
    if (end - this.#head < 2) return chunks[this.#head]!;
    const merged = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = this.#head; i < end; i++) {
      const c = chunks[i]!;
      merged.set(c, at);
      at += c.length;
      chunks[i] = undefined;
    }
    this.#head = end - 1;
    chunks[this.#head] = merged;
    return merged;
  }

  #settleWaiters(): void {
    const waiters = this.#waiters;
    if (waiters === undefined) return;
    let i = 0;
    while (i < waiters.length && waiters[i]!.mark <= this.flushed) waiters[i++]!.resolve();
    if (i > 0) waiters.splice(0, i);
    if (waiters.length === 0) this.#waiters = undefined;
  }

  /** Drops everything (the socket is gone) and rejects the waiters. */
  fail(error: Error): void {
    this.#chunks = [];
    this.#head = 0;
    this.bytes = 0;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w.reject(error);
  }

  /** Everything queued, as one buffer, removed from the queue (used before a transport swap). */
  takeAll(): Uint8Array | undefined {
    if (this.bytes === 0) return undefined;
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const c = this.#chunks[i]!;
      out.set(c, at);
      at += c.length;
    }
    this.#chunks = [];
    this.#head = 0;
    this.bytes = 0;
    return out;
  }
}
