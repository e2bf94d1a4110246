/**
 * The server option `proxyProtocol`, validated, and the trusted-source matcher (CIDR ranges over
 * IPv4, IPv6 and IPv4-mapped IPv6).
 *
 * Safe defaults, from what a hostile peer could do with each:
 * - `trusted: ["127.0.0.0/8", "::1/128"]`: a header is a claim about someone else's address, so
 *   only the balancer may make it; anyone else could pose as any client. Behind a balancer on
 *   another host, list its addresses (never `0.0.0.0/0` on a port the internet can reach).
 * - `timeoutMs: 3000`: a peer that connects and sends nothing would otherwise hold a socket (and a
 *   file descriptor) forever; a balancer sends its header in the first packet.
 * - `versions: [1, 2]`: both are safe to parse; restrict to what the balancer sends.
 *
 * @module
 */
import { OptionError } from "../errors.ts";
import { parseIP, parseIPv4, parseIPv6 } from "./address.ts";

/** A validated `proxyProtocol` server option. */
export interface ProxyOptions {
  /** PROXY protocol versions accepted. @default [1, 2] */
  versions: (1 | 2)[];
  /** Source ranges allowed to send a header (CIDR or single addresses). @default ["127.0.0.0/8", "::1/128"] */
  trusted: string[];
  /** Milliseconds a connection may take to send its complete header. @default 3000 */
  timeoutMs: number;
}

/** Default trusted ranges: loopback only. */
export const DEFAULT_TRUSTED: readonly string[] = Object.freeze(["127.0.0.0/8", "::1/128"]);
/** Default header timeout (ms). */
export const DEFAULT_PROXY_TIMEOUT_MS = 3000;

const KEYS = new Set(["versions", "trusted", "timeoutMs"]);

/**
 * Validates the `proxyProtocol` server option: `true` (the defaults), an object
 * `{ versions?, trusted?, timeoutMs? }`, or `false` / `undefined` (off: returns `undefined`).
 * Throws {@link OptionError} naming `proxyProtocol`, `proxyProtocol.versions`, `proxyProtocol.trusted[i]`
 * or `proxyProtocol.timeoutMs`.
 *
 * @example
 * proxyOptions(true); // { versions: [1, 2], trusted: ["127.0.0.0/8", "::1/128"], timeoutMs: 3000 }
 * proxyOptions({ versions: [2], trusted: ["10.0.0.0/8"] });
 */
export function proxyOptions(value: unknown): ProxyOptions | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true)
    return { versions: [1, 2], trusted: DEFAULT_TRUSTED.slice(), timeoutMs: DEFAULT_PROXY_TIMEOUT_MS };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new OptionError("proxyProtocol", "true, false or { versions?, trusted?, timeoutMs? }", value);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KEYS.has(key)) throw new OptionError(`proxyProtocol.${key}`, "a known option", record[key]);
  }
  let versions: (1 | 2)[] = [1, 2];
  if (record.versions !== undefined) {
    const v = record.versions;
    if (
      !Array.isArray(v) ||
      v.length === 0 ||
      v.some((x) => x !== 1 && x !== 2) ||
      new Set(v).size !== v.length
    ) {
      throw new OptionError("proxyProtocol.versions", "a non-empty array of 1 and/or 2", v);
    }
    versions = v.slice() as (1 | 2)[];
  }
  let trusted = DEFAULT_TRUSTED.slice();
  if (record.trusted !== undefined) {
    const t = record.trusted;
    if (!Array.isArray(t)) throw new OptionError("proxyProtocol.trusted", "an array of CIDR ranges", t);
    for (let i = 0; i < t.length; i++) {
      if (parseCidr(t[i]) === undefined) {
        throw new OptionError(
          `proxyProtocol.trusted[${i}]`,
          'an IPv4 or IPv6 address or CIDR range ("10.0.0.0/8", "fd00::/8")',
          t[i],
        );
      }
    }
    trusted = t.slice() as string[];
  }
  let timeoutMs = DEFAULT_PROXY_TIMEOUT_MS;
  if (record.timeoutMs !== undefined) {
    const ms = record.timeoutMs;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0 || ms > 2_147_483_647) {
      throw new OptionError("proxyProtocol.timeoutMs", "a positive finite number of milliseconds", ms);
    }
    timeoutMs = ms;
  }
  return { versions, trusted, timeoutMs };
}

/** A range as 16 bytes and a prefix length over them (IPv4 ranges are mapped: prefix + 96). */
interface Range {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

function parseCidr(value: unknown): Range | undefined {
  if (typeof value !== "string") return undefined;
  const slash = value.indexOf("/");
  const text = slash === -1 ? value : value.slice(0, slash);
  const v4 = parseIPv4(text);
  const v6 = v4 === undefined ? parseIPv6(text) : undefined;
  if (v4 === undefined && v6 === undefined) return undefined;
  const max = v4 === undefined ? 128 : 32;
  let bits = max;
  if (slash !== -1) {
    const p = value.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return undefined;
    bits = Number(p);
  }
  return { bytes: parseIP(text)!, bits: v4 === undefined ? bits : bits + 96 };
}

function inRange(address: Uint8Array, range: Range): boolean {
  const whole = range.bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== range.bytes[i]) return false;
  const rest = range.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole]! & mask) === (range.bytes[whole]! & mask);
}

/**
 * A matcher for trusted source addresses. IPv4 ranges also match IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`, what a dual-stack listener reports), and IPv6 ranges match mapped IPv4
 * addresses by their mapped form (`::ffff:0:0/96` matches every IPv4 client). An `undefined` address
 * (a Unix socket) is trusted: only local processes with access to the socket file can connect.
 *
 * @example
 * const trusted = trustMatcher(["10.0.0.0/8", "fd00::/8"]);
 * trusted("10.1.2.3"); // true
 * trusted("::ffff:10.1.2.3"); // true
 */
export function trustMatcher(trusted: readonly string[]): (address: string | undefined) => boolean {
  const ranges: Range[] = [];
  for (let i = 0; i < trusted.length; i++) {
    const range = parseCidr(trusted[i]);
    if (range === undefined) throw new OptionError(`trusted[${i}]`, "an address or CIDR range", trusted[i]);
    ranges.push(range);
  }
  // One address arrives per connection: cache the last few verdicts (a balancer has few addresses).
  const cache = new Map<string, boolean>();
  return (address) => {
    if (address === undefined) return true;
    const known = cache.get(address);
    if (known !== undefined) return known;
    const bytes = parseIP(address);
    const verdict = bytes !== undefined && ranges.some((r) => inRange(bytes, r));
    if (cache.size >= 256) cache.clear();
    cache.set(address, verdict);
    return verdict;
  };
}
