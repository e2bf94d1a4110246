/**
 * The RESP bench servers answer RESP correctly: the lean raw one (one write per chunk), the naive raw
 * one (one write per reply) and the library's wrapper of examples/resp-server.ts. A raw socket checks
 * the exact reply bytes of pipelined commands cut at every byte, and replies far larger than a socket
 * buffer (what write() did not take must be kept and flushed in order); redis-cli and redis-benchmark
 * (a few hundred requests, P=1 and P=16) check that the real clients get through. Where redis-tools is
 * missing those tests skip and say so; the parser of redis-benchmark's CSV output is checked too.
 *
 * Real sockets on 127.0.0.1, port 0; every step is bounded.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { startServerFile } from "./lib/process.ts";
import { parseCsv } from "./lib/resp.ts";

const FILES = ["raw-resp.ts", "raw-resp-naive.ts", "sockerl-resp.ts"];
const HAVE_CLI = Bun.which("redis-cli") !== null;
const HAVE_BENCH = Bun.which("redis-benchmark") !== null;
if (!HAVE_CLI) console.warn("bench/resp.test.ts: redis-cli not installed (redis-tools), its tests skipped");
if (!HAVE_BENCH)
  console.warn("bench/resp.test.ts: redis-benchmark not installed (redis-tools), its tests skipped");

const procs: Subprocess[] = [];
const ports = new Map<string, Promise<number>>();
afterAll(async () => {
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
});

/** bench/servers/<file> on port 0, started once for the whole file; the port it printed. */
function server(file: string): Promise<number> {
  const known = ports.get(file);
  if (known !== undefined) return known;
  const started = startServerFile(file, procs);
  ports.set(file, started);
  return started;
}

/** RESP array of bulk strings, as clients send commands. */
const cmd = (...args: string[]): string =>
  `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`;

/**
 * Connects, sends `parts` one by one (a short pause between them, so they arrive as separate reads),
 * and returns the first `want` bytes of the replies (bounded: 10 s). `slowRead` pauses reading at
 * first, so the server's socket buffer fills up and its write() takes only part of the replies.
 */
async function exchange(
  port: number,
  parts: (string | Uint8Array)[],
  want: number,
  slowRead = false,
): Promise<Buffer> {
  const got: Buffer[] = [];
  let have = 0;
  const done = Promise.withResolvers<void>();
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        got.push(Buffer.from(chunk));
        have += chunk.length;
        if (have >= want) done.resolve();
      },
      close() {
        done.resolve();
      },
      error() {
        done.resolve();
      },
    },
  });
  if (slowRead) sock.pause();
  for (const p of parts) {
    const bytes = typeof p === "string" ? Buffer.from(p, "latin1") : p;
    let off = 0;
    while (off < bytes.length) {
      const w = sock.write(bytes.subarray(off));
      off += Math.max(w, 0);
      if (off < bytes.length) await Bun.sleep(1);
    }
    await Bun.sleep(parts.length > 1 ? (slowRead ? 20 : 2) : 0);
  }
  if (slowRead) {
    await Bun.sleep(200);
    sock.resume();
  }
  const timer = setTimeout(() => done.resolve(), 10_000);
  await done.promise;
  clearTimeout(timer);
  sock.end();
  return Buffer.concat(got).subarray(0, want);
}

/** Runs a client program (bounded: 30 s); its stdout. */
async function client(argv: string[]): Promise<{ code: number | null; out: string }> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const out = await new Response(p.stdout).text();
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode, out };
}

describe.each(FILES)("%s", (file) => {
  test("pipelined commands, cut at every byte, get exactly the replies in order", async () => {
    const port = await server(file);
    const key = `k-${file}`;
    const batch =
      cmd("SET", key, "hello") +
      cmd("GET", key) +
      cmd("INCR", `${key}-n`) +
      cmd("INCR", `${key}-n`) +
      "PING\r\n" +
      cmd("GET", `${key}-missing`) +
      cmd("DEL", key, `${key}-n`) +
      cmd("NOPE");
    const expected =
      "+OK\r\n$5\r\nhello\r\n:1\r\n:2\r\n+PONG\r\n$-1\r\n:2\r\n-ERR unknown command 'nope'\r\n";
    // all at once, then one byte per write: every partial command must wait for its rest
    expect((await exchange(port, [batch], expected.length)).toString("latin1")).toBe(expected);
    expect((await exchange(port, [...batch], expected.length)).toString("latin1")).toBe(expected);
  }, 20_000);

  test("replies larger than the socket buffer arrive whole and in order (drain)", async () => {
    const port = await server(file);
    const value = (k: number): Buffer => {
      const v = Buffer.alloc(512 * 1024);
      for (let i = 0; i < v.length; i++) v[i] = 97 + ((i + k) % 26);
      return v;
    };
    const set = (key: string, v: Buffer): Buffer =>
      Buffer.concat([
        Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${v.length}\r\n`),
        v,
        Buffer.from("\r\n"),
      ]);
    const bulk = (v: Buffer): Buffer =>
      Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from("\r\n")]);
    const [a, b] = [`big-a-${file}`, `big-b-${file}`];
    const [va, vb] = [value(0), value(7)];
    // 2 × 12 × 512 KiB of replies while the client does not read yet: write() takes part of the first
    // batch, and the second batch (other bytes) arrives while that rest still waits for drain; a
    // server that kept a view of a buffer it reuses would send the second batch's bytes in its place
    const gets = 12;
    const parts = [
      Buffer.concat([set(a, va), set(b, vb)]),
      cmd("GET", a).repeat(gets),
      cmd("GET", b).repeat(gets) + cmd("PING"),
    ];
    const expected = Buffer.concat([
      Buffer.from("+OK\r\n+OK\r\n"),
      ...Array<Buffer>(gets).fill(bulk(va)),
      ...Array<Buffer>(gets).fill(bulk(vb)),
      Buffer.from("+PONG\r\n"),
    ]);
    const got = await exchange(port, parts, expected.length, true);
    expect(got.length).toBe(expected.length);
    expect(got.equals(expected)).toBe(true);
  }, 30_000);

  test.skipIf(!HAVE_CLI)(
    "redis-cli: SET, GET, INCR, ECHO",
    async () => {
      const port = String(await server(file));
      const cli = (...a: string[]) => client(["redis-cli", "-h", "127.0.0.1", "-p", port, ...a]);
      expect((await cli("SET", "cli", "v1")).out.trim()).toBe("OK");
      expect((await cli("GET", "cli")).out.trim()).toBe("v1");
      expect((await cli("INCR", "cli-n")).out.trim()).toBe("1");
      expect((await cli("ECHO", "hi there")).out.trim()).toBe("hi there");
    },
    30_000,
  );

  test.skipIf(!HAVE_BENCH)(
    "redis-benchmark -t set,get: 400 requests at P=1 and 800 at P=16",
    async () => {
      const port = String(await server(file));
      for (const [n, p] of [
        ["200", "1"],
        ["400", "16"],
      ] as const) {
        const args = [
          "-h",
          "127.0.0.1",
          "-p",
          port,
          "-c",
          "10",
          "-n",
          n,
          "-P",
          p,
          "-t",
          "set,get",
          "-q",
          "--csv",
        ];
        const r = await client(["redis-benchmark", ...args]);
        expect(r.code).toBe(0);
        const tests = parseCsv(r.out);
        expect(tests.map((t) => t.name)).toEqual(["SET", "GET"]);
        for (const t of tests) expect(t.rps).toBeGreaterThan(0);
      }
    },
    30_000,
  );
});

test("parseCsv reads redis-benchmark's rows, with and without latency columns", () => {
  const out =
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n' +
    '"SET","342935.53","2.233","0.096","2.031","4.239","7.615","22.879"\n' +
    '"GET","511247.44","1.540","0.232","1.319","2.727","3.743","6.119"\n';
  expect(parseCsv(out)).toEqual([
    { name: "SET", rps: 342935.53, p50Ms: 2.031, p99Ms: 7.615 },
    { name: "GET", rps: 511247.44, p50Ms: 1.319, p99Ms: 3.743 },
  ]);
  // a test that ran within one tick of redis-benchmark's millisecond clock (a small -n) reads "inf"
  const instant = parseCsv(
    '"SET","32000.00","0.5","0.4","0.4","0.6","0.6","0.6"\n"GET","inf","0.1","0.1","0.1","0.1","0.1","0.1"\n',
  );
  expect(instant.map((t) => [t.name, t.rps])).toEqual([
    ["SET", 32000],
    ["GET", Number.POSITIVE_INFINITY],
  ]);
  const old = parseCsv('"SET","1000.00"\r\n"GET","2000.00"\r\n');
  expect(old.map((t) => [t.name, t.rps])).toEqual([
    ["SET", 1000],
    ["GET", 2000],
  ]);
  expect(Number.isNaN(old[0]!.p99Ms)).toBe(true);
});
