/**
 * The strict IP text parsers and the RFC 5952 formatter behind PROXY headers and trusted ranges:
 * every valid form parses to the right bytes and prints canonically; every malformed one is
 * refused (a loose parser would let a bad header through, or mis-match a trusted range).
 */
import { describe, expect, test } from "bun:test";
import { formatIPv6, parseIPv4, parseIPv6 } from "../../src/proxy/address.ts";

describe("parseIPv6 + formatIPv6", () => {
  test.each([
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:db8::1", "2001:db8::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["::FFFF:a00:1", "::ffff:10.0.0.1"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["1::2:3:4:5:6:7", "1:0:2:3:4:5:6:7"], // a single zero word is not compressed
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // the longest run
    ["1:0:0:2:3:0:0:4", "1::2:3:0:0:4"], // the first of equal runs
    ["fe80::1:2", "fe80::1:2"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"],
  ])("%s → %s", (text, canonical) => {
    const bytes = parseIPv6(text);
    expect(bytes).toBeDefined();
    expect(formatIPv6(bytes!)).toBe(canonical);
  });

  test.each([
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    ":1::",
    "1:",
    ":1",
    "12345::",
    "::1.2.3",
    "g::",
    "1.2.3.4",
    "::1.2.3.04",
    "a:b:c:d:e:f:1.2.3.4:5",
    "1:2:3:4:5:6:7",
    "",
    ":",
    ":::",
  ])("%j is refused", (text) => {
    expect(parseIPv6(text)).toBeUndefined();
  });
});

describe("parseIPv4", () => {
  test("dotted quads without leading zeros", () => {
    expect(parseIPv4("1.2.3.4")).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(parseIPv4("0.0.0.0")).toEqual(Uint8Array.of(0, 0, 0, 0));
    expect(parseIPv4("255.255.255.255")).toEqual(Uint8Array.of(255, 255, 255, 255));
  });

  test.each([
    "01.2.3.4",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.",
    "1..2.3",
    "1.2.3.4.5",
    "",
    "1.2.3.a",
    " 1.2.3.4",
    "1.2.3.1000",
  ])("%j is refused", (text) => {
    expect(parseIPv4(text)).toBeUndefined();
  });
});
