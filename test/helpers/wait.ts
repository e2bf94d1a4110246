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
