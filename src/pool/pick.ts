/**
 * How a pool picks the live connector for a request: the {@link PoolStrategy} (round-robin,
 * least-busy, or the user's function), over the connectors that can take a request now. The
 * router holds one picker; its cursor rotates round-robin and breaks least-busy ties.
 *
 * @module
 * @internal
 */
import {
  type ConnectionProcess,
  F_PEER_ENDED,
  F_SOCKET_CLOSED,
  phaseOf,
  RUNNING,
} from "../connection/process.ts";
import { BadReturnError, CallbackError } from "../errors.ts";
import type { Connection } from "../handler.ts";

/**
 * How a pool picks the connector for a request: `"round-robin"` (each live connector in turn),
 * `"least-busy"` (the one with the fewest calls in flight), or a function given the live connectors
 * and the request that returns one of them.
 */
export type PoolStrategy =
  | "round-robin"
  | "least-busy"
  | ((live: readonly Connection[], request: unknown) => Connection);

/** Whether `p` can take a request now: running, socket open, peer not gone. */
export function routable(p: ConnectionProcess): boolean {
  return phaseOf(p) === RUNNING && (p.flags & (F_SOCKET_CLOSED | F_PEER_ENDED)) === 0;
}

/** Picks among a router's live connectors (it reads the router's arrays, which change in place). */
export class ConnectorPicker {
  readonly #strategy: PoolStrategy;
  /** Live connectors, in the order they came up (the router's array). */
  readonly #live: readonly ConnectionProcess[];
  /** Public handles of `#live`, same order (what a strategy function sees). */
  readonly #views: readonly Connection[];
  #next = 0;

  constructor(strategy: PoolStrategy, live: readonly ConnectionProcess[], views: readonly Connection[]) {
    this.#strategy = strategy;
    this.#live = live;
    this.#views = views;
  }

  /** A routable connector, `undefined` when none is live, or the error a strategy function caused. */
  pick(request: unknown): ConnectionProcess | undefined | Error {
    const live = this.#live;
    const n = live.length;
    if (n === 0) return undefined;
    const strategy = this.#strategy;
    if (strategy === "round-robin") {
      for (let tries = 0; tries < n; tries++) {
        const p = live[this.#next++ % n]!;
        if (routable(p)) return p;
      }
      return undefined;
    }
    if (strategy === "least-busy") {
      let best: ConnectionProcess | undefined;
      let bestLoad = Number.POSITIVE_INFINITY;
      // Start after the last pick so ties rotate instead of piling on the first connector.
      const start = this.#next++;
      for (let i = 0; i < n; i++) {
        const p = live[(start + i) % n]!;
        if (!routable(p)) continue;
        const load = p.rare?.calls?.size ?? 0;
        if (load < bestLoad) {
          best = p;
          bestLoad = load;
          if (load === 0) break;
        }
      }
      return best;
    }
    const candidates: Connection[] = [];
    const processes: ConnectionProcess[] = [];
    for (let i = 0; i < n; i++) {
      const p = live[i]!;
      if (!routable(p)) continue;
      candidates.push(this.#views[i]!);
      processes.push(p);
    }
    if (candidates.length === 0) return undefined;
    let chosen: unknown;
    try {
      chosen = strategy(candidates, request);
    } catch (error) {
      return new CallbackError("strategy", error);
    }
    const at = candidates.indexOf(chosen as Connection);
    if (at < 0) return new BadReturnError("strategy", chosen, "one of the live connections it was given");
    return processes[at];
  }
}
