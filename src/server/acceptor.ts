/**
 * Acceptors: one listening socket each (bound with SO_REUSEPORT when there are several, or with
 * `reusePort`), each with its own mode. A sleeping acceptor keeps the port bound and holds arriving
 * connections unserved (no `init`, not read: their bytes stay in the kernel) until wakeup.
 *
 * @module
 */
import { EVENTS } from "../connection/events.ts";
import { allocateId, ConnectionProcess } from "../connection/process.ts";
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
