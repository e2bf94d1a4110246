/**
 * `cluster(options, main)`: one port served by several processes, so a server uses every core.
 *
 * The primary (the process you start) spawns `workers` copies of the entry script (`Bun.spawn` with
 * an IPC channel; the environment variable `SOCKERL_WORKER_ID` marks a worker and its slot id). In a
 * worker, `cluster()` runs `main` — which starts its servers with `reusePort: true`, so every worker
 * binds the same port and the kernel spreads connections across them (SO_REUSEPORT, Linux) — and
 * tells the primary it is ready. The primary supervises the workers with a restart plan.
 *
 * ```text
 *   primary ── spawn(slot) ──► worker: main() ──"ready"──► primary
 *      ▲                          │ exits (crash, SIGKILL, exit code)
 *      │                          ▼
 *      │   plan.decide(track of the slot, "exit 1" | "SIGKILL" | "normal" …, slot)
 *      │     ├─ restart after ms ─► spawn(slot) again (a slot up for 10 s starts its plan over)
 *      │     ├─ delete ─────────► the slot is gone (no slot left: the cluster ends "normal")
 *      │     ├─ wait ───────────► the slot is kept, empty
 *      │     └─ stop ───────────► every other worker stops gracefully; `exited` resolves with the reason
 *      │
 *   SIGTERM / SIGINT, stop({ drainMs }): "stop" over IPC → each worker stops its servers with
 *   drainMs (listeners closed first, connections get handleEvent("shutdown")), exits 0; the primary
 *   exits 0 once all have (SIGKILL after drainMs + 5 s). A second signal kills them at once.
 *
 *   restart({ drainMs }): rolling, one slot at a time: spawn the new worker, wait until its main
 *   resolved (it listens), then stop the old one gracefully.
 * ```
 *
 * Connections in a closing worker's accept queue: when a listening socket of a SO_REUSEPORT group
 * closes, Linux resets the connections that completed the handshake but were not accepted yet,
 * unless `net.ipv4.tcp_migrate_req = 1`, which moves them to another listener of the group. The
 * measured effect and the advice are in docs/scaling-out.md.
 *
 * Layout: `cluster/settings.ts` checks the options, `cluster/ipc.ts` holds what primary and
 * workers share (the worker variable, the message shapes), `cluster/worker.ts` the worker side,
 * `cluster/primary.ts` the primary and its handle, `cluster/info.ts` the summed info. Everything
 * public is importable from here.
 *
 * @module
 */
import { workerId } from "./cluster/ipc.ts";
import { type ClusterHandle, Primary } from "./cluster/primary.ts";
import { type ClusterOptions, clusterSettings } from "./cluster/settings.ts";
import { runWorker } from "./cluster/worker.ts";
import { ArgumentError } from "./errors.ts";

export type { ClusterInfo } from "./cluster/info.ts";
export { WORKER_ENV, workerId } from "./cluster/ipc.ts";
export { type ClusterOptions, cpuQuota } from "./cluster/settings.ts";
export type { ClusterHandle };

/**
 * Runs `main` in `workers` processes, supervised (see the module doc). In the primary it resolves
 * to a {@link ClusterHandle} once every worker's `main` resolved (so the port is served); in a worker
 * it runs `main` and resolves to `undefined` after it. Servers started in `main` must use
 * `reusePort: true`. On a graceful stop a worker stops every running server (and anything with a
 * `stop()` that `main` resolved to, or an array of such) with `drainMs`, then exits 0.
 *
 * @example
 * const handle = await cluster({ workers: 2 }, () =>
 *   startServer(echo, undefined, 8080, { hostname: "0.0.0.0", reusePort: true }),
 * );
 * // primary: handle.workers(), await handle.restart(), await handle.info()
 */
export async function cluster(
  options: ClusterOptions,
  main: () => Promise<unknown> | unknown,
): Promise<ClusterHandle | undefined> {
  if (typeof main !== "function") throw new ArgumentError("main", "a function", main);
  const settings = clusterSettings(options);
  const id = workerId();
  if (id !== undefined) {
    await runWorker(id, settings, main);
    return undefined;
  }
  const primary = new Primary(settings);
  await primary.start();
  return primary;
}
