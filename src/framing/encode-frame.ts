/**
 * Outbound framing of one packet.
 *
 * @module
 */

import { FrameTooLargeError } from "../errors.ts";
import { isCodec } from "./codec.ts";
import type { PacketFraming } from "./packet-framing.ts";

/** Largest payload, in bytes, a length prefix of 1, 2 or 4 bytes can announce. */
export function prefixLimit(headerBytes: number): number {
  return headerBytes === 1 ? 0xff : headerBytes === 2 ? 0xffff : 0xffffffff;
}

/**
 * Bytes to write for one outbound packet: for `1 | 2 | 4`, the big-endian payload length followed by the
 * payload, in one new buffer of exactly header + payload bytes (so it goes out in one write); for every
 * other framing, `payload` itself (no copy: `"line"` and `{ delimiter }` do not append their
 * terminator, and a codec's `encode` has already been applied by the connection).
 *
 * @param maxPacketSize Largest payload in bytes (default: no limit). Checked for `1 | 2 | 4`, `"line"`
 *   and `{ delimiter }` (where the payload is the whole frame); never for `"raw"`, which is a byte
 *   stream, nor for codecs, whose frames the codec alone understands.
 * @throws FrameTooLargeError when the payload does not fit the prefix (more than 255 bytes for 1,
 *   65535 for 2, 4294967295 for 4; the error's `maxPacketSize` is then that limit) or exceeds
 *   `maxPacketSize`.
 * @example
 * ```ts
 * encodeFrame(2, new TextEncoder().encode("hi")); // → <<0 2 "hi">>
 * encodeFrame({ delimiter: "\r\n" }, bytes, 1024); // → bytes, or throws past 1024 bytes
 * ```
 */
export function encodeFrame(
  framing: PacketFraming,
  payload: Uint8Array,
  maxPacketSize: number = Number.POSITIVE_INFINITY,
): Uint8Array {
  const size = payload.length;
  if (typeof framing !== "number") {
    // Line and delimiter frames are the payload itself, so the bound applies; a codec's it cannot judge.
    if (size > maxPacketSize && (framing === "line" || (typeof framing === "object" && !isCodec(framing))))
      throw new FrameTooLargeError(size, maxPacketSize);
    return payload;
  }
  checkPrefixed(framing, size, maxPacketSize);
  const out = Buffer.allocUnsafe(framing + size);
  writePrefix(out, 0, framing, size);
  out.set(payload, framing);
  return out;
}

/**
 * Throws {@link FrameTooLargeError} when a payload of `size` bytes does not fit a `headerBytes` length
 * prefix or exceeds `maxPacketSize` (the checks of {@link encodeFrame}, for callers that write the
 * header themselves, e.g. into one buffer for several frames).
 */
export function checkPrefixed(headerBytes: 1 | 2 | 4, size: number, maxPacketSize: number): void {
  const limit = prefixLimit(headerBytes);
  if (size > limit) throw new FrameTooLargeError(size, limit);
  if (size > maxPacketSize) throw new FrameTooLargeError(size, maxPacketSize);
}

/** Writes the big-endian length prefix of a `size`-byte payload into `out` at `at`. */
export function writePrefix(out: Uint8Array, at: number, headerBytes: 1 | 2 | 4, size: number): void {
  if (headerBytes === 4) {
    out[at] = size >>> 24;
    out[at + 1] = (size >>> 16) & 0xff;
    out[at + 2] = (size >>> 8) & 0xff;
    out[at + 3] = size & 0xff;
  } else if (headerBytes === 2) {
    out[at] = size >>> 8;
    out[at + 1] = size & 0xff;
  } else {
    out[at] = size;
  }
}
