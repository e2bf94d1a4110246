/**
 * Invariant: `backoff()` answers the n-th consecutive exit of a child with
 * `{ restart: min(maxMs, initialMs * factor^(n-1)) }` spread by at most ±jitter, per child; a child
 * that stayed up `resetAfterMs` since its restart starts again at `initialMs`; bad options are
 * `OptionError`s naming the option. Time is the library's clock (a manual one here), never a sleep.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { backoff } from "../../src/backoff.ts";
import { type Clock, installClock } from "../../src/clock.ts";
import { OptionError } from "../../src/errors.ts";
import { RestartPlan } from "../../src/supervisor.ts";

let now = 0;
const manual: Clock = {
  now: () => now,
  setTimeout: () => ({ refresh: () => undefined }),
  clearTimeout: () => undefined,
};
let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
  now = 0;
});
function useManualClock(): void {
  restore = installClock(manual);
}

const delayOf = (element: ReturnType<typeof backoff>, id = 1): number => {
  const decision = element("econnrefused", 1, id);
  expect(decision).toEqual({ restart: expect.any(Number) });
  return (decision as { restart: number }).restart;
};

describe("backoff()", () => {
  test("defaults: 100, 200, 400 ... capped at 10 s, each within ±20%", () => {
    useManualClock();
    const element = backoff();
    const expected = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000];
    for (const base of expected) {
      const delay = delayOf(element);
      expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
      expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
    }
  });

  test("without jitter the delays are exact, per child", () => {
    useManualClock();
    const element = backoff({ initialMs: 10, factor: 3, maxMs: 500, jitter: 0 });
    expect([delayOf(element, 1), delayOf(element, 1), delayOf(element, 1)]).toEqual([10, 30, 90]);
    expect(delayOf(element, 2)).toBe(10); // another child has its own streak
    expect([delayOf(element, 1), delayOf(element, 1), delayOf(element, 1)]).toEqual([270, 500, 500]);
  });

  test("a child that stayed up resetAfterMs starts again at initialMs; a shorter run does not", () => {
    useManualClock();
    const element = backoff({ initialMs: 100, jitter: 0, resetAfterMs: 1000 });
    expect(delayOf(element)).toBe(100); // restarts at t = 100
    now = 100 + 999; // up 999 ms: still the same streak
    expect(delayOf(element)).toBe(200); // restarts at t = 1299
    now = 1299 + 1000; // up 1000 ms: a new streak
    expect(delayOf(element)).toBe(100);
  });

  test("composes with RestartPlan and an infinite planCount", () => {
    useManualClock();
    const plan = new RestartPlan([backoff({ jitter: 0 })], Number.POSITIVE_INFINITY);
    const track = plan.track();
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const d = plan.decide(track, "econnreset", 7);
      expect(d.action).toBe("restart");
      if (d.action === "restart") delays.push(d.delayMs);
    }
    expect(delays.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(delays.at(-1)).toBe(10_000);
  });

  test("bad options are OptionErrors naming the option", () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ initialMs: -1 }, "backoff.initialMs"],
      [{ maxMs: "10" }, "backoff.maxMs"],
      [{ factor: 0.5 }, "backoff.factor"],
      [{ jitter: 1.5 }, "backoff.jitter"],
      [{ resetAfterMs: Number.NaN }, "backoff.resetAfterMs"],
      [{ initalMs: 100 }, "backoff.initalMs"],
    ];
    for (const [options, option] of bad) {
      let error: unknown;
      try {
        backoff(options as never);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).option).toBe(option);
    }
  });
});
