/**
 * The `proxyProtocol` server option: `true` means the safe defaults (both versions, loopback only,
 * 3 s), `false`/undefined means off, and every bad value is an OptionError naming the exact field.
 * Trusted ranges match IPv4, IPv6 and IPv4-mapped IPv6 addresses by CIDR prefix.
 */
import { describe, expect, test } from "bun:test";
import { OptionError } from "../../src/errors.ts";
import { proxyOptions, trustMatcher } from "../../src/proxy/options.ts";

describe("proxyOptions", () => {
  test("true gives the defaults; false and undefined turn it off", () => {
    expect(proxyOptions(true)).toEqual({
      versions: [1, 2],
      trusted: ["127.0.0.0/8", "::1/128"],
      timeoutMs: 3000,
    });
    expect(proxyOptions(false)).toBeUndefined();
    expect(proxyOptions(undefined)).toBeUndefined();
    expect(proxyOptions({})).toEqual(proxyOptions(true));
  });

  test("fields override the defaults one by one", () => {
    expect(proxyOptions({ versions: [2], trusted: ["10.0.0.0/8", "fd00::1"], timeoutMs: 50 })).toEqual({
      versions: [2],
      trusted: ["10.0.0.0/8", "fd00::1"],
      timeoutMs: 50,
    });
  });

  test.each([
    ["x", "proxyProtocol"],
    [null, "proxyProtocol"],
    [[1], "proxyProtocol"],
    [{ version: [1] }, "proxyProtocol.version"],
    [{ versions: [] }, "proxyProtocol.versions"],
    [{ versions: [3] }, "proxyProtocol.versions"],
    [{ versions: [1, 1] }, "proxyProtocol.versions"],
    [{ trusted: "127.0.0.1" }, "proxyProtocol.trusted"],
    [{ trusted: ["127.0.0.1", "10.0.0.0/33"] }, "proxyProtocol.trusted[1]"],
    [{ trusted: ["::1/129"] }, "proxyProtocol.trusted[0]"],
    [{ trusted: ["localhost"] }, "proxyProtocol.trusted[0]"],
    [{ timeoutMs: 0 }, "proxyProtocol.timeoutMs"],
    [{ timeoutMs: Number.POSITIVE_INFINITY }, "proxyProtocol.timeoutMs"],
  ])("%j is an OptionError naming %s", (value, option) => {
    try {
      proxyOptions(value);
      throw new Error("no throw");
    } catch (e) {
      expect(e).toBeInstanceOf(OptionError);
      expect((e as OptionError).code).toBe("ERR_OPTION");
      expect((e as OptionError).option).toBe(option);
    }
  });
});

describe("trustMatcher", () => {
  test("IPv4 ranges match IPv4 and IPv4-mapped IPv6", () => {
    const t = trustMatcher(["127.0.0.0/8", "192.168.1.128/25"]);
    expect(t("127.0.0.1")).toBe(true);
    expect(t("127.255.0.9")).toBe(true);
    expect(t("::ffff:127.0.0.1")).toBe(true);
    expect(t("128.0.0.1")).toBe(false);
    expect(t("192.168.1.200")).toBe(true);
    expect(t("192.168.1.100")).toBe(false);
  });

  test("IPv6 ranges and single addresses", () => {
    const t = trustMatcher(["::1/128", "fd00::/8", "2001:db8::5"]);
    expect(t("::1")).toBe(true);
    expect(t("::2")).toBe(false);
    expect(t("fdab:1::1")).toBe(true);
    expect(t("fe00::1")).toBe(false);
    expect(t("2001:db8::5")).toBe(true);
    expect(t("2001:db8::6")).toBe(false);
    expect(t("127.0.0.1")).toBe(false);
  });

  test("/32 is one address; /0 is everything; unix sockets (undefined) are trusted", () => {
    const one = trustMatcher(["127.0.0.1/32"]);
    expect(one("127.0.0.1")).toBe(true);
    expect(one("127.0.0.2")).toBe(false);
    expect(one(undefined)).toBe(true);
    expect(trustMatcher(["0.0.0.0/0"])("8.8.8.8")).toBe(true);
    expect(trustMatcher(["0.0.0.0/0"])("2001::1")).toBe(false);
    expect(trustMatcher([])("127.0.0.1")).toBe(false);
    expect(trustMatcher(["::/0"])("2001::1")).toBe(true);
  });

  test("garbage addresses are untrusted", () => {
    expect(trustMatcher(["0.0.0.0/0"])("not an address")).toBe(false);
  });
});
