/**
 * bench/run.ts - loopback load benchmark: sockerl's echo server against a raw
 * `Bun.listen` echo server, driven by the same C load generator in the same run.
 *
 * Usage: bun bench/run.ts [--quick] [--reps N] [--dur S] [--warm S] [--cells a,b]
 *                         [--no-idle] [--idle-conns N] [--write-results | --no-write-results]
 *                         [--lib-server CMD] [--raw-server CMD] [--quiet-wait S] [--tries N]
 *                         [--patience S] [--report DIR]
 *                         [--server-cpu N] [--client-cpu N] [--out DIR]
 *        (`npm run bench` = full run, `npm run bench:quick` = `--quick`; see bench/README.md)
 *
 * How a run goes:
 *   1. bench/loadgen.c is built with `gcc -O2` into bench/.build/loadgen when missing or older.
 *   2. Both servers start (pinned to CPU 0 with taskset, fd limit raised); loadgen runs on CPU 1.
 *   3. For each repetition, each cell runs once per server, back to back (the order of the two
 *      servers alternates between repetitions), so drift of a shared machine hits both alike and
 *      the ratio library/raw is meaningful. Before each measurement the runner waits (bounded) for
 *      the two CPUs to be quiet, and measures again (bounded) when someone else used the CPUs.
 *   4. Idle cell: a fresh server per repetition; VmRSS of its process tree before and while
 *      loadgen holds N idle connections (after one echo each); kB per connection.
 *   5. Medians over repetitions, a markdown table on stdout, bench/RESULTS.md rewritten (full run).
 *
 * Every step is bounded in time; only processes started here are stopped, by PID (SIGTERM, then
 * SIGKILL). Traffic goes to 127.0.0.1 only. Exit status: 0 unless something crashed (a server did
 * not start or died, loadgen failed); timings are reported, never asserted.
 * @module
 */

import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import type { Subprocess } from "bun";

const BENCH = import.meta.dir;
const ROOT = resolve(BENCH, "..");

// ---------------------------------------------------------------- cells

type Mode = "echo" | "connect" | "idle";

interface Cell {
  /** name used by --cells */
  readonly name: string;
  readonly mode: Mode;
  readonly conns: number;
  readonly size: number;
  readonly pipeline: number;
  /** connect mode: close with RST (SO_LINGER 0) instead of FIN */
  readonly rst?: boolean;
  /** run by default in the full run only */
  readonly fullOnly?: boolean;
}

const MATRIX: readonly Cell[] = [
  { name: "echo1", mode: "echo", conns: 1, size: 64, pipeline: 1 },
  { name: "echo100", mode: "echo", conns: 100, size: 64, pipeline: 1 },
  { name: "echo100p16", mode: "echo", conns: 100, size: 64, pipeline: 16 },
  { name: "echo16k", mode: "echo", conns: 10, size: 16384, pipeline: 4 },
  { name: "connect-rst", mode: "connect", conns: 50, size: 64, pipeline: 1, rst: true },
  // FIN close: capped near 14k/s by TIME_WAIT of the single 127.0.0.1 pair (see README)
  { name: "connect-fin", mode: "connect", conns: 50, size: 64, pipeline: 1, fullOnly: true },
];
const IDLE_NAME = "idle";

function cellTitle(c: Cell): string {
  if (c.mode === "idle") return `idle ${fmt(c.conns)} conns: kB/conn`;
  if (c.mode === "connect") return `connect c=${c.conns} s=${c.size} ${c.rst ? "RST" : "FIN"} close: conns/s`;
  return `echo c=${c.conns} s=${c.size} P=${c.pipeline}: msgs/s`;
}

// ---------------------------------------------------------------- options

interface Options {
  quick: boolean;
  reps: number;
  dur: number;
  warm: number;
  cells: string[] | null;
  idle: boolean;
  idleConns: number;
  idleHold: number;
  idleSettle: number;
  writeResults: boolean | null;
  rawServer: string;
  libServer: string;
  libServerGiven: boolean;
  quietWait: number;
  quietSecs: number;
  quietMax: number;
  otherMax: number;
  tries: number;
  patience: number;
  setupTimeout: number;
  readyTimeout: number;
  serverCpu: number;
  clientCpu: number;
  out: string | null;
  report: string | null;
}

const HELP = `usage: bun bench/run.ts [options]
  --quick              a few seconds: 1 rep, 1 s (+0.3 s warm-up) per cell, idle cell with 1,000
                       connections, FIN connect cell skipped, RESULTS.md left alone
  --reps N             repetitions per cell and server (default 3; medians are reported)
  --dur S              measured seconds per run (default 5)
  --warm S             warm-up seconds per run (default 1)
  --cells a,b          cells to run: ${[...MATRIX.map((c) => c.name), IDLE_NAME].join(", ")}
  --no-idle            skip the idle-memory cell
  --idle-conns N       idle connections held (default 10000)
  --write-results      rewrite bench/RESULTS.md (default: on for the full run only, i.e. without
  --no-write-results   --quick, --cells, --no-idle, --lib-server, --raw-server)
  --lib-server CMD     library server (default bench/servers/sockerl-echo.ts); a .ts/.js file runs
  --raw-server CMD     with this Bun, anything else as a command; PORT is appended
  --quiet-wait S       max wait for quiet CPUs before each measurement (default 15; quick 1; 0 = none)
  --tries N            measurements per run when other processes disturbed it (default 3; quick 1)
  --patience S         total extra time for waiting and measuring again (default 240; quick 5); once
                       spent, the run goes straight on and says so
  --server-cpu N       CPU for the servers (default 0)
  --client-cpu N       CPU for loadgen (default 1)
  --out DIR            keep raw results and server logs here (default: a new temporary folder)
  --report DIR         measure nothing: print the table of an earlier run from DIR/run.json
                       (with --write-results, also rewrite bench/RESULTS.md from it)`;

function parseArgs(argv: string[]): Options {
  const quick = argv.includes("--quick");
  const o: Options = {
    quick,
    reps: quick ? 1 : 3,
    dur: quick ? 1 : 5,
    warm: quick ? 0.3 : 1,
    cells: null,
    idle: true,
    idleConns: quick ? 1000 : 10000,
    idleHold: quick ? 1.5 : 4,
    idleSettle: quick ? 0.5 : 1,
    writeResults: null,
    rawServer: join(BENCH, "servers", "raw-echo.ts"),
    libServer: join(BENCH, "servers", "sockerl-echo.ts"),
    libServerGiven: false,
    quietWait: quick ? 1 : 15,
    quietSecs: quick ? 0.5 : 1.5,
    quietMax: 0.1,
    otherMax: 0.15,
    tries: quick ? 1 : 3,
    patience: quick ? 5 : 240,
    setupTimeout: quick ? 10 : 30,
    readyTimeout: 30,
    serverCpu: 0,
    clientCpu: 1,
    out: null,
    report: null,
  };
  const num = (flag: string, v: string | undefined, min: number, integer: boolean): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)))
      die(`${flag} expects ${integer ? "an integer" : "a number"} >= ${min}, got ${v ?? "nothing"}`);
    return n;
  };
  let forceNoWrite = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string | undefined => argv[++i];
    switch (a) {
      case "--quick":
        break;
      case "--reps":
        o.reps = num(a, v(), 1, true);
        break;
      case "--dur":
        o.dur = num(a, v(), 0.1, false);
        break;
      case "--warm":
        o.warm = num(a, v(), 0, false);
        break;
      case "--cells":
        o.cells = (v() ?? "").split(",").filter((s) => s !== "");
        break;
      case "--no-idle":
        o.idle = false;
        break;
      case "--idle-conns":
        o.idleConns = num(a, v(), 1, true);
        break;
      case "--write-results":
        o.writeResults = true;
        break;
      case "--no-write-results":
        forceNoWrite = true;
        break;
      case "--lib-server":
        o.libServer = v() ?? die("--lib-server expects a command");
        o.libServerGiven = true;
        break;
      case "--raw-server":
        o.rawServer = v() ?? die("--raw-server expects a command");
        o.libServerGiven = true;
        break;
      case "--quiet-wait":
        o.quietWait = num(a, v(), 0, false);
        break;
      case "--tries":
        o.tries = num(a, v(), 1, true);
        break;
      case "--patience":
        o.patience = num(a, v(), 0, false);
        break;
      case "--server-cpu":
        o.serverCpu = num(a, v(), 0, true);
        break;
      case "--client-cpu":
        o.clientCpu = num(a, v(), 0, true);
        break;
      case "--out":
        o.out = v() ?? die("--out expects a folder");
        break;
      case "--report":
        o.report = v() ?? die("--report expects the folder of an earlier run");
        break;
      case "-h":
      case "--help":
        console.log(HELP);
        process.exit(0);
        break;
      default:
        die(`unknown option ${a}\n${HELP}`);
    }
  }
  const known = new Set([...MATRIX.map((c) => c.name), IDLE_NAME]);
  for (const c of o.cells ?? []) if (!known.has(c)) die(`unknown cell ${c}; cells: ${[...known].join(", ")}`);
  if (forceNoWrite) o.writeResults = false;
  else if (o.writeResults === null)
    o.writeResults = !o.quick && o.cells === null && o.idle && !o.libServerGiven && o.report === null;
  return o;
}

// ---------------------------------------------------------------- small helpers

function die(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}
function log(msg: string): void {
  console.error(`bench: ${msg}`);
}
const sleep = (s: number): Promise<void> => Bun.sleep(Math.max(0, s * 1000));
const now = (): number => performance.now() / 1000;

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function median(xs: number[]): number | undefined {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return undefined;
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

/** Output of a short helper command, or `fallback` (bounded: 5 s). */
function cmdOut(argv: string[], fallback: string): string {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "ignore", timeout: 5000 });
    const s = r.stdout.toString().trim();
    return r.exitCode === 0 && s !== "" ? s : fallback;
  } catch {
    return fallback;
  }
}

// ---------------------------------------------------------------- /proc readers

const HZ = Number(cmdOut(["getconf", "CLK_TCK"], "100")) || 100;

/** utime + stime (ticks, all threads) of one process; undefined when it is gone. */
function procTicks(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Busy ticks (all but idle and iowait; guest time is already in user) of the given CPUs, or of all. */
function busyTicks(cpuIds: number[] | null): number {
  let sum = 0;
  const want = cpuIds === null ? new Set(["cpu"]) : new Set(cpuIds.map((c) => `cpu${c}`));
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const f = line.split(/\s+/);
    if (!want.has(f[0]!)) continue;
    // user nice system idle iowait irq softirq steal
    for (const k of [1, 2, 3, 6, 7, 8]) sum += Number(f[k] ?? 0);
  }
  return sum;
}

function treePids(pid: number): number[] {
  const out = [pid];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let children = "";
    try {
      children = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8");
    } catch {}
    for (const c of children.split(" ").filter((x) => x !== "")) out.push(...treePids(Number(c)));
  }
  return out;
}

/** A /proc/PID/status field (kB) summed over the process tree. */
function memKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  let sum = 0;
  for (const p of treePids(pid)) {
    try {
      const m = readFileSync(`/proc/${p}/status`, "utf8").match(new RegExp(`^${field}:\\s+(\\d+)`, "m"));
      if (m) sum += Number(m[1]);
    } catch {}
  }
  return sum;
}

// ---------------------------------------------------------------- processes

const started = new Set<Subprocess>();

function alive(p: Subprocess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** Stop a process started here: SIGTERM, then SIGKILL after `graceS`. */
async function stopProc(p: Subprocess, graceS = 5): Promise<void> {
  if (alive(p)) {
    p.kill("SIGTERM");
    const done = await Promise.race([p.exited.then(() => true), sleep(graceS).then(() => false)]);
    if (!done) {
      p.kill("SIGKILL");
      await Promise.race([p.exited, sleep(2)]);
    }
  }
  started.delete(p);
}

async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => stopProc(p, 2)));
}

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping the processes started here`);
    void stopAll().finally(() => process.exit(130));
  });
}

/** argv pinned to `cpu` (when pinning works) with the fd limit raised to at least `nofile`. */
function wrap(cpu: number | null, argv: string[], nofile: number): string[] {
  const sh =
    `n=$(ulimit -n); if [ "$n" != unlimited ] && [ "$n" -lt ${nofile} ]; then ` +
    `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; fi; exec "$@"`;
  const base = ["bash", "-c", sh, "bench", ...argv];
  return cpu === null ? base : ["taskset", "-c", String(cpu), ...base];
}

/** Read a stream to the end, handing each decoded piece to `sink`. */
async function pump(stream: ReadableStream<Uint8Array>, sink: (s: string) => void): Promise<void> {
  const dec = new TextDecoder();
  try {
    for await (const chunk of stream) sink(dec.decode(chunk, { stream: true }));
  } catch {}
}

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

// ---------------------------------------------------------------- the run

interface ServerSpec {
  readonly label: string;
  readonly argv: string[];
}

interface Server {
  readonly spec: ServerSpec;
  readonly proc: Subprocess;
  readonly pid: number;
  readonly port: number;
}

interface Run {
  server: string;
  cell: string;
  rep: number;
  tries: number;
  restarted: boolean;
  /** loadgen's JSON line */
  lg?: Record<string, number | string>;
  rate?: number;
  p99?: number;
  errors?: number;
  clientCpu?: number;
  serverCpu?: number;
  otherCpu?: number;
  died?: boolean;
  /** why there is no measurement */
  failed?: string;
  /** what loadgen said on stderr */
  warn?: string;
  // idle cell
  held?: number;
  rss0?: number;
  rss1?: number;
  hwm1?: number;
  kbPerConn?: number;
}

function specOf(label: string, cmd: string): ServerSpec {
  const argv = cmd.split(/\s+/).filter((s) => s !== "");
  if (argv.length === 0) die(`empty command for ${label}`);
  if (/\.(ts|tsx|js|mjs)$/.test(argv[0]!)) argv.unshift(process.execPath);
  return { label, argv };
}

class Bench {
  readonly o: Options;
  readonly outDir: string;
  readonly loadgen: string;
  readonly serverCpu: number | null;
  readonly clientCpu: number | null;
  readonly statCpus: number[] | null;
  readonly nofile: number;
  readonly runs: Run[] = [];
  readonly specs: ServerSpec[];
  crashed = false;
  disturbed = 0;
  #logSeq = 0;

  constructor(o: Options) {
    this.o = o;
    this.outDir = o.out ?? mkdtempSync(join(tmpdir(), "sockerl-bench-"));
    mkdirSync(this.outDir, { recursive: true });
    this.loadgen = buildLoadgen();
    this.nofile = Math.max(o.idleConns + 1024, 4096);
    const ncpu = availableParallelism();
    const pin = Bun.which("taskset") !== null && ncpu > Math.max(o.serverCpu, o.clientCpu);
    if (!pin) log(`not pinning (taskset missing or fewer than 2 CPUs: ${ncpu}); expect more noise`);
    this.serverCpu = pin ? o.serverCpu : null;
    this.clientCpu = pin ? o.clientCpu : null;
    this.statCpus = pin ? [o.serverCpu, o.clientCpu] : null;
    this.specs = [specOf("raw", o.rawServer), specOf("sockerl", o.libServer)];
  }

  // ---- servers

  async startServer(spec: ServerSpec): Promise<Server | undefined> {
    const port = freePort();
    const logPath = join(this.outDir, `server-${spec.label}-${++this.#logSeq}.log`);
    const proc = Bun.spawn(wrap(this.serverCpu, [...spec.argv, String(port)], this.nofile), {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    started.add(proc);
    const ready = Promise.withResolvers<boolean>();
    let seen = "";
    void pump(proc.stdout, (s) => {
      appendFileSync(logPath, s);
      if (seen.length < 65536) {
        seen += s;
        if (/^ready/m.test(seen)) ready.resolve(true);
      }
    });
    void pump(proc.stderr, (s) => appendFileSync(logPath, s));
    void proc.exited.then(() => ready.resolve(false));
    const timer = setTimeout(() => ready.resolve(false), this.o.readyTimeout * 1000);
    const ok = await ready.promise;
    clearTimeout(timer);
    if (ok && alive(proc)) return { spec, proc, pid: proc.pid, port };
    await stopProc(proc);
    await sleep(0.1); // let the last output land in the log
    const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").trim().split("\n").slice(-15) : [];
    log(
      `${spec.label} (${spec.argv.join(" ")}) ` +
        (ok ? "exited" : `did not print "ready" within ${this.o.readyTimeout} s or exited`) +
        ` (exit ${proc.exitCode ?? proc.signalCode}); log ${logPath}:\n    ${tail.join("\n    ")}`,
    );
    return undefined;
  }

  // ---- measurement helpers

  /** Extra time (s) spent so far on waiting for quiet CPUs and on measuring again; see --patience. */
  patienceSpent = 0;
  patienceOut = false;

  /** Spend `s` seconds of the patience budget; false once it is exhausted. */
  spendPatience(s: number): boolean {
    this.patienceSpent += s;
    if (this.patienceSpent >= this.o.patience && !this.patienceOut) {
      this.patienceOut = true;
      log(`spent ${this.o.patience} s waiting for others (--patience): from now on measuring straight on`);
    }
    return !this.patienceOut;
  }

  /**
   * Wait until the two CPUs have been nearly idle for quietSecs: at most quietWait s, and only
   * while the patience budget lasts (the time beyond quietSecs counts against it).
   */
  async waitQuiet(): Promise<void> {
    if (this.o.quietWait <= 0) return;
    const t0 = now();
    const need = Math.max(1, Math.round(this.o.quietSecs / 0.5));
    let quiet = 0;
    let said = false;
    for (;;) {
      const b0 = busyTicks(this.statCpus);
      await sleep(0.5);
      const load = (busyTicks(this.statCpus) - b0) / HZ / 0.5;
      if (load <= this.o.quietMax) {
        if (++quiet >= need) break;
      } else {
        quiet = 0;
        if (!said && this.o.quietWait > 0.5 && !this.patienceOut) {
          log(`CPUs busy (${load.toFixed(2)} used by others); waiting up to ${this.o.quietWait} s`);
          said = true;
        }
      }
      const waited = now() - t0;
      if (
        this.patienceOut ||
        waited >= this.o.quietWait ||
        this.patienceSpent + waited - this.o.quietSecs >= this.o.patience
      ) {
        if (said) log("still busy; measuring anyway");
        break;
      }
    }
    this.spendPatience(Math.max(0, now() - t0 - this.o.quietSecs));
  }

  /** Run loadgen to completion (bounded); returns its last stdout line parsed, or an error. */
  async loadgenRun(
    args: string[],
    limitS: number,
  ): Promise<{ json?: Record<string, number | string>; error?: string; warn?: string }> {
    const proc = Bun.spawn(wrap(this.clientCpu, [this.loadgen, ...args], this.nofile), {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    started.add(proc);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void stopProc(proc);
    }, limitS * 1000);
    const [out, err] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    await proc.exited;
    clearTimeout(timer);
    started.delete(proc);
    if (err.trim() !== "") appendFileSync(join(this.outDir, "loadgen.err"), err);
    const line = out.trim().split("\n").pop() ?? "";
    const warn = err.trim() === "" ? undefined : err.trim().split("\n").slice(-2).join(" / ");
    if (timedOut) return { error: `loadgen timed out after ${limitS} s` };
    if (proc.exitCode !== 0 || !line.startsWith("{"))
      return {
        error: `loadgen exit ${proc.exitCode ?? proc.signalCode}: ${err.trim().split("\n").pop() ?? ""}`,
      };
    try {
      return { json: JSON.parse(line), warn };
    } catch {
      return { error: `loadgen printed ${line}` };
    }
  }

  // ---- the matrix: echo and connect cells

  async matrix(cells: Cell[]): Promise<void> {
    const servers: (Server | undefined)[] = [];
    for (const spec of this.specs) servers.push(await this.startServer(spec));
    if (servers.some((s) => s === undefined)) this.crashed = true;
    const limit = this.o.dur + this.o.warm + this.o.setupTimeout + 30;
    for (let rep = 1; rep <= this.o.reps; rep++) {
      for (const cell of cells) {
        // alternate which server goes first, so neither always runs right after the other
        const order = rep % 2 === 1 ? [0, 1] : [1, 0];
        for (const i of order) {
          const spec = this.specs[i]!;
          let restarted = false;
          let srv = servers[i];
          if (srv !== undefined && !alive(srv.proc)) {
            log(
              `${spec.label} is not running (exit ${srv.proc.exitCode ?? srv.proc.signalCode}); restarting it`,
            );
            this.crashed = true;
            restarted = true;
            srv = servers[i] = await this.startServer(spec);
          }
          let run: Run = { server: spec.label, cell: cell.name, rep, tries: 0, restarted };
          if (srv === undefined) {
            run.failed = "server not running";
            this.runs.push(run);
            continue;
          }
          const args = ["-p", String(srv.port), "-c", String(cell.conns), "-s", String(cell.size)];
          args.push("-P", String(cell.pipeline), "-d", String(this.o.dur), "-w", String(this.o.warm));
          args.push("-T", String(this.o.setupTimeout), "-m", cell.mode);
          if (cell.rst) args.push("-L");
          // measure; when other processes disturbed it, measure again and keep the least disturbed try
          let best: Run | undefined;
          let t = 1;
          for (; ; t++) {
            const cand: Run = { server: spec.label, cell: cell.name, rep, tries: t, restarted };
            await this.measure(srv, cell, args, limit, cand);
            if (cand.failed !== undefined || cand.died) {
              best = cand;
              break;
            }
            if (best === undefined || (cand.otherCpu ?? 0) < (best.otherCpu ?? 0)) best = cand;
            if ((cand.otherCpu ?? 0) <= this.o.otherMax || t >= this.o.tries) break;
            if (!this.spendPatience(this.o.dur + this.o.warm)) break;
            this.disturbed++;
            log(
              `rep ${rep} ${cell.name} ${spec.label}: disturbed (other_cpu ${fmt(cand.otherCpu, 2)}), again`,
            );
          }
          run = best;
          run.tries = t;
          this.runs.push(run);
          if (run.died) log(`${spec.label} died during ${cell.name} (log in ${this.outDir})`);
          if (run.failed !== undefined || run.died) this.crashed = true;
          log(`rep ${rep}/${this.o.reps} ${describeRun(run, cell)}`);
        }
      }
    }
    await Promise.all(servers.map((s) => (s ? stopProc(s.proc) : undefined)));
  }

  /** One loadgen run against `srv`, with the CPU use of the server, loadgen and everyone else. */
  async measure(srv: Server, cell: Cell, args: string[], limitS: number, run: Run): Promise<void> {
    await this.waitQuiet();
    const c0 = procTicks(srv.pid) ?? 0;
    const m0 = busyTicks(this.statCpus);
    const t0 = now();
    const r = await this.loadgenRun(args, limitS);
    const wall = now() - t0;
    const busy = (busyTicks(this.statCpus) - m0) / HZ / wall;
    const c1 = procTicks(srv.pid);
    run.died = c1 === undefined || !alive(srv.proc);
    run.warn = r.warn;
    if (r.error !== undefined || r.json === undefined) {
      run.failed = r.error ?? "no output";
    } else {
      run.lg = r.json;
      run.rate = Number(r.json[cell.mode === "connect" ? "conns_per_s" : "msgs_per_s"]);
      run.p99 = Number(r.json.p99_us);
      run.errors = Number(r.json.errors);
      run.clientCpu = Number(r.json.client_cpu);
    }
    if (run.died) return;
    run.serverCpu = ((c1 ?? c0) - c0) / HZ / wall;
    // loadgen's client_cpu covers the measured window only, busy the whole run: near 0 when quiet
    run.otherCpu = busy - run.serverCpu - (run.clientCpu ?? 0);
  }

  // ---- idle connections: RSS per connection, a fresh server per repetition

  async idleCell(cell: Cell): Promise<void> {
    for (let rep = 1; rep <= this.o.reps; rep++) {
      const order = rep % 2 === 1 ? [0, 1] : [1, 0];
      for (const i of order) {
        const spec = this.specs[i]!;
        const run: Run = { server: spec.label, cell: cell.name, rep, tries: 1, restarted: false };
        this.runs.push(run);
        const srv = await this.startServer(spec);
        if (srv === undefined) {
          run.failed = "server did not start";
          this.crashed = true;
          continue;
        }
        await this.idleOnce(srv, cell, run);
        if (!alive(srv.proc)) {
          run.died = true;
          this.crashed = true;
        }
        await stopProc(srv.proc);
        log(`rep ${rep}/${this.o.reps} ${describeRun(run, cell)}`);
      }
    }
  }

  async idleOnce(srv: Server, cell: Cell, run: Run): Promise<void> {
    await sleep(this.o.idleSettle);
    await this.waitQuiet();
    const rss0 = memKb(srv.pid, "VmRSS");
    const args = ["-m", "idle", "-p", String(srv.port), "-c", String(cell.conns), "-s", String(cell.size)];
    args.push("-t", String(this.o.idleHold), "-T", String(this.o.setupTimeout));
    const proc = Bun.spawn(wrap(this.clientCpu, [this.loadgen, ...args], this.nofile), {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    started.add(proc);
    const first = Promise.withResolvers<string | undefined>();
    let out = "";
    let err = "";
    const pumped = Promise.all([
      pump(proc.stdout, (s) => {
        out += s;
        if (out.includes("\n")) first.resolve(out.slice(0, out.indexOf("\n")));
      }),
      pump(proc.stderr, (s) => (err += s)),
    ]);
    void proc.exited.then(() => first.resolve(undefined));
    const timer = setTimeout(() => first.resolve(undefined), (this.o.setupTimeout + 10) * 1000);
    const line = await first.promise;
    clearTimeout(timer);
    if (line !== undefined) {
      await sleep(this.o.idleSettle); // let the server settle with every connection open
      run.rss1 = memKb(srv.pid, "VmRSS");
      run.hwm1 = memKb(srv.pid, "VmHWM");
    }
    // loadgen exits by itself after holding; bound the wait anyway
    const exited = await Promise.race([
      proc.exited.then(() => true),
      sleep(this.o.idleHold + 10).then(() => false),
    ]);
    if (!exited) await stopProc(proc);
    await Promise.race([pumped, sleep(1)]);
    started.delete(proc);
    if (err.trim() !== "") appendFileSync(join(this.outDir, "loadgen.err"), err);
    let json: Record<string, number | string> | undefined;
    try {
      json = line?.startsWith("{") ? JSON.parse(line) : undefined;
    } catch {}
    if (json === undefined || run.rss1 === undefined) {
      run.failed = `idle loadgen gave no result (exit ${proc.exitCode ?? proc.signalCode}) ${err.trim()}`;
      this.crashed = true;
      return;
    }
    run.lg = json;
    if (err.trim() !== "") run.warn = err.trim().split("\n").slice(-2).join(" / ");
    run.held = Number(json.held);
    run.errors = Number(json.errors);
    run.rss0 = rss0;
    run.kbPerConn = run.held > 0 ? (run.rss1 - rss0) / run.held : undefined;
  }
}

function describeRun(r: Run, cell: Cell): string {
  const head = `${cell.name} ${r.server}:`;
  if (r.failed !== undefined) return `${head} FAILED (${r.failed})${r.died ? ", server died" : ""}`;
  if (cell.mode === "idle")
    return (
      `${head} held ${fmt(r.held)}, RSS ${fmt((r.rss0 ?? 0) / 1024, 1)} -> ${fmt((r.rss1 ?? 0) / 1024, 1)} MB ` +
      `(hwm ${fmt((r.hwm1 ?? 0) / 1024, 1)}), ${fmt(r.kbPerConn, 2)} kB/conn` +
      (r.errors ? `, ${r.errors} errors` : "") +
      (r.died ? ", server died" : "")
    );
  return (
    `${head} ${fmt(r.rate)} ${cell.mode === "connect" ? "conns" : "msgs"}/s, p99 ${fmt(r.p99)} µs, ` +
    `client_cpu ${fmt(r.clientCpu, 2)}, server_cpu ${fmt(r.serverCpu, 2)}, other_cpu ${fmt(r.otherCpu, 2)}` +
    (r.errors ? `, ${r.errors} errors` : "") +
    (r.tries > 1 ? `, try ${r.tries}` : "") +
    (r.died ? ", server died" : "")
  );
}

// ---------------------------------------------------------------- loadgen build

function buildLoadgen(): string {
  const src = join(BENCH, "loadgen.c");
  const bin = join(BENCH, ".build", "loadgen");
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  log(`building ${relative(ROOT, bin)} (gcc -O2)`);
  const r = Bun.spawnSync(["gcc", "-O2", "-o", tmp, src], {
    stdout: "inherit",
    stderr: "inherit",
    timeout: 120_000,
  });
  if (r.exitCode !== 0) die("cannot build bench/loadgen.c with gcc");
  renameSync(tmp, bin); // atomic: a concurrent run never sees a half-written binary
  return bin;
}

// ---------------------------------------------------------------- report

interface Summary {
  rate?: number;
  p99?: number;
  clientCpu?: number;
  clientCpuMax?: number;
  serverCpu?: number;
  errors: number;
  died: number;
  failed: number;
  kbPerConn?: number;
  rss0?: number;
  rss1?: number;
  hwm1?: number;
  held?: number;
}

/** A measurement at all: loadgen gave a result and the server lived through it. */
const usable = (r: Run): boolean => r.failed === undefined && !r.died;
/** ...and nobody else used the two CPUs meanwhile (always true for the idle cell). */
const clean = (r: Run, otherMax: number): boolean => usable(r) && (r.otherCpu ?? 0) <= otherMax;

/** Medians over the undisturbed runs, or over all usable runs when every one was disturbed. */
function summarize(runs: Run[], otherMax: number): Summary {
  const cleanRuns = runs.filter((r) => clean(r, otherMax));
  const ok = cleanRuns.length > 0 ? cleanRuns : runs.filter(usable);
  const med = (f: (r: Run) => number | undefined): number | undefined =>
    median(ok.map(f).filter((x): x is number => x !== undefined));
  const cc = ok.map((r) => r.clientCpu).filter((x): x is number => x !== undefined);
  return {
    rate: med((r) => r.rate),
    p99: med((r) => r.p99),
    clientCpu: med((r) => r.clientCpu),
    clientCpuMax: cc.length ? Math.max(...cc) : undefined,
    serverCpu: med((r) => r.serverCpu),
    errors: runs.reduce((a, r) => a + (r.errors ?? 0), 0),
    died: runs.filter((r) => r.died).length,
    failed: runs.filter((r) => r.failed !== undefined).length,
    kbPerConn: med((r) => r.kbPerConn),
    rss0: med((r) => r.rss0),
    rss1: med((r) => r.rss1),
    hwm1: med((r) => r.hwm1),
    held: med((r) => r.held),
  };
}

function mdTable(rows: string[][], align: ("l" | "r")[]): string {
  const w = align.map((_, i) => Math.max(3, ...rows.map((r) => [...(r[i] ?? "")].length)));
  const pad = (s: string, i: number): string => {
    const n = w[i]! - [...s].length;
    return align[i] === "r" ? " ".repeat(n) + s : s + " ".repeat(n);
  };
  const line = (r: string[]): string => `| ${r.map((s, i) => pad(s, i)).join(" | ")} |`;
  // the separator row in biome's markdown format, so a generated RESULTS.md passes `biome check`
  const sep = `| ${align.map((a, i) => (a === "r" ? `${"-".repeat(w[i]! - 1)}:` : "-".repeat(w[i]!))).join(" | ")} |`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}

/** Everything a run recorded: enough to print its table again later (`--report DIR`). */
interface Recorded {
  date: string;
  bun: string;
  kernel: string;
  nproc: string;
  cpuModel: string;
  pin: string;
  reps: number;
  dur: number;
  warm: number;
  otherMax: number;
  patience: number;
  servers: { label: string; cmd: string }[];
  cells: Cell[];
  runs: Run[];
  disturbed: number;
  patienceOut: boolean;
  seconds: number;
  outDir: string;
}

function report(b: Recorded): { table: string; notes: string[]; runsTable: string } {
  const cells = b.cells;
  const [raw, lib] = b.servers.map((s) => s.label) as [string, string];
  const rows: string[][] = [
    [
      "cell",
      raw,
      lib,
      `${lib}/${raw}`,
      `p99 µs ${raw}`,
      `p99 µs ${lib}`,
      `cpu ${raw} srv/cli`,
      `cpu ${lib} srv/cli`,
    ],
  ];
  const notes: string[] = [];
  const busyClient: string[] = [];
  const flag = (s: Summary): string =>
    (s.errors ? ` (${fmt(s.errors)} err)` : "") +
    (s.died ? ` (died ${s.died}×)` : "") +
    (s.failed ? " (failed)" : "");
  for (const cell of cells) {
    const runsOf = (label: string): Run[] => b.runs.filter((r) => r.cell === cell.name && r.server === label);
    const sr = summarize(runsOf(raw), b.otherMax);
    const sl = summarize(runsOf(lib), b.otherMax);
    // The ratio is the median of the per-repetition ratios: in each repetition the two servers ran
    // back to back, so drift of the machine between repetitions cancels out. Pairs where someone
    // else used the CPUs are left out while undisturbed pairs exist. The range shows the noise.
    const all: { x: number; clean: boolean }[] = [];
    for (let rep = 1; rep <= b.reps; rep++) {
      const a = runsOf(raw).find((r) => r.rep === rep && usable(r));
      const l = runsOf(lib).find((r) => r.rep === rep && usable(r));
      if (a === undefined || l === undefined) continue;
      const [x, y] = cell.mode === "idle" ? [a.kbPerConn, l.kbPerConn] : [a.rate, l.rate];
      if (x !== undefined && y !== undefined && x > 0)
        all.push({ x: y / x, clean: clean(a, b.otherMax) && clean(l, b.otherMax) });
    }
    const pairs = all.some((p) => p.clean) ? all.filter((p) => p.clean) : all;
    const rs = pairs.map((p) => p.x);
    let ratio = rs.length > 0 ? `×${fmt(median(rs), 2)}` : "–";
    if (rs.length > 1) ratio += ` (${fmt(Math.min(...rs), 2)}–${fmt(Math.max(...rs), 2)})`;
    if (rs.length > 0 && rs.length < b.reps) ratio += ` [${rs.length}/${b.reps}]`;
    if (cell.mode === "idle") {
      const mb = (s: Summary): string =>
        `${fmt((s.rss0 ?? Number.NaN) / 1024, 1)} → ${fmt((s.rss1 ?? Number.NaN) / 1024, 1)} MB`;
      rows.push([
        cellTitle(cell),
        fmt(sr.kbPerConn, 2) + flag(sr),
        fmt(sl.kbPerConn, 2) + flag(sl),
        ratio,
        `RSS ${mb(sr)}`,
        `RSS ${mb(sl)}`,
        "–",
        "–",
      ]);
      for (const [label, s] of [
        [raw, sr],
        [lib, sl],
      ] as const)
        if (s.held !== undefined && s.held < cell.conns)
          notes.push(`idle: ${label} held only ${fmt(s.held)} connections`);
    } else {
      const cpu = (s: Summary): string => `${fmt(s.serverCpu, 2)}/${fmt(s.clientCpu, 2)}`;
      rows.push([
        cellTitle(cell),
        fmt(sr.rate) + flag(sr),
        fmt(sl.rate) + flag(sl),
        ratio,
        fmt(sr.p99),
        fmt(sl.p99),
        cpu(sr),
        cpu(sl),
      ]);
      for (const [label, s] of [
        [raw, sr],
        [lib, sl],
      ] as const)
        if (s.clientCpuMax !== undefined && s.clientCpuMax >= 0.95)
          busyClient.push(`${cell.name} ${label} (${fmt(s.clientCpuMax, 2)})`);
    }
  }
  if (busyClient.length > 0)
    notes.push(
      `loadgen client_cpu ≥ 0.95 (it may be near its limit; see "Load generator headroom" in README.md): ${busyClient.join(", ")}`,
    );
  for (const r of b.runs)
    if (r.failed !== undefined || r.died)
      notes.push(
        `rep ${r.rep} ${r.cell} ${r.server}: ${[r.failed, r.died ? "the server died during the run" : undefined].filter(Boolean).join("; ")}`,
      );
  for (const r of b.runs)
    if (r.warn !== undefined && r.failed === undefined)
      notes.push(`rep ${r.rep} ${r.cell} ${r.server}: loadgen: ${r.warn}`);
  if (b.disturbed > 0)
    notes.push(`${b.disturbed} measurement(s) disturbed by other processes were measured again`);
  const still = b.runs.filter((r) => (r.otherCpu ?? 0) > b.otherMax);
  if (still.length > 0)
    notes.push(
      `kept although disturbed (other_cpu > ${b.otherMax}): ` +
        still.map((r) => `rep ${r.rep} ${r.cell} ${r.server} (${fmt(r.otherCpu, 2)})`).join(", "),
    );
  if (b.patienceOut) notes.push(`the machine was busy: the --patience budget (${b.patience} s) ran out`);

  const runRows: string[][] = [
    [
      "rep",
      "cell",
      "server",
      "rate /s",
      "p50 µs",
      "p99 µs",
      "MB/s",
      "err",
      "client_cpu",
      "server_cpu",
      "other_cpu",
      "tries",
    ],
  ];
  for (const r of b.runs) {
    if (r.cell === IDLE_NAME) continue;
    const lg = r.lg ?? {};
    runRows.push([
      String(r.rep),
      r.cell,
      r.server,
      r.failed !== undefined ? "failed" : fmt(r.rate),
      fmt(Number(lg.p50_us)),
      fmt(r.p99),
      fmt(Number(lg.mb_per_s), 1),
      fmt(r.errors),
      fmt(r.clientCpu, 2),
      fmt(r.serverCpu, 2),
      fmt(r.otherCpu, 2),
      String(r.tries),
    ]);
  }
  for (const r of b.runs) {
    if (r.cell !== IDLE_NAME) continue;
    runRows.push([
      String(r.rep),
      `idle held ${fmt(r.held)}`,
      r.server,
      r.failed !== undefined ? "failed" : `${fmt(r.kbPerConn, 2)} kB/conn`,
      `RSS ${fmt((r.rss0 ?? Number.NaN) / 1024, 1)} MB`,
      `${fmt((r.rss1 ?? Number.NaN) / 1024, 1)} MB`,
      `hwm ${fmt((r.hwm1 ?? Number.NaN) / 1024, 1)}`,
      fmt(r.errors),
      "–",
      "–",
      "–",
      String(r.tries),
    ]);
  }
  return {
    table: mdTable(rows, ["l", "r", "r", "r", "r", "r", "r", "r"]),
    notes,
    runsTable: mdTable(runRows, ["r", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r"]),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.report !== null) {
    const file = join(o.report, "run.json");
    if (!existsSync(file)) die(`no ${file}`);
    render(JSON.parse(readFileSync(file, "utf8")) as Recorded, o.writeResults === true);
    return 0;
  }
  let cells = MATRIX.filter((c) => (o.cells ? o.cells.includes(c.name) : !(o.quick && c.fullOnly)));
  const wantIdle = o.idle && (o.cells ? o.cells.includes(IDLE_NAME) : true);
  const idleCell: Cell = { name: IDLE_NAME, mode: "idle", conns: o.idleConns, size: 64, pipeline: 1 };
  const b = new Bench(o);
  const t0 = now();
  const date = cmdOut(["date", "-u"], new Date().toUTCString());
  const nproc = cmdOut(["nproc"], String(availableParallelism()));
  const cpuModel = (
    readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU"
  ).trim();
  const kernel = cmdOut(["uname", "-r"], "?");
  const show = (s: ServerSpec): string =>
    s.argv.map((a) => (a === process.execPath ? "bun" : relative(ROOT, a) || a)).join(" ");
  log(
    `${o.quick ? "quick" : "full"} run: ${o.reps} rep(s) × ${o.dur} s (+${o.warm} s warm-up); ` +
      `cells ${[...cells.map((c) => c.name), ...(wantIdle ? [`idle(${o.idleConns})`] : [])].join(", ")}; ` +
      `servers ${b.specs.map((s) => `${s.label}=${show(s)}`).join(", ")}; logs in ${b.outDir}`,
  );
  try {
    if (cells.length > 0) await b.matrix(cells);
    if (wantIdle) await b.idleCell(idleCell);
  } finally {
    await stopAll();
  }
  if (wantIdle) cells = [...cells, idleCell];
  const pin =
    b.serverCpu === null ? "unpinned" : `server pinned to CPU ${b.serverCpu}, loadgen to CPU ${b.clientCpu}`;
  const rec: Recorded = {
    date,
    bun: Bun.version,
    kernel,
    nproc,
    cpuModel,
    pin,
    reps: o.reps,
    dur: o.dur,
    warm: o.warm,
    otherMax: o.otherMax,
    patience: o.patience,
    servers: b.specs.map((s) => ({ label: s.label, cmd: show(s) })),
    cells,
    runs: b.runs,
    disturbed: b.disturbed,
    patienceOut: b.patienceOut,
    seconds: Math.round(now() - t0),
    outDir: b.outDir,
  };
  writeFileSync(join(b.outDir, "run.json"), JSON.stringify(rec, null, 1));
  render(rec, o.writeResults === true);
  return b.crashed ? 1 : 0;
}

/** Print the table and notes; with `write`, rewrite bench/RESULTS.md. */
function render(rec: Recorded, write: boolean): void {
  const { table, notes, runsTable } = report(rec);
  const setup =
    `Bun ${rec.bun}, Linux ${rec.kernel}, ${rec.nproc} CPUs (${rec.cpuModel}), ${rec.pin}; ` +
    `${rec.reps} rep(s) × ${rec.dur} s (+${rec.warm} s warm-up) per cell and server, medians`;
  console.log(`\n${table}\n`);
  for (const n of notes) console.log(`note: ${n}`);
  console.log(`${setup}; ${rec.seconds} s in all; details in ${rec.outDir}`);
  if (!write) return;
  const md = [
    "# Benchmark results",
    "",
    "Written by `bun bench/run.ts` (see [README.md](README.md)); rerun it to refresh this file.",
    "",
    `- Date: ${rec.date}`,
    `- Bun ${rec.bun}, Linux ${rec.kernel}, nproc ${rec.nproc} (${rec.cpuModel})`,
    `- ${rec.pin}; ${rec.reps} repetitions × ${rec.dur} s (+${rec.warm} s warm-up) per cell and server, ` +
      "interleaved cell by cell",
    `- Servers: ${rec.servers.map((s) => `${s.label} = \`${s.cmd}\``).join(", ")}`,
    "",
    "Rates in msgs/s or conns/s (higher is better), medians over the repetitions. The ratio column is the",
    "median of the per-repetition ratios library/raw (both servers ran back to back in each repetition),",
    "with their range in brackets; `[2/3]` means a repetition disturbed by other processes was left out.",
    "For the idle cell it is kB per connection (lower is better). `cpu srv/cli` = CPU used by the server /",
    "by loadgen during the run (1.00 = one full core). See README.md for how to read it.",
    "",
    table,
    "",
    ...(notes.length ? [...notes.map((n) => `- ${n}`), ""] : []),
    "## Every run",
    "",
    runsTable,
    "",
  ].join("\n");
  writeFileSync(join(BENCH, "RESULTS.md"), md);
  log("wrote bench/RESULTS.md");
}

process.exit(await main());
