/**
 * Errors of the process model: a handler callback that threw or returned a bad value, a `call`
 * without reply, a target that is not running, a restart plan used up, and a cluster worker that
 * died before it was ready.
 *
 * @module
 */
import { describeReason, describeValue, SockerlError } from "./base.ts";

/** A handler callback threw or its promise rejected; `cause` is what it threw. */
export class CallbackError extends SockerlError {
  /** The callback's name, e.g. `"handlePacket"`. */
  readonly callback: string;
  constructor(callback: string, cause: unknown) {
    const what = cause instanceof Error ? cause.message : String(cause);
    super(`Callback ${callback} failed: ${what}`, { code: "ERR_CALLBACK", reason: "callback_crash", cause });
    this.callback = callback;
  }
}

/** A callback returned something that is not an action (or `listenInit` returned a bad value). */
export class BadReturnError extends SockerlError {
  /** The callback that returned it (`"handlePacket"`, `"plan"`, …). */
  readonly callback: string;
  /** The value it returned. */
  readonly returned: unknown;
  constructor(callback: string, returned: unknown, detail?: string) {
    super(
      `Callback ${callback} returned a bad value ${describeValue(returned)}${detail ? `: ${detail}` : ""}`,
      { code: "ERR_BAD_RETURN", reason: "callback_bad_return_value" },
    );
    this.callback = callback;
    this.returned = returned;
  }
}

/** A `call` got no reply in time. */
export class CallTimeoutError extends SockerlError {
  /** The timeout the call had, in ms. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`Call got no reply within ${timeoutMs} ms`, { code: "ERR_CALL_TIMEOUT", reason: "timeout" });
    this.timeoutMs = timeoutMs;
  }
}

/** The target (connection, server, pool, name) is not running. */
export class NoProcError extends SockerlError {
  /** The handle or registry name that is not running. */
  readonly target: unknown;
  constructor(target: unknown) {
    super(`No such process: ${typeof target === "string" ? target : describeValue(target)}`, {
      code: "ERR_NOPROC",
      reason: "noproc",
    });
    this.target = target;
  }
}

/** A child exited more often than its restart plan allows (`reached_max_restart_plan`). */
export class RestartLimitError extends SockerlError {
  /** The exit reason of the child's last exit. */
  readonly childReason: unknown;
  /** The id of that child. */
  readonly childId: number;
  constructor(
    childId: number,
    childReason: unknown,
    reason: "reached_max_restart_plan" | "empty_plan_child_terminated" = "reached_max_restart_plan",
  ) {
    super(`Child ${childId} exited (${describeReason(childReason)}) past its restart plan: ${reason}`, {
      code: "ERR_RESTART_LIMIT",
      reason,
    });
    this.childReason = childReason;
    this.childId = childId;
  }
}

/**
 * A cluster worker exited before it was ready (its `main` had not resolved), so `cluster()` or a
 * rolling `restart()` could not go on: `exitCode` / `signal` say how it ended.
 */
export class WorkerExitError extends SockerlError {
  /** The worker's slot id (from 1). */
  readonly slot: number;
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  constructor(slot: number, pid: number, exitCode: number | null, signal: string | null, cause?: unknown) {
    const how = signal !== null ? `killed by ${signal}` : `exit code ${exitCode}`;
    super(`Cluster worker ${slot} (pid ${pid}) exited before it was ready: ${how}`, {
      code: "ERR_WORKER_EXIT",
      reason: "worker_exit",
      cause,
    });
    this.slot = slot;
    this.pid = pid;
    this.exitCode = exitCode;
    this.signal = signal;
  }
}
