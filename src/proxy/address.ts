/**
 * IP address text ⇄ bytes, strict, for PROXY headers and trusted-range matching. IPv4 is the
 * dotted quad without leading zeros (a leading zero could mean octal to some readers, and the PROXY
 * protocol forbids it); IPv6 is RFC 4291 text (one `::`, groups of 1 to 4 hex digits, an optional
 * dotted-quad tail). Output follows RFC 5952 (lower case, the longest zero run compressed), with
 * IPv4-mapped addresses written `::ffff:a.b.c.d` as Bun reports them in `remoteAddress`.
 *
 * @module
 */

/** The 4 bytes of a dotted-quad IPv4 address, or `undefined` when `text` is not one. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const out = new Uint8Array(4);
  return readIPv4(text, 0, text.length, out, 0) ? out : undefined;
}

/** Reads a dotted quad from `text[start, end)` into `out[at..at+3]`; one pass, no allocation. */
function readIPv4(text: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2e : text.charCodeAt(i);
    if (c === 0x2e) {
      // "." (or the end): a part of 1 to 3 digits, no leading zero, at most 255
      if (digits === 0 || part > 3) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return false;
    } else {
      return false;
    }
  }
  return part === 4;
}

/** The 16 bytes of an IPv6 address, or `undefined` when `text` is not one. */
export function parseIPv6(text: string): Uint8Array | undefined {
  const n = text.length;
  if (n < 2 || n > 45) return undefined;
  const words = new Uint16Array(8);
  let count = 0; // words read
  let gap = -1; // index in `words` where "::" stood
  let i = 0;
  if (text.charCodeAt(0) === 0x3a) {
    if (text.charCodeAt(1) !== 0x3a) return undefined;
    gap = 0;
    i = 2;
    if (i === n) return new Uint8Array(16); // "::"
  }
  const out = new Uint8Array(16);
  let v4 = false;
  for (;;) {
    // One group: 1 to 4 hex digits, or a dotted quad that ends the address.
    let value = 0;
    let digits = 0;
    const groupStart = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      const d =
        c >= 0x30 && c <= 0x39
          ? c - 0x30
          : c >= 0x61 && c <= 0x66
            ? c - 87
            : c >= 0x41 && c <= 0x46
              ? c - 55
              : -1;
      if (d < 0) break;
      value = (value << 4) | d;
      if (++digits > 4) break;
      i++;
    }
    if (i < n && text.charCodeAt(i) === 0x2e) {
      if (count > 6 || !readIPv4(text, groupStart, n, out, 12)) return undefined;
      v4 = true;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return undefined;
    words[count++] = value;
    if (i === n) break;
    if (text.charCodeAt(i) !== 0x3a) return undefined;
    i++;
    if (text.charCodeAt(i) === 0x3a) {
      if (gap !== -1) return undefined; // a second "::"
      gap = count;
      i++;
      if (i === n) break;
    } else if (i === n) {
      return undefined; // a trailing single ":"
    }
  }
  const total = count + (v4 ? 2 : 0);
  if (gap === -1 ? total !== 8 : total > 7) return undefined;
  // Words before the gap stay in front; the ones after it go to the end (before a dotted quad).
  const tail = gap === -1 ? 0 : count - gap;
  const front = count - tail;
  const last = v4 ? 6 : 8;
  for (let w = 0; w < front; w++) {
    out[2 * w] = words[w]! >> 8;
    out[2 * w + 1] = words[w]! & 0xff;
  }
  for (let w = 0; w < tail; w++) {
    const to = last - tail + w;
    out[2 * to] = words[front + w]! >> 8;
    out[2 * to + 1] = words[front + w]! & 0xff;
  }
  return out;
}

/** The 16-byte form of an IPv4 or IPv6 address (IPv4 as `::ffff:a.b.c.d`), or `undefined`. */
export function parseIP(text: string): Uint8Array | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return mapIPv4(v4);
  return parseIPv6(text);
}

/** `::ffff:a.b.c.d` for the 4 bytes of an IPv4 address. */
export function mapIPv4(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/** Dotted-quad text of 4 bytes at `offset`. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 text of 16 bytes at `offset`. */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0) {
    if (words[5] === 0xffff) return `::ffff:${formatIPv4(bytes, offset + 12)}`;
  }
  // The longest run of two or more zero words becomes "::" (the first one on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  // One string, built in place (this runs per connection for IPv6 clients).
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += "::";
      i += bestLength - 1;
      continue;
    }
    if (out !== "" && !out.endsWith(":")) out += ":";
    out += words[i]!.toString(16);
  }
  return out;
}
