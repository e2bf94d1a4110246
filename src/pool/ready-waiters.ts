/**
 * The pool's `ready(count)` waiters: each resolves once `count` connectors are routable, or rejects
 * with `PoolTimeoutError` after its timeout, or with the stop's error.
 *
 * @module
 * @internal
 */
import { clock, type TimerHandle } from "../clock.ts";
import { PoolTimeoutError } from "../errors.ts";

interface ReadyWaiter {
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  timer: TimerHandle | undefined;
}

/** The waiting `ready()` calls of one router. */
export class ReadyWaiters {
  #waiters: ReadyWaiter[] = [];

  /** How many are waiting (the router skips counting routable connectors when none). */
  get size(): number {
    return this.#waiters.length;
  }

  /** Waits for `count` routable connectors; the caller has checked they are not there yet. */
  wait(count: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter: ReadyWaiter = { count, resolve, reject, timer: undefined };
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = clock.setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new PoolTimeoutError(timeoutMs));
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  /** `routable` connectors are up now: resolve the waiters that asked for no more. */
  wake(routable: number): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (routable < w.count) return true;
      if (w.timer !== undefined) clock.clearTimeout(w.timer);
      w.resolve();
      return false;
    });
  }

  /** Rejects every waiter with `error` (the pool stopped). */
  rejectAll(error: Error): void {
    for (const w of this.#waiters) {
      if (w.timer !== undefined) clock.clearTimeout(w.timer);
      w.reject(error);
    }
    this.#waiters = [];
  }
}
