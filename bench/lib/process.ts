/**
 * Processes of the load benchmark: /proc readers (CPU ticks, memory), starting commands pinned to a
 * CPU with a raised fd limit, stopping only what was started here (by PID), and building loadgen.
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import type { Subprocess } from "bun";
import { cmdOut, log, sleep } from "./util.ts";

/** The bench/ folder. */
export const BENCH = resolve(import.meta.dir, "..");
/** The repository root. */
export const ROOT = resolve(BENCH, "..");

// ---------------------------------------------------------------- /proc readers

/** Clock ticks per second of /proc's CPU counters. */
export const HZ = Number(cmdOut(["getconf", "CLK_TCK"], "100")) || 100;

/** utime + stime (ticks, all threads) of one process; undefined when it is gone. */
export function procTicks(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Busy ticks (all but idle and iowait; guest time is already in user) of the given CPUs, or of all. */
export function busyTicks(cpuIds: number[] | null): number {
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
export function memKb(pid: number, field: "VmRSS" | "VmHWM"): number {
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

/** Every process started here and not yet stopped. */
export const started = new Set<Subprocess>();

/** Whether `p` is still running. */
export function alive(p: Subprocess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** Stop a process started here: SIGTERM, then SIGKILL after `graceS`. */
export async function stopProc(p: Subprocess, graceS = 5): Promise<void> {
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

/** Stop everything started here. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => stopProc(p, 2)));
}

let interrupted = false;
/** On SIGINT/SIGTERM, stop the processes started here, then exit 130. */
export function stopOnSignals(): void {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${sig}: stopping the processes started here`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

/** argv pinned to `cpu` (when pinning works) with the fd limit raised to at least `nofile`. */
export function wrap(cpu: number | null, argv: string[], nofile: number): string[] {
  const sh =
    `n=$(ulimit -n); if [ "$n" != unlimited ] && [ "$n" -lt ${nofile} ]; then ` +
    `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; fi; exec "$@"`;
  const base = ["bash", "-c", sh, "bench", ...argv];
  return cpu === null ? base : ["taskset", "-c", String(cpu), ...base];
}

/**
 * Runs `argv` to completion from the repository root, stopped (by PID) after `limitS` s: a load
 * generator retries a dead server forever, so every run is bounded. Returns its exited process, its
 * whole stdout and stderr, and whether the bound stopped it.
 */
export async function runBounded(
  argv: string[],
  limitS: number,
): Promise<{ proc: Subprocess; out: string; err: string; timedOut: boolean }> {
  const proc = Bun.spawn(argv, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.add(proc);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProc(proc);
  }, limitS * 1000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(timer);
  started.delete(proc);
  return { proc, out, err, timedOut };
}

/**
 * Starts bench/servers/`file` on port 0 (for the bench's own tests: the caller kills what it pushes to
 * `procs`) and resolves with the port it printed in its "ready port=N" line, within 10 s.
 */
export async function startServerFile(file: string, procs: Subprocess[]): Promise<number> {
  const proc = Bun.spawn([process.execPath, join(BENCH, "servers", file), "0"], {
    stdout: "pipe",
    stderr: "inherit",
    stdin: "ignore",
  });
  procs.push(proc);
  const { match, seen } = await awaitOutput(proc.stdout, /^ready port=(\d+)/m, 10_000);
  if (match === null) throw new Error(`${file} did not print "ready port=N": ${seen}`);
  return Number(match[1]);
}

/**
 * Reads `stream` until what it printed matches `pattern` or `timeoutMs` pass (or it ends): the
 * match (null if none) and everything read. The stream is released, not cancelled, on a match.
 */
export async function awaitOutput(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<{ match: RegExpMatchArray | null; seen: string }> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let seen = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const next = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
    if (next === undefined || next.done) break;
    seen += dec.decode(next.value, { stream: true });
    const match = seen.match(pattern);
    if (match !== null) {
      reader.releaseLock();
      return { match, seen };
    }
  }
  return { match: null, seen };
}

/** Read a stream to the end, handing each decoded piece to `sink`. */
export async function pump(stream: ReadableStream<Uint8Array>, sink: (s: string) => void): Promise<void> {
  const dec = new TextDecoder();
  try {
    for await (const chunk of stream) sink(dec.decode(chunk, { stream: true }));
  } catch {}
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

// ---------------------------------------------------------------- loadgen build

/** The loadgen binary and whether it was built with TLS (OpenSSL). */
export interface Loadgen {
  readonly bin: string;
  readonly tls: boolean;
}

/** Whether a built loadgen has TLS (`loadgen -F` lists its features). */
function hasTls(bin: string): boolean {
  return cmdOut([bin, "-F"], "").split(/\s+/).includes("tls");
}

/**
 * Build bench/loadgen.c into bench/.build/loadgen when missing or older than the source: with
 * OpenSSL (`-DLOADGEN_TLS -lssl -lcrypto`) when its headers and libraries are there, else without
 * (the TLS cells are then skipped). Throws when gcc cannot build it at all.
 */
export function buildLoadgen(): Loadgen {
  const src = join(BENCH, "loadgen.c");
  const bin = join(BENCH, ".build", "loadgen");
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return { bin, tls: hasTls(bin) };
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const gcc = (extra: string[], quiet: boolean): boolean =>
    Bun.spawnSync(["gcc", "-O2", ...(extra.length ? ["-DLOADGEN_TLS"] : []), "-o", tmp, src, ...extra], {
      stdout: quiet ? "ignore" : "inherit",
      stderr: quiet ? "ignore" : "inherit",
      timeout: 120_000,
    }).exitCode === 0;
  log(`building ${relative(ROOT, bin)} (gcc -O2, with OpenSSL when available)`);
  if (!gcc(["-lssl", "-lcrypto"], true)) {
    log("OpenSSL (libssl-dev) not found: loadgen built without TLS, the TLS cells will be skipped");
    if (!gcc([], false)) throw new Error("cannot build bench/loadgen.c with gcc");
  }
  renameSync(tmp, bin); // atomic: a concurrent run never sees a half-written binary
  return { bin, tls: hasTls(bin) };
}
