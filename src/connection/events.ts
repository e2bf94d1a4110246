/**
 * Bun's socket events, routed to the process kept in `socket.data`. One table serves every socket of
 * every transport (Bun allocates one handler record per listener or connect, so no closure is made per
 * socket). Sockets the library no longer listens to (the raw twin of a TLS upgrade) carry
 * {@link DETACHED}, a process that is already dead.
 *
 * @module
 */
import { SocketSendError, TlsHandshakeError } from "../errors.ts";
import { TRACING } from "../trace.ts";
import type { Transport, TransportEvents, TransportSocket } from "../transport/transport.ts";
import { onData, pausedFor, setPause } from "./inbound.ts";
import { attach, detach, exit, start, trace } from "./lifecycle.ts";
import { queueDisconnect } from "./mailbox.ts";
import {
  ConnectionProcess,
  DEAD,
  EXITING,
  F_PEER_ENDED,
  F_SOCKET_CLOSED,
  F_STARTED,
  F_WAITING,
  F_WRITE_HELD,
  G_BUSY,
  P_HELD,
  P_HWM,
  phaseOf,
  STARTING,
  Totals,
} from "./process.ts";
import { rerouteQueued } from "./requests.ts";
import { clearHandshakeTimer, clearSocketTimers } from "./timers.ts";
import { flushQueue, onDrain } from "./writer.ts";

/** The handler table every transport reports to; dispatches through `socket.data`. */
export const EVENTS: TransportEvents = {
  open(socket) {
    const p = socket.data;
    if (p instanceof ConnectionProcess) onOpen(p, socket);
  },
  data(socket, chunk) {
    onData(socket.data as ConnectionProcess, chunk);
  },
  drain(socket) {
    onDrain(socket.data as ConnectionProcess);
  },
  end(socket) {
    onEnd(socket.data as ConnectionProcess);
  },
  close(socket, error) {
    const p = socket.data;
    if (p instanceof ConnectionProcess) onClose(p, socket, error);
  },
  error(socket, error) {
    const p = socket.data;
    if (p instanceof ConnectionProcess) onError(p, error);
  },
  handshake(socket, success, authorizationError) {
    onHandshake(socket.data as ConnectionProcess, socket, success, authorizationError);
  },
};

function onOpen(p: ConnectionProcess, socket: TransportSocket): void {
  const phase = phaseOf(p);
  if (phase === DEAD || phase === EXITING) {
    // A connect that completed after we gave up on it (connect timeout, stop).
    socket.terminate();
    return;
  }
  if (p.socket !== undefined) return; // Bun may call open after the connect promise resolved
  attach(p, socket, false);
}

/** For transports whose connect promise resolves without calling `open`. */
export function attachSocket(p: ConnectionProcess, socket: TransportSocket): void {
  onOpen(p, socket);
}

function onEnd(p: ConnectionProcess): void {
  p.flags |= F_PEER_ENDED;
  if (phaseOf(p) === DEAD) {
    // We half-closed and were waiting for the peer's FIN.
    if (p.out === undefined || p.out.empty) p.socket?.end();
    return;
  }
  if ((p.flags & F_WAITING) !== 0) {
    // Gave up while waiting for a slot: free the socket now, never start.
    exit(p, "normal");
    return;
  }
  // The peer is going away: routed requests still queued go back to their pool now rather than
  // being written to a peer that has stopped reading (packets that arrived before the FIN stay first).
  rerouteQueued(p);
  queueDisconnect(p);
}

function onClose(p: ConnectionProcess, socket: TransportSocket, error: Error | undefined): void {
  if (socket !== p.socket) return; // a stale socket (the raw twin of a TLS upgrade)
  p.flags |= F_SOCKET_CLOSED | F_PEER_ENDED;
  clearSocketTimers(p);
  p.spec.owner?.socketClosed?.(p);
  p.out?.fail(new SocketSendError("closed", error));
  if (pausedFor(p, P_HWM)) setPause(p, P_HWM, false); // the queue is gone
  if (phaseOf(p) === STARTING && (p.flags & F_STARTED) === 0 && (p.flags & G_BUSY) === 0) {
    // Gone before init ran (TLS handshake failed, held by a sleeping acceptor, reset early).
    exit(
      p,
      p.spec.transport.secure && (p.flags & F_WRITE_HELD) !== 0
        ? new TlsHandshakeError("connection closed", error)
        : "normal",
    );
    return;
  }
  // A STARTTLS handshake the peer broke off (FIN, reset) fails the upgrade, whatever the peer did.
  if (p.spec.transport.secure && (p.flags & F_WRITE_HELD) !== 0 && phaseOf(p) < EXITING) {
    exit(p, new TlsHandshakeError("connection closed during the TLS handshake", error));
    return;
  }
  rerouteQueued(p);
  queueDisconnect(p);
}

function onError(p: ConnectionProcess, error: Error): void {
  // TLS protocol errors arrive here; the close event follows. During a handshake it is a handshake failure.
  if ((p.flags & F_WRITE_HELD) !== 0 && p.spec.transport.secure && phaseOf(p) < EXITING) {
    exit(p, new TlsHandshakeError(error.message, error));
  }
}

function onHandshake(
  p: ConnectionProcess,
  socket: TransportSocket,
  success: boolean,
  authorizationError: Error | null,
): void {
  if (socket !== p.socket || phaseOf(p) >= EXITING) return;
  clearHandshakeTimer(p);
  // A transport's handshakeError is the verdict (Bun's `success` is false for an ignored verification
  // failure under rejectUnauthorized: false, and true for an untrusted client certificate).
  const transport = p.spec.transport;
  const failure =
    transport.handshakeError !== undefined
      ? transport.handshakeError(socket, success, authorizationError, p.spec.isServer)
      : success
        ? undefined
        : new TlsHandshakeError(authorizationError?.message ?? "handshake failed", authorizationError);
  if (failure !== undefined) {
    exit(p, failure);
    return;
  }
  if (TRACING && p.rare?.dbg !== undefined)
    trace(p, `finished TLS handshake (${socket.alpnProtocol || "no ALPN"})`);
  p.flags &= ~F_WRITE_HELD;
  if (phaseOf(p) === STARTING) {
    if (!pausedFor(p, P_HELD)) start(p);
  } else flushQueue(p);
}

/** The `socket.data` of sockets the library no longer listens to (the raw twin of a TLS upgrade). */
export const DETACHED: ConnectionProcess = new ConnectionProcess({
  handler: { init: () => undefined, handlePacket: () => undefined },
  init: undefined,
  settings: {
    framing: "raw",
    cutter: undefined,
    prefixBytes: 0,
    stageSendMax: -1,
    corkLimit: 0,
    stageRoom: 0,
    utf8: false,
    maxPacketSize: Number.POSITIVE_INFINITY,
    highWaterMark: 0,
    maxQueuedBytes: Number.POSITIVE_INFINITY,
    mode: "active",
    noDelay: undefined,
    keepAlive: undefined,
    sendTimeout: Number.POSITIVE_INFINITY,
    handshakeTimeout: Number.POSITIVE_INFINITY,
    closeTimeout: 0,
    debug: [],
    options: {},
  },
  isServer: false,
  totals: new Totals(),
  transport: { name: "detached", secure: false } as Transport,
  owner: undefined,
});
detach(DETACHED);
