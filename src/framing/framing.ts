/**
 * Erlang-style `{packet, N}` framing: pure byte codecs, no socket code.
 *
 * {@link FrameDecoder} turns the chunks a socket delivers into frames (length-prefixed with a 1, 2 or
 * 4 byte big-endian header, or `\n`-terminated lines); {@link encodeFrame} does the reverse for one
 * outbound packet. This sits on the per-packet hot path, so the decoder never copies a frame that lies
 * inside one chunk (it returns a `subarray` view), keeps a list of chunks instead of growing a buffer by
 * concatenation, assembles a frame spanning chunks once into a buffer of its exact size, and remembers
 * how far it has scanned for `\n` in line mode (no rescans).
 *
 * @module
 */

import { ArgumentError, FrameTooLargeError } from "../errors.ts";

/**
 * How a byte stream is cut into packets (Erlang `{packet, N}`):
 * - `"raw"`: no framing, whatever has arrived is a packet;
 * - `1 | 2 | 4`: each frame is preceded by its payload length in bytes, big-endian, on 1, 2 or 4 bytes;
 * - `"line"`: each packet is one line, including its terminating `"\n"` (a `"\r"` before it is kept).
 */
export type PacketFraming = "raw" | 1 | 2 | 4 | "line";

/** True when `v` is a {@link PacketFraming} (`"raw"`, `1`, `2`, `4` or `"line"`); for option checks. */
export function isPacketFraming(v: unknown): v is PacketFraming {
  return v === "raw" || v === 4 || v === "line" || v === 2 || v === 1;
}

/** Header size in bytes for a framing: 0 for `"raw"` and `"line"`, else 1, 2 or 4 (the length prefix). */
export function headerSize(framing: PacketFraming): number {
  return typeof framing === "number" ? framing : 0;
}

/** Largest payload, in bytes, a length prefix of 1, 2 or 4 bytes can announce. */
function prefixLimit(headerBytes: number): number {
  return headerBytes === 1 ? 0xff : headerBytes === 2 ? 0xffff : 0xffffffff;
}

/**
 * Bytes to write for one outbound packet: for `1 | 2 | 4`, the big-endian payload length followed by the
 * payload, in one new buffer of exactly header + payload bytes (so it goes out in one write); for `"raw"`
 * and `"line"`, `payload` itself (no copy; line mode does not append a `"\n"`).
 *
 * @param maxPacketSize Largest payload in bytes (default: no limit). Checked for `1 | 2 | 4` and
 *   `"line"` (where the payload is the whole line); never for `"raw"`, which is a byte stream, not a frame.
 * @throws FrameTooLargeError when the payload does not fit the prefix (more than 255 bytes for 1,
 *   65535 for 2, 4294967295 for 4; the error's `maxPacketSize` is then that limit) or exceeds
 *   `maxPacketSize`.
 */
export function encodeFrame(
  framing: PacketFraming,
  payload: Uint8Array,
  maxPacketSize: number = Number.POSITIVE_INFINITY,
): Uint8Array {
  const size = payload.length;
  if (typeof framing !== "number") {
    if (framing === "line" && size > maxPacketSize) throw new FrameTooLargeError(size, maxPacketSize);
    return payload;
  }
  const limit = prefixLimit(framing);
  if (size > limit) throw new FrameTooLargeError(size, limit);
  if (size > maxPacketSize) throw new FrameTooLargeError(size, maxPacketSize);
  const out = Buffer.allocUnsafe(framing + size);
  if (framing === 4) {
    out[0] = size >>> 24;
    out[1] = (size >>> 16) & 0xff;
    out[2] = (size >>> 8) & 0xff;
    out[3] = size & 0xff;
  } else if (framing === 2) {
    out[0] = size >>> 8;
    out[1] = size & 0xff;
  } else {
    out[0] = size;
  }
  out.set(payload, framing);
  return out;
}

/** Line feed, the line-mode terminator. */
const LF = 0x0a;

/**
 * Pull-based inbound decoder: {@link FrameDecoder.push | push} each received chunk, then call
 * {@link FrameDecoder.next | next} until it returns `undefined`.
 *
 * Frames that lie inside one chunk are returned as views of it (no copy); frames spanning chunks are
 * assembled once into a new `Buffer` of their exact size. Returned frames stay valid after later pushes:
 * the decoder never writes into a chunk or into a frame it has handed out.
 *
 * Frames are checked against `maxPacketSize` before they are buffered, so a peer cannot make the decoder
 * hold more than `maxPacketSize` + header bytes + one chunk. After a {@link FrameTooLargeError} the
 * decoder is unusable (the connection stops).
 */
export class FrameDecoder {
  /** The framing this decoder cuts by. */
  readonly framing: PacketFraming;
  /** Largest frame payload in bytes (`Infinity` = no limit); in line mode, the largest line including its `"\n"`. */
  readonly maxPacketSize: number;

  /** Header size: 0 (raw, line), 1, 2 or 4. */
  readonly #hs: number;
  /** Line mode. */
  readonly #line: boolean;
  /** Received chunks; `#chunks[#ci]` is the head, consumed slots before it are `undefined`. Never empty chunks. */
  #chunks: (Uint8Array | undefined)[] = [];
  /** Index of the head chunk. */
  #ci = 0;
  /** Offset of the first unconsumed byte in the head chunk (always < its length when one exists). */
  #off = 0;
  /** Bytes buffered and not yet returned. */
  #total = 0;
  /** Prefixed modes: payload length announced by the header at the head, or -1 when not parsed yet. */
  #frameLen = -1;
  /** Line mode: chunk index where the `"\n"` scan resumes. */
  #sci = 0;
  /** Line mode: offset in that chunk where the scan resumes. */
  #sco = 0;
  /** Line mode: bytes already scanned (from the head) without finding a `"\n"`. */
  #scanned = 0;

  /**
   * @param framing How to cut the stream, see {@link PacketFraming}.
   * @param maxPacketSize Largest frame in bytes (payload for 1/2/4, line including `"\n"` for `"line"`,
   *   `n` for {@link FrameDecoder.take | take}); `Infinity` for no limit.
   */
  constructor(framing: PacketFraming, maxPacketSize: number) {
    if (!isPacketFraming(framing)) {
      throw new ArgumentError("framing", 'one of "raw", 1, 2, 4 or "line"', framing);
    }
    if (
      typeof maxPacketSize !== "number" ||
      !(maxPacketSize >= 0) ||
      !(Number.isInteger(maxPacketSize) || maxPacketSize === Number.POSITIVE_INFINITY)
    ) {
      throw new ArgumentError("maxPacketSize", "a non-negative integer or Infinity", maxPacketSize);
    }
    this.framing = framing;
    this.maxPacketSize = maxPacketSize;
    this.#hs = headerSize(framing);
    this.#line = framing === "line";
  }

  /** Bytes buffered and not yet returned (headers included). */
  get buffered(): number {
    return this.#total;
  }

  /**
   * Appends received bytes. The decoder keeps a reference to `chunk` (no copy) and may return views of
   * it, so callers must not mutate it afterwards. Empty chunks are ignored.
   */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    const chunks = this.#chunks;
    const ci = this.#ci;
    // Drop consumed slots once they are at least half of the list: amortised O(1) per push.
    if (ci >= 8 && ci * 2 >= chunks.length) {
      const live = chunks.length - ci;
      for (let i = 0; i < live; i++) chunks[i] = chunks[i + ci];
      chunks.length = live;
      this.#ci = 0;
      if (this.#line) this.#sci -= ci;
    }
    chunks.push(chunk);
    this.#total += n;
  }

  /**
   * Next complete frame, or `undefined` when no complete frame is buffered.
   * - `1 | 2 | 4`: the payload, header stripped (zero-length frames give an empty array);
   * - `"line"`: the line including its `"\n"` (and any `"\r"` before it);
   * - `"raw"`: everything buffered (the chunk itself when exactly one is buffered), `undefined` when empty.
   *
   * @throws FrameTooLargeError as soon as a header announces a payload larger than `maxPacketSize`
   *   (before it is buffered), or in line mode as soon as the line is known to exceed `maxPacketSize`
   *   (a complete line longer than it, or `maxPacketSize` bytes buffered without a `"\n"`; `size` is then
   *   the smallest possible line length).
   */
  next(): Uint8Array | undefined {
    const hs = this.#hs;
    if (hs !== 0) return this.#nextPrefixed(hs);
    if (this.#line) return this.#nextLine();
    const total = this.#total;
    return total === 0 ? undefined : this.#read(total);
  }

  /**
   * Passive raw read: exactly `n` bytes (`n >= 1`), or `undefined` while fewer are buffered; with
   * `n === 0`, everything buffered (`undefined` when empty). Meant for `"raw"` mode.
   *
   * @param n Bytes to read, a non-negative integer.
   * @throws FrameTooLargeError when `n > maxPacketSize`; ArgumentError when `n` is not a non-negative integer.
   */
  take(n: number): Uint8Array | undefined {
    if (!Number.isInteger(n) || n < 0) throw new ArgumentError("n", "a non-negative integer", n);
    if (n > this.maxPacketSize) throw new FrameTooLargeError(n, this.maxPacketSize);
    const total = this.#total;
    if (n === 0) {
      if (total === 0) return undefined;
      n = total;
    } else if (total < n) return undefined;
    const out = this.#read(n);
    this.#resetCursor();
    return out;
  }

  /**
   * Everything still buffered (headers of unfinished frames included), removed from the decoder: used
   * when a TLS upgrade hands the rest of the bytes to the TLS layer. An empty array when nothing is buffered.
   */
  drain(): Uint8Array {
    const total = this.#total;
    if (total === 0) return Buffer.alloc(0);
    const out = this.#read(total);
    this.#resetCursor();
    return out;
  }

  /** Forgets the parsed header and the line scan position after bytes were consumed out of band. */
  #resetCursor(): void {
    this.#frameLen = -1;
    this.#sci = this.#ci;
    this.#sco = this.#off;
    this.#scanned = 0;
  }

  #nextPrefixed(hs: number): Uint8Array | undefined {
    const total = this.#total;
    let len = this.#frameLen;
    if (len < 0) {
      if (total < hs) return undefined;
      len = this.#peekHeader(hs);
      if (len > this.maxPacketSize) throw new FrameTooLargeError(len, this.maxPacketSize);
    }
    const size = hs + len;
    if (total < size) {
      this.#frameLen = len;
      return undefined;
    }
    this.#frameLen = -1;
    const c = this.#chunks[this.#ci]!;
    const start = this.#off + hs;
    const end = start + len;
    if (end <= c.length) {
      // Fast path: header and payload inside the head chunk.
      this.#total = total - size;
      if (end === c.length) this.#advance();
      else this.#off = end;
      return c.subarray(start, end);
    }
    this.#skip(hs);
    return this.#read(len);
  }

  /** Payload length from the header at the head (`hs` bytes are buffered). Does not consume it. */
  #peekHeader(hs: number): number {
    const chunks = this.#chunks;
    let i = this.#ci;
    let c = chunks[i]!;
    let o = this.#off;
    if (c.length - o >= hs) {
      if (hs === 4) return c[o]! * 0x1000000 + ((c[o + 1]! << 16) | (c[o + 2]! << 8) | c[o + 3]!);
      if (hs === 2) return (c[o]! << 8) | c[o + 1]!;
      return c[o]!;
    }
    // The header spans chunks.
    let v = 0;
    for (let k = 0; k < hs; k++) {
      if (o === c.length) {
        c = chunks[++i]!;
        o = 0;
      }
      v = v * 256 + c[o++]!;
    }
    return v;
  }

  #nextLine(): Uint8Array | undefined {
    if (this.#total === 0) return undefined;
    const chunks = this.#chunks;
    const count = chunks.length;
    const max = this.maxPacketSize;
    let i = this.#sci;
    let o = this.#sco;
    let scanned = this.#scanned;
    while (i < count) {
      const c = chunks[i]!;
      const p = c.indexOf(LF, o);
      if (p !== -1) {
        const size = scanned + (p - o) + 1;
        if (size > max) throw new FrameTooLargeError(size, max);
        const out = this.#read(size);
        this.#sci = this.#ci;
        this.#sco = this.#off;
        this.#scanned = 0;
        return out;
      }
      scanned += c.length - o;
      i++;
      o = 0;
    }
    // No "\n" yet: the line will be at least scanned + 1 bytes long.
    if (scanned >= max) throw new FrameTooLargeError(scanned + 1, max);
    this.#sci = i;
    this.#sco = 0;
    this.#scanned = scanned;
    return undefined;
  }

  /** Drops the (fully consumed) head chunk. */
  #advance(): void {
    const chunks = this.#chunks;
    chunks[this.#ci] = undefined;
    this.#off = 0;
    if (++this.#ci === chunks.length) {
      chunks.length = 0;
      this.#ci = 0;
    }
  }

  /** Consumes `n <= buffered` bytes without returning them. */
  #skip(n: number): void {
    this.#total -= n;
    const chunks = this.#chunks;
    while (n > 0) {
      const rest = chunks[this.#ci]!.length - this.#off;
      if (n < rest) {
        this.#off += n;
        return;
      }
      n -= rest;
      this.#advance();
    }
  }

  /**
   * Consumes and returns `n <= buffered` bytes: the head chunk itself or a view of it when they lie in
   * it, else a new buffer of exactly `n` bytes assembled in one pass.
   */
  #read(n: number): Uint8Array {
    if (n === 0) return Buffer.alloc(0);
    this.#total -= n;
    const chunks = this.#chunks;
    let c = chunks[this.#ci]!;
    const start = this.#off;
    const end = start + n;
    if (end <= c.length) {
      if (end === c.length) {
        this.#advance();
        return start === 0 ? c : c.subarray(start);
      }
      this.#off = end;
      return c.subarray(start, end);
    }
    const out = Buffer.allocUnsafe(n);
    out.set(start === 0 ? c : c.subarray(start), 0);
    let written = c.length - start;
    this.#advance();
    for (;;) {
      c = chunks[this.#ci]!;
      const rest = n - written;
      if (rest < c.length) {
        out.set(c.subarray(0, rest), written);
        this.#off = rest;
        return out;
      }
      out.set(c, written);
      written += c.length;
      this.#advance();
      if (written === n) return out;
    }
  }
}
