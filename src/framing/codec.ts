/**
 * Codec framings: a user's `{ frameLength, encode? }` object for protocols that are neither
 * length-prefixed nor line-based (RESP, TLV, varint prefixes...), and the built-in
 * `{ delimiter }` for frames ended by a fixed byte sequence (`"\r\n"`, `"\0"`...).
 *
 * Pure types and guards: no socket code, no state.
 *
 * @module
 */

import type { Outgoing } from "../handler.ts";

/**
 * A framing written by the user. The decoder calls {@link Codec.frameLength} with the bytes buffered
 * from a frame boundary and cuts the frame it announces; every complete frame is one packet.
 *
 * `frameLength(buffered)` returns:
 * - `n` with `1 <= n <= buffered.length`: the first frame is `buffered[0, n)` (header and trailer
 *   included); it is delivered as a view when it lies in one received chunk;
 * - `0`: no complete frame yet; call again once more bytes have arrived;
 * - `-N` with `N > buffered.length`: no complete frame yet, and do not call again before `N` bytes are
 *   buffered in all (a lower bound: the codec may then ask for more). Length-prefixed codecs know the
 *   exact size once the header is in, so they return `-(header + length)`: the decoder then neither
 *   rescans nor copies more than that frame.
 *
 * Anything else (a fraction, `NaN`, more than is buffered, `-N` with `N <= buffered.length`) is a
 * codec bug and ends the connection with `FramingError`, as does a throw (the thrown value is the
 * error's `cause`): the peer sent bytes the protocol rejects, a peer fault. `buffered` is valid only
 * during the call: do not keep it or write into it. The same bytes may be shown more than once (a
 * chunk ending inside a frame is looked at where it arrived, then in the decoder): only look, keep
 * no state between calls.
 *
 * @example
 * ```ts
 * // A 2-byte big-endian length prefix that counts itself (so the header stays in the packet).
 * const selfCounting: Codec = {
 *   frameLength(b) {
 *     if (b.length < 2) return -2;
 *     const n = (b[0]! << 8) | b[1]!;
 *     if (n < 2) throw new Error(`length ${n} is shorter than its header`);
 *     return b.length >= n ? n : -n;
 *   },
 * };
 * ```
 */
export interface Codec {
  /** Length of the first complete frame in `buffered` (header included), `0` or `-N` when incomplete. */
  frameLength(buffered: Uint8Array): number;
  /** Turns what the handler sends into bytes (default: sent as is); the connection applies it to every send. */
  encode?(packet: Outgoing): Outgoing;
}

/**
 * Frames ended by a fixed byte sequence, e.g. `{ delimiter: "\r\n" }` (SMTP, RESP inline commands) or
 * `{ delimiter: "\0" }` (STOMP). Each packet includes its delimiter; sends are written as they are
 * (the delimiter is not added), as with `"line"`. A string delimiter is UTF-8 encoded; it must not be
 * empty.
 */
export interface DelimiterFraming {
  /** The terminator, at least one byte. */
  readonly delimiter: string | Uint8Array;
}

/** True when `v` is an object with a `frameLength` function and, if present, an `encode` function. */
export function isCodec(v: unknown): v is Codec {
  if (typeof v !== "object" || v === null) return false;
  const c = v as { frameLength?: unknown; encode?: unknown };
  return typeof c.frameLength === "function" && (c.encode === undefined || typeof c.encode === "function");
}

/** True when `v` is `{ delimiter }` with a non-empty string or `Uint8Array`. */
export function isDelimiterFraming(v: unknown): v is DelimiterFraming {
  if (typeof v !== "object" || v === null || !("delimiter" in v)) return false;
  const d = (v as { delimiter: unknown }).delimiter;
  return (typeof d === "string" || d instanceof Uint8Array) && d.length > 0;
}

/**
 * The delimiter's bytes, copied (so a caller that reuses its array cannot change a running decoder's
 * framing).
 */
export function delimiterBytes(framing: DelimiterFraming): Uint8Array {
  const d = framing.delimiter;
  return typeof d === "string" ? new TextEncoder().encode(d) : Uint8Array.from(d);
}
