/**
 * Who gets served, and what a flood of connections can take. Every default here is chosen for a hostile
 * peer:
 * - `maxConnections` (default Infinity) bounds the connections served at once; more wait, accepted
 *   but unserved, in arrival order. A waiting connection keeps reading (up to 64 KiB) so a peer that
 *   leaves is noticed at once and its socket freed.
 * - `maxWaiting` (default 1024) bounds the waiting queue: a connection past it is reset at once.
 * - A TLS connection takes a slot only once its handshake is done; `maxHandshakes` (default 1024)
 *   bounds the handshakes in progress (a new connection past it is reset), and `handshakeTimeout`
 *   bounds each.
 * - The open-file guard: near the process's descriptor limit, new connections are reset at once
 *   (see fd-limit.ts), counting every socket the server holds: served, waiting, handshaking, closing
 *   (waiting for the peer's FIN) and sockets a listener holds before handing them over (SNI, PROXY).
 *
 * @module
 */
import { abort, release } from "../connection/lifecycle.ts";
import { type ConnectionProcess, F_HANDSHAKING, F_STARTED, type Totals } from "../connection/process.ts";
import { ArgumentError } from "../errors.ts";
import { type FdBudget, fdBudget, prefetchOpenFileLimit } from "../fd-limit.ts";
import { emit } from "../trace.ts";

/** The admission state of one server. */
export class Admission {
  maxConnections: number;
  readonly maxWaiting: number;
  readonly maxHandshakes: number;
  /** Connections admitted to run (a slot each) and not yet ended. */
  served = 0;
  /** Connections waiting for a slot, in arrival order. */
  waiting: ConnectionProcess[] = [];
  /** TLS connections accepted and still handshaking. */
  handshakes = 0;
  /** Sockets of this server not yet closed (every connection, including closing ones). */
  sockets = 0;
  /** The descriptor guard, made at the first socket (null: not yet; undefined: no limit known). */
  #fds: FdBudget | undefined | null = null;
  /** The server's name in the guard's report. */
  readonly #label: () => string;

  constructor(maxConnections: number, maxWaiting: number, maxHandshakes: number, label: () => string) {
    void prefetchOpenFileLimit();
    this.#label = label;
    this.maxConnections = maxConnections;
    this.maxWaiting = maxWaiting;
    this.maxHandshakes = maxHandshakes;
  }

  /** Whether a new socket may be kept at all (descriptor guard); `extra` = sockets held elsewhere. */
  keep(extra: number): boolean {
    if (this.#fds === null) this.#fds = fdBudget();
    const fds = this.#fds;
    if (fds === undefined) return true;
    const ok = fds.admit(this.sockets + extra + 1);
    if (ok) fds.shedding = false;
    else if (!fds.shedding) {
      fds.shedding = true;
      emit(
        `** Sockerl server ${this.#label()} is near the open file limit (${fds.limit}): new connections are reset until descriptors are free`,
      );
    }
    return ok;
  }

  /** A TLS connection was accepted: it counts against `maxHandshakes` until its handshake is over. */
  handshakeStarted(p: ConnectionProcess): void {
    this.handshakes++;
    p.flags |= F_HANDSHAKING;
  }

  /** The handshake is over (done, failed, or the connection ended): it no longer counts. */
  handshakeDone(p: ConnectionProcess): void {
    if ((p.flags & F_HANDSHAKING) === 0) return;
    p.flags &= ~F_HANDSHAKING;
    this.handshakes--;
  }

  /**
   * The owner hook for a connection ready for `init` (its TLS handshake done): true with a slot, false
   * when it waits, or false after a reset when the waiting queue is full.
   */
  ready(p: ConnectionProcess): boolean {
    this.handshakeDone(p);
    const admitted = this.admit(p);
    if (admitted === null) {
      abort(p); // the waiting queue is full: reset at once
      return false;
    }
    return admitted;
  }

  /** A connection is ready for `init`: take a slot, or wait (false). Null: the waiting queue is full. */
  admit(p: ConnectionProcess): boolean | null {
    if (this.served < this.maxConnections) {
      this.served++;
      return true;
    }
    if (this.waiting.length >= this.maxWaiting) return null;
    this.waiting.push(p);
    return false;
  }

  /** A connection ended: free its slot (if it had one) and serve who waits. */
  ended(p: ConnectionProcess, admitted: boolean): void {
    if (admitted) this.served--;
    else if ((p.flags & F_STARTED) === 0) {
      const i = this.waiting.indexOf(p);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    this.serveWaiting();
  }

  /** `server.info()`: these counts with the server's totals. */
  info(
    c: Totals,
    server: Pick<ServerInfo, "port" | "hostname" | "transport" | "accepted" | "startedAt">,
  ): ServerInfo {
    return {
      ...server,
      active: this.served,
      waiting: this.waiting.length,
      maxConnections: this.maxConnections,
      ended: { normal: c.normal, peer: c.peer, crash: c.crash, shutdown: c.shutdown },
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
    };
  }

  /** `server.setMaxConnections(n)`: a positive integer or Infinity; raising it serves who waits now. */
  setMaxConnections(n: number): void {
    if (n !== Number.POSITIVE_INFINITY && (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1)) {
      throw new ArgumentError("maxConnections", "a positive integer or Infinity", n);
    }
    this.maxConnections = n;
    this.serveWaiting();
  }

  /** Serves waiting connections while slots are free (after an end, or a raised `maxConnections`). */
  serveWaiting(): void {
    while (this.waiting.length > 0 && this.served < this.maxConnections) {
      const next = this.waiting.shift()!;
      this.served++;
      release(next);
    }
  }
}

/** A server's always-on totals (`server.info()`). */
export interface ServerInfo {
  readonly port: number;
  readonly hostname: string;
  readonly transport: string;
  /** Connections served now (a `maxConnections` slot each). */
  readonly active: number;
  /** Connections accepted and waiting for a slot. */
  readonly waiting: number;
  readonly maxConnections: number;
  /** Sockets accepted since start. */
  readonly accepted: number;
  /** Connections ended since start, by kind: `normal` and `shutdown` exits, `peer` faults (see `isPeerFault`), `crash`es. */
  readonly ended: {
    readonly normal: number;
    readonly peer: number;
    readonly crash: number;
    readonly shutdown: number;
  };
  /** Bytes read from and written to sockets since start. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** When the server started listening. */
  readonly startedAt: Date;
}
