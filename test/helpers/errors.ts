/**
 * Capturing the error a call throws or a promise rejects with, so a test can assert its class, `code`
 * and fields (and fails clearly when nothing was thrown).
 *
 * @module
 */
import { within } from "./wait.ts";

/**
 * Calls `fn` and returns what it throws; `undefined` if it returns normally (then the caller's
 * `toBeInstanceOf` fails).
 *
 * @example
 * const error = thrown(() => tls({ serverName: "" }));
 * expect(error).toBeInstanceOf(OptionError);
 * expect((error as OptionError).option).toBe("serverName");
 */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Resolves with what `promise` rejected with; fails if it resolves, or (with `WaitTimeoutError`) if it
 * has not settled within `timeoutMs`.
 *
 * @example
 * const error = await rejection(startConnector(handler, undefined, "127.0.0.1", closedPort));
 * expect(error).toBeInstanceOf(SocketConnectError);
 */
export function rejection(
  promise: Promise<unknown>,
  timeoutMs = 5000,
  what = "the rejection",
): Promise<unknown> {
  return within(
    promise.then(
      (value) => {
        throw new Error(`expected a rejection, got ${String(value)}`);
      },
      (error: unknown) => error,
    ),
    timeoutMs,
    what,
  );
}
