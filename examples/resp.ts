/**
 * RESP (the Redis serialization protocol, version 2) as a sockerl codec: `packet: resp` makes every
 * `handlePacket` one complete command (an array of bulk strings, as redis-cli, redis-benchmark and
 * every client library send them, or an inline command line such as `PING\r\n`), however TCP cut it.
 *
 * The codec answers `-N` whenever it knows how many bytes the frame needs at least (a bulk string's
 * header announces its length; an array of `n` elements needs at least 3 bytes per element still
 * missing), so the decoder neither calls it again nor copies anything before those bytes are in; it
 * answers `0` only while the first header line has not ended.
 *
 * @module
 */

import type { Codec } from "../src/index.ts";

const CR = 0x0d;
const LF = 0x0a;
/** Largest header number (array count, bulk length): redis-server's own bulk limit is 512 MiB. */
const MAX_COUNT = 512 * 1024 * 1024;
/** Longest header or inline line, in bytes: redis-server's inline limit (64 KiB). */
const MAX_LINE = 64 * 1024;

/** The peer sent bytes that are not RESP: the codec throws it, the connection ends with `FramingError`. */
export class RespProtocolError extends Error {
  override readonly name = "RespProtocolError";
}

/** Result of scanning one value: `>= 0` its end offset, `NEED_LINE` (a line has not ended), or `-N`. */
const NEED_LINE = Number.NEGATIVE_INFINITY;

/**
 * Parses the integer of a header line `b[from, cr)` (after its type byte). Signs are allowed (`-1`
 * means null for arrays and bulk strings); anything else is a protocol error.
 */
function headerInt(b: Uint8Array, from: number, cr: number): number {
  let i = from;
  let sign = 1;
  if (b[i] === 0x2d) {
    sign = -1;
    i++;
  }
  if (i === cr) throw new RespProtocolError("empty length in header");
  let n = 0;
  for (; i < cr; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) throw new RespProtocolError(`bad digit in header at byte ${i}`);
    n = n * 10 + d;
    if (n > MAX_COUNT) throw new RespProtocolError(`header number over ${MAX_COUNT}`);
  }
  return sign * n;
}

/** Offset of the `"\r"` ending the line that starts at `from`, or -1 while it has not ended. */
function lineEnd(b: Uint8Array, from: number): number {
  // Header lines are a few bytes ("$3"): a plain loop beats indexOf's call overhead on a Buffer.
  const n = b.length;
  let lf = from;
  while (lf < n && b[lf] !== LF) lf++;
  if (lf === n) {
    if (b.length - from > MAX_LINE) throw new RespProtocolError(`line over ${MAX_LINE} bytes`);
    return -1;
  }
  if (lf === from || b[lf - 1] !== CR) throw new RespProtocolError('line not ended by "\\r\\n"');
  return lf - 1;
}

/** The shortest RESP value, `+\r\n`: a lower bound for elements not yet received. */
const MIN_VALUE = 3;
/** Deepest nesting of arrays accepted (a command is one level; replies nest a few). */
const MAX_DEPTH = 32;

/** Scans one RESP value starting at `at`; see {@link NEED_LINE} for the result. */
function scanValue(b: Uint8Array, at: number, depth: number): number {
  if (at >= b.length) return -(at + MIN_VALUE);
  const type = b[at]!;
  const cr = lineEnd(b, at + 1);
  if (cr === -1) return NEED_LINE;
  const next = cr + 2;
  switch (type) {
    case 0x2b: // + simple string
    case 0x2d: // - error
    case 0x3a: // : integer
      return next;
    case 0x24: {
      // $ bulk string: header, bytes, "\r\n"
      const len = headerInt(b, at + 1, cr);
      if (len < 0) return next; // $-1: null
      const end = next + len + 2;
      if (b.length < end) return -end;
      if (b[end - 2] !== CR || b[end - 1] !== LF)
        throw new RespProtocolError('bulk string not ended by "\\r\\n"');
      return end;
    }
    case 0x2a: {
      // * array of values
      const count = headerInt(b, at + 1, cr);
      // Bounded here, so a peer cannot make the scan recurse until the stack overflows.
      if (depth >= MAX_DEPTH) throw new RespProtocolError(`arrays nested over ${MAX_DEPTH} deep`);
      let pos = next;
      for (let k = 0; k < count; k++) {
        const end = scanValue(b, pos, depth + 1);
        if (end < 0) {
          // Incomplete: answer a lower bound on the whole array (this element's end, then at least
          // MIN_VALUE bytes per element still to come), so a huge array of tiny elements is not
          // rescanned after every chunk.
          const elementEnd = end === NEED_LINE ? Math.max(b.length + 1, pos + MIN_VALUE) : -end;
          return -(elementEnd + MIN_VALUE * (count - k - 1));
        }
        pos = end;
      }
      return pos;
    }
    default:
      throw new RespProtocolError(`unknown type byte 0x${type.toString(16)}`);
  }
}

/**
 * The RESP codec: one frame is one RESP value (a client's command array, or a server's reply, so it
 * serves both sides), or one inline command line (anything not starting with a RESP type byte, ended
 * by `"\n"`).
 *
 * @example
 * ```ts
 * const server = await startServer(handler, store, 6379, { packet: resp });
 * // handlePacket(frame) → parseCommand(frame) → [Buffer("SET"), Buffer("k"), Buffer("v")]
 * ```
 */
export const resp: Codec = {
  frameLength(b: Uint8Array): number {
    const t = b[0];
    if (t !== 0x2a && t !== 0x24 && t !== 0x2b && t !== 0x2d && t !== 0x3a) {
      // Inline command (telnet, redis-benchmark's PING_INLINE): up to and including "\n".
      const lf = b.indexOf(LF);
      if (lf !== -1) return lf + 1;
      if (b.length > MAX_LINE) throw new RespProtocolError(`inline command over ${MAX_LINE} bytes`);
      return 0;
    }
    const end = scanValue(b, 0, 0);
    return end === NEED_LINE ? 0 : end;
  },
};

/**
 * The arguments of one command frame, as views of it (no copy): a RESP array of bulk strings, or an
 * inline line split on spaces.
 */
export function parseCommand(frame: Uint8Array): Uint8Array[] {
  const args: Uint8Array[] = [];
  if (frame[0] !== 0x2a) {
    let end = frame.length - 1; // the "\n"
    if (end > 0 && frame[end - 1] === CR) end--;
    let start = 0;
    for (let i = 0; i <= end; i++) {
      if (i === end || frame[i] === 0x20) {
        if (i > start) args.push(frame.subarray(start, i));
        start = i + 1;
      }
    }
    return args;
  }
  let cr = frame.indexOf(CR);
  const count = headerInt(frame, 1, cr);
  let pos = cr + 2;
  for (let k = 0; k < count; k++) {
    if (frame[pos] !== 0x24) throw new RespProtocolError("command arguments must be bulk strings");
    cr = frame.indexOf(CR, pos);
    const len = headerInt(frame, pos + 1, cr);
    pos = cr + 2;
    args.push(frame.subarray(pos, pos + Math.max(len, 0)));
    pos += Math.max(len, 0) + 2;
  }
  return args;
}

// ------------------------------------------------------------------------------------------ replies

/** `+OK\r\n`-style simple string reply (no CR or LF inside). */
export const simple = (s: string): string => `+${s}\r\n`;
/** `-ERR ...\r\n` error reply. */
export const error = (s: string): string => `-${s}\r\n`;
/** `:42\r\n` integer reply. */
export const integer = (n: number | bigint): string => `:${n}\r\n`;
/** Null bulk reply, `$-1\r\n` (GET of a missing key). */
export const NULL_BULK = "$-1\r\n";

/** `$len\r\n<bytes>\r\n` bulk string reply, as one buffer. */
export function bulk(value: Uint8Array | string): Uint8Array {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const head = `$${bytes.length}\r\n`;
  const out = Buffer.allocUnsafe(head.length + bytes.length + 2);
  out.write(head, 0, "latin1");
  out.set(bytes, head.length);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}

/** `*n\r\n` followed by `items` (each already a reply), as one buffer. */
export function array(items: Array<Uint8Array | string>): Uint8Array {
  return Buffer.concat([
    Buffer.from(`*${items.length}\r\n`),
    ...items.map((i) => (typeof i === "string" ? Buffer.from(i) : i)),
  ]);
}
