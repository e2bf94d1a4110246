/**
 * The PROXY header encoder, for the connector side (`proxyHeader`, `proxyConnectTransport`):
 * v1 text or v2 binary with TLVs and an optional CRC32C, with every field checked first so a bad
 * option fails where it is given rather than at the balancer.
 *
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { formatIPv6, mapIPv4, parseIPv4, parseIPv6 } from "./address.ts";
import { crc32c } from "./crc32c.ts";
import { ADDRESS_SIZE, PP2_TYPE, SIGNATURE } from "./wire.ts";

/** What {@link encodeProxyHeader} writes. */
export interface ProxyHeaderInit {
  version: 1 | 2;
  /** `"LOCAL"`: a v2 LOCAL header (v1: `PROXY UNKNOWN`), without addresses. @default "PROXY" */
  command?: "PROXY" | "LOCAL";
  /** IPv4, IPv6, or (v2 only) a Unix socket path. Required for `"PROXY"`. */
  sourceAddress?: string;
  sourcePort?: number;
  destinationAddress?: string;
  destinationPort?: number;
  /** v2 only: TLVs to append, in order. */
  tlvs?: ReadonlyArray<readonly [type: number, value: Uint8Array]>;
  /** v2 only: append a CRC32C TLV over the whole header. @default false */
  crc32c?: boolean;
}

const encoder = new TextEncoder();

/**
 * Encodes a PROXY header (what a connector sends first, with `proxyHeader`). Two IPv4 addresses
 * give TCP4 / INET, an IPv4 and an IPv6 address give TCP6 / INET6 (the IPv4 one as `::ffff:a.b.c.d`).
 * Throws {@link ArgumentError} for a bad address, port, TLV or version.
 *
 * @example
 * encodeProxyHeader({ version: 1, sourceAddress: "10.0.0.1", sourcePort: 5000,
 *   destinationAddress: "10.0.0.2", destinationPort: 443 });
 * // "PROXY TCP4 10.0.0.1 10.0.0.2 5000 443\r\n"
 */
export function encodeProxyHeader(options: ProxyHeaderInit): Uint8Array {
  if (options === null || typeof options !== "object")
    throw new ArgumentError("options", "an object", options);
  const { version } = options;
  if (version !== 1 && version !== 2) throw new ArgumentError("version", "1 or 2", version);
  const command = options.command ?? "PROXY";
  if (command !== "PROXY" && command !== "LOCAL") {
    throw new ArgumentError("command", '"PROXY" or "LOCAL"', command);
  }
  if (version === 1) {
    if (options.tlvs !== undefined && options.tlvs.length > 0) {
      throw new ArgumentError("tlvs", "empty for version 1 (v1 has no TLVs)", options.tlvs);
    }
    if (command === "LOCAL") return encoder.encode("PROXY UNKNOWN\r\n");
    const a = addresses(options, false);
    const proto = a.family === 1 ? "TCP4" : "TCP6";
    return encoder.encode(
      `PROXY ${proto} ${a.sourceText} ${a.destinationText} ${options.sourcePort} ${options.destinationPort}\r\n`,
    );
  }
  const tlvs = options.tlvs ?? [];
  let tlvBytes = 0;
  for (let i = 0; i < tlvs.length; i++) {
    const tlv = tlvs[i];
    if (
      !Array.isArray(tlv) ||
      !Number.isInteger(tlv[0]) ||
      tlv[0] < 0 ||
      tlv[0] > 255 ||
      !(tlv[1] instanceof Uint8Array) ||
      tlv[1].length > 0xffff
    ) {
      throw new ArgumentError(`tlvs[${i}]`, "[type 0-255, Uint8Array of at most 65535 bytes]", tlv);
    }
    tlvBytes += 3 + tlv[1].length;
  }
  if (options.crc32c === true) tlvBytes += 7;
  let fam = 0x00;
  let addressBlock = new Uint8Array(0);
  if (command === "PROXY") {
    const a = addresses(options, true);
    fam = (a.family << 4) | 0x01;
    addressBlock = new Uint8Array(ADDRESS_SIZE[a.family]!);
    if (a.family === 3) {
      addressBlock.set(a.source, 0);
      addressBlock.set(a.destination, 108);
    } else {
      addressBlock.set(a.source, 0);
      addressBlock.set(a.destination, a.source.length);
      const p = 2 * a.source.length;
      addressBlock[p] = options.sourcePort! >> 8;
      addressBlock[p + 1] = options.sourcePort! & 0xff;
      addressBlock[p + 2] = options.destinationPort! >> 8;
      addressBlock[p + 3] = options.destinationPort! & 0xff;
    }
  }
  const length = addressBlock.length + tlvBytes;
  if (length > 0xffff) throw new ArgumentError("tlvs", "at most 65535 bytes of addresses and TLVs", tlvBytes);
  const out = new Uint8Array(16 + length);
  out.set(SIGNATURE, 0);
  out[12] = command === "LOCAL" ? 0x20 : 0x21;
  out[13] = fam;
  out[14] = length >> 8;
  out[15] = length & 0xff;
  out.set(addressBlock, 16);
  let o = 16 + addressBlock.length;
  for (const [type, value] of tlvs) {
    out[o] = type;
    out[o + 1] = value.length >> 8;
    out[o + 2] = value.length & 0xff;
    out.set(value, o + 3);
    o += 3 + value.length;
  }
  if (options.crc32c === true) {
    out[o] = PP2_TYPE.CRC32C;
    out[o + 2] = 4;
    const crc = crc32c(out); // computed with the checksum field still zero, as the spec says
    out[o + 3] = crc >>> 24;
    out[o + 4] = (crc >>> 16) & 0xff;
    out[o + 5] = (crc >>> 8) & 0xff;
    out[o + 6] = crc & 0xff;
  }
  return out;
}

interface EncodedAddresses {
  /** v2 family number: 1 INET, 2 INET6, 3 UNIX. */
  family: 1 | 2 | 3;
  source: Uint8Array;
  destination: Uint8Array;
  sourceText: string;
  destinationText: string;
}

function addresses(options: ProxyHeaderInit, allowUnix: boolean): EncodedAddresses {
  const { sourceAddress, destinationAddress } = options;
  if (typeof sourceAddress !== "string")
    throw new ArgumentError("sourceAddress", "an address", sourceAddress);
  if (typeof destinationAddress !== "string") {
    throw new ArgumentError("destinationAddress", "an address", destinationAddress);
  }
  const s4 = parseIPv4(sourceAddress);
  const d4 = parseIPv4(destinationAddress);
  const s6 = s4 === undefined ? parseIPv6(sourceAddress) : undefined;
  const d6 = d4 === undefined ? parseIPv6(destinationAddress) : undefined;
  const sIP = s4 !== undefined || s6 !== undefined;
  const dIP = d4 !== undefined || d6 !== undefined;
  if (!sIP || !dIP) {
    if (!allowUnix || sIP || dIP) {
      const which = sIP ? "destinationAddress" : "sourceAddress";
      const rule = allowUnix
        ? "an IP address like the other (or both Unix paths)"
        : "an IPv4 or IPv6 address";
      throw new ArgumentError(which, rule, sIP ? destinationAddress : sourceAddress);
    }
    const source = encoder.encode(sourceAddress);
    const destination = encoder.encode(destinationAddress);
    if (source.length > 107)
      throw new ArgumentError("sourceAddress", "a path of at most 107 bytes", sourceAddress);
    if (destination.length > 107) {
      throw new ArgumentError("destinationAddress", "a path of at most 107 bytes", destinationAddress);
    }
    return { family: 3, source, destination, sourceText: sourceAddress, destinationText: destinationAddress };
  }
  port("sourcePort", options.sourcePort);
  port("destinationPort", options.destinationPort);
  if (s4 !== undefined && d4 !== undefined) {
    return {
      family: 1,
      source: s4,
      destination: d4,
      sourceText: sourceAddress,
      destinationText: destinationAddress,
    };
  }
  const source = s6 ?? mapIPv4(s4!);
  const destination = d6 ?? mapIPv4(d4!);
  return {
    family: 2,
    source,
    destination,
    sourceText: formatIPv6(source),
    destinationText: formatIPv6(destination),
  };
}

function port(name: string, value: unknown): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) {
    throw new ArgumentError(name, "an integer port from 0 to 65535", value);
  }
}
