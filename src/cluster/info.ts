/**
 * The cluster-wide `info()`: each worker's `server.info()` summed into one {@link ClusterInfo}.
 *
 * @module
 */

/** Summed `server.info()` of every worker (see `ClusterHandle.info`). */
export interface ClusterInfo {
  /** Workers running now. */
  workers: number;
  /** Workers that answered (a worker busy past 1 s is left out). */
  reporting: number;
  /** Servers counted. */
  servers: number;
  active: number;
  waiting: number;
  maxConnections: number;
  accepted: number;
  ended: { normal: number; peer: number; crash: number; shutdown: number };
  bytesIn: number;
  bytesOut: number;
  /** Each worker's own servers' info, as they reported it. */
  perWorker: Array<{ id: number; pid: number; servers: Array<Record<string, unknown>> }>;
}

const SUMMED = ["active", "waiting", "maxConnections", "accepted", "bytesIn", "bytesOut"] as const;

/** Adds one server's info (as it came over IPC) to `total`. */
export function addInfo(total: ClusterInfo, info: Record<string, unknown>): void {
  total.servers++;
  for (const key of SUMMED) {
    const v = info[key];
    if (typeof v === "number") total[key] += v;
    // No limit is Infinity, which JSON (the IPC encoding) turns into null.
    else if (key === "maxConnections" && v === null) total.maxConnections = Number.POSITIVE_INFINITY;
  }
  const ended = info.ended as Record<string, unknown> | undefined;
  if (ended !== null && typeof ended === "object") {
    for (const key of ["normal", "peer", "crash", "shutdown"] as const) {
      const v = ended[key];
      if (typeof v === "number") total.ended[key] += v;
    }
  }
}
