/**
 * The measurements of the load benchmark: the servers, the interleaved repetitions of the cells
 * (cells.ts), quiet-machine detection (wait for idle CPUs, measure again when someone else used them,
 * all within a patience budget). The idle-memory cell is in idle.ts, the RESP cells' runs in resp.ts.
 * @module
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Options } from "./args.ts";
import { type Cell, REDIS_LABEL, SERVER_FILES, serversOf } from "./cells.ts";
import {
  alive,
  BENCH,
  buildLoadgen,
  busyTicks,
  freePort,
  HZ,
  type Loadgen,
  procTicks,
  pump,
  ROOT,
  runBounded,
  started,
  stopProc,
  wrap,
} from "./process.ts";
import { measureResp, redisServerSpec } from "./resp.ts";
import { die, fmt, log, now, sleep } from "./util.ts";

// ---------------------------------------------------------------- runs

/** A server to start: its label and command. */
export interface ServerSpec {
  readonly label: string;
  readonly argv: string[];
  /** the line that says it is ready, when it is not one starting with "ready" (redis-server) */
  readonly ready?: RegExp;
}

/** A running server. */
export interface Server {
  readonly spec: ServerSpec;
  readonly proc: Subprocess;
  readonly pid: number;
  readonly port: number;
  /** the line it printed when ready (some say which option they use) */
  readonly ready: string;
}

/** One measurement of one server in one cell and repetition. */
export interface Run {
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
  /** RESP cells: the server's CPU µs per request */
  cpuPerReq?: number;
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

/** A server command: a `.ts`/`.js` file runs with this Bun, anything else as a command. */
export function specOf(label: string, cmd: string): ServerSpec {
  const argv = cmd.split(/\s+/).filter((s) => s !== "");
  if (argv.length === 0) die(`empty command for ${label}`);
  if (/\.(ts|tsx|js|mjs)$/.test(argv[0]!)) argv.unshift(process.execPath);
  return { label, argv };
}

/** One line per run, for the progress log. */
export function describeRun(r: Run, cell: Cell): string {
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
    `${head} ${fmt(r.rate)} ${cell.mode === "connect" ? "conns" : cell.mode === "resp" ? "req" : "msgs"}/s, ` +
    (r.cpuPerReq !== undefined ? `${fmt(r.cpuPerReq, 2)} µs CPU/req, ` : "") +
    `p99 ${fmt(r.p99)} µs, ` +
    `client_cpu ${fmt(r.clientCpu, 2)}, server_cpu ${fmt(r.serverCpu, 2)}, other_cpu ${fmt(r.otherCpu, 2)}` +
    (r.errors ? `, ${r.errors} errors` : "") +
    (r.tries > 1 ? `, try ${r.tries}` : "") +
    (r.died ? ", server died" : "")
  );
}

/** A whole measurement session: servers, loadgen, every run, the quiet-machine logic. */
export class Bench {
  readonly o: Options;
  readonly outDir: string;
  readonly loadgen: Loadgen;
  readonly serverCpu: number | null;
  readonly clientCpu: number | null;
  readonly statCpus: number[] | null;
  readonly nofile: number;
  readonly runs: Run[] = [];
  /** every server by label */
  readonly specs: Map<string, ServerSpec>;
  /** what each server printed when it was ready, by label (the last start) */
  readonly readyLines = new Map<string, string>();
  crashed = false;
  disturbed = 0;
  #logSeq = 0;

  constructor(o: Options) {
    this.o = o;
    this.outDir = o.out ?? mkdtempSync(join(tmpdir(), "sockerl-bench-"));
    mkdirSync(this.outDir, { recursive: true });
    try {
      this.loadgen = buildLoadgen();
    } catch (e) {
      die((e as Error).message);
    }
    this.nofile = Math.max(o.idleConns + 1024, 4096);
    const ncpu = availableParallelism();
    const pin = Bun.which("taskset") !== null && ncpu > Math.max(o.serverCpu, o.clientCpu);
    if (!pin) log(`not pinning (taskset missing or fewer than 2 CPUs: ${ncpu}); expect more noise`);
    this.serverCpu = pin ? o.serverCpu : null;
    this.clientCpu = pin ? o.clientCpu : null;
    this.statCpus = pin ? [o.serverCpu, o.clientCpu] : null;
    this.specs = new Map(
      Object.entries(SERVER_FILES).map(([label, file]) => [label, specOf(label, join(BENCH, file))]),
    );
    this.specs.set("raw", specOf("raw", o.rawServer));
    this.specs.set("sockerl", specOf("sockerl", o.libServer));
    const redis = redisServerSpec();
    if (redis !== null) this.specs.set(REDIS_LABEL, redis);
    for (const [label, cmd] of Object.entries(o.serverOverrides))
      this.specs.set(label, { ...specOf(label, cmd), ready: this.specs.get(label)?.ready });
  }

  spec(label: string): ServerSpec {
    return this.specs.get(label) ?? die(`no server ${label}`);
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
    const ready = Promise.withResolvers<string | undefined>();
    let seen = "";
    void pump(proc.stdout, (s) => {
      appendFileSync(logPath, s);
      if (seen.length < 65536) {
        seen += s;
        const m = seen.match(spec.ready ?? /^ready.*$/m);
        if (m) ready.resolve(m[0]);
      }
    });
    void pump(proc.stderr, (s) => appendFileSync(logPath, s));
    void proc.exited.then(() => ready.resolve(undefined));
    const timer = setTimeout(() => ready.resolve(undefined), this.o.readyTimeout * 1000);
    const line = await ready.promise;
    clearTimeout(timer);
    if (line !== undefined && alive(proc)) {
      // a ready line of its own (redis-server's log) says nothing about options
      this.readyLines.set(spec.label, spec.ready ? "ready" : line.trim().replace(/ port=\d+/, ""));
      return { spec, proc, pid: proc.pid, port, ready: line };
    }
    await stopProc(proc);
    await sleep(0.1); // let the last output land in the log
    const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").trim().split("\n").slice(-15) : [];
    log(
      `${spec.label} (${spec.argv.join(" ")}) ` +
        (line !== undefined ? "exited" : `did not print "ready" within ${this.o.readyTimeout} s or exited`) +
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
    const { proc, out, err, timedOut } = await runBounded(
      wrap(this.clientCpu, [this.loadgen.bin, ...args], this.nofile),
      limitS,
    );
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

  /**
   * Every repetition runs every cell once per server of the cell, back to back; the order of the
   * servers is reversed in even repetitions, so none always runs right after another. Each server
   * is one process for the whole matrix, started before the first measurement.
   */
  async matrix(cells: Cell[]): Promise<void> {
    const servers = new Map<string, Server | undefined>();
    for (const label of new Set(cells.flatMap(serversOf))) {
      const srv = await this.startServer(this.spec(label));
      servers.set(label, srv);
      if (srv === undefined) this.crashed = true;
    }
    const limit = this.o.dur + this.o.warm + this.o.setupTimeout + 30;
    for (let rep = 1; rep <= this.o.reps; rep++) {
      for (const cell of cells) {
        const order = serversOf(cell);
        if (rep % 2 === 0) order.reverse();
        for (const label of order) {
          const spec = this.spec(label);
          let restarted = false;
          let srv = servers.get(label);
          if (srv !== undefined && !alive(srv.proc)) {
            log(
              `${spec.label} is not running (exit ${srv.proc.exitCode ?? srv.proc.signalCode}); restarting it`,
            );
            this.crashed = true;
            restarted = true;
            srv = await this.startServer(spec);
            servers.set(label, srv);
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
          if (cell.framing) args.push("-f", cell.framing);
          if (cell.tls) args.push("-S");
          // measure; when other processes disturbed it, measure again and keep the least disturbed try
          let best: Run | undefined;
          let t = 1;
          for (; ; t++) {
            const cand: Run = { server: spec.label, cell: cell.name, rep, tries: t, restarted };
            if (cell.mode === "resp") await measureResp(this, srv, cell, cand);
            else await this.measure(srv, cell, args, limit, cand);
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
    await Promise.all([...servers.values()].map((s) => (s ? stopProc(s.proc) : undefined)));
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
}
