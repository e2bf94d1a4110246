/**
 * The PROXY protocol v1 parser: one text line, `PROXY TCP4|TCP6|UNKNOWN …\r\n`, at most 107 bytes.
 * The line must end with CRLF within those bytes (a lone CR or LF is bad); ports have no leading
 * zeros; `UNKNOWN` ignores the rest of its line.
 *
 * @module
 */
import { formatIPv6, parseIPv4, parseIPv6 } from "./address.ts";
import type { ProxyHeader } from "./header.ts";
import { bad, CR, LF, MAX_V1_LENGTH, NO_TLVS } from "./wire.ts";

const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "

/** Parses a v1 header at the start of `bytes` (whose first byte is `P`), or `"incomplete"`. */
export function parseV1(bytes: Uint8Array): { header: ProxyHeader; length: number } | "incomplete" {
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
