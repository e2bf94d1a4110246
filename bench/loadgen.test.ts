/**
 * The load benchmark's own correctness: loadgen's framing (-f 4, -f crlf) and TLS (-S) modes, and
 * every bench server answering them without a wrong byte. loadgen checks every echoed byte, so a
 * server bug (a lost partial frame, a reordered reply, a short write dropped) shows as errors; the
 * first tests check that loadgen does catch a corrupting and a reordering server.
 *
 * Real sockets on 127.0.0.1, port 0; every run is a fraction of a second and bounded.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { buildLoadgen, type Loadgen, startServerFile } from "./lib/process.ts";

const haveGcc = Bun.which("gcc") !== null;
if (!haveGcc) console.warn("bench/loadgen.test.ts: gcc not installed, loadgen tests skipped");
const loadgen: Loadgen | undefined = haveGcc ? buildLoadgen() : undefined;
const haveTls = loadgen?.tls === true;
if (haveGcc && !haveTls)
  console.warn(
    "bench/loadgen.test.ts: loadgen built without OpenSSL (libssl-dev missing), TLS tests skipped",
  );

const procs: Subprocess[] = [];
const listeners: { stop(closeActive?: boolean): void }[] = [];
afterEach(async () => {
  for (const l of listeners.splice(0)) l.stop(true);
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
});

/** Starts bench/servers/<file> on port 0 and returns the port it printed. */
function server(file: string): Promise<number> {
  return startServerFile(file, procs);
}

interface Result {
  msgs_per_s: number;
  errors: number;
  client_cpu: number;
  framing: string;
  tls: number;
}

/** One short loadgen echo run (0.3 s, no warm-up), bounded at 15 s. */
async function run(port: number, flags: string[]): Promise<Result> {
  const proc = Bun.spawn(
    [loadgen!.bin, "-m", "echo", "-p", String(port), "-d", "0.3", "-w", "0", "-T", "5", ...flags],
    {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    },
  );
  procs.push(proc);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  expect(await proc.exited, err).toBe(0);
  return JSON.parse(out.trim().split("\n").pop()!) as Result;
}

/** An in-process echo server that rewrites each chunk with `mangle` (a deliberately broken server). */
function mangling(mangle: (chunk: Uint8Array) => Uint8Array): number {
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, chunk) {
        s.write(mangle(new Uint8Array(chunk)));
      },
    },
  });
  listeners.push(l);
  return l.port;
}

describe.skipIf(!haveGcc)("loadgen", () => {
  test("-F lists the features of the build", () => {
    const out = Bun.spawnSync([loadgen!.bin, "-F"]).stdout.toString();
    expect(out).toContain("framing");
  });

  test("catches a server that corrupts a byte", async () => {
    let n = 0;
    const port = mangling((c) => {
      if (++n % 7 === 0 && c.length > 0) c[c.length >> 1]! ^= 0xff;
      return c;
    });
    const r = await run(port, ["-c", "2", "-s", "64", "-P", "4", "-f", "4"]);
    expect(r.errors).toBeGreaterThan(0);
  });

  test("catches a server that echoes whole 4-byte frames out of order", async () => {
    // reverses the order of the complete frames in each chunk (chunks here hold whole frames: small
    // frames, loopback): every frame is intact, only the order is wrong
    const port = mangling((c) => {
      const frames: Uint8Array[] = [];
      let i = 0;
      while (i + 4 <= c.length) {
        const len = ((c[i]! << 24) | (c[i + 1]! << 16) | (c[i + 2]! << 8) | c[i + 3]!) >>> 0;
        frames.push(c.subarray(i, i + 4 + len));
        i += 4 + len;
      }
      return frames.length > 1 && i === c.length ? Buffer.concat(frames.reverse()) : c;
    });
    const r = await run(port, ["-c", "1", "-s", "64", "-P", "16", "-f", "4"]);
    expect(r.errors).toBeGreaterThan(0);
  });

  test("crlf lines hold no line break before their end", async () => {
    const port = await server("raw-echo.ts");
    // the plain echo returns the bytes as they are: no errors, whatever the framing
    const r = await run(port, ["-c", "2", "-s", "200", "-P", "4", "-f", "crlf"]);
    expect(r.errors).toBe(0);
    expect(r.framing).toBe("crlf");
    expect(r.msgs_per_s).toBeGreaterThan(0);
  });
});

const framed: [string, string][] = [
  ["raw-echo-packet4.ts", "4"],
  ["raw-echo-packet4-whole.ts", "4"],
  ["sockerl-echo-packet4.ts", "4"],
  ["raw-echo-naive.ts", "4"],
  ["raw-echo-line.ts", "crlf"],
  ["raw-echo-line-whole.ts", "crlf"],
  ["sockerl-echo-line.ts", "crlf"],
];

describe.skipIf(!haveGcc)("bench servers echo every byte", () => {
  for (const [file, framing] of framed) {
    test(`${file}: -f ${framing}, 64 B × 16 in flight and 16 KiB × 4 (frames split over reads)`, async () => {
      const port = await server(file);
      const small = await run(port, ["-c", "4", "-s", "64", "-P", "16", "-f", framing]);
      const big = await run(port, ["-c", "4", "-s", "16384", "-P", "4", "-f", framing]);
      for (const r of [small, big]) {
        expect(r.errors).toBe(0);
        expect(r.msgs_per_s).toBeGreaterThan(0);
      }
    });
  }

  test("sockerl-echo-timeout.ts: plain echo", async () => {
    const port = await server("sockerl-echo-timeout.ts");
    const r = await run(port, ["-c", "4", "-s", "64", "-P", "4"]);
    expect(r.errors).toBe(0);
    expect(r.msgs_per_s).toBeGreaterThan(0);
  });

  for (const file of ["raw-echo-tls.ts", "sockerl-echo-tls.ts"])
    test.skipIf(!haveTls)(`${file}: TLS (-S), 64 B and 16 KiB × 4 in flight`, async () => {
      const port = await server(file);
      const small = await run(port, ["-c", "4", "-s", "64", "-P", "1", "-S"]);
      const big = await run(port, ["-c", "4", "-s", "16384", "-P", "4", "-S"]);
      for (const r of [small, big]) {
        expect(r.tls).toBe(1);
        expect(r.errors).toBe(0);
        expect(r.msgs_per_s).toBeGreaterThan(0);
      }
    });
});
