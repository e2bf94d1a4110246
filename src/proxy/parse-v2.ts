/**
 * The PROXY protocol v2 parser: the 16-byte binary preamble, the address block of the family, then
 * the TLVs (read by {@link parseTlvs}). Version 2 only, commands LOCAL and PROXY only, families
 * INET / INET6 / UNIX / UNSPEC with protocols UNSPEC / STREAM / DGRAM. An address block shorter
 * than the family needs is bad on PROXY and ignored on LOCAL; LOCAL and UNSPEC report no addresses
 * (the socket's own count).
 *
 * @module
 */
import { formatIPv4, formatIPv6 } from "./address.ts";
import type { ProxyHeader } from "./header.ts";
import { parseTlvs } from "./tlvs.ts";
import { ADDRESS_SIZE, bad, FAMILIES, NO_TLVS, SIGNATURE, utf8 } from "./wire.ts";

/** Parses a v2 header at the start of `bytes` (whose first byte is CR), or `"incomplete"`. */
export function parseV2(bytes: Uint8Array): { header: ProxyHeader; length: number } | "incomplete" {
  const n = bytes.length;
  const prefix = Math.min(n, SIGNATURE.length);
  for (let i = 1; i < prefix; i++) if (bytes[i] !== SIGNATURE[i]) return bad("v2: wrong signature");
  if (n < 16) return "incomplete";
  const verCmd = bytes[12]!;
  if (verCmd >> 4 !== 2) return bad(`v2: version ${verCmd >> 4} (only 2 exists)`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return bad(`v2: unknown command ${cmd}`);
  const fam = bytes[13]!;
  const af = fam >> 4;
  const proto = fam & 0x0f;
  if (af > 3) return bad(`v2: unknown address family ${af}`);
  if (proto > 2) return bad(`v2: unknown transport protocol ${proto}`);
  const total = 16 + ((bytes[14]! << 8) | bytes[15]!);
  if (n < total) return "incomplete";
  const local = cmd === 0;
  const addressSize = ADDRESS_SIZE[af]!;
  const header: ProxyHeader = {
    version: 2,
    command: local ? "LOCAL" : "PROXY",
    family: "UNSPEC",
    tlvs: NO_TLVS,
  };
  if (total - 16 < addressSize) {
    if (!local) return bad(`v2: ${FAMILIES[af]} needs ${addressSize} address bytes, got ${total - 16}`);
    // LOCAL: the address block is to be ignored; a short one just ends the header.
    return { header: { ...header, tlvs: [] }, length: total };
  }
  if (!local && af === 0) {
    // PROXY over UNSPEC: the block is "address information" of unknown shape, to be ignored; with no
    // way to tell where TLVs would start, none are read.
    return { header: { ...header, tlvs: [] }, length: total };
  }
  if (!local && proto !== 0) {
    header.family = FAMILIES[af]!;
    if (af === 1) {
      header.sourceAddress = formatIPv4(bytes, 16);
      header.destinationAddress = formatIPv4(bytes, 20);
      header.sourcePort = (bytes[24]! << 8) | bytes[25]!;
      header.destinationPort = (bytes[26]! << 8) | bytes[27]!;
    } else if (af === 2) {
      header.sourceAddress = formatIPv6(bytes, 16);
      header.destinationAddress = formatIPv6(bytes, 32);
      header.sourcePort = (bytes[48]! << 8) | bytes[49]!;
      header.destinationPort = (bytes[50]! << 8) | bytes[51]!;
    } else {
      header.sourceAddress = unixPath(bytes, 16);
      header.destinationAddress = unixPath(bytes, 124);
    }
  }
  header.tlvs = parseTlvs(bytes, 16 + addressSize, total, header);
  return { header, length: total };
}

/** A NUL-terminated path in a 108-byte field. */
function unixPath(bytes: Uint8Array, offset: number): string {
  let end = offset;
  while (end < offset + 108 && bytes[end] !== 0) end++;
  return utf8.decode(bytes.subarray(offset, end));
}
