/**
 * The byte helpers of the scripted peer: how a write is cut into chunks ({@link splitBytes}, with a
 * seeded PRNG so random cuts repeat), strings to bytes, and the short previews read errors show.
 *
 * @module
 */

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

/** Bytes to write or look for: a string (UTF-8) or bytes. */
export type Bytes = string | Uint8Array;

/** The bytes of `data`: a string as UTF-8, bytes as a Buffer over the same memory (no copy). */
export function toBytes(data: Bytes): Buffer {
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
export function preview(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 48);
  const printable = head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09);
  const shown = printable
    ? JSON.stringify(Buffer.from(head).toString("latin1"))
    : `<<${Buffer.from(head)
        .toString("hex")
        .replace(/(..)(?!$)/g, "$1 ")}>>`;
  return bytes.byteLength > head.byteLength ? `${shown}... (${bytes.byteLength} bytes)` : shown;
}
