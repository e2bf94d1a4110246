/**
 * Wire constants and small helpers of the PROXY protocol shared by the v1 and v2 parsers, the TLV
 * reader and the encoder: the v2 signature, the TLV type numbers, the size bounds, the address
 * block size per family, and the parsers' error and copy helpers.
 *
 * @module
 */
import { ProxyHeaderError } from "../errors.ts";

/** TLV types of the spec (`PP2_TYPE_*`). */
export const PP2_TYPE = Object.freeze({
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
});

/** Longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses and ports). */
export const MAX_V1_LENGTH = 107;
/** Longest v2 header: 16 bytes then a 16-bit length. */
export const MAX_V2_LENGTH = 16 + 0xffff;

/** The 12 bytes every v2 header starts with. */
export const SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
export const CR = 0x0d;
export const LF = 0x0a;
/** Address block size per v2 family (high nibble of byte 14). */
export const ADDRESS_SIZE = [0, 12, 36, 216];
export const FAMILIES = ["UNSPEC", "INET", "INET6", "UNIX"] as const;
export const NO_TLVS: Array<[number, Uint8Array]> = [];
export const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * A copy of `bytes[start, end)`. Not `bytes.slice()`: on a Buffer (what Bun's `data` hands over)
 * that is a view, which would pin the whole chunk and share its memory.
 */
export function copyOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes, start, end);
}

/** Throws the parser's error: every bad byte ends the parse at once. */
export function bad(info: string): never {
  throw new ProxyHeaderError(info);
}
