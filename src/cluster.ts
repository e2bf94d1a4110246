/**
 * `cluster(options, main)`: one port served by several processes, so a server uses every core.
 *
 * The primary (the process you start) spawns `workers` copies of the entry script (`Bun.spawn` with
 * an IPC channel; the environment variable `SOCKERL_WORKER_ID` marks a worker and its slot id). In a
 * worker, `cluster()` runs `main` — which starts its servers with `reusePort: true`, so every worker
 * binds the same port and the kernel spreads connections across them (SO_REUSEPORT, Linux) — and
 * tells the primary it is ready. The primary supervises the workers with a restart plan.
 *
 * ```text
 *   primary ── spawn(slot) ──► worker: main() ──"ready"──► primary
 *      ▲                          │ exits (crash, SIGKILL, exit code)
 *      │                          ▼
 *      │   plan.decide(track of the slot, "exit 1" | "SIGKILL" | "normal" …, slot)
 *      │     ├─ restart after ms ─► spawn(slot) again (a slot up for 10 s starts its plan over)
 *      │     ├─ delete ─────────► the slot is gone (no slot left: the cluster ends "normal")
 *      │     ├─ wait ───────────► the slot is kept, empty
 *      │     └─ stop ───────────► every other worker stops gracefully; `exited` resolves with the reason
 *      │
 *   SIGTERM / SIGINT, stop({ drainMs }): "stop" over IPC → each worker stops its servers with
 *   drainMs (listeners closed first, connections get handleEvent("shutdown")), exits 0; the primary
 *   exits 0 once all have (SIGKILL after drainMs + 5 s). A second signal kills them at once.
 *
 *   restart({ drainMs }): rolling, one slot at a time: spawn the new worker, wait until its main
 *   resolved (it listens), then stop the old one gracefully.
 * ```
 *
 * Connections in a closing worker's accept queue: when a listening socket of a SO_REUSEPORT group
 * closes, Linux resets the connections that completed the handshake but were not accepted yet,
 * unless `net.ipv4.tcp_migrate_req = 1`, which moves them to another listener of the group. The
 * measured effect and the advice are in docs/scaling-out.md.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { backoff } from "./backoff.ts";
import { ArgumentError, describeReason, OptionError, SockerlError, WorkerExitError } from "./errors.ts";
import { type Plan, type PlanTrack, RestartPlan } from "./supervisor.ts";

/** The environment variable that marks a worker process (its slot id, from 1). */
export const WORKER_ENV = "SOCKERL_WORKER_ID";

/** Options of {@link cluster}. */
export interface ClusterOptions {
  /** Worker processes. @default the CPUs available (`os.availableParallelism()`), capped by the container's CPU quota */
  workers?: number;
  /** Restart plan per worker slot (reasons: `"normal"`, `"exit <code>"`, a signal name such as `"SIGKILL"`). @default [backoff()] */
  plan?: Plan;
  /** Full passes through the plan a slot may make (then the cluster ends with RestartLimitError). @default Infinity */
  planCount?: number;
  /** ms the workers' connections get to finish on a graceful stop or restart. @default 5000 */
  drainMs?: number;
  /** Extra environment variables for the workers (on top of the primary's). */
  env?: Record<string, string>;
  /** The worker command. @default the primary's own: `[process.execPath, ...process.execArgv, ...process.argv.slice(1)]` */
  cmd?: string[];
  /** ms a worker may take for `main` to resolve; then it is killed and its exit goes to the plan. @default 30000 */
  startTimeoutMs?: number;
  /** The primary stops gracefully on SIGTERM / SIGINT and exits 0. @default true */
  handleSignals?: boolean;
  /** A slot that stayed up this long starts its plan over (so backoff delays reset). @default 10000 */
  resetAfterMs?: number;
}

/** Summed `server.info()` of every worker (see {@link ClusterHandle.info}). */
export interface ClusterInfo {
  /** Workers running now. */
  workers: number;
  /** Workers that answered (a worker busy past 1 s is left out). */
  reporting: number;
  /** Servers counted. */
  servers: number;
  active: number;
  waiting: number;
  maxConnections: number;
  accepted: number;
  ended: { normal: number; peer: number; crash: number; shutdown: number };
  bytesIn: number;
  bytesOut: number;
  /** Each worker's own servers' info, as they reported it. */
  perWorker: Array<{ id: number; pid: number; servers: Array<Record<string, unknown>> }>;
}

/** What {@link cluster} resolves to in the primary. */
export interface ClusterHandle {
  /** `[slot id, pid]` of each running worker. */
  workers(): Array<[id: number, pid: number]>;
  /**
   * Rolling restart: one slot at a time, the new worker listening before the old one stops. Rejects
   * with {@link WorkerExitError} when a new worker exits before it is ready (that slot's old worker
   * keeps serving; the slots after it are not restarted).
   */
  restart(options?: { drainMs?: number }): Promise<void>;
  /** Graceful stop of every worker; resolves once all exited. */
  stop(options?: { drainMs?: number }): Promise<void>;
  /** Resolves with the reason the cluster ended (`"normal"` after `stop`, or a plan's stop reason). */
  readonly exited: Promise<unknown>;
  /** The sum of the workers' `server.info()`, asked over IPC. */
  info(): Promise<ClusterInfo>;
}

type ToWorker = { t: "stop"; drainMs: number } | { t: "info"; ref: number };
type FromWorker = { t: "ready" } | { t: "info"; ref: number; servers: Array<Record<string, unknown>> };

/**
 * The slot id of this worker process (from 1), or `undefined` in the primary (or outside a cluster).
 *
 * @example
 * console.log(`worker ${workerId() ?? "primary"} listening`);
 */
export function workerId(): number | undefined {
  const value = process.env[WORKER_ENV];
  if (value === undefined) return undefined;
  const id = Number(value);
  return Number.isInteger(id) && id > 0 ? id : undefined;
}

/**
 * Runs `main` in `workers` processes, supervised (see the module doc). In the primary it resolves
 * to a {@link ClusterHandle} once every worker's `main` resolved (so the port is served); in a worker
 * it runs `main` and resolves to `undefined` after it. Servers started in `main` must use
 * `reusePort: true`. On a graceful stop a worker stops every running server (and anything with a
 * `stop()` that `main` resolved to, or an array of such) with `drainMs`, then exits 0.
 *
 * @example
 * const handle = await cluster({ workers: 2 }, () =>
 *   startServer(echo, undefined, 8080, { hostname: "0.0.0.0", reusePort: true }),
 * );
 * // primary: handle.workers(), await handle.restart(), await handle.info()
 */
export async function cluster(
  options: ClusterOptions,
  main: () => Promise<unknown> | unknown,
): Promise<ClusterHandle | undefined> {
  if (typeof main !== "function") throw new ArgumentError("main", "a function", main);
  const settings = clusterSettings(options);
  const id = workerId();
  if (id !== undefined) {
    await runWorker(id, settings, main);
    return undefined;
  }
  const primary = new Primary(settings);
  await primary.start();
  return primary;
}

interface Settings {
  workers: number;
  plan: RestartPlan;
  drainMs: number;
  env: Record<string, string>;
  cmd: string[];
  startTimeoutMs: number;
  handleSignals: boolean;
  resetAfterMs: number;
}

const KEYS = new Set([
  "workers",
  "plan",
  "planCount",
  "drainMs",
  "env",
  "cmd",
  "startTimeoutMs",
  "handleSignals",
  "resetAfterMs",
]);

/**
 * The default worker count: the CPUs this process may run on, capped by the container's CPU quota
 * (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up. A pod with
 * `limits.cpu: 2` on a 64-core node gets 2 workers, not 64 that the quota would throttle.
 */
function defaultWorkers(): number {
  const cpus = availableParallelism();
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  const v2 = read("/sys/fs/cgroup/cpu.max");
  let quota: number | undefined;
  if (v2 !== undefined) quota = cpuQuota(v2);
  else {
    for (const dir of ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]) {
      const q = read(`${dir}/cpu.cfs_quota_us`);
      const p = read(`${dir}/cpu.cfs_period_us`);
      if (q !== undefined && p !== undefined) {
        quota = cpuQuota(`${q.trim()} ${p.trim()}`);
        break;
      }
    }
  }
  return Math.max(1, Math.min(cpus, quota ?? cpus));
}

/**
 * CPUs allowed by a cgroup quota line `"<quota> <period>"` (v2 `cpu.max` format; `max` or a
 * negative quota = none), rounded up; `undefined` when there is no limit or the text is not one.
 *
 * @internal Exported for tests.
 * @example
 * cpuQuota("150000 100000"); // 2
 * cpuQuota("max 100000"); // undefined
 */
export function cpuQuota(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || period === undefined || quota === "max") return undefined;
  const q = Number(quota);
  const p = Number(period);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return Math.ceil(q / p);
}

function ms(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 2_147_483_647) {
    throw new OptionError(name, "a number of milliseconds from 0 to 2147483647", value);
  }
  return value;
}

function clusterSettings(options: ClusterOptions): Settings {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ArgumentError("options", "an object", options);
  }
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KEYS.has(key)) throw new OptionError(key, "a known option", record[key]);
  }
  const workers = options.workers ?? defaultWorkers();
  if (!Number.isInteger(workers) || workers < 1)
    throw new OptionError("workers", "a positive integer", workers);
  const env = options.env ?? {};
  if (env === null || typeof env !== "object" || Object.values(env).some((v) => typeof v !== "string")) {
    throw new OptionError("env", "an object of strings", env);
  }
  const cmd = options.cmd ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((c) => typeof c !== "string")) {
    throw new OptionError("cmd", "a non-empty array of strings", cmd);
  }
  const handleSignals = options.handleSignals ?? true;
  if (typeof handleSignals !== "boolean") throw new OptionError("handleSignals", "a boolean", handleSignals);
  return {
    workers,
    plan: new RestartPlan(options.plan ?? [backoff()], options.planCount ?? Number.POSITIVE_INFINITY),
    drainMs: ms("drainMs", options.drainMs, 5000),
    env,
    cmd,
    startTimeoutMs: ms("startTimeoutMs", options.startTimeoutMs, 30_000),
    handleSignals,
    resetAfterMs: ms("resetAfterMs", options.resetAfterMs, 10_000),
  };
}

// ---------------------------------------------------------------- worker side

/** The library's `runningServers()`, when the build has it. */
async function runningServers(): Promise<Array<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }>> {
  try {
    const lib = (await import("./index.ts")) as Record<string, unknown>;
    if (typeof lib.runningServers !== "function") return [];
    return [
      ...(lib.runningServers as () => Iterable<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }>)(),
    ];
  } catch {
    return [];
  }
}

function stoppables(value: unknown): Array<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }> {
  const list = Array.isArray(value) ? value : [value];
  return list.filter(
    (v): v is { stop(o?: unknown): Promise<unknown> } =>
      v !== null && typeof v === "object" && typeof (v as { stop?: unknown }).stop === "function",
  );
}

async function runWorker(
  id: number,
  settings: Settings,
  main: () => Promise<unknown> | unknown,
): Promise<void> {
  let result: unknown;
  let stopping = false;
  const servers = async () => {
    const all = new Set([...(await runningServers()), ...stoppables(result)]);
    return [...all];
  };
  const gracefulStop = async (drainMs: number) => {
    if (stopping) return;
    stopping = true;
    const list = await servers();
    await Promise.allSettled(list.map((s) => s.stop({ drainMs })));
    process.exit(0);
  };
  process.on("message", async (message: ToWorker) => {
    if (message?.t === "stop") await gracefulStop(message.drainMs);
    else if (message?.t === "info") {
      const infos: Array<Record<string, unknown>> = [];
      for (const s of await servers()) {
        if (typeof s.info !== "function") continue;
        try {
          infos.push(jsonSafe(s.info()) as Record<string, unknown>);
        } catch {
          // a server that cannot report is left out
        }
      }
      process.send?.({ t: "info", ref: message.ref, servers: infos } satisfies FromWorker);
    }
  });
  // Ctrl-C reaches the whole process group: a worker drains like on the primary's request.
  process.on("SIGTERM", () => void gracefulStop(settings.drainMs));
  process.on("SIGINT", () => void gracefulStop(settings.drainMs));
  // The primary is gone (killed hard): nobody supervises this worker any more.
  process.on("disconnect", () => void gracefulStop(settings.drainMs));
  try {
    result = await main();
  } catch (error) {
    console.error(`sockerl cluster: worker ${id} (pid ${process.pid}): main failed:`, error);
    process.exit(1);
  }
  process.send?.({ t: "ready" } satisfies FromWorker);
}

/** Dates as ISO strings, so the info survives any IPC serialisation. */
function jsonSafe(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

// ---------------------------------------------------------------- primary side

class Worker {
  ready = false;
  /** The primary asked it to stop (its exit does not go to the plan). */
  retiring = false;
  /** Started by a rolling restart and not ready yet: if it dies, the restart fails, not the slot. */
  candidate = false;
  readonly startedAt = performance.now();
  readonly readyPromise: Promise<void>;
  readonly exitedPromise: Promise<void>;
  resolveReady!: () => void;
  rejectReady!: (error: unknown) => void;
  resolveExited!: () => void;
  startTimer: ReturnType<typeof setTimeout> | undefined;
  proc!: Bun.Subprocess;

  constructor(readonly id: number) {
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {});
    this.exitedPromise = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  send(message: ToWorker): void {
    try {
      this.proc.send(message);
    } catch {
      // the channel is already closed: the worker is exiting
    }
  }
}

interface Slot {
  worker: Worker | undefined;
  track: PlanTrack;
  timer: ReturnType<typeof setTimeout> | undefined;
}

class Primary implements ClusterHandle {
  readonly #settings: Settings;
  readonly #slots = new Map<number, Slot>();
  /** Every live worker process, retiring ones included. */
  readonly #live = new Set<Worker>();
  #ending = false;
  #reason: unknown;
  readonly exited: Promise<unknown>;
  #resolveExited!: (reason: unknown) => void;
  #started = Promise.withResolvers<void>();
  #restarting: Promise<void> = Promise.resolve();
  #nextRef = 1;
  readonly #infoWaiters = new Map<number, (servers: Array<Record<string, unknown>>) => void>();
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  #signals = 0;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
    this.#started.promise.catch(() => {});
  }

  async start(): Promise<void> {
    if (this.#settings.handleSignals) {
      this.#signalHandler = (signal) => this.#onSignal(signal);
      process.on("SIGTERM", this.#signalHandler);
      process.on("SIGINT", this.#signalHandler);
    }
    for (let id = 1; id <= this.#settings.workers; id++) {
      const slot: Slot = { worker: undefined, track: this.#settings.plan.track(), timer: undefined };
      this.#slots.set(id, slot);
      slot.worker = this.#spawn(id);
    }
    await this.#started.promise;
  }

  workers(): Array<[id: number, pid: number]> {
    const out: Array<[number, number]> = [];
    for (const [id, slot] of this.#slots) if (slot.worker !== undefined) out.push([id, slot.worker.proc.pid]);
    return out;
  }

  restart(options: { drainMs?: number } = {}): Promise<void> {
    const drainMs = ms("drainMs", options.drainMs, this.#settings.drainMs);
    // One rolling restart at a time; a second call runs after the first.
    const run = this.#restarting.then(() => this.#rollingRestart(drainMs));
    this.#restarting = run.catch(() => {});
    return run;
  }

  async stop(options: { drainMs?: number } = {}): Promise<void> {
    const drainMs = ms("drainMs", options.drainMs, this.#settings.drainMs);
    await this.#end("normal", drainMs);
  }

  async info(): Promise<ClusterInfo> {
    const total: ClusterInfo = {
      workers: 0,
      reporting: 0,
      servers: 0,
      active: 0,
      waiting: 0,
      maxConnections: 0,
      accepted: 0,
      ended: { normal: 0, peer: 0, crash: 0, shutdown: 0 },
      bytesIn: 0,
      bytesOut: 0,
      perWorker: [],
    };
    const asks: Array<Promise<void>> = [];
    for (const [id, slot] of this.#slots) {
      const worker = slot.worker;
      if (worker === undefined || !worker.ready) continue;
      total.workers++;
      const ref = this.#nextRef++;
      const { promise, resolve } = Promise.withResolvers<Array<Record<string, unknown>> | undefined>();
      this.#infoWaiters.set(ref, resolve);
      const timer = setTimeout(() => resolve(undefined), 1000);
      worker.send({ t: "info", ref });
      asks.push(
        promise.then((servers) => {
          clearTimeout(timer);
          this.#infoWaiters.delete(ref);
          if (servers === undefined) return;
          total.reporting++;
          total.perWorker.push({ id, pid: worker.proc.pid, servers });
          for (const info of servers) addInfo(total, info);
        }),
      );
    }
    await Promise.all(asks);
    total.perWorker.sort((a, b) => a.id - b.id);
    return total;
  }

  // ---------------------------------------------------------------- internals

  #spawn(id: number): Worker {
    const worker = new Worker(id);
    const settings = this.#settings;
    worker.proc = Bun.spawn({
      cmd: settings.cmd,
      env: { ...process.env, ...settings.env, [WORKER_ENV]: String(id) },
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc: (message: FromWorker) => this.#onMessage(worker, message),
    });
    this.#live.add(worker);
    worker.startTimer = setTimeout(() => {
      if (!worker.ready) worker.proc.kill("SIGKILL");
    }, settings.startTimeoutMs);
    void worker.proc.exited.then(() => this.#onExit(worker));
    return worker;
  }

  #onMessage(worker: Worker, message: FromWorker): void {
    if (message?.t === "ready") {
      clearTimeout(worker.startTimer);
      worker.ready = true;
      worker.resolveReady();
      this.#checkStarted();
    } else if (message?.t === "info") {
      this.#infoWaiters.get(message.ref)?.(message.servers);
    }
  }

  #checkStarted(): void {
    for (const slot of this.#slots.values()) if (slot.worker === undefined || !slot.worker.ready) return;
    this.#started.resolve();
  }

  #onExit(worker: Worker): void {
    clearTimeout(worker.startTimer);
    this.#live.delete(worker);
    if (!worker.ready) {
      const { pid, exitCode, signalCode } = worker.proc;
      const signal = typeof signalCode === "string" ? signalCode : null;
      worker.rejectReady(new WorkerExitError(worker.id, pid, exitCode, signal));
    }
    worker.resolveExited();
    const slot = this.#slots.get(worker.id);
    // Cases:
    //   1. the primary retired it (stop, rolling restart) or is ending → nothing to decide
    //   2. a rolling restart's new worker died before it was ready      → the restart rejects and
    //      puts the old worker back; the slot's plan is not run
    //   3. it is not the slot's current worker (a stale one)          → nothing to decide
    //   4. otherwise it crashed or quit: the slot's plan decides
    if (worker.retiring || this.#ending) {
      if (this.#ending && this.#live.size === 0) this.#finish();
      return;
    }
    if (worker.candidate) return;
    if (slot === undefined || slot.worker !== worker) return;
    slot.worker = undefined;
    const proc = worker.proc;
    const reason =
      proc.signalCode !== null && proc.signalCode !== undefined
        ? proc.signalCode
        : proc.exitCode === 0
          ? "normal"
          : `exit ${proc.exitCode}`;
    // A worker that stayed up long enough starts its plan over (backoff delays reset).
    if (worker.ready && performance.now() - worker.startedAt >= this.#settings.resetAfterMs) {
      slot.track = this.#settings.plan.track();
    }
    const decision = this.#settings.plan.decide(slot.track, reason, worker.id);
    switch (decision.action) {
      case "restart":
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          if (!this.#ending) slot.worker = this.#spawn(worker.id);
        }, decision.delayMs);
        return;
      case "delete":
        this.#slots.delete(worker.id);
        if (this.#slots.size === 0) void this.#end("normal", 0);
        else this.#checkStarted();
        return;
      case "wait":
        return;
      case "stop":
        void this.#end(decision.reason, this.#settings.drainMs);
        return;
    }
  }

  async #rollingRestart(drainMs: number): Promise<void> {
    for (const [id, slot] of [...this.#slots]) {
      if (this.#ending) return;
      const old = slot.worker;
      if (old === undefined) continue;
      const fresh = this.#spawn(id);
      fresh.candidate = true;
      slot.worker = fresh;
      try {
        await fresh.readyPromise;
        fresh.candidate = false;
      } catch (error) {
        // The new worker died before listening: keep the old one serving, and say so.
        if (slot.worker === fresh) slot.worker = old;
        throw error;
      }
      await this.#retire(old, drainMs);
    }
  }

  /** Graceful stop of one worker: "stop" over IPC, SIGKILL if it is still there drainMs + 5 s later. */
  async #retire(worker: Worker, drainMs: number): Promise<void> {
    worker.retiring = true;
    if (!this.#live.has(worker)) return;
    worker.send({ t: "stop", drainMs });
    const timer = setTimeout(() => worker.proc.kill("SIGKILL"), drainMs + 5000);
    await worker.exitedPromise;
    clearTimeout(timer);
  }

  async #end(reason: unknown, drainMs: number): Promise<void> {
    if (!this.#ending) {
      this.#ending = true;
      this.#reason = reason;
      for (const slot of this.#slots.values()) clearTimeout(slot.timer);
      // cluster() is still waiting for the first workers: it rejects with the reason.
      this.#started.reject(
        reason instanceof Error
          ? reason
          : new SockerlError(`The cluster ended before it was ready: ${describeReason(reason)}`, { reason }),
      );
      if (this.#live.size === 0) this.#finish();
      else for (const worker of [...this.#live]) void this.#retire(worker, drainMs);
    }
    await this.exited;
  }

  #finish(): void {
    if (this.#signalHandler !== undefined) {
      process.off("SIGTERM", this.#signalHandler);
      process.off("SIGINT", this.#signalHandler);
      this.#signalHandler = undefined;
    }
    this.#resolveExited(this.#reason);
  }

  #onSignal(_signal: NodeJS.Signals): void {
    this.#signals++;
    if (this.#signals > 1) {
      // A second signal: no more patience.
      for (const worker of this.#live) worker.proc.kill("SIGKILL");
      process.exit(1);
    }
    void this.stop().then(() => process.exit(0));
  }
}

const SUMMED = ["active", "waiting", "maxConnections", "accepted", "bytesIn", "bytesOut"] as const;

function addInfo(total: ClusterInfo, info: Record<string, unknown>): void {
  total.servers++;
  for (const key of SUMMED) {
    const v = info[key];
    if (typeof v === "number") total[key] += v;
    // No limit is Infinity, which JSON (the IPC encoding) turns into null.
    else if (key === "maxConnections" && v === null) total.maxConnections = Number.POSITIVE_INFINITY;
  }
  const ended = info.ended as Record<string, unknown> | undefined;
  if (ended !== null && typeof ended === "object") {
    for (const key of ["normal", "peer", "crash", "shutdown"] as const) {
      const v = ended[key];
      if (typeof v === "number") total.ended[key] += v;
    }
  }
}
