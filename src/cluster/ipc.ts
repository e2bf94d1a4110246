/**
 * What the primary and its workers share: the environment variable that marks a worker (and its
 * slot id), and the shapes of the IPC messages between them (JSON serialisation).
 *
 * @module
 */

/** The environment variable that marks a worker process (its slot id, from 1). */
export const WORKER_ENV = "SOCKERL_WORKER_ID";

/** Primary → worker: stop gracefully with `drainMs`, or report the servers' info under `ref`. */
export type ToWorker = { t: "stop"; drainMs: number } | { t: "info"; ref: number };
/** Worker → primary: `main` resolved (it listens), or the answer to an info request. */
export type FromWorker = { t: "ready" } | { t: "info"; ref: number; servers: Array<Record<string, unknown>> };

/**
 * The slot id of this worker process (from 1), or `undefined` in the primary (or outside a cluster).
 *
 * @example
 * console.log(`worker ${workerId() ?? "primary"} listening`);
 */
export function workerId(): number | undefined {
  const value = process.env[WORKER_ENV];
  if (value === undefined) return undefined;
  const id = Number(value);
  return Number.isInteger(id) && id > 0 ? id : undefined;
}
