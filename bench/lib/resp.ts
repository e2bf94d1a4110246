/**
 * The RESP cells of the load benchmark: redis-benchmark (`-t set,get`, pinned to the client CPU)
 * against the RESP servers, with the server's CPU per request from /proc and redis-benchmark's own
 * CPU from its resource usage. The quiet-machine wait, the re-measure and the interleaving are the
 * Bench's, as for the loadgen cells.
 * @module
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { Options } from "./args.ts";
import { type Cell, REDIS_LABEL } from "./cells.ts";
import type { Bench, Run, Server, ServerSpec } from "./measure.ts";
import { busyTicks, HZ, procTicks, runBounded, wrap } from "./process.ts";
import { now } from "./util.ts";

/** The redis-benchmark binary, or null where redis-tools is not installed (the cells are skipped). */
export const REDIS_BENCHMARK: string | null = Bun.which("redis-benchmark");

/**
 * The reference server's command: redis-server in memory only (no RDB snapshots, no AOF), on
 * 127.0.0.1, the port appended by the runner after `--port`; or null where it is not installed.
 */
export function redisServerSpec(): ServerSpec | null {
  const bin = Bun.which("redis-server");
  if (bin === null) return null;
  const argv = [bin, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--port"];
  // its log line once it accepts clients (it prints no "ready port=N")
  return { label: REDIS_LABEL, argv, ready: /Ready to accept connections.*$/m };
}

/**
 * redis-benchmark's `-n` (requests per test; `-t set,get` runs two tests) for a cell: the cell's
 * full-run count scaled by `--dur` / 5, or its quick count with `--quick`.
 */
export function respRequests(cell: Cell, o: Options): number {
  if (o.quick) return cell.quickRequests ?? 10_000;
  return Math.max(1000, Math.round(((cell.requests ?? 200_000) * o.dur) / 5));
}

/** One test of redis-benchmark's CSV output (`"SET","rps","avg","min","p50","p95","p99","max"`). */
export interface RespTest {
  name: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Parses redis-benchmark's `--csv` output: one row per test after a header row (older versions print
 * only `"NAME","rps"`; the latency columns are then NaN). A test that ran within one tick of
 * redis-benchmark's millisecond clock has rps `inf`: kept, as `Infinity` (a small `-n` does that).
 */
export function parseCsv(out: string): RespTest[] {
  const tests: RespTest[] = [];
  for (const line of out.split(/\r?\n/)) {
    const f = line.split(",").map((x) => x.trim().replace(/^"|"$/g, ""));
    if (f.length < 2 || f[0] === "test" || f[0] === "") continue;
    const rps = f[1] === "inf" ? Number.POSITIVE_INFINITY : Number(f[1]);
    if (Number.isNaN(rps)) continue;
    tests.push({ name: f[0]!, rps, p50Ms: Number(f[4]), p99Ms: Number(f[6]) });
  }
  return tests;
}

interface Outcome {
  tests: RespTest[];
  /** redis-benchmark's own CPU seconds (user + system) */
  cpuS: number;
  error?: string;
  warn?: string;
}

/** One redis-benchmark run against `port`, bounded by `limitS`. */
async function redisBenchmark(
  b: Bench,
  port: number,
  cell: Cell,
  n: number,
  limitS: number,
): Promise<Outcome> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-c", String(cell.conns), "-n", String(n)];
  args.push("-P", String(cell.pipeline), "-d", String(cell.size), "-t", "set,get", "-q", "--csv");
  // redis-benchmark retries a refused or dead server forever: bounded
  const { proc, out, err, timedOut } = await runBounded(
    wrap(b.clientCpu, [REDIS_BENCHMARK!, ...args], b.nofile),
    limitS,
  );
  // taskset and bash exec into redis-benchmark: the rusage of this PID is redis-benchmark's
  const cpu = proc.resourceUsage()?.cpuTime;
  const cpuS = cpu === undefined ? Number.NaN : Number(cpu.user + cpu.system) / 1e6;
  if (err.trim() !== "") appendFileSync(join(b.outDir, "redis-benchmark.err"), err);
  const warn = err.trim() === "" ? undefined : err.trim().split("\n").slice(-2).join(" / ");
  const tests = parseCsv(out);
  if (timedOut) return { tests, cpuS, error: `redis-benchmark timed out after ${limitS} s` };
  if (proc.exitCode !== 0 || tests.length !== 2)
    return {
      tests,
      cpuS,
      error: `redis-benchmark exit ${proc.exitCode ?? proc.signalCode}, ${tests.length} tests: ${err.trim().split("\n").pop() ?? ""}`,
    };
  const instant = tests.find((t) => !Number.isFinite(t.rps));
  if (instant !== undefined)
    return {
      tests,
      cpuS,
      error: `redis-benchmark's ${instant.name} test ran within its 1 ms clock tick (rps inf): use more requests (--dur)`,
    };
  return { tests, cpuS, warn };
}

/**
 * One measurement of a RESP cell against `srv`: the Bench's quiet wait, an unmeasured warm-up run
 * (`--warm` / `--dur` of the requests, so the JIT has compiled the server's hot path), then the
 * measured run. Fills `run` like a loadgen run (rate = all requests over the tests' time, server,
 * client and other CPU) plus the server's CPU µs per request.
 */
export async function measureResp(b: Bench, srv: Server, cell: Cell, run: Run): Promise<void> {
  const n = respRequests(cell, b.o);
  // generous: 20k requests/s is far below every server here, plus the setup of 50 connections
  const limit = (requests: number): number => 60 + (2 * requests) / 20_000;
  await b.waitQuiet();
  const warmN = Math.round((n * b.o.warm) / b.o.dur);
  if (warmN > 0) {
    const w = await redisBenchmark(b, srv.port, cell, warmN, limit(warmN));
    if (w.error !== undefined) {
      run.failed = `warm-up: ${w.error}`;
      run.died = procTicks(srv.pid) === undefined;
      return;
    }
  }
  const c0 = procTicks(srv.pid) ?? 0;
  const m0 = busyTicks(b.statCpus);
  const t0 = now();
  const r = await redisBenchmark(b, srv.port, cell, n, limit(n));
  const wall = now() - t0;
  const busy = (busyTicks(b.statCpus) - m0) / HZ / wall;
  const c1 = procTicks(srv.pid);
  run.died = c1 === undefined || srv.proc.exitCode !== null || srv.proc.signalCode !== null;
  run.warn = r.warn;
  const requests = n * r.tests.length;
  if (r.error !== undefined) run.failed = r.error;
  else {
    // the tests ran one after the other: all requests over the sum of their times
    const secs = r.tests.reduce((a, t) => a + n / t.rps, 0);
    run.rate = requests / secs;
    run.p99 = Math.max(...r.tests.map((t) => t.p99Ms * 1000));
    run.errors = 0;
    run.clientCpu = r.cpuS / wall;
    run.lg = { requests, p50_us: Math.max(...r.tests.map((t) => t.p50Ms * 1000)) };
    for (const t of r.tests) run.lg[`${t.name.toLowerCase()}_rps`] = t.rps;
  }
  if (run.died) return;
  const cpuS = ((c1 ?? c0) - c0) / HZ;
  run.serverCpu = cpuS / wall;
  if (r.error === undefined) run.cpuPerReq = (cpuS * 1e6) / requests;
  run.otherCpu = busy - run.serverCpu - (run.clientCpu ?? 0);
}
