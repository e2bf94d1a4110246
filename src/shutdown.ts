/**
 * Graceful shutdown shared by servers and pools: stop taking new work, tell every running child
 * (`handleEvent("shutdown")`), give them up to `drainMs` to end by themselves, then terminate the
 * rest with `terminate("shutdown")`.
 *
 * @module
 */
import type { ConnectionProcess } from "./connection.ts";
import { ArgumentError } from "./errors.ts";
import type { ExitReason } from "./handler.ts";

/** Options of `server.stop()` / `pool.stop()`. */
export interface StopOptions {
  /** The reason the server or pool ends with (`exited`). @default "normal" */
  reason?: ExitReason;
  /** ms the children get to finish after `handleEvent("shutdown")` before they are terminated. @default 0 */
  drainMs?: number;
}

/** The event a draining server or pool sends to `handleEvent`. */
export const SHUTDOWN_EVENT = "shutdown";

function isStopOptions(value: unknown): value is StopOptions {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => k === "reason" || k === "drainMs");
}

/** Reads `stop(reason)` or `stop({ reason, drainMs })`. */
export function stopArguments(arg: unknown): { reason: ExitReason; drainMs: number } {
  if (!isStopOptions(arg)) return { reason: arg === undefined ? "normal" : arg, drainMs: 0 };
  const drainMs = arg.drainMs ?? 0;
  if (typeof drainMs !== "number" || Number.isNaN(drainMs) || drainMs < 0) {
    throw new ArgumentError("drainMs", "a number of milliseconds >= 0", drainMs);
  }
  return { reason: arg.reason === undefined ? "normal" : arg.reason, drainMs };
}

/** Drains (when `drainMs` > 0), then terminates every child still alive; resolves once all have ended. */
export async function drainThenShutdown(
  children: readonly ConnectionProcess[],
  drainMs: number,
): Promise<void> {
  const running = children.filter((c) => c.started);
  const unstarted = children.filter((c) => !c.started);
  const done = Promise.all(unstarted.map((c) => c.shutdown("shutdown")));
  if (drainMs > 0 && running.length > 0) {
    for (const child of running) child.noticeShutdown();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(running.map((c) => c.exited)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
  }
  await Promise.all(running.map((c) => c.shutdown("shutdown")));
  await done;
}
