/**
 * Bounded waiting for tests: every wait has a deadline and fails with a message that says what it was
 * waiting for, so a broken contract shows up as a clear failure instead of a hung test.
 *
 * @module
 */

/** Polling period of {@link waitFor}, in ms (the brief's upper bound). */
export const POLL_MS = 5;

/** Thrown when a bounded wait runs out. */
export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Resolves once `predicate()` is true, checking it now and then every {@link POLL_MS} ms; rejects with
 * {@link WaitTimeoutError} after `timeoutMs`. Use it only for state that has no event to await
 * (e.g. `server.connections()` changing); prefer awaiting a promise.
 *
 * @example
 * await waitFor(() => server.connections().length === 1, 1000, "the connection to be listed");
 */
export async function waitFor(predicate: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() >= deadline)
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Races `promise` against a deadline: resolves or rejects as it does, or rejects with
 * {@link WaitTimeoutError} after `timeoutMs`. The timer is cleared either way.
 */
export function within<T>(promise: Promise<T>, timeoutMs: number, what = "promise"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Observes a promise without awaiting it: `settled` tells whether it has settled yet (after the
 * current microtasks ran). Used to assert that something is still pending (e.g. a `sendSync` whose bytes
 * cannot have reached the kernel).
 */
export function observe<T>(promise: Promise<T>): {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
} {
  const state = { settled: false, value: undefined as T | undefined, error: undefined as unknown };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error) => {
      state.settled = true;
      state.error = error;
    },
  );
  return {
    promise,
    get settled() {
      return state.settled;
    },
    get value() {
      return state.value;
    },
    get error() {
      return state.error;
    },
  };
}

/**
 * Base of the tests' event recorders: a subclass records what a handler saw, then calls
 * {@link EventRecorder.changed}; {@link EventRecorder.until} resolves once a condition holds,
 * re-checking it on every change (no polling), and is bounded.
 *
 * @example
 * class Recorder extends EventRecorder {
 *   readonly inits: number[] = [];
 * }
 * // in the handler: rec.inits.push(id); rec.changed();
 * await rec.until(() => rec.inits.length === 2, 2000, "two inits");
 */
export class EventRecorder {
  #waiters: Array<() => void> = [];

  /** Re-checks every pending {@link EventRecorder.until} condition: call it after recording something. */
  changed(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once `check()` holds (now or after a later {@link EventRecorder.changed}); rejects with
   * {@link WaitTimeoutError} after `timeoutMs`.
   */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const poll = (): void => {
          if (check()) resolve();
          else this.#waiters.push(poll);
        };
        poll();
      }),
      timeoutMs,
      what,
    );
  }
}

/**
 * An append-only list whose growth can be awaited: `push` from a handler, then
 * `await log.until((items) => items.length === 3)`.
 */
export class Log<T> extends EventRecorder {
  /** Every item pushed so far, in order. */
  readonly items: T[] = [];

  /** Appends `item` and re-checks the pending waits. */
  push(item: T): void {
    this.items.push(item);
    this.changed();
  }

  /** Resolves once `pred(items)` holds; rejects with {@link WaitTimeoutError} after `timeoutMs`. */
  override until(pred: (items: T[]) => boolean, timeoutMs = 3000, what = "log condition"): Promise<void> {
    return super.until(() => pred(this.items), timeoutMs, what);
  }

  /** Resolves with the `n`th item (0-based) once it has been pushed; rejects after `timeoutMs`. */
  async nth(n: number, timeoutMs = 3000, what = `item #${n}`): Promise<T> {
    await this.until((items) => items.length > n, timeoutMs, what);
    return this.items[n] as T;
  }

  /** How many pushed items are `=== item`. */
  count(item: T): number {
    return this.items.filter((i) => i === item).length;
  }
}
