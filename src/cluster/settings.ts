/**
 * The options of `cluster()`, checked once into {@link Settings}, and the default worker count
 * (the CPUs available, capped by the container's CPU quota).
 *
 * @module
 */
import { backoff } from "../backoff.ts";
import { nodeFs, nodeOs } from "../builtins.ts";
import { ArgumentError, OptionError } from "../errors.ts";
import { type Plan, RestartPlan } from "../supervisor.ts";

/** Options of `cluster()`. */
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

/** The checked options, defaults filled in. */
export interface Settings {
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
  const cpus = nodeOs().availableParallelism();
  const read = (path: string) => {
    try {
      return nodeFs().readFileSync(path, "utf8");
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

/** A millisecond option (`fallback` when unset), as setTimeout accepts it. */
export function ms(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 2_147_483_647) {
    throw new OptionError(name, "a number of milliseconds from 0 to 2147483647", value);
  }
  return value;
}

/** Checks `options` (ArgumentError / OptionError naming the bad one) and fills in the defaults. */
export function clusterSettings(options: ClusterOptions): Settings {
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
