/**
 * Fuzzing the PROXY header parser: whatever the bytes, parseProxyHeader returns a header, returns
 * "incomplete" or throws ProxyHeaderError, nothing else (no RangeError, no TypeError, no hang).
 * A valid header followed by data parses the same at every split point: every prefix is
 * "incomplete" (or, for a v2 signature prefix followed by garbage, an error only once the bytes
 * differ), and the full buffer gives the same header and length. Mutated valid headers either
 * parse or throw ProxyHeaderError. Over real sockets, a stream of connections with valid headers
 * cut at random points and garbage ones: each connection is either handed over (with its data
 * intact) or rejected, never lost or both, and the listener serves on. Seeded, so a failure
 * reproduces; FULL=1 runs 10x more cases.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ProxyHeaderError } from "../../src/errors.ts";
import { encodeProxyHeader, type ProxyHeaderInit, parseProxyHeader } from "../../src/proxy/header.ts";
import { proxyOptions } from "../../src/proxy/options.ts";
import { proxyTransport } from "../../src/proxy/transport.ts";
import { tcp } from "../../src/transport/transport.ts";
import { waitFor } from "../helpers/wait.ts";
import { closeProxyKit, EchoServer } from "../socket/proxy-kit.ts";

const ROUNDS = process.env.FULL === "1" ? 10 : 1;

/** Seeded xorshift32. */
function xorshift(seed: number): (n: number) => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function outcome(bytes: Uint8Array): "incomplete" | "error" | string {
  try {
    const r = parseProxyHeader(bytes);
    return r === "incomplete"
      ? r
      : JSON.stringify([r.length, r.header, r.header.tlvs.map(([t, v]) => [t, [...v]])]);
  } catch (e) {
    if (!(e instanceof ProxyHeaderError)) throw e;
    return "error";
  }
}

function randomAddress(rand: (n: number) => number, six: boolean): string {
  if (!six) return [rand(256), rand(256), rand(256), rand(256)].join(".");
  const words = Array.from({ length: 8 }, () => (rand(3) === 0 ? 0 : rand(0x10000)).toString(16));
  return words.join(":");
}

function randomInit(rand: (n: number) => number): ProxyHeaderInit {
  const version = rand(2) === 0 ? 1 : 2;
  if (rand(8) === 0) return { version, command: "LOCAL" };
  const six = rand(2) === 0;
  const init: ProxyHeaderInit = {
    version,
    sourceAddress: randomAddress(rand, six),
    sourcePort: rand(65536),
    destinationAddress: randomAddress(rand, six),
    destinationPort: rand(65536),
  };
  if (version === 2) {
    const tlvs: Array<[number, Uint8Array]> = [];
    for (let i = rand(4); i > 0; i--) {
      const type = [0x01, 0x02, 0x04, 0x05, 0x30, 0xe0, 0xf1][rand(7)]!;
      tlvs.push([type, Uint8Array.from({ length: rand(40) }, () => rand(256))]);
    }
    init.tlvs = tlvs;
    init.crc32c = rand(2) === 0;
  }
  return init;
}

describe("parseProxyHeader fuzz", () => {
  test("random bytes: a header, incomplete, or ProxyHeaderError only", () => {
    const rand = xorshift(0xc0ffee);
    const starts = [
      [],
      [...new TextEncoder().encode("PROXY ")],
      [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a],
      [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21],
    ];
    const seen = { incomplete: 0, error: 0, header: 0 };
    for (let i = 0; i < 20_000 * ROUNDS; i++) {
      const start = starts[rand(starts.length)]!;
      const tail = Array.from({ length: rand(300) }, () =>
        rand(4) === 0 ? [0x0d, 0x0a, 0x20, 0x00][rand(4)]! : rand(256),
      );
      const r = outcome(Uint8Array.from([...start, ...tail]));
      if (r === "incomplete") seen.incomplete++;
      else if (r === "error") seen.error++;
      else seen.header++;
    }
    expect(seen.error).toBeGreaterThan(0);
    expect(seen.incomplete).toBeGreaterThan(0);
  });

  test("valid headers + data: every split point is incomplete until the header is whole", () => {
    const rand = xorshift(42);
    for (let i = 0; i < 300 * ROUNDS; i++) {
      const header = encodeProxyHeader(randomInit(rand));
      const data = Uint8Array.from({ length: rand(20) }, () => rand(256));
      const all = new Uint8Array(header.length + data.length);
      all.set(header);
      all.set(data, header.length);
      const whole = outcome(all);
      expect(whole).not.toBe("error");
      expect(whole).not.toBe("incomplete");
      expect(JSON.parse(whole)[0]).toBe(header.length);
      for (let cut = 0; cut < header.length; cut++) expect(outcome(all.subarray(0, cut))).toBe("incomplete");
      // Any longer buffer gives the same answer (the bytes after the header are not looked at).
      for (let cut = header.length; cut <= all.length; cut++)
        expect(outcome(all.subarray(0, cut))).toBe(whole);
    }
  });

  test("mutated valid headers parse or throw ProxyHeaderError, never anything else", () => {
    const rand = xorshift(7);
    let errors = 0;
    for (let i = 0; i < 5_000 * ROUNDS; i++) {
      const bytes = encodeProxyHeader(randomInit(rand)).slice();
      for (let flips = 1 + rand(3); flips > 0; flips--) bytes[rand(bytes.length)] = rand(256);
      if (outcome(bytes) === "error") errors++;
    }
    expect(errors).toBeGreaterThan(0);
  });
});

afterEach(() => closeProxyKit());

describe("proxyTransport over sockets, fuzzed", () => {
  test("every connection is handed over with its data intact, or rejected: none lost", async () => {
    const rand = xorshift(99);
    let rejected = 0;
    const server = new EchoServer(
      proxyTransport(tcp(), proxyOptions({ timeoutMs: 2000 })!, () => rejected++),
    );
    const total = 60 * ROUNDS;
    let valid = 0;
    const finished: Array<Promise<"echoed" | "closed">> = [];
    for (let i = 0; i < total; i++) {
      const good = rand(3) !== 0;
      const data = `data-${i};`;
      let bytes: Uint8Array;
      if (good) {
        valid++;
        bytes = Buffer.concat([encodeProxyHeader(randomInit(rand)), Buffer.from(data)]);
      } else {
        bytes = Uint8Array.from({ length: 1 + rand(120) }, () => rand(256));
        if (bytes[0] === 0x0d || bytes[0] === 0x50) bytes[0] = 0x00; // surely not a header start
      }
      const cut = rand(bytes.length + 1);
      const { promise, resolve } = Promise.withResolvers<"echoed" | "closed">();
      let got = "";
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: {
          data(_s, chunk) {
            got += Buffer.from(chunk).toString("latin1");
            // Each chunk comes back as "echo:" + chunk; the data may be split into several.
            if (got.replaceAll("echo:", "") === data) resolve("echoed");
          },
          close() {
            resolve("closed");
          },
        },
      });
      socket.write(bytes.subarray(0, cut));
      // Let the first piece land as a read of its own before the rest.
      setTimeout(() => socket.write(bytes.subarray(cut)), 1);
      finished.push(promise.finally(() => socket.terminate()));
    }
    const outcomes = await Promise.all(finished);
    await waitFor(() => server.accepted.length + rejected === total, 3000, "every connection accounted for");
    expect(server.accepted.length).toBe(valid);
    expect(rejected).toBe(total - valid);
    expect(outcomes.filter((o) => o === "echoed").length).toBe(valid);
    for (const a of server.accepted) expect(a.received).toMatch(/^data-\d+;$/);
  }, 30_000);
});
