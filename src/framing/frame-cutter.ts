/**
 * Whole frames inside one chunk. A connection that has nothing buffered cuts the frames of a received
 * chunk with a {@link FrameCutter} and hands each to its handler as a view of the chunk, with no
 * decoder in between; only a frame cut at the chunk's end (or a chunk that arrives while the
 * connection cannot take it) goes through a `FrameDecoder`. Pure bytes, no socket code. (The
 * connection's frame loop reads length prefixes itself, as {@link FrameCutter.end} does: see
 * connection/inbound.ts.)
 *
 * @module
 */

import { FrameTooLargeError, FramingError } from "../errors.ts";
import { type Codec, delimiterBytes, isCodec } from "./codec.ts";
import { frameLengthOf } from "./decoder-checks.ts";
import { headerSize, type PacketFraming } from "./packet-framing.ts";

/** What is done per frame. */
export const K_RAW = 0;
export const K_PREFIX = 1;
export const K_DELIMITER = 2;
export const K_CODEC = 3;

/** The line-mode terminator, `"\n"`. */
const LINE_DELIMITER = Uint8Array.of(0x0a);

/**
 * One framing, parsed once (the kind of cut, the header size, the delimiter bytes, the codec), and
 * the search for a frame that lies whole inside one chunk.
 *
 * @example
 * ```ts
 * const cutter = new FrameCutter(4, 1024);
 * const chunk = Uint8Array.of(0, 0, 0, 2, 0x68, 0x69, 0, 0);
 * cutter.end(chunk, 0); // → 6, and cutter.start is 4: the payload is chunk[4..6)
 * cutter.end(chunk, 6); // → -1: only half a header is left
 * ```
 */
export class FrameCutter {
  /** One of K_RAW, K_PREFIX, K_DELIMITER, K_CODEC. */
  readonly kind: number;
  /** Header size: 1, 2 or 4 for prefixes, else 0. */
  readonly hs: number;
  /** Line and delimiter modes: the terminator (line mode: `"\n"`). */
  readonly delim: Uint8Array;
  /** Codec mode: the codec. */
  readonly codec: Codec | undefined;
  /** Largest frame in bytes, as `FrameDecoder.maxPacketSize`. */
  readonly max: number;
  /** Where the packet of the frame the last {@link end} found starts (after its header, if any). */
  start = 0;

  /** `framing` and `maxPacketSize` are checked by the caller (see decoder-checks.ts). */
  constructor(framing: PacketFraming, maxPacketSize: number) {
    this.max = maxPacketSize;
    this.hs = headerSize(framing);
    this.delim = LINE_DELIMITER;
    this.codec = undefined;
    if (this.hs !== 0) this.kind = K_PREFIX;
    else if (framing === "raw") this.kind = K_RAW;
    else if (framing === "line") this.kind = K_DELIMITER;
    else if (isCodec(framing)) {
      this.kind = K_CODEC;
      this.codec = framing;
    } else {
      this.kind = K_DELIMITER;
      this.delim = delimiterBytes(framing as { delimiter: string | Uint8Array });
    }
  }

  /**
   * The end of the frame that starts at `chunk[off]` when it lies whole in `chunk` (its packet starts
   * at {@link start}), else -1: incomplete, or not known to be complete from this chunk alone (a
   * codec asking for more). Raw framing has no frames: always -1.
   *
   * @throws FrameTooLargeError for a frame known from this chunk to exceed the maximum; FramingError
   *   for a codec answer that is not a length of what it was shown (the errors a `FrameDecoder` throws).
   */
  end(chunk: Uint8Array, off: number): number {
    const kind = this.kind;
    // (the connection's frame loop reads prefixes itself: a delimiter is what it asks for most)
    if (kind === K_DELIMITER) return this.#delimited(chunk, off);
    if (kind === K_PREFIX) return this.#prefixed(chunk, off);
    if (kind === K_CODEC) return this.#codec(chunk, off);
    return -1;
  }

  #prefixed(chunk: Uint8Array, off: number): number {
    const hs = this.hs;
    const at = off + hs;
    if (at > chunk.length) return -1;
    const len = prefixAt(chunk, off, hs);
    if (len > this.max) throw new FrameTooLargeError(len, this.max);
    const end = at + len;
    if (end > chunk.length) return -1;
    this.start = at;
    return end;
  }

  #delimited(chunk: Uint8Array, off: number): number {
    const delim = this.delim;
    const dl = delim.length;
    const last = delim[dl - 1]!;
    let p = chunk.indexOf(last, off + dl - 1);
    while (p !== -1) {
      // "\r\n" compared in place: the call to endsAt cost the line echo ~1% (same-run A/B under load)
      if (dl === 1 || (dl === 2 ? chunk[p - 1] === delim[0] : endsAt(chunk, p, delim))) {
        const size = p + 1 - off;
        if (size > this.max) throw new FrameTooLargeError(size, this.max);
        this.start = off;
        return p + 1;
      }
      p = chunk.indexOf(last, p + 1);
    }
    return -1;
  }

  #codec(chunk: Uint8Array, off: number): number {
    const view = off === 0 ? chunk : chunk.subarray(off);
    const r = frameLengthOf(this.codec!, view);
    if (r <= 0) return -1; // more needed: the decoder keeps count of how much
    const have = view.length;
    if (r > have) throw new FramingError(`frameLength returned ${r} with ${have} bytes buffered`);
    if (r > this.max) throw new FrameTooLargeError(r, this.max);
    this.start = off;
    return off + r;
  }
}

/**
 * The length a 1, 2 or 4-byte big-endian prefix at `chunk[off]` announces (the caller checked that the
 * header lies in `chunk`). Also read by the connection's frame loop (connection/inbound.ts).
 */
export function prefixAt(chunk: Uint8Array, off: number, hs: number): number {
  return hs === 4
    ? chunk[off]! * 0x1000000 + ((chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!)
    : hs === 2
      ? (chunk[off]! << 8) | chunk[off + 1]!
      : chunk[off]!;
}

/** Whether `delim` ends at `chunk[p]` (its last byte is known to match, and `p >= delim.length - 1`). */
function endsAt(chunk: Uint8Array, p: number, delim: Uint8Array): boolean {
  for (let k = delim.length - 2, q = p - 1; k >= 0; k--, q--) if (chunk[q] !== delim[k]) return false;
  return true;
}
