/**
 * The PROXY header parser and encoder (haproxy's doc/proxy-protocol.txt): every family and command
 * of v1 and v2, TLVs (known ones decoded, unknown ones kept, CRC32C checked), and each way a header
 * can be bad, which must throw ProxyHeaderError (ERR_PROXY_HEADER) and nothing else. A header that
 * is a prefix of a valid one is "incomplete", never an error.
 */
import { describe, expect, test } from "bun:test";
import { ArgumentError, ProxyHeaderError } from "../../src/errors.ts";
import { crc32c } from "../../src/proxy/crc32c.ts";
import {
  encodeProxyHeader,
  MAX_V1_LENGTH,
  type ProxyHeader,
  parseProxyHeader,
  proxyHeaderOf,
  setProxyHeader,
} from "../../src/proxy/header.ts";

const text = (s: string) => new TextEncoder().encode(s);
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v2(verCmd: number, fam: number, body: number[]): Uint8Array {
  return Uint8Array.from([...SIG, verCmd, fam, body.length >> 8, body.length & 0xff, ...body]);
}

function parsed(bytes: Uint8Array): { header: ProxyHeader; length: number } {
  const r = parseProxyHeader(bytes);
  if (r === "incomplete") throw new Error("incomplete");
  return r;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  let error: unknown;
  try {
    parseProxyHeader(bytes);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ProxyHeaderError);
  expect((error as ProxyHeaderError).code).toBe("ERR_PROXY_HEADER");
  expect((error as Error).message).toMatch(pattern);
}

describe("crc32c", () => {
  test("matches the RFC 4960 check value", () => {
    expect(crc32c(text("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  });
});

describe("v1", () => {
  test("TCP4: addresses, ports, length, and the bytes after it left alone", () => {
    const bytes = text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
    const { header, length } = parsed(bytes);
    expect(header).toEqual({
      version: 1,
      command: "PROXY",
      family: "INET",
      sourceAddress: "192.168.0.1",
      sourcePort: 56324,
      destinationAddress: "192.168.0.11",
      destinationPort: 443,
      tlvs: [],
    });
    expect(length).toBe(bytes.length - 5);
  });

  test("TCP6: addresses are normalised (RFC 5952), mapped IPv4 accepted", () => {
    const { header } = parsed(text("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:10.0.0.1 1 65535\r\n"));
    expect(header.family).toBe("INET6");
    expect(header.sourceAddress).toBe("2001:db8::1");
    expect(header.destinationAddress).toBe("::ffff:10.0.0.1");
    expect(header.destinationPort).toBe(65535);
  });

  test("UNKNOWN (short and long form) keeps no addresses", () => {
    expect(parsed(text("PROXY UNKNOWN\r\n")).header).toEqual({
      version: 1,
      command: "PROXY",
      family: "UNSPEC",
      tlvs: [],
    });
    const long = `PROXY UNKNOWN ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`;
    expect(long.length).toBe(MAX_V1_LENGTH);
    expect(parsed(text(long)).length).toBe(107);
  });

  test("the longest TCP6 line (104 bytes) parses", () => {
    const line = `PROXY TCP6 ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`;
    expect(line.length).toBe(104);
    expect(parsed(text(line)).header.sourceAddress).toBe("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  });

  test("a line without CRLF in 107 bytes is bad; shorter is incomplete", () => {
    expect(parseProxyHeader(text("PROXY UNKNOWN "))).toBe("incomplete");
    expect(parseProxyHeader(text(`PROXY UNKNOWN ${"a".repeat(92)}`))).toBe("incomplete"); // 106 bytes
    rejects(text(`PROXY UNKNOWN ${"a".repeat(93)}`), /no CRLF within 107/);
    rejects(text(`PROXY UNKNOWN ${"a".repeat(92)}\r\n`), /no CRLF within 107/); // CRLF at 107..108
  });

  test.each([
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /line feed without/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", /carriage return without/],
    ["PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", /dotted quad/],
    ["PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", /dotted quad/],
    ["PROXY TCP4 ::1 ::1 1 2\r\n", /dotted quad/],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", /not IPv6/],
    ["PROXY TCP6 1::2::3 ::1 1 2\r\n", /not IPv6/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", /leading zeros/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", /above 65535/],
    ["PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", /expected PROXY/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /expected PROXY/],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", /protocol is not/],
    ["PROXY\r\n", /not a "PROXY " line/],
    ["PROXZ TCP4", /not a "PROXY " line/],
    ["GET / HTTP/1.1\r\n", /not a PROXY protocol header/],
  ])("bad v1 %j", (line, pattern) => {
    rejects(text(line), pattern);
  });
});

describe("v2", () => {
  const inet = [127, 0, 0, 2, 10, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb];

  test("PROXY over TCP4", () => {
    const r = parsed(Uint8Array.from([...v2(0x21, 0x11, inet), 1, 2, 3]));
    expect(r.length).toBe(28);
    expect(r.header).toEqual({
      version: 2,
      command: "PROXY",
      family: "INET",
      sourceAddress: "127.0.0.2",
      sourcePort: 12345,
      destinationAddress: "10.0.0.1",
      destinationPort: 443,
      tlvs: [],
    });
  });

  test("PROXY over TCP6, UDP4 and UNIX stream", () => {
    const six = [
      ...new Array(15).fill(0),
      1,
      0x20,
      0x01,
      0x0d,
      0xb8,
      ...new Array(11).fill(0),
      2,
      0,
      80,
      0,
      81,
    ];
    expect(parsed(v2(0x21, 0x21, six)).header).toMatchObject({
      family: "INET6",
      sourceAddress: "::1",
      destinationAddress: "2001:db8::2",
      sourcePort: 80,
      destinationPort: 81,
    });
    expect(parsed(v2(0x21, 0x12, inet)).header.family).toBe("INET");
    const path = (p: string) => {
      const out = new Array(108).fill(0);
      for (let i = 0; i < p.length; i++) out[i] = p.charCodeAt(i);
      return out;
    };
    const unix = parsed(v2(0x21, 0x31, [...path("/run/a.sock"), ...path("/run/b.sock")])).header;
    expect(unix).toMatchObject({
      family: "UNIX",
      sourceAddress: "/run/a.sock",
      destinationAddress: "/run/b.sock",
    });
    expect(unix.sourcePort).toBeUndefined();
  });

  test("LOCAL: no addresses whatever the family (health checks); UNSPEC too", () => {
    expect(parsed(v2(0x20, 0x00, [])).header).toEqual({
      version: 2,
      command: "LOCAL",
      family: "UNSPEC",
      tlvs: [],
    });
    expect(parsed(v2(0x20, 0x11, inet)).header.sourceAddress).toBeUndefined();
    expect(parsed(v2(0x20, 0x11, [1, 2])).header.command).toBe("LOCAL"); // short block ignored on LOCAL
    expect(parsed(v2(0x21, 0x00, [9, 9, 9, 9]))).toMatchObject({
      length: 20,
      header: { family: "UNSPEC", tlvs: [] },
    });
    expect(parsed(v2(0x21, 0x10, inet)).header.family).toBe("UNSPEC"); // INET with UNSPEC protocol
  });

  test("TLVs: ALPN, AUTHORITY, NOOP, UNIQUE_ID, NETNS, unknown ones, in wire order", () => {
    const tlv = (t: number, v: number[]) => [t, v.length >> 8, v.length & 0xff, ...v];
    const body = [
      ...inet,
      ...tlv(0x01, [...text("h2")]),
      ...tlv(0x02, [...text("example.com")]),
      ...tlv(0x04, [0, 0, 0]),
      ...tlv(0x05, [7, 7]),
      ...tlv(0xe0, [42]),
      ...tlv(0x30, [...text("blue")]),
    ];
    const { header } = parsed(v2(0x21, 0x11, body));
    expect(header.alpn).toBe("h2");
    expect(header.authority).toBe("example.com");
    expect(header.uniqueId).toEqual(Uint8Array.of(7, 7));
    expect(header.netns).toBe("blue");
    expect(header.tlvs.map(([t]) => t)).toEqual([0x01, 0x02, 0x04, 0x05, 0xe0, 0x30]);
    expect(header.tlvs[4]![1]).toEqual(Uint8Array.of(42));
  });

  test("SSL TLV with sub-TLVs", () => {
    const sub = (t: number, s: string) => [t, 0, s.length, ...text(s)];
    const value = [
      0x07,
      0,
      0,
      0,
      0,
      ...sub(0x21, "TLSv1.3"),
      ...sub(0x22, "client"),
      ...sub(0x23, "AES"),
      0x28,
      0,
      2,
      0x30,
      0x82,
    ];
    const body = [...inet, 0x20, 0, value.length, ...value];
    const ssl = parsed(v2(0x21, 0x11, body)).header.ssl;
    expect(ssl).toMatchObject({ client: 7, verify: 0, version: "TLSv1.3", cn: "client", cipher: "AES" });
    expect(ssl?.clientCert).toEqual(Uint8Array.of(0x30, 0x82));
    expect(ssl?.tlvs.length).toBe(4);
  });

  test("CRC32C: a right checksum passes, a wrong one is a bad header", () => {
    const good = encodeProxyHeader({
      version: 2,
      sourceAddress: "10.1.1.1",
      sourcePort: 1,
      destinationAddress: "10.2.2.2",
      destinationPort: 2,
      crc32c: true,
    });
    expect(parsed(good).header.tlvs[0]![0]).toBe(0x03);
    const broken = good.slice();
    broken[17] = broken[17]! ^ 1; // flip an address bit
    rejects(broken, /CRC32C mismatch/);
  });

  test("CRC32C on a Buffer (Bun's chunks): checking leaves the input untouched", () => {
    // Captured from HAProxy 2.6: a LOCAL health check with `proxy-v2-options crc32c`, then "PING\r\n".
    const bytes = Buffer.from("0d0a0d0a000d0a515549540a20000007030004a9b87e8f50494e470d0a", "hex");
    const before = Buffer.from(bytes);
    const r = parsed(bytes);
    expect(r.header.command).toBe("LOCAL");
    expect(r.length).toBe(23);
    expect(bytes).toEqual(before);
  });

  test.each([
    [Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0b]), /wrong signature/],
    [v2(0x11, 0x11, []), /version 1/],
    [v2(0x22, 0x11, []), /unknown command 2/],
    [v2(0x21, 0x41, []), /unknown address family 4/],
    [v2(0x21, 0x13, []), /unknown transport protocol 3/],
    [v2(0x21, 0x11, [1, 2, 3]), /INET needs 12 address bytes/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 1, 0]), /truncated TLV/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 1, 0, 5, 1]), /runs past the header/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 3, 0, 2, 1, 1]), /CRC32C TLV of 2 bytes/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 5, 0, 129, ...new Array(129).fill(1)]), /UNIQUE_ID of 129/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 0x20, 0, 2, 1, 0]), /SSL TLV of 2 bytes/],
    [v2(0x21, 0x11, [...new Array(12).fill(0), 0x20, 0, 7, 1, 0, 0, 0, 0, 0x21, 0]), /truncated SSL sub-TLV/],
  ])("bad v2 header %#", (bytes, pattern) => {
    rejects(bytes, pattern);
  });

  test("a prefix of a v2 header is incomplete", () => {
    const full = v2(0x21, 0x11, inet);
    for (let i = 0; i < full.length; i++) expect(parseProxyHeader(full.subarray(0, i))).toBe("incomplete");
  });
});

describe("encodeProxyHeader", () => {
  test("v1 TCP4, TCP6 (a mixed pair is mapped), LOCAL as UNKNOWN", () => {
    const dec = (b: Uint8Array) => new TextDecoder().decode(b);
    const base = { sourcePort: 5000, destinationPort: 443 };
    expect(
      dec(
        encodeProxyHeader({ version: 1, sourceAddress: "10.0.0.1", destinationAddress: "10.0.0.2", ...base }),
      ),
    ).toBe("PROXY TCP4 10.0.0.1 10.0.0.2 5000 443\r\n");
    expect(
      dec(encodeProxyHeader({ version: 1, sourceAddress: "10.0.0.1", destinationAddress: "::1", ...base })),
    ).toBe("PROXY TCP6 ::ffff:10.0.0.1 ::1 5000 443\r\n");
    expect(dec(encodeProxyHeader({ version: 1, command: "LOCAL" }))).toBe("PROXY UNKNOWN\r\n");
  });

  test("round trips through the parser (v2 INET, INET6, UNIX, LOCAL with TLVs)", () => {
    const cases = [
      {
        version: 2 as const,
        sourceAddress: "1.2.3.4",
        sourcePort: 1,
        destinationAddress: "5.6.7.8",
        destinationPort: 2,
      },
      {
        version: 2 as const,
        sourceAddress: "fe80::1",
        sourcePort: 3,
        destinationAddress: "::",
        destinationPort: 4,
      },
      { version: 2 as const, sourceAddress: "/tmp/a", destinationAddress: "/tmp/b" },
    ];
    for (const c of cases) {
      const h = parsed(encodeProxyHeader(c)).header;
      expect(h.sourceAddress).toBe(c.sourceAddress);
      expect(h.destinationAddress).toBe(c.destinationAddress);
      expect(h.sourcePort).toBe(c.sourcePort);
    }
    const local = parsed(
      encodeProxyHeader({ version: 2, command: "LOCAL", tlvs: [[0xe1, text("x")]], crc32c: true }),
    ).header;
    expect(local.command).toBe("LOCAL");
    expect(local.tlvs.map(([t]) => t)).toEqual([0xe1, 0x03]);
  });

  test("bad arguments are ArgumentErrors naming the field", () => {
    const bad = (o: unknown, field: string) => {
      try {
        encodeProxyHeader(o as never);
        throw new Error("no throw");
      } catch (e) {
        expect(e).toBeInstanceOf(ArgumentError);
        expect((e as ArgumentError).option).toBe(field);
      }
    };
    bad({ version: 3 }, "version");
    bad(
      { version: 1, sourceAddress: "x", destinationAddress: "1.2.3.4", sourcePort: 1, destinationPort: 1 },
      "sourceAddress",
    );
    bad(
      {
        version: 1,
        sourceAddress: "1.2.3.4",
        destinationAddress: "1.2.3.4",
        sourcePort: 70000,
        destinationPort: 1,
      },
      "sourcePort",
    );
    bad({ version: 2, command: "LOCAL", tlvs: [[300, new Uint8Array(0)]] }, "tlvs[0]");
    bad({ version: 1, command: "LOCAL", tlvs: [[1, new Uint8Array(0)]] }, "tlvs");
  });
});

test("proxyHeaderOf reads what setProxyHeader recorded, per object", () => {
  const a = {};
  const header = parsed(text("PROXY UNKNOWN\r\n")).header;
  setProxyHeader(a, header);
  expect(proxyHeaderOf(a)).toBe(header);
  expect(proxyHeaderOf({})).toBeUndefined();
});
