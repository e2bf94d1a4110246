/**
 * The bytes a `FrameDecoder` holds: received chunks in a list, never concatenated as they arrive, with
 * the position of the first unread byte. Reading returns the head chunk itself or a view of it when the
 * bytes lie in it, and assembles a buffer of exactly the size asked for only when they span chunks.
 * The decoder says where frames end; this says nothing about framing.
 *
 * @module
 */

import { absorbInto } from "./chunk-list.ts";

/**
 * Smallest assembly buffer, in bytes: a frame cut at a chunk's end usually has a few bytes in the
 * head, and a codec answering `0` or a lower bound then asks again; room for that avoids a new buffer
 * per answer.
 */
const MIN_ASSEMBLY = 1024;

/** Received chunks and the read position (see the module notes). */
export class ChunkQueue {
  /** The chunks; `chunks[ci]` is the head, consumed slots before it are `undefined`. Never empty chunks. */
  readonly chunks: (Uint8Array | undefined)[] = [];
  /** Index of the head chunk. */
  ci = 0;
  /** Offset of the first unread byte in the head chunk (always < its length when one exists). */
  off = 0;
  /** Bytes held and not yet read. */
  total = 0;
  /**
   * The assembly buffer, defined exactly when the head chunk is its view `[0, accLen)` (see
   * {@link extend}). Bytes past `accLen` were never handed out, so appending there in place is safe.
   */
  acc: Buffer | undefined = undefined;
  /** Bytes written into `acc`. */
  accLen = 0;

  /**
   * Appends a non-empty chunk (kept, not copied). Returns by how many slots the chunk indices moved
   * down: consumed slots are dropped once they are at least half of the list (amortised O(1) per push).
   */
  push(chunk: Uint8Array): number {
    const chunks = this.chunks;
    const ci = this.ci;
    let moved = 0;
    if (ci >= 8 && ci * 2 >= chunks.length) {
      const live = chunks.length - ci;
      for (let i = 0; i < live; i++) chunks[i] = chunks[i + ci];
      chunks.length = live;
      this.ci = 0;
      moved = ci;
    }
    chunks.push(chunk);
    this.total += chunk.length;
    return moved;
  }

  /** Forgets everything (call only when nothing is held). */
  clear(): void {
    this.chunks.length = 0;
    this.ci = 0;
    this.off = 0;
    this.acc = undefined;
    this.accLen = 0;
  }

  /** Drops the (fully read) head chunk. */
  advance(): void {
    const chunks = this.chunks;
    chunks[this.ci] = undefined;
    this.off = 0;
    this.acc = undefined; // it was the head, if defined; frames handed out keep it alive
    if (++this.ci === chunks.length) {
      chunks.length = 0;
      this.ci = 0;
    }
  }

  /** Consumes `n <= total` bytes without returning them. */
  skip(n: number): void {
    this.total -= n;
    const chunks = this.chunks;
    while (n > 0) {
      const rest = chunks[this.ci]!.length - this.off;
      if (n < rest) {
        this.off += n;
        return;
      }
      n -= rest;
      this.advance();
    }
  }

  /**
   * Consumes and returns `n <= total` bytes: the head chunk itself or a view of it when they lie in
   * it, else a new buffer of exactly `n` bytes assembled in one pass.
   */
  read(n: number): Uint8Array {
    if (n === 0) return Buffer.alloc(0);
    this.total -= n;
    const chunks = this.chunks;
    let c = chunks[this.ci]!;
    const start = this.off;
    const end = start + n;
    if (end <= c.length) {
      if (end === c.length) {
        this.advance();
        return start === 0 ? c : c.subarray(start);
      }
      this.off = end;
      return c.subarray(start, end);
    }
    const out = Buffer.allocUnsafe(n);
    out.set(start === 0 ? c : c.subarray(start), 0);
    let written = c.length - start;
    this.advance();
    for (;;) {
      c = chunks[this.ci]!;
      const rest = n - written;
      if (rest < c.length) {
        out.set(c.subarray(0, rest), written);
        this.off = rest;
        return out;
      }
      out.set(c, written);
      written += c.length;
      this.advance();
      if (written === n) return out;
    }
  }

  /**
   * Makes the head chunk hold at least `want <= total` bytes from the read position, copying from the
   * chunks after it into the assembly buffer: appended in place while it has room, else moved once
   * into a buffer of at least twice the head's size (amortised O(1) per byte however small the chunks).
   */
  extend(want: number): void {
    const chunks = this.chunks;
    const ci = this.ci;
    const head = chunks[ci]!;
    let off = this.off;
    let acc = this.acc;
    let w: number;
    if (acc !== undefined && acc.length >= off + want) {
      w = this.accLen; // room left: append in place
    } else {
      const headLen = head.length - off;
      const grown = Buffer.allocUnsafe(Math.max(want, 2 * headLen, MIN_ASSEMBLY));
      grown.set(head.subarray(off), 0);
      acc = grown;
      w = headLen;
      off = 0;
    }
    const end = off + want;
    this.ci = absorbInto(chunks, ci, acc, w, end);
    this.off = off;
    this.acc = acc;
    this.accLen = Math.max(w, end); // what absorbInto filled `acc` up to
  }
}
