/**
 * The TLVs after a v2 header's address block: every one is kept in wire order (unknown ones too)
 * and the known ones are decoded onto the header. A truncated TLV is bad; a CRC32C TLV is checked
 * (a mismatch is bad); UNIQUE_ID is at most 128 bytes; SSL has its own sub-TLVs, decoded into
 * {@link ProxySsl}.
 *
 * @module
 */
import { crc32c } from "./crc32c.ts";
import type { ProxyHeader, ProxySsl } from "./header.ts";
import { bad, copyOf, PP2_TYPE, utf8 } from "./wire.ts";

/** Reads the TLVs in `bytes[start, total)`, sets the known ones on `header`, returns them all. */
export function parseTlvs(
  bytes: Uint8Array,
  start: number,
  total: number,
  header: ProxyHeader,
): Array<[number, Uint8Array]> {
  const tlvs: Array<[number, Uint8Array]> = [];
  let o = start;
  while (o < total) {
    if (o + 3 > total) return bad("v2: a truncated TLV");
    const type = bytes[o]!;
    const length = (bytes[o + 1]! << 8) | bytes[o + 2]!;
    const end = o + 3 + length;
    if (end > total) return bad(`v2: TLV 0x${type.toString(16)} runs past the header`);
    // A copy: the chunk also holds the connection's first bytes, which must not stay pinned here.
    const value = copyOf(bytes, o + 3, end);
    tlvs.push([type, value]);
    switch (type) {
      case PP2_TYPE.ALPN:
        header.alpn = utf8.decode(value);
        break;
      case PP2_TYPE.AUTHORITY:
        header.authority = utf8.decode(value);
        break;
      case PP2_TYPE.CRC32C:
        checkCrc(bytes, total, o + 3, value);
        break;
      case PP2_TYPE.UNIQUE_ID:
        if (length > 128) return bad(`v2: UNIQUE_ID of ${length} bytes (at most 128)`);
        header.uniqueId = value;
        break;
      case PP2_TYPE.SSL:
        header.ssl = parseSsl(value);
        break;
      case PP2_TYPE.NETNS:
        header.netns = utf8.decode(value);
        break;
    }
    o = end;
  }
  return tlvs;
}

function checkCrc(bytes: Uint8Array, total: number, at: number, value: Uint8Array): void {
  if (value.length !== 4) bad(`v2: CRC32C TLV of ${value.length} bytes (must be 4)`);
  const copy = copyOf(bytes, 0, total);
  copy.fill(0, at, at + 4);
  const expected = ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) | value[3]!) >>> 0;
  if (crc32c(copy) !== expected) bad("v2: CRC32C mismatch");
}

const SSL_STRINGS: Record<number, keyof ProxySsl> = {
  33: "version",
  34: "cn",
  35: "cipher",
  36: "sigAlg",
  37: "keyAlg",
  38: "group",
  39: "sigScheme",
};

function parseSsl(value: Uint8Array): ProxySsl {
  if (value.length < 5) return bad(`v2: SSL TLV of ${value.length} bytes (at least 5)`);
  const ssl: ProxySsl = {
    client: value[0]!,
    verify: ((value[1]! << 24) | (value[2]! << 16) | (value[3]! << 8) | value[4]!) >>> 0,
    tlvs: [],
  };
  let o = 5;
  while (o < value.length) {
    if (o + 3 > value.length) return bad("v2: a truncated SSL sub-TLV");
    const type = value[o]!;
    const end = o + 3 + ((value[o + 1]! << 8) | value[o + 2]!);
    if (end > value.length) return bad(`v2: SSL sub-TLV 0x${type.toString(16)} runs past its TLV`);
    const sub = copyOf(value, o + 3, end);
    ssl.tlvs.push([type, sub]);
    const key = SSL_STRINGS[type];
    if (key !== undefined) (ssl as unknown as Record<string, unknown>)[key] = utf8.decode(sub);
    else if (type === 0x28) ssl.clientCert = sub;
    o = end;
  }
  return ssl;
}
