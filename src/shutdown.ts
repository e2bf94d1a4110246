/**
 * Graceful shutdown shared by servers and pools: stop taking new work, tell every running child
 * (`handleEvent("shutdown")`), give them up to `drainMs` to end by themselves, then terminate the
 * rest with `terminate("shutdown")`.
 *
 * @module
 */
import { clock, type TimerHandle } from "./clock.ts";
import { type ConnectionProcess, F_STARTED } from "./connection/process.ts";
import { exited, noticeShutdown, shutdown } from "./connection/requests.ts";
import { ArgumentError, describeReason } from "./errors.ts";
import type { ExitReason } from "./handler.ts";
import { emit } from "./trace.ts";

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
  const running = children.filter((c) => (c.flags & F_STARTED) !== 0);
  const unstarted = children.filter((c) => (c.flags & F_STARTED) === 0);
  const done = Promise.all(unstarted.map((c) => shutdown(c, "shutdown")));
  if (drainMs > 0 && running.length > 0) {
    for (const child of running) noticeShutdown(child);
    let timer: TimerHandle | undefined;
    await Promise.race([
      Promise.all(running.map((c) => exited(c))),
      new Promise<void>((resolve) => {
        timer = clock.setTimeout(resolve, drainMs);
      }),
    ]);
    if (timer !== undefined) clock.clearTimeout(timer);
  }
  await Promise.all(running.map((c) => shutdown(c, "shutdown")));
  await done;
}

/**
 * How a server or pool ends, once: `stop()` and a plan's "stop" both go through {@link end}, which
 * marks the owner as stopping *before* any child exits (a child that exits synchronously inside its
 * shutdown must see the owner stopping, or its plan would run and end the owner a second time), runs
 * the owner's teardown, reports an abnormal reason, then resolves `exited`.
 */
export class Ending {
  #stopping: Promise<void> | undefined = undefined;
  readonly #exited: Promise<ExitReason>;
  #resolveExited!: (reason: ExitReason) => void;

  constructor(readonly label: () => string) {
    this.#exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  /** Whether the end has begun. */
  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /** Resolves with the reason once ended. */
  get exited(): Promise<ExitReason> {
    return this.#exited;
  }

  /** `stop(reason)` / `stop({ reason, drainMs })`: a bad argument rejects. */
  stop(arg: unknown, teardown: (drainMs: number, reason: ExitReason) => Promise<void>): Promise<void> {
    let args: { reason: ExitReason; drainMs: number };
    try {
      args = stopArguments(arg);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.end(args.reason, () => teardown(args.drainMs, args.reason));
  }

  /** Ends once with `reason` (later calls share the first end). */
  end(reason: ExitReason, teardown: () => Promise<void>): Promise<void> {
    if (this.#stopping !== undefined) return this.#stopping;
    const stopped = Promise.withResolvers<void>();
    this.#stopping = stopped.promise;
    void (async () => {
      await teardown();
      if (reason !== "normal" && reason !== "shutdown") {
        emit(
          `** Sockerl ${this.label()} terminating\n** Reason for termination == ${describeReason(reason)}`,
        );
      }
      this.#resolveExited(reason);
    })().then(stopped.resolve, stopped.reject);
    return stopped.promise;
  }
}
