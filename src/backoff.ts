/**
 * `backoff()`: the restart-plan element pools use by default. It is a plan function, so it composes
 * with other elements and with `planCount` like any other.
 *
 * ```text
 *   exit n of a child ──► up for >= resetAfterMs since its last restart? ── yes ──► n := 1
 *        │                                                      │ no
 *        ▼                                                      ▼
 *   { restart: min(maxMs, initialMs · factor^(n-1)) · (1 ± jitter·random) }   (n counts on)
 * ```
 *
 * Why a function of the exit history and not of `restartCount`: `restartCount` never goes down, so a
 * connector that dropped once a day would, after a month, wait `maxMs` after every drop. Here a child
 * that stayed up `resetAfterMs` starts again at `initialMs`.
 *
 * @module
 */
import { clock } from "./clock.ts";
import { OptionError } from "./errors.ts";
import type { PlanFunction } from "./supervisor.ts";

/** Options of {@link backoff}; every one has a default. */
export interface BackoffOptions {
  /** Delay after the first failure, in ms. @default 100 */
  initialMs?: number;
  /** Largest delay, in ms. @default 10_000 */
  maxMs?: number;
  /** Growth per consecutive failure (>= 1). @default 2 */
  factor?: number;
  /** Spread of each delay, as a fraction (0 to 1): the delay is multiplied by a random 1 ± jitter. @default 0.2 */
  jitter?: number;
  /** A child that stayed up this many ms since its last restart starts again at `initialMs`. @default 10_000 */
  resetAfterMs?: number;
}

/** Per-child bookkeeping: consecutive failures and when the child was last due to be up again. */
interface Streak {
  failures: number;
  upAt: number;
}

/** Past this many tracked children, entries of children stable for `resetAfterMs` are dropped. */
const SWEEP_AT = 1024;

function nonNegative(
  option: string,
  value: unknown,
  fallback: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= 0 && value <= max)) {
    throw new OptionError(`backoff.${option}`, max === 1 ? "a number from 0 to 1" : "a number >= 0", value);
  }
  return value;
}

/**
 * A plan element that reconnects with exponential backoff: the n-th consecutive exit of a child waits
 * `min(maxMs, initialMs * factor^(n-1))`, spread by ±`jitter`; a child that stayed up `resetAfterMs`
 * starts again at `initialMs`. Pools use `[backoff()]` by default. Keep one `backoff()` per pool or
 * server: it tracks children by id.
 *
 * @example
 * import { backoff, startConnectorPool } from "sockerl";
 * const pool = await startConnectorPool(handler, undefined, [["127.0.0.1", 6379]], {
 *   plan: [backoff({ initialMs: 50, maxMs: 2000 })],
 * });
 */
export function backoff(options: BackoffOptions = {}): PlanFunction {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new OptionError("backoff", "an options object", options);
  }
  for (const key of Object.keys(options)) {
    if (!["initialMs", "maxMs", "factor", "jitter", "resetAfterMs"].includes(key)) {
      throw new OptionError(`backoff.${key}`, "a known option", (options as Record<string, unknown>)[key]);
    }
  }
  const initialMs = nonNegative("initialMs", options.initialMs, 100);
  const maxMs = nonNegative("maxMs", options.maxMs, 10_000);
  const factor = nonNegative("factor", options.factor, 2);
  if (factor < 1) throw new OptionError("backoff.factor", "a number >= 1", factor);
  const jitter = nonNegative("jitter", options.jitter, 0.2, 1);
  const resetAfterMs = nonNegative("resetAfterMs", options.resetAfterMs, 10_000);
  // Restart delays must fit a timer (the plan rejects larger ones).
  const cap = Math.min(maxMs, 2_147_483_647);
  const streaks = new Map<number, Streak>();

  const element: PlanFunction = (_reason, _restartCount, id) => {
    const now = clock.now();
    let streak = streaks.get(id);
    if (streak === undefined) {
      if (streaks.size >= SWEEP_AT) {
        for (const [key, s] of streaks) if (now - s.upAt >= resetAfterMs) streaks.delete(key);
      }
      streak = { failures: 0, upAt: now };
      streaks.set(id, streak);
    } else if (now - streak.upAt >= resetAfterMs) {
      streak.failures = 0; // it stayed up long enough: this exit starts a new streak
    }
    streak.failures++;
    const base = Math.min(cap, initialMs * factor ** (streak.failures - 1));
    const spread = jitter === 0 ? 1 : 1 + jitter * (2 * Math.random() - 1);
    const delay = Math.min(cap, Math.max(0, Math.round(base * spread)));
    streak.upAt = now + delay;
    return { restart: delay };
  };
  Object.defineProperty(element, "name", { value: "backoff" });
  return element;
}
