/**
 * Walks over a `FrameDecoder`'s chunk list for frames cut across chunks: reading a length header or
 * matching a delimiter that spans chunks, and copying the chunks after the head into a codec's
 * assembly buffer. Module functions rather than methods: they take the list and positions as
 * arguments and keep no state, and none allocates more than the inline code did, so moving them
 * here costs the decoder's per-frame path nothing.
 *
 * @module
 */

/**
 * Payload length from the `hs`-byte big-endian header starting at `chunks[ci][off]` (`hs` bytes
 * are buffered from there). Does not consume it.
 */
export function peekHeader(
  chunks: readonly (Uint8Array | undefined)[],
  ci: number,
  off: number,
  hs: number,
): number {
  let i = ci;
  let c = chunks[i]!;
  let o = off;
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

/**
 * Whether `delim` ends at `chunks[i][p]` (its last byte is known to match; `delim.length` bytes are
 * buffered up to there): walks back across chunk boundaries.
 */
export function endsWithDelimiter(
  chunks: readonly (Uint8Array | undefined)[],
  i: number,
  p: number,
  delim: Uint8Array,
): boolean {
  let c = chunks[i]!;
  let k = delim.length - 1;
  let q = p;
  while (k > 0) {
    k--;
    q--;
    if (q < 0) {
      c = chunks[--i]!;
      q = c.length - 1;
    }
    if (c[q] !== delim[k]) return false;
  }
  return true;
}

/**
 * Codec assembly: copies the chunks after `chunks[ci]` into `acc` from offset `w` until it holds
 * `end` bytes, clearing the slots absorbed whole and trimming the one absorbed in part. The
 * assembly buffer's view `[0, end)` becomes the head, in the slot of the last chunk it absorbed
 * whole; returns that slot's index.
 */
export function absorbInto(
  chunks: (Uint8Array | undefined)[],
  ci: number,
  acc: Buffer,
  w: number,
  end: number,
): number {
  let i = ci + 1;
  while (w < end) {
    const c = chunks[i]!;
    const room = end - w;
    if (c.length <= room) {
      acc.set(c, w);
      w += c.length;
      chunks[i++] = undefined;
    } else {
      acc.set(c.subarray(0, room), w);
      w += room;
      chunks[i] = c.subarray(room);
    }
  }
  // The assembly buffer becomes the head, in the slot of the last chunk it absorbed whole.
  for (let k = ci; k < i - 1; k++) chunks[k] = undefined;
  chunks[i - 1] = acc.subarray(0, w);
  return i - 1;
}
