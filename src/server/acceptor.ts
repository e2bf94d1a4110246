/**
 * Acceptors: one listening socket each (bound with SO_REUSEPORT when there are several, or with
 * `reusePort`), each with its own mode. A sleeping acceptor keeps the port bound and holds arriving
 * connections unserved (no `init`, not read: their bytes stay in the kernel) until wakeup.
 *
 * @module
 */
import { EVENTS } from "../connection/events.ts";
import { allocateId, ConnectionProcess, F_IGNORED } from "../connection/process.ts";
import { describeReason } from "../errors.ts";
import type { ExitReason } from "../handler.ts";
import type { AcceptorMode } from "../options.ts";
import type { DebugState } from "../trace.ts";
import type { TransportEvents, TransportListener, TransportSocket } from "../transport/transport.ts";

/** What an acceptor needs of its server. */
export interface AcceptorServer {
  accept(acceptor: Acceptor, socket: TransportSocket): void;
  serveHeld(acceptor: Acceptor): void;
}

/** One listening socket and its mode. */
export class Acceptor {
  /** Process id (as printed in traces). */
  readonly pid = allocateId();
  mode: AcceptorMode;
  listener: TransportListener | undefined = undefined;
  /** Connections that arrived while sleeping (or before the server was ready), in arrival order. */
  held: ConnectionProcess[] = [];
  dbg: DebugState | undefined;

  constructor(
    readonly index: number,
    readonly server: AcceptorServer,
    mode: AcceptorMode,
    dbg: DebugState | undefined,
  ) {
    this.mode = mode;
    this.dbg = dbg;
  }

  trace(text: string): void {
    this.dbg?.event(`Sockerl acceptor <${this.pid}>`, text);
  }

  /** Changes the mode; waking up serves the held connections in arrival order. */
  setMode(mode: AcceptorMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    if (this.dbg !== undefined) this.trace(`changed mode to ${mode}`);
    if (mode === "accept") this.server.serveHeld(this);
  }
}

/** `host:port` of a peer for trace lines. */
export function peerName(socket: TransportSocket | undefined): string {
  if (socket === undefined) return "(gone)";
  return socket.remoteAddress === undefined ? "unix socket" : `${socket.remoteAddress}:${socket.remotePort}`;
}

/** Bun's listener handler table: `open` creates the connection; the rest dispatch through it. */
export const LISTEN_EVENTS: TransportEvents = {
  ...EVENTS,
  open(socket) {
    const acceptor = socket.data;
    if (acceptor instanceof Acceptor) acceptor.server.accept(acceptor, socket);
    else if (acceptor instanceof ConnectionProcess) EVENTS.open(socket);
  },
};

/**
 * Sets every acceptor's mode. Waking takes every held connection first and serves them in arrival
 * order across acceptors (ids grow in accept order), not acceptor by acceptor.
 */
export function setAllModes(acceptors: readonly Acceptor[], mode: AcceptorMode): void {
  const held = mode === "accept" ? acceptors.flatMap((a) => a.held.map((c) => [a, c] as const)) : [];
  for (const a of acceptors) {
    if (mode === "accept") a.held = [];
    a.setMode(mode);
  }
  held.sort(([, x], [, y]) => x.id - y.id);
  for (const [a, conn] of held) {
    a.held.push(conn);
    a.server.serveHeld(a);
  }
}

/** The mode all acceptors share, or `[id, mode]` pairs when they differ. */
export function sharedMode(
  acceptors: readonly Acceptor[],
): AcceptorMode | Array<[id: number, mode: AcceptorMode]> {
  const first = acceptors[0]!.mode;
  return acceptors.every((a) => a.mode === first) ? first : acceptors.map((a) => [a.index, a.mode]);
}

/** The acceptor's trace line for an accepted socket (and its statistics). */
export function traceAccepted(acceptor: Acceptor, socket: TransportSocket): void {
  if (acceptor.dbg?.counters !== undefined) acceptor.dbg.counters.accepted++;
  acceptor.trace(`accepted socket ${peerName(socket)}`);
}

/** The acceptor's trace line for a socket handed to its connection process. */
export function traceGiven(
  acceptor: Acceptor,
  socket: TransportSocket | undefined,
  conn: ConnectionProcess,
): void {
  acceptor.trace(`gave socket ${peerName(socket)} to connection handler <${conn.id}>`);
}

/** The acceptor's trace line for a connection that never started (ignored, or failed to start). */
export function traceStartFailure(acceptor: Acceptor, child: ConnectionProcess, reason: ExitReason): void {
  if (acceptor.dbg === undefined) return;
  const socket = peerName(child.socket);
  if ((child.flags & F_IGNORED) !== 0) {
    acceptor.trace(`starting new connection handler <${child.id}> for socket ${socket} was ignored`);
  } else if (reason !== "normal") {
    acceptor.trace(
      `could not start connection handler <${child.id}> for socket ${socket} with reason ${describeReason(reason)}`,
    );
  }
}
