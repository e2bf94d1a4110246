/**
 * The server name (SNI) of a TLS ClientHello, read incrementally from the bytes as they arrive: pure,
 * no socket. The `sni` listener feeds it every chunk it receives before it picks a certificate.
 *
 * ```text
 *   chunk ─► record layer: 5-byte header (type 0x16, version 0x03xx, length 1..16384), then fragment
 *                │ each fragment byte is copied once into the handshake buffer (grown by doubling)
 *                ▼ at the end of each record
 *            handshake layer: type 0x01 (client_hello), 24-bit length (at most MAX_HELLO)
 *                │ once the message is complete (whole records)
 *                ▼ parsed once
 *            body: version, random, session id, cipher suites, compression, extensions → server_name
 * ```
 *
 * The work is linear in the bytes, whatever the chunking: the reader keeps its position and never
 * looks at a byte twice (a peer that sends its hello one byte per segment costs what one segment
 * would, per byte). Memory grows with the bytes received, never with what a header claims.
 *
 * @module
 */

/** More bytes are needed. */
export const INCOMPLETE = 0;
/** The bytes are not a TLS ClientHello (the TLS layer then fails the handshake). */
export const INVALID = 1;

/** What {@link ClientHelloReader.push} and {@link readServerName} return. */
export type HelloResult = string | undefined | typeof INCOMPLETE | typeof INVALID;

/** Longest ClientHello handshake message accepted (bytes, header included). */
export const MAX_HELLO = 64 * 1024;

/** Largest TLS plaintext record fragment (RFC 8446 §5.1: 2^14). */
const MAX_RECORD = 16384;

/**
 * Reads the SNI host name of a ClientHello from chunks pushed in arrival order.
 *
 * @example
 * const reader = new ClientHelloReader();
 * for (const chunk of chunks) {
 *   const result = reader.push(chunk);
 *   if (result !== INCOMPLETE) return result; // a lower-case name, undefined (no SNI) or INVALID
 * }
 */
export class ClientHelloReader {
  /** Bytes pushed so far (all of them, also those past the hello). */
  bytes = 0;
  #result: HelloResult = INCOMPLETE;
  /** The record header being read (5 bytes) and how much of it has arrived. */
  readonly #header = new Uint8Array(5);
  #headerFill = 0;
  /** Fragment bytes of the current record still to come (0: a header is next). */
  #recordLeft = 0;
  /** The handshake message reassembled from the record fragments. */
  #hs = new Uint8Array(512);
  #hsLength = 0;
  /** Length of the handshake message with its 4-byte header; -1 until known. */
  #needed = -1;

  /** The result so far: {@link INCOMPLETE} until the hello is complete or proven invalid. */
  get result(): HelloResult {
    return this.#result;
  }

  /**
   * Takes the next chunk (not kept: the caller keeps the bytes it must pass on). Returns the server
   * name (lower-case), `undefined` when the hello has none, {@link INVALID} or {@link INCOMPLETE}.
   * Once decided, the result never changes and further chunks are only counted.
   */
  push(chunk: Uint8Array): HelloResult {
    this.bytes += chunk.byteLength;
    if (this.#result !== INCOMPLETE) return this.#result;
    const n = chunk.byteLength;
    let i = 0;
    while (i < n) {
      if (this.#recordLeft === 0) {
        // Record header: at most 5 bytes, copied one by one (no subarray per chunk).
        while (this.#headerFill < 5 && i < n) this.#header[this.#headerFill++] = chunk[i++]!;
        if (this.#headerFill < 5) break;
        this.#headerFill = 0;
        const h = this.#header;
        if (h[0] !== 0x16 || h[1] !== 0x03) return this.#decide(INVALID); // handshake record, TLS 1.x
        const length = (h[3]! << 8) | h[4]!;
        if (length === 0 || length > MAX_RECORD) return this.#decide(INVALID);
        this.#recordLeft = length;
        continue;
      }
      const take = Math.min(this.#recordLeft, n - i);
      this.#append(chunk, i, take);
      i += take;
      this.#recordLeft -= take;
      if (this.#recordLeft === 0) {
        const result = this.#recordDone();
        if (result !== INCOMPLETE) return this.#decide(result);
      }
    }
    return INCOMPLETE;
  }

  /** At the end of a record: check the handshake header once it is in, parse once the message is. */
  #recordDone(): HelloResult {
    const hs = this.#hs;
    if (this.#needed < 0) {
      if (this.#hsLength < 4) return INCOMPLETE;
      if (hs[0] !== 0x01) return INVALID; // client_hello
      this.#needed = 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!);
      if (this.#needed > MAX_HELLO) return INVALID;
    }
    if (this.#hsLength < this.#needed) return INCOMPLETE;
    return parseHelloBody(hs.subarray(4, this.#needed));
  }

  #append(chunk: Uint8Array, from: number, count: number): void {
    const end = this.#hsLength + count;
    if (end > this.#hs.byteLength) {
      // Doubling keeps the copies linear overall; the size follows the bytes received.
      let size = this.#hs.byteLength * 2;
      while (size < end) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#hs.subarray(0, this.#hsLength));
      this.#hs = grown;
    }
    this.#hs.set(chunk.subarray(from, from + count), this.#hsLength);
    this.#hsLength = end;
  }

  #decide(result: HelloResult): HelloResult {
    this.#result = result;
    this.#hs = EMPTY; // the message is no longer needed
    return result;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The SNI host name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), lower-cased; `undefined`
 * when the hello has none; {@link INCOMPLETE} (0) when more bytes are needed; {@link INVALID} (1)
 * when the bytes are not a ClientHello. The hello may span several records.
 *
 * @example
 * readServerName(bytes); // "alt.example"
 */
export function readServerName(bytes: Uint8Array): HelloResult {
  return new ClientHelloReader().push(bytes);
}

/** The server name in a complete ClientHello body (the handshake message without its header). */
function parseHelloBody(body: Uint8Array): string | undefined | typeof INVALID {
  const end = body.byteLength;
  let p = 2 + 32; // legacy_version, random
  if (p >= end) return INVALID;
  p += 1 + body[p]!; // legacy_session_id
  if (p + 2 > end) return INVALID;
  p += 2 + ((body[p]! << 8) | body[p + 1]!); // cipher_suites
  if (p >= end) return INVALID;
  p += 1 + body[p]!; // legacy_compression_methods
  if (p === end) return undefined; // no extensions
  if (p + 2 > end) return INVALID;
  const extensionsEnd = p + 2 + ((body[p]! << 8) | body[p + 1]!);
  if (extensionsEnd > end) return INVALID;
  p += 2;
  while (p + 4 <= extensionsEnd) {
    const type = (body[p]! << 8) | body[p + 1]!;
    const length = (body[p + 2]! << 8) | body[p + 3]!;
    p += 4;
    if (p + length > extensionsEnd) return INVALID;
    if (type === 0x0000) return serverName(body, p, p + length);
    p += length;
  }
  return undefined;
}

/** server_name extension data: list length, then (name_type, length, name)*; the first host_name. */
function serverName(body: Uint8Array, start: number, listEnd: number): string | undefined | typeof INVALID {
  let q = start + 2;
  while (q + 3 <= listEnd) {
    const nameType = body[q]!;
    const nameLength = (body[q + 1]! << 8) | body[q + 2]!;
    q += 3;
    if (q + nameLength > listEnd) return INVALID;
    if (nameType === 0) {
      return Buffer.from(body.buffer, body.byteOffset + q, nameLength)
        .toString("latin1")
        .toLowerCase();
    }
    q += nameLength;
  }
  return undefined;
}
