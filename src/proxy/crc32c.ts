/**
 * CRC32C (Castagnoli, RFC 4960 appendix B), the checksum a PROXY protocol v2 header may carry in its
 * `PP2_TYPE_CRC32C` TLV. Table-driven, one byte per step: a header is at most a few hundred bytes,
 * so the 1 KiB table beats anything cleverer.
 *
 * @module
 */

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL = 0x82f63b78;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC32C of `bytes` (an unsigned 32-bit number).
 *
 * @example
 * crc32c(new TextEncoder().encode("123456789")); // 0xe3069283
 */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
