/**
 * RESP2 for the example Redis client (examples/redis-client.ts): commands encoded as arrays of bulk
 * strings, and an incremental reply parser (replies split anywhere across chunks).
 *
 * @module
 */
import { SockerlError } from "../src/index.ts";

/** A parsed reply: simple and bulk strings, integers, nil, arrays (an error inside an array stays a value). */
export type RedisReply = string | number | null | RedisError | RedisReply[];

/** An argument of a command: strings and numbers are sent as their UTF-8 text, bytes as they are. */
export type RedisArg = string | number | Uint8Array;

/**
 * An error reply from the server (`-WRONGTYPE Operation against a key ...`), or bytes that are not
 * RESP. `kind` is the reply's first word (`"ERR"`, `"WRONGTYPE"`, ...).
 */
export class RedisError extends SockerlError {
  /** The first word of the error reply, `"PROTOCOL"` for bytes that are not RESP. */
  readonly kind: string;
  constructor(message: string, code: "ERR_REDIS" | "ERR_REDIS_PROTOCOL" = "ERR_REDIS") {
    super(message, { code, reason: code === "ERR_REDIS" ? "redis_error" : "redis_protocol" });
    const space = message.indexOf(" ");
    this.kind = code === "ERR_REDIS" ? (space < 0 ? message : message.slice(0, space)) : "PROTOCOL";
  }
}

// ------------------------------------------------------------------------------------------ encode

const encoder = new TextEncoder();

/**
 * Encodes one command as a RESP array of bulk strings. Lengths count UTF-8 bytes, not characters.
 *
 * Commands of text (and numbers) are written byte by byte into a shared 64 KiB slab, and each is a
 * view of its part: for the short keys and values of most commands that is about half the cost of
 * building a string and encoding it with `TextEncoder` (Bun 1.4.5), which flattens the string and
 * allocates a buffer per command. A slab is only written forward, never reused: a command still
 * queued for the socket keeps its bytes. Big commands and binary arguments get a buffer of their own.
 *
 * @example
 * new TextDecoder().decode(encodeCommand(["SET", "k", "v"])); // "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
 */
export function encodeCommand(args: readonly RedisArg[]): Uint8Array {
  return encodeArgs(undefined, args);
}

const SLAB_BYTES = 64 * 1024;
/** Commands bigger than this (at worst: 3 bytes per UTF-16 unit) are not put in the slab. */
const SLAB_COMMAND_MAX = SLAB_BYTES / 8;
let slab = new Uint8Array(SLAB_BYTES);
let slabAt = 0;

/**
 * {@link encodeCommand} of `head` (when given) then `args`: `call(command, ...args)` needs no joined
 * array.
 *
 * @example
 * encodeArgs("GET", ["greeting"]); // the bytes of ["GET", "greeting"]
 */
export function encodeArgs(head: RedisArg | undefined, args: readonly RedisArg[]): Uint8Array {
  // The most bytes the command can take: `$`, up to 16 digits, CRLF, the data, CRLF per argument.
  let worst = 24;
  if (head !== undefined) {
    if (typeof head === "object") return encodeBinary(head, args);
    worst += typeof head === "string" ? head.length * 3 + 24 : 48;
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (typeof arg === "object") return encodeBinary(head, args);
    worst += typeof arg === "string" ? arg.length * 3 + 24 : 48;
  }
  if (worst > SLAB_COMMAND_MAX) return encodeText(head, args);
  if (slabAt + worst > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabAt = 0;
  }
  const buf = slab;
  const start = slabAt;
  buf[start] = 42; // *
  let at = writeDecimal(buf, start + 1, args.length + (head === undefined ? 0 : 1));
  buf[at++] = 13;
  buf[at++] = 10;
  if (head !== undefined) at = writeBulk(buf, at, typeof head === "string" ? head : String(head));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string | number;
    at = writeBulk(buf, at, typeof arg === "string" ? arg : String(arg));
  }
  slabAt = at;
  return buf.subarray(start, at);
}

/** Writes `$<bytes>\r\n<s>\r\n` at `at` (room for the worst case is there); returns the end. */
function writeBulk(buf: Uint8Array, at: number, s: string): number {
  const n = s.length;
  buf[at] = 36; // $
  // Assume ASCII (one byte per character) until a character says otherwise.
  let data = at + 3 + decimalDigits(n);
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128) break;
    buf[data + i] = c;
  }
  let bytes = n;
  if (i < n) {
    // Not ASCII: encode in place, with room for the longest length, then close any gap.
    const room = decimalDigits(3 * n);
    const wide = at + 3 + room;
    bytes = encoder.encodeInto(s, buf.subarray(wide)).written;
    data = at + 3 + decimalDigits(bytes);
    if (data !== wide) buf.copyWithin(data, wide, wide + bytes);
  }
  writeDecimal(buf, at + 1, bytes);
  buf[data - 2] = 13;
  buf[data - 1] = 10;
  buf[data + bytes] = 13;
  buf[data + bytes + 1] = 10;
  return data + bytes + 2;
}

function decimalDigits(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

/** Writes `n` (an integer >= 0) in decimal at `at`; returns the end. */
function writeDecimal(buf: Uint8Array, at: number, n: number): number {
  const end = at + decimalDigits(n);
  for (let i = end - 1; i >= at; i--) {
    buf[i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}

/** A command too big for the slab: one string, encoded once. */
function encodeText(head: RedisArg | undefined, args: readonly RedisArg[]): Uint8Array {
  let text = `*${args.length + (head === undefined ? 0 : 1)}\r\n`;
  for (const arg of head === undefined ? args : [head, ...args]) {
    const s = String(arg);
    text += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return encoder.encode(text);
}

function encodeBinary(head: RedisArg | undefined, args: readonly RedisArg[]): Uint8Array {
  const all = head === undefined ? args : [head, ...args];
  const parts: Uint8Array[] = [encoder.encode(`*${all.length}\r\n`)];
  for (const arg of all) {
    const bytes = typeof arg === "object" ? arg : encoder.encode(String(arg));
    parts.push(encoder.encode(`$${bytes.byteLength}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = new Uint8Array([13, 10]);

// ------------------------------------------------------------------------------------------- parse

const EMPTY = Buffer.alloc(0);
/** Returned by the parser when the reply at the cursor is not complete yet. */
const INCOMPLETE: unique symbol = Symbol("incomplete");

/**
 * An incremental RESP2 reply parser. Feed it chunks as they arrive; it calls back once per complete
 * reply, in order. A reply cut by a chunk boundary is kept (only its bytes) and parsed again from its
 * start when the next chunk arrives, so a split costs one copy of that reply's bytes.
 *
 * @example
 * const parser = new RespParser();
 * parser.feed(Buffer.from("+OK\r\n:4"), console.log); // "OK"
 * parser.feed(Buffer.from("2\r\n"), console.log); // 42
 */
export class RespParser {
  #buf: Buffer = EMPTY;
  #pos = 0;
  /** Chunks that arrived while the reply at `#pos` was still short of `#need` bytes, not joined yet. */
  #parts: Buffer[] | undefined = undefined;
  #partsBytes = 0;
  /** Bytes (from its first) the pending reply needs at least: known once a bulk string's length is read. */
  #need = 0;

  /** Parses `chunk` (after what was left over); throws a `RedisError` (`ERR_REDIS_PROTOCOL`) on bytes that are not RESP. */
  feed(chunk: Uint8Array, onReply: (reply: RedisReply) => void): void {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const left = this.#buf.length - this.#pos;
    if (left > 0) {
      // A big value arrives in many chunks: join them once it can be complete, not at every chunk
      // (which copied the value so far each time: quadratic in its size).
      if (left + this.#partsBytes + buf.length < this.#need) {
        (this.#parts ??= []).push(buf);
        this.#partsBytes += buf.length;
        return;
      }
      const parts = this.#parts;
      buf =
        parts === undefined
          ? Buffer.concat([this.#buf.subarray(this.#pos), buf])
          : Buffer.concat([this.#buf.subarray(this.#pos), ...parts, buf]);
      this.#parts = undefined;
      this.#partsBytes = 0;
    }
    this.#buf = buf;
    this.#pos = 0;
    while (this.#pos < buf.length) {
      const start = this.#pos;
      this.#need = 0;
      const reply = this.#parse(buf);
      if (reply === INCOMPLETE) {
        this.#pos = start;
        this.#need -= start;
        return;
      }
      onReply(reply);
    }
    this.#buf = EMPTY;
    this.#pos = 0;
  }

  /** Bytes held for a reply not complete yet. */
  get pendingBytes(): number {
    return this.#buf.length - this.#pos + this.#partsBytes;
  }

  #parse(buf: Buffer): RedisReply | typeof INCOMPLETE {
    const pos = this.#pos;
    // The line's CR, found in JS: lines are a few bytes, shorter than a native indexOf call costs.
    let cr = pos + 1;
    while (cr < buf.length && buf[cr] !== 13) cr++;
    if (cr + 1 >= buf.length) return INCOMPLETE;
    const type = buf[pos];
    switch (type) {
      case 43: // + simple string
        this.#pos = cr + 2;
        if (cr === pos + 3 && buf[pos + 1] === 79 && buf[pos + 2] === 75) return "OK"; // no decoding
        return buf.toString("latin1", pos + 1, cr);
      case 45: // - error
        this.#pos = cr + 2;
        return new RedisError(buf.toString("utf8", pos + 1, cr));
      case 58: // : integer
        this.#pos = cr + 2;
        return readInteger(buf, pos + 1, cr);
      case 36: {
        // $ bulk string
        const length = readInteger(buf, pos + 1, cr);
        if (length < 0) {
          this.#pos = cr + 2;
          return null;
        }
        const end = cr + 2 + length;
        if (end + 2 > buf.length) {
          this.#need = end + 2;
          return INCOMPLETE;
        }
        this.#pos = end + 2;
        return decodeText(buf, cr + 2, end);
      }
      case 42: {
        // * array
        const count = readInteger(buf, pos + 1, cr);
        this.#pos = cr + 2;
        if (count < 0) return null;
        const items: RedisReply[] = [];
        for (let i = 0; i < count; i++) {
          if (this.#pos >= buf.length) return INCOMPLETE;
          const item = this.#parse(buf);
          if (item === INCOMPLETE) return INCOMPLETE;
          items.push(item);
        }
        return items;
      }
      default:
        throw new RedisError(`Not a RESP reply: byte ${type} at offset ${pos}`, "ERR_REDIS_PROTOCOL");
    }
  }
}

/**
 * UTF-8 text of `buf[start, end)`. Short ASCII values (most keys and values) are decoded as Latin-1,
 * which is the same text for ASCII and half the cost of the UTF-8 decoder in Bun 1.4.5.
 */
function decodeText(buf: Buffer, start: number, end: number): string {
  if (end - start > 64) return buf.toString("utf8", start, end);
  let bits = 0;
  for (let i = start; i < end; i++) bits |= buf[i] as number;
  return buf.toString(bits < 128 ? "latin1" : "utf8", start, end);
}

/** A decimal integer between `start` and `end` (digits, an optional leading `-`). */
function readInteger(buf: Buffer, start: number, end: number): number {
  let i = start;
  let sign = 1;
  if (buf[i] === 45) {
    sign = -1;
    i++;
  }
  if (i >= end) throw new RedisError("Empty integer in a RESP reply", "ERR_REDIS_PROTOCOL");
  let n = 0;
  for (; i < end; i++) {
    const digit = (buf[i] as number) - 48;
    if (digit < 0 || digit > 9) throw new RedisError("Bad integer in a RESP reply", "ERR_REDIS_PROTOCOL");
    n = n * 10 + digit;
  }
  return sign * n;
}
