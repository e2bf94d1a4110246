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
 * Layout: this module holds the header's types, {@link parseProxyHeader} (which picks the version)
 * and the per-socket record; `parse-v1.ts`, `parse-v2.ts` and `tlvs.ts` parse, `encode.ts` encodes,
 * `wire.ts` holds what they share. Everything public is importable from here.
 *
 * @module
 */
import { ArgumentError } from "../errors.ts";
import { parseV1 } from "./parse-v1.ts";
import { parseV2 } from "./parse-v2.ts";
import { bad, CR } from "./wire.ts";

export { encodeProxyHeader, type ProxyHeaderInit } from "./encode.ts";
export { MAX_V1_LENGTH, MAX_V2_LENGTH, PP2_TYPE } from "./wire.ts";

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
