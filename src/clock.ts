/**
 * The clock every library timer goes through: idle `timeout`, `srtimeout`, handshake, send and close
 * timers, call timeouts, restart-plan delays. Normally it is the real one (`performance.now`,
 * `setTimeout`); the testing kit installs a manual clock so a test of a 30 s idle timeout runs in
 * microseconds (`sockerl/testing`).
 *
 * The hot path reads `clock.now()` only when an idle timeout is set (timers are re-armed lazily), so the
 * indirection costs one property load per event at most.
 *
 * @module
 */

/** A pending timer: `refresh()` restarts its countdown (as Node's and Bun's `Timeout` do). */
export interface TimerHandle {
  refresh(): unknown;
  /** Lets the process exit while this timer is pending. Optional: manual clocks ignore it. */
  unref?(): unknown;
}

/** What the library needs of a clock. */
export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /** Runs `callback` once, `ms` milliseconds from now. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Cancels a timer; a timer that already fired or was cleared is ignored. */
  clearTimeout(timer: TimerHandle): void;
}

/** The real clock. */
export const realClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (callback: () => void, ms: number): TimerHandle => setTimeout(callback, ms),
  clearTimeout: (timer: TimerHandle): void => clearTimeout(timer as ReturnType<typeof setTimeout>),
});

/** The clock in use: its methods are swapped by {@link installClock}, never the object itself. */
export const clock: Clock = { ...realClock };

/**
 * Makes every library timer use `next` (the testing kit's manual clock) until the returned function
 * is called, which puts the previous clock back. Timers created before the swap stay on the clock
 * that created them.
 */
export function installClock(next: Clock): () => void {
  const previous: Clock = { now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout };
  clock.now = next.now;
  clock.setTimeout = next.setTimeout;
  clock.clearTimeout = next.clearTimeout;
  return () => {
    clock.now = previous.now;
    clock.setTimeout = previous.setTimeout;
    clock.clearTimeout = previous.clearTimeout;
  };
}
