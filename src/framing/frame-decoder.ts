/**
 * Inbound framing: chunks in, frames out, for every {@link PacketFraming}. Pure bytes, no socket code.
 *
 * A connection that holds nothing cuts a chunk's whole frames without a decoder (frame-cutter.ts);
 * the decoder serves what is left (frames across chunks, passive reads, packets waiting for a
 * callback) and the public API. It is on the per-packet path all the same, so:
 * - a frame that lies inside one chunk is returned as a `subarray` view of it (no copy);
 * - chunks are kept in a list ({@link ChunkQueue}), never concatenated as they arrive; a frame
 *   spanning chunks is assembled once, into a buffer of its exact size (prefixes, lines, delimiters) or, for codecs,
 *   into one contiguous buffer that grows by doubling while the codec asks for more;
 * - nothing already scanned is scanned again: line and delimiter searches resume where they stopped
 *   (a multi-byte delimiter is found by its last byte, so one split across chunks needs no special
 *   window), and a codec that answers `-N` is not called again before `N` bytes are buffered.
 *
 * @module
 */

import { ArgumentError, FrameTooLargeError, FramingError } from "../errors.ts";
import { endsWithDelimiter, peekHeader } from "./chunk-list.ts";
import { ChunkQueue } from "./chunk-queue.ts";
import type { Codec } from "./codec.ts";
import { checkDecoderArguments, frameLengthOf } from "./decoder-checks.ts";
import { FrameCutter, K_CODEC, K_DELIMITER, K_PREFIX } from "./frame-cutter.ts";
import type { PacketFraming } from "./packet-framing.ts";

/**
 * Pull-based inbound decoder: {@link FrameDecoder.push | push} each received chunk, then call
 * {@link FrameDecoder.next | next} until it returns `undefined`.
 *
 * Returned frames stay valid after later pushes: the decoder never writes into a chunk or into a
 * frame it has handed out (a codec's assembly buffer only ever grows past the bytes handed out).
 *
 * `maxPacketSize` is checked before a frame is buffered whenever its size is known (a length prefix,
 * a codec's `-N`), so a peer cannot make the decoder hold more than `maxPacketSize` + header bytes +
 * one chunk. After a {@link FrameTooLargeError} or a {@link FramingError} the decoder is unusable (the
 * connection stops).
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder({ delimiter: "\r\n" }, 1024);
 * decoder.push(new TextEncoder().encode("EHLO a\r\nMAIL FR"));
 * decoder.next(); // → "EHLO a\r\n" (a view of the chunk)
 * decoder.next(); // → undefined: "MAIL FR" waits for its "\r\n"
 * ```
 */
export class FrameDecoder {
  /** The framing this decoder cuts by. */
  readonly framing: PacketFraming;
  /**
   * Largest frame in bytes (`Infinity` = no limit): the payload for 1/2/4; the whole frame, terminator
   * or header included, for lines, delimiters and codecs.
   */
  readonly maxPacketSize: number;

  /** The framing, parsed (kind of cut, header size, delimiter, codec). */
  readonly #cut: FrameCutter;
  /** The bytes held (chunks and the read position). */
  readonly #q = new ChunkQueue();
  /** Prefixed modes: payload length announced by the header at the head, or -1 when not parsed yet. */
  #frameLen = -1;
  /** Delimiter modes: chunk index where the search resumes. */
  #sci = 0;
  /** Delimiter modes: offset in that chunk where the search resumes. */
  #sco = 0;
  /** Delimiter modes: bytes already searched (from the head) without finding a delimiter. */
  #scanned = 0;
  /** Codec mode: bytes that must be buffered before `frameLength` is called again (0: call at once). */
  #need = 0;
  /** Codec mode: the last answer was 0 (how much more is unknown: offer the codec twice as much). */
  #needAll = false;
  /**
   * @param framing How to cut the stream, see {@link PacketFraming}.
   * @param maxPacketSize Largest frame in bytes (see {@link FrameDecoder.maxPacketSize}; also `n` for
   *   {@link FrameDecoder.take | take}); `Infinity` for no limit.
   */
  constructor(framing: PacketFraming, maxPacketSize: number) {
    checkDecoderArguments(framing, maxPacketSize);
    this.framing = framing;
    this.maxPacketSize = maxPacketSize;
    this.#cut = new FrameCutter(framing, maxPacketSize);
  }

  /** Bytes buffered and not yet returned (headers included). */
  get buffered(): number {
    return this.#q.total;
  }

  /**
   * Appends received bytes. The decoder keeps a reference to `chunk` (no copy) and may return views of
   * it, so callers must not mutate it afterwards. Empty chunks are ignored.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#sci -= this.#q.push(chunk);
  }

  /**
   * Next complete frame, or `undefined` when no complete frame is buffered.
   * - `1 | 2 | 4`: the payload, header stripped (zero-length frames give an empty array);
   * - `"line"` / `{ delimiter }`: the frame including its terminator (and, for lines, any `"\r"`);
   * - a codec: the `frameLength` bytes the codec announced, header included;
   * - `"raw"`: everything buffered (the chunk itself when exactly one is buffered), `undefined` when empty.
   *
   * @throws FrameTooLargeError as soon as a frame is known to exceed `maxPacketSize`: a header or a
   *   codec's `-N` announcing more (before it is buffered), a complete frame longer than it, or
   *   `maxPacketSize` bytes buffered without a complete frame (`size` is then the smallest possible
   *   frame length).
   * @throws FramingError when a codec's `frameLength` throws (`cause` is what it threw) or answers
   *   something that is not a length (see {@link Codec}).
   */
  next(): Uint8Array | undefined {
    const cut = this.#cut;
    const kind = cut.kind;
    if (kind === K_PREFIX) return this.#nextPrefixed(cut.hs);
    if (kind === K_DELIMITER) return this.#nextDelimited(cut.delim);
    if (kind === K_CODEC) return this.#nextCodec(cut.codec!);
    const total = this.#q.total;
    return total === 0 ? undefined : this.#q.read(total);
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
    const total = this.#q.total;
    if (n === 0) {
      if (total === 0) return undefined;
      n = total;
    } else if (total < n) return undefined;
    const out = this.#q.read(n);
    this.#resetCursor();
    return out;
  }

  /**
   * Everything still buffered (headers of unfinished frames included), removed from the decoder: used
   * when a TLS upgrade hands the rest of the bytes to the TLS layer. An empty array when nothing is buffered.
   */
  drain(): Uint8Array {
    const total = this.#q.total;
    if (total === 0) return Buffer.alloc(0);
    const out = this.#q.read(total);
    this.#resetCursor();
    return out;
  }

  /**
   * Whether the decoder holds nothing: no byte buffered and no frame started, so it can serve another
   * stream (the connection process lends one empty decoder to the connections of a server in turn).
   */
  get empty(): boolean {
    return this.#q.total === 0;
  }

  /** Makes an empty decoder ready for another stream (call only when {@link empty}). */
  reset(): void {
    this.#q.clear();
    this.#resetCursor();
    this.#sci = 0;
    this.#sco = 0;
  }

  /** Forgets the parsed header, the search position and the codec's wait after bytes were consumed out of band. */
  #resetCursor(): void {
    this.#frameLen = -1;
    this.#sci = this.#q.ci;
    this.#sco = this.#q.off;
    this.#scanned = 0;
    this.#need = 0;
    this.#needAll = false;
  }

  #nextPrefixed(hs: number): Uint8Array | undefined {
    const q = this.#q;
    const total = q.total;
    let len = this.#frameLen;
    if (len < 0) {
      if (total < hs) return undefined;
      len = peekHeader(q.chunks, q.ci, q.off, hs);
      if (len > this.maxPacketSize) throw new FrameTooLargeError(len, this.maxPacketSize);
    }
    const size = hs + len;
    if (total < size) {
      this.#frameLen = len;
      return undefined;
    }
    this.#frameLen = -1;
    const c = q.chunks[q.ci]!;
    const start = q.off + hs;
    const end = start + len;
    if (end <= c.length) {
      // Fast path: header and payload inside the head chunk.
      q.total = total - size;
      if (end === c.length) q.advance();
      else q.off = end;
      return c.subarray(start, end);
    }
    q.skip(hs);
    return q.read(len);
  }

  /**
   * Line and delimiter modes. The search looks for the delimiter's last byte (native `indexOf`) and
   * checks the bytes before it, which are always buffered already: a delimiter split across chunks is
   * found in the chunk where it ends, and resuming never has to look back.
   */
  #nextDelimited(delim: Uint8Array): Uint8Array | undefined {
    const q = this.#q;
    if (q.total === 0) return undefined;
    const chunks = q.chunks;
    const count = chunks.length;
    const max = this.maxPacketSize;
    const dl = delim.length;
    const last = delim[dl - 1]!;
    let i = this.#sci;
    let o = this.#sco;
    let scanned = this.#scanned;
    while (i < count) {
      const c = chunks[i]!;
      let p = c.indexOf(last, o);
      while (p !== -1) {
        const size = scanned + (p - o) + 1;
        if (dl === 1 || (size >= dl && endsWithDelimiter(chunks, i, p, delim))) {
          if (size > max) throw new FrameTooLargeError(size, max);
          const out = q.read(size);
          this.#sci = q.ci;
          this.#sco = q.off;
          this.#scanned = 0;
          return out;
        }
        p = c.indexOf(last, p + 1);
      }
      scanned += c.length - o;
      i++;
      o = 0;
    }
    // No delimiter yet: the frame will be at least scanned + 1 bytes long.
    if (scanned >= max) throw new FrameTooLargeError(scanned + 1, max);
    this.#sci = i;
    this.#sco = 0;
    this.#scanned = scanned;
    return undefined;
  }

  /**
   * Codec mode. The codec sees the head chunk from the frame boundary; when it needs more than the
   * head holds and more is buffered, the head is extended into the assembly buffer: up to the `N` of a
   * `-N` answer, or to twice its size after a `0`. Either way only the frame's own bytes (or at most
   * as many again) are copied, and later frames in the next chunk stay views of it.
   */
  #nextCodec(codec: Codec): Uint8Array | undefined {
    const q = this.#q;
    const max = this.maxPacketSize;
    for (;;) {
      const total = q.total;
      const need = this.#need;
      if (total === 0 || total < need) return undefined;
      let c = q.chunks[q.ci]!;
      const headLen = c.length - q.off;
      if (need > headLen) {
        // After a 0 the codec did not say how much: offer twice as much (O(log n) calls per frame,
        // and the frames after this one stay in their chunks, uncopied).
        q.extend(this.#needAll ? Math.min(total, Math.max(need, 2 * headLen)) : need);
        c = q.chunks[q.ci]!;
      }
      const off = q.off;
      const view = off === 0 ? c : c.subarray(off);
      const have = view.length;
      const r = frameLengthOf(codec, view);
      if (r > 0) {
        if (r > have) throw new FramingError(`frameLength returned ${r} with ${have} bytes buffered`);
        if (r > max) throw new FrameTooLargeError(r, max);
        this.#need = 0;
        this.#needAll = false;
        // The frame lies in the head chunk (the codec saw no more): a view, `view` itself when it ends the chunk.
        q.total = total - r;
        if (r === have) {
          q.advance();
          return view;
        }
        q.off = off + r;
        return c.subarray(off, off + r);
      }
      if (r === 0) {
        if (have >= max) throw new FrameTooLargeError(have + 1, max);
        this.#need = have + 1;
        this.#needAll = true;
      } else {
        const n = -r;
        if (n <= have) throw new FramingError(`frameLength returned ${r} with ${have} bytes buffered`);
        if (n > max) throw new FrameTooLargeError(n, max);
        this.#need = n;
        this.#needAll = false;
      }
    }
  }
}
