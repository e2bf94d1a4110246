/**
 * The PROXY protocol (haproxy's doc/proxy-protocol.txt), versions 1 and 2: a pure, incremental
 * parser (bytes in, header out, never a socket) and an encoder for the connector side.
 *
 * A balancer that speaks it (HAProxy `send-proxy`/`send-proxy-v2`, nginx `proxy_protocol on`, AWS
 * NLB, Envoy) sends one header before any other byte of a connection, so the server learns the
 * client's address instead of the balancer's:
 *
 * ```text
 *   v1: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"   (text, at most 107 bytes)
 *       "PROXY UNKNOWN ...\r\n"                                 (keep the socket's own addresses)
 *   v2: 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A                      (12-byte signature)
 *       ver|cmd (0x20 LOCAL, 0x21 PROXY)  family|proto  length (2 bytes, big-endian)
 *       addresses (INET 12, INET6 36, UNIX 216 bytes), then TLVs (type, 2-byte length, value)
 * ```
 *
 * Decisions, case by case (the spec leaves some to the receiver):
 * - the first byte decides the version: `0x0D` v2, `P` v1, anything else is a bad header at once
 *   (no waiting for more bytes: a client that speaks its own protocol first is refused early);
 * - v1: the line must end with CRLF within 107 bytes (a lone CR or LF is bad); numbers have no
 *   leading zeros; `UNKNOWN` ignores the rest of its line;
 * - v2: version 2 only, commands LOCAL and PROXY only, families INET / INET6 / UNIX / UNSPEC with
 *   protocols UNSPEC / STREAM / DGRAM; an address block shorter than the family needs is bad on
 *   PROXY and ignored on LOCAL; LOCAL and UNSPEC report no addresses (the socket's own count);
 *   TLVs follow the family's address block (none are read after a PROXY / UNSPEC block, whose
 *   size means nothing);
 * - TLVs: every one is kept in `tlvs` in wire order (unknown ones too); a truncated TLV is bad; a
 *   CRC32C TLV is checked (a mismatch is bad); UNIQUE_ID is at most 128 bytes; SSL has its own
 *   sub-TLVs, decoded into {@link ProxySsl}.
 *
 * @module
 */
import { ArgumentError, ProxyHeaderError } from "../errors.ts";
import { formatIPv4, formatIPv6, mapIPv4, parseIPv4, parseIPv6 } from "./address.ts";
import { crc32c } from "./crc32c.ts";

/** The SSL TLV (`PP2_TYPE_SSL`, 0x20): what the balancer knows of the client's TLS session. */
export interface ProxySsl {
  /** Bit field: 0x01 the client used TLS, 0x02 it sent a certificate on this connection, 0x04 on this session. */
  client: number;
  /** 0 when the client presented a certificate and it verified; anything else otherwise. */
  verify: number;
  /** `PP2_SUBTYPE_SSL_VERSION` (0x21), e.g. `"TLSv1.3"`. */
  version?: string;
  /** `PP2_SUBTYPE_SSL_CN` (0x22): the client certificate's common name. */
  cn?: string;
  /** `PP2_SUBTYPE_SSL_CIPHER` (0x23), e.g. `"ECDHE-RSA-AES128-GCM-SHA256"`. */
  cipher?: string;
  /** `PP2_SUBTYPE_SSL_SIG_ALG` (0x24). */
  sigAlg?: string;
  /** `PP2_SUBTYPE_SSL_KEY_ALG` (0x25). */
  keyAlg?: string;
  /** `PP2_SUBTYPE_SSL_GROUP` (0x26). */
  group?: string;
  /** `PP2_SUBTYPE_SSL_SIG_SCHEME` (0x27). */
  sigScheme?: string;
  /** `PP2_SUBTYPE_SSL_CLIENT_CERT` (0x28): the client certificate, DER. */
  clientCert?: Uint8Array;
  /** Every sub-TLV, in wire order. */
  tlvs: Array<[type: number, value: Uint8Array]>;
}

/** A parsed PROXY header (`meta.proxy`). */
export interface ProxyHeader {
  version: 1 | 2;
  /** `"LOCAL"`: the balancer's own connection (a health check): use the socket's addresses. */
  command: "PROXY" | "LOCAL";
  /** `"UNSPEC"` for v1 `UNKNOWN`, v2 UNSPEC and every LOCAL header: no addresses then. */
  family: "INET" | "INET6" | "UNIX" | "UNSPEC";
  /** The client's address (INET, INET6; a path for UNIX). */
  sourceAddress?: string;
  sourcePort?: number;
  /** The address the client connected to (the balancer's frontend). */
  destinationAddress?: string;
  destinationPort?: number;
  /** Every v2 TLV in wire order, unknown ones included; `[]` when none (always for v1). */
  tlvs: Array<[type: number, value: Uint8Array]>;
  /** `PP2_TYPE_ALPN` (0x01), e.g. `"h2"`. */
  alpn?: string;
  /** `PP2_TYPE_AUTHORITY` (0x02): the host name the client asked for (TLS SNI). */
  authority?: string;
  /** `PP2_TYPE_UNIQUE_ID` (0x05): the balancer's id of the connection (at most 128 bytes). */
  uniqueId?: Uint8Array;
  /** `PP2_TYPE_SSL` (0x20). */
  ssl?: ProxySsl;
  /** `PP2_TYPE_NETNS` (0x30): the balancer's network namespace name. */
  netns?: string;
}

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

const SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "
const CR = 0x0d;
const LF = 0x0a;
const NO_TLVS: Array<[number, Uint8Array]> = [];
const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * A copy of `bytes[start, end)`. Not `bytes.slice()`: on a Buffer (what Bun's `data` hands over)
 * that is a view, which would pin the whole chunk and share its memory.
 */
function copyOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes, start, end);
}

function bad(info: string): never {
  throw new ProxyHeaderError(info);
}

/**
 * Parses the PROXY header at the start of `bytes` (everything received so far). Returns the header
 * and its length in bytes (what follows it is the connection's own data), or `"incomplete"` when
 * more bytes are needed. Throws {@link ProxyHeaderError} (`ERR_PROXY_HEADER`) as soon as the bytes
 * cannot start a valid header ({@link ArgumentError} when `bytes` is not a Uint8Array). Pure: call
 * it again with the longer buffer on every read.
 *
 * @example
 * const r = parseProxyHeader(new TextEncoder().encode("PROXY TCP4 10.0.0.1 10.0.0.2 5000 443\r\nhello"));
 * if (r !== "incomplete") r.header.sourceAddress; // "10.0.0.1", and r.length === 39
 */
export function parseProxyHeader(bytes: Uint8Array): { header: ProxyHeader; length: number } | "incomplete" {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError("bytes", "a Uint8Array", bytes);
  if (bytes.length === 0) return "incomplete";
  const first = bytes[0];
  if (first === CR) return parseV2(bytes);
  if (first === 0x50) return parseV1(bytes);
  return bad('not a PROXY protocol header (neither a "PROXY" line nor the v2 signature)');
}

// ---------------------------------------------------------------- v1

function parseV1(bytes: Uint8Array): { header: ProxyHeader; length: number } | "incomplete" {
  const n = bytes.length;
  const prefix = Math.min(n, V1_PREFIX.length);
  for (let i = 1; i < prefix; i++) if (bytes[i] !== V1_PREFIX[i]) return bad('v1: not a "PROXY " line');
  const limit = Math.min(n, MAX_V1_LENGTH);
  let lf = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = bytes[i];
    if (c === LF) {
      if (bytes[i - 1] !== CR) return bad("v1: a line feed without a carriage return");
      lf = i;
      break;
    }
    if (c === CR && i + 1 < n && bytes[i + 1] !== LF) return bad("v1: a carriage return without a line feed");
  }
  if (lf === -1) {
    if (n >= MAX_V1_LENGTH) return bad(`v1: no CRLF within ${MAX_V1_LENGTH} bytes`);
    return "incomplete";
  }
  const line = String.fromCharCode.apply(null, bytes.subarray(0, lf - 1) as unknown as number[]);
  const length = lf + 1;
  if (line === "PROXY UNKNOWN" || line.startsWith("PROXY UNKNOWN ")) {
    return { header: { version: 1, command: "PROXY", family: "UNSPEC", tlvs: NO_TLVS.slice() }, length };
  }
  const parts = line.split(" ");
  if (parts.length !== 6) return bad("v1: expected PROXY TCP4|TCP6 source destination sport dport");
  const proto = parts[1];
  let family: "INET" | "INET6";
  if (proto === "TCP4") {
    if (parseIPv4(parts[2]!) === undefined || parseIPv4(parts[3]!) === undefined) {
      return bad("v1: a TCP4 address is not a dotted quad");
    }
    family = "INET";
  } else if (proto === "TCP6") {
    const source = parseIPv6(parts[2]!);
    const destination = parseIPv6(parts[3]!);
    if (source === undefined || destination === undefined) return bad("v1: a TCP6 address is not IPv6");
    parts[2] = formatIPv6(source);
    parts[3] = formatIPv6(destination);
    family = "INET6";
  } else {
    return bad('v1: the protocol is not "TCP4", "TCP6" or "UNKNOWN"');
  }
  return {
    header: {
      version: 1,
      command: "PROXY",
      family,
      sourceAddress: parts[2]!,
      sourcePort: v1Port(parts[4]!),
      destinationAddress: parts[3]!,
      destinationPort: v1Port(parts[5]!),
      tlvs: NO_TLVS.slice(),
    },
    length,
  };
}

function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text))
    return bad("v1: a port is not a decimal number without leading zeros");
  const port = Number(text);
  if (port > 65535) return bad("v1: a port is above 65535");
  return port;
}

// ---------------------------------------------------------------- v2

/** Address block size per v2 family (high nibble of byte 14). */
const ADDRESS_SIZE = [0, 12, 36, 216];
const FAMILIES = ["UNSPEC", "INET", "INET6", "UNIX"] as const;

function parseV2(bytes: Uint8Array): { header: ProxyHeader; length: number } | "incomplete" {
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

function parseTlvs(
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

// ---------------------------------------------------------------- encoding

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

// ---------------------------------------------------------------- per-socket record

const headers = new WeakMap<object, ProxyHeader>();

/**
 * The PROXY header a socket arrived with (recorded by the PROXY transport before the library sees
 * the socket), or `undefined`.
 *
 * @example
 * const header = proxyHeaderOf(socket);
 * const client = header?.sourceAddress ?? socket.remoteAddress;
 */
export function proxyHeaderOf(socket: object): ProxyHeader | undefined {
  return headers.get(socket);
}

/**
 * Records `header` for `socket` (read back with {@link proxyHeaderOf}); a WeakMap, so it goes with
 * the socket.
 *
 * @example
 * setProxyHeader(socket, parsed.header);
 */
export function setProxyHeader(socket: object, header: ProxyHeader): void {
  headers.set(socket, header);
}
