/**
 * bench/profile.ts - where a server's CPU goes under the load of one bench cell, library and raw
 * side by side: each server runs alone under the cell's load (loadgen, or redis-benchmark for the RESP
 * cells), Linux perf samples it, and JavaScriptCore's jitdump names the JIT-compiled functions. It
 * prints CPU nanoseconds per message for each part of the process (kernel, Bun's native code, JIT
 * code, libc), the JIT functions, and the native time by the JavaScript function that called it.
 *
 * Usage: bun bench/profile.ts CELL [--servers a,b] [--seconds S] [--warm S] [--top N]
 *        (CELL is a name of bench/run.ts's matrix; the servers default to its raw and library servers)
 *
 * A development tool, not run by CI: it needs `perf` (Debian: linux-perf) and the right to record
 * another process (root, or kernel.perf_event_paranoid <= 1). It samples `cpu-clock`, a software
 * event, so it works in VMs without hardware counters. One run is one process per server: JIT
 * decisions (what is inlined where) can differ between runs, so compare the figures of several.
 * Each server's perf.data and perf map stay in the directory it prints, for `perf report`.
 *
 * @module
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type Cell, libOf, MATRIX, rawOf, SERVER_FILES } from "./lib/cells.ts";
import {
  type Part,
  type ProfileSummary,
  parseJitDump,
  perfMap,
  summarizePerfScript,
} from "./lib/perf-profile.ts";
import {
  awaitOutput,
  BENCH,
  buildLoadgen,
  freePort,
  HZ,
  procTicks,
  ROOT,
  runBounded,
  started,
  stopAll,
  stopOnSignals,
  stopProc,
  wrap,
} from "./lib/process.ts";
import { parseCsv, REDIS_BENCHMARK } from "./lib/resp.ts";
import { die, fmt, log, sleep } from "./lib/util.ts";

const HELP = `usage: bun bench/profile.ts CELL [--servers a,b] [--seconds S] [--warm S] [--top N]
cells: ${MATRIX.filter((c) => c.mode === "echo" || c.mode === "resp")
  .map((c) => c.name)
  .join(", ")}`;

interface Options {
  cell: Cell;
  servers: string[];
  seconds: number;
  warm: number;
  top: number;
}

function parseOptions(argv: string[]): Options {
  let cellName: string | undefined;
  let servers: string[] | undefined;
  let seconds = 4;
  let warm = 3;
  let top = 8;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => argv[++i] ?? die(`${a} needs a value\n${HELP}`);
    const positive = (): number => {
      const n = Number(value());
      if (!(n > 0)) die(`${a} needs a positive number\n${HELP}`);
      return n;
    };
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      process.exit(0);
    } else if (a === "--servers") servers = value().split(",");
    else if (a === "--seconds") seconds = positive();
    else if (a === "--warm") warm = positive();
    else if (a === "--top") top = Math.round(positive());
    else if (!a.startsWith("-") && cellName === undefined) cellName = a;
    else die(`unknown argument ${a}\n${HELP}`);
  }
  if (cellName === undefined) die(HELP);
  const cell = MATRIX.find((c) => c.name === cellName);
  if (cell === undefined || (cell.mode !== "echo" && cell.mode !== "resp"))
    die(`no such cell: ${cellName}\n${HELP}`);
  servers ??= [rawOf(cell), libOf(cell)];
  for (const s of servers)
    if (SERVER_FILES[s] === undefined) die(`no such server: ${s} (bench/lib/cells.ts SERVER_FILES)`);
  return { cell, servers, seconds, warm, top };
}

/** One server's profile. */
interface Profile {
  readonly server: string;
  readonly rate: number;
  /** Server CPU nanoseconds per message during the recording. */
  readonly nsPerMsg: number;
  readonly summary: ProfileSummary;
  /** Where its perf.data is; its perf map is /tmp/perf-<pid>.map. */
  readonly dir: string;
  readonly pid: number;
}

/** Starts a bench server on `port` with JSC's jitdump on, pinned like bench/run.ts does. */
async function startServer(label: string, port: number, dir: string, cpu: number | null) {
  const file = join(BENCH, SERVER_FILES[label]!);
  const proc = Bun.spawn(wrap(cpu, [process.execPath, file, String(port)], 65536), {
    cwd: ROOT,
    env: { ...process.env, BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: dir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  started.add(proc);
  const { match, seen } = await awaitOutput(proc.stdout, /^ready/m, 10_000);
  if (match === null) die(`${label} did not print "ready" within 10 s: ${seen}`);
  return proc;
}

/**
 * The load of `cell` on `port`, pinned to `cpu`: `warm` seconds, then `seconds` measured. Resolves
 * with its rate (messages/s) over the measured part (redis-benchmark: over its whole run).
 */
async function runLoad(
  cell: Cell,
  port: number,
  warm: number,
  seconds: number,
  cpu: number | null,
): Promise<number> {
  if (cell.mode === "resp") {
    if (REDIS_BENCHMARK === null) die("the RESP cells need redis-benchmark (Debian: redis-tools)");
    // -n per test (two tests): enough for `seconds` at 1.5M requests/s, more than any server here does
    const n = Math.round((1_500_000 * (warm + seconds)) / 2);
    const argv = [REDIS_BENCHMARK, "-p", String(port), "-c", "50", "-P", String(cell.pipeline)];
    argv.push("-t", "set,get", "-n", String(n), "--csv");
    const r = await runBounded(wrap(cpu, argv, 4096), (warm + seconds) * 10 + 60);
    const tests = parseCsv(r.out);
    if (r.timedOut || tests.length === 0) die(`redis-benchmark failed: ${r.err || r.out}`);
    return (n * tests.length) / tests.reduce((s, t) => s + n / t.rps, 0);
  }
  const { bin } = buildLoadgen();
  const args = ["-p", String(port), "-c", String(cell.conns), "-s", String(cell.size)];
  args.push("-P", String(cell.pipeline), "-d", String(seconds), "-w", String(warm), "-m", cell.mode);
  if (cell.framing) args.push("-f", cell.framing);
  if (cell.tls) args.push("-S");
  const r = await runBounded(wrap(cpu, [bin, ...args], 65536), warm + seconds + 60);
  const rate = (JSON.parse(r.out.trim().split("\n").pop() ?? "{}") as { msgs_per_s?: number }).msgs_per_s;
  if (r.timedOut || rate === undefined || !(rate > 0)) die(`loadgen failed: ${r.err || r.out}`);
  return rate;
}

async function profileOne(o: Options, label: string, pin: boolean): Promise<Profile> {
  const dir = mkdtempSync(join(tmpdir(), `sockerl-profile-${label}-`));
  const port = freePort();
  const server = await startServer(label, port, dir, pin ? 0 : null);
  // the load measures a second past the recording on either side, so the recording sees it steady
  const load = runLoad(o.cell, port, o.warm - 0.5, o.seconds + 1, pin ? 1 : null);
  await sleep(o.warm);
  const c0 = procTicks(server.pid) ?? 0;
  const t0 = performance.now();
  const data = join(dir, "perf.data");
  const perf = [
    "perf",
    "record",
    "-e",
    "cpu-clock",
    "-F",
    "4000",
    "-g",
    "-p",
    String(server.pid),
    "-o",
    data,
  ];
  const rec = await runBounded([...perf, "--", "sleep", String(o.seconds)], o.seconds + 30);
  const wall = (performance.now() - t0) / 1000;
  const cpuS = ((procTicks(server.pid) ?? c0) - c0) / HZ;
  if (rec.proc.exitCode !== 0)
    die(`perf record failed (is perf installed and allowed to record?): ${rec.err}`);
  const rate = await load;
  await stopProc(server);
  const dump = readdirSync(dir).find((f) => f.startsWith("jit-") && f.endsWith(".dump"));
  if (dump === undefined) die(`${label} wrote no jitdump in ${dir}`);
  // perf names anonymous executable memory from /tmp/perf-<pid>.map
  writeFileSync(`/tmp/perf-${server.pid}.map`, perfMap(parseJitDump(readFileSync(join(dir, dump)))));
  const script = await runBounded(["perf", "script", "-i", data], 120);
  const summary = summarizePerfScript(script.out);
  return { server: label, rate, nsPerMsg: (cpuS * 1e9) / (rate * wall), summary, dir, pid: server.pid };
}

const PARTS: [Part, string][] = [
  ["kernel", "kernel"],
  ["bun", "Bun (native)"],
  ["jit", "JIT code"],
  ["libc", "libc"],
  ["other", "other"],
];

function print(o: Options, profiles: Profile[]): void {
  const ns = (p: Profile, samples: number): number => (p.nsPerMsg * samples) / Math.max(1, p.summary.samples);
  const col = (s: string): string => s.padStart(20);
  const line = (name: string, cells: string[]): void =>
    console.log(name.padEnd(34) + cells.map(col).join(""));
  console.log(`\n${o.cell.name}: ${o.seconds} s recorded per server after ${o.warm} s of warm-up`);
  line(
    "",
    profiles.map((p) => p.server),
  );
  line(
    "messages/s",
    profiles.map((p) => fmt(p.rate)),
  );
  line(
    "CPU ns per message",
    profiles.map((p) => fmt(p.nsPerMsg, 1)),
  );
  for (const [part, name] of PARTS) {
    if (profiles.every((p) => (p.summary.parts.get(part) ?? 0) === 0)) continue;
    line(
      `  ${name}`,
      profiles.map((p) => fmt(ns(p, p.summary.parts.get(part) ?? 0), 1)),
    );
  }
  const section = (title: string, pick: (p: Profile) => Map<string, number>): void => {
    console.log(`\n${title} (ns per message)`);
    const names = new Map<string, number>();
    for (const p of profiles)
      for (const [k, v] of pick(p)) names.set(k, Math.max(names.get(k) ?? 0, ns(p, v)));
    const top = [...names].sort((a, b) => b[1] - a[1]).slice(0, o.top);
    for (const [name] of top)
      line(
        `  ${name.slice(0, 32)}`,
        profiles.map((p) => fmt(ns(p, pick(p).get(name) ?? 0), 1)),
      );
  };
  section("JIT code, by function (its own instructions)", (p) => p.summary.jitSelf);
  section("Bun's native code, by the JavaScript function that called it", (p) => p.summary.nativeByCaller);
  console.log("\nFor perf report -i DIR/perf.data (its JIT names come from /tmp/perf-PID.map):");
  for (const p of profiles) console.log(`  ${p.server}: ${p.dir} (pid ${p.pid})`);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  stopOnSignals();
  if (Bun.which("perf") === null) die("perf not found (Debian: apt-get install linux-perf)");
  const pin = availableParallelism() >= 2;
  const profiles: Profile[] = [];
  for (const server of o.servers) {
    log(`profiling ${server} under ${o.cell.name}`);
    profiles.push(await profileOne(o, server, pin));
  }
  print(o, profiles);
}

try {
  await main();
} finally {
  await stopAll();
}
