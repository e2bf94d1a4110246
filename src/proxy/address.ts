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
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

/** The 16 bytes of an IPv6 address, or `undefined` when `text` is not one. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const double = text.indexOf("::");
  if (double !== -1 && text.indexOf("::", double + 1) !== -1) return undefined;
  const head = double === -1 ? text : text.slice(0, double);
  const tail = double === -1 ? "" : text.slice(double + 2);
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === "" ? [] : tail.split(":");
  const words: number[] = [];
  const all = [...headGroups, ...tailGroups];
  // A dotted quad may end the address (`::ffff:1.2.3.4`): two 16-bit words.
  let v4: Uint8Array | undefined;
  const last = all[all.length - 1];
  if (last?.includes(".")) {
    v4 = parseIPv4(last);
    if (v4 === undefined) return undefined;
    if (tailGroups.length > 0) tailGroups.pop();
    else headGroups.pop();
  }
  const groupWords = (groups: string[]): number[] | undefined => {
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const h = groupWords(headGroups);
  const t = groupWords(tailGroups);
  if (h === undefined || t === undefined) return undefined;
  const explicit = h.length + t.length + (v4 === undefined ? 0 : 2);
  if (double === -1 ? explicit !== 8 : explicit > 7) return undefined;
  words.push(...h);
  for (let i = explicit; i < 8; i++) words.push(0);
  words.push(...t);
  const out = new Uint8Array(16);
  for (let i = 0; i < words.length; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  if (v4 !== undefined) out.set(v4, 12);
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
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}
