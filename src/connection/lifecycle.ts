/**
 * Start and end of a process: `init` (after the TLS handshake, unless held by a sleeping acceptor or
 * waiting for a slot), then on exit: leave the owner's list, `terminate`, the report for abnormal
 * endings, the owner's plan, and the graceful close of the socket (flush the queue, half-close, wait
 * for the peer's FIN within `closeTimeout`, then reset).
 *
 * @module
 */

import { connectionExitChannel, connectionStartChannel } from "../diagnostics.ts";
import {
  BadReturnError,
  CallbackError,
  describeReason,
  isPeerFault,
  NoProcError,
  SocketSendError,
} from "../errors.ts";
import type { ExitReason } from "../handler.ts";
import { emit, formatTerm, TRACING } from "../trace.ts";
import type { TransportSocket } from "../transport/transport.ts";
import { apply } from "./actions.ts";
import { beginCork, endCork, flushNow } from "./cork.ts";
import { eventDone, isThenable } from "./dispatch.ts";
import { setPause } from "./inbound.ts";
import { run, takeAll } from "./mailbox.ts";
import {
  CB_INIT,
  CB_MASK,
  CB_SHIFT,
  type ConnectionProcess,
  DEAD,
  E_CALL,
  E_CAST,
  E_EVENT,
  E_SEND_ASYNC,
  E_SEND_SYNC,
  E_SYS,
  EXITING,
  F_ADMITTED,
  F_IGNORED,
  F_PEER_ENDED,
  F_SOCKET_CLOSED,
  F_STARTED,
  F_WAITING,
  F_WRITE_HELD,
  G_BUSY,
  G_NOT_RUNNING,
  GATE_MASK,
  type MailboxEvent,
  P_BACKLOG,
  P_HELD,
  P_HWM,
  P_SUSPENDED,
  phaseOf,
  RUNNING,
  rareOf,
  STARTING,
  setPhase,
  type Totals,
} from "./process.ts";
import { rerouteOrFail, type SendSyncRequest, type SysRequest } from "./requests.ts";
import { armCloseTimer, armHandshakeTimer, clearProcessTimers, handshakeTimerArmed } from "./timers.ts";
import { viewOf } from "./view.ts";

/** Attaches an accepted or connected socket; the process starts unless `hold` (sleeping acceptor, no slot). */
export function attach(p: ConnectionProcess, socket: TransportSocket, hold: boolean): void {
  p.socket = socket;
  socket.data = p;
  const settings = p.spec.settings;
  if (settings.noDelay === false) socket.setNoDelay?.(false);
  if (settings.keepAlive !== undefined && settings.keepAlive !== false) {
    socket.setKeepAlive?.(true, settings.keepAlive === true ? 0 : settings.keepAlive);
  }
  const preamble = p.spec.preamble;
  if (preamble !== undefined) socket.write(preamble);
  if (p.spec.transport.secure) {
    p.flags |= F_WRITE_HELD;
    // A held connection's handshake waits with it: its timer starts on release.
    if (!hold) armHandshakeTimer(p);
  }
  if (hold) setPause(p, P_HELD, true);
  else if (!p.spec.transport.secure) start(p);
}

/** Serves a connection held by a sleeping acceptor (or waiting for a slot). */
export function release(p: ConnectionProcess): void {
  if (phaseOf(p) !== STARTING) return;
  if ((p.flags & F_WAITING) !== 0) p.flags |= F_ADMITTED; // the owner made room for it
  setPause(p, P_HELD, false);
  if ((p.flags & F_WRITE_HELD) === 0) start(p);
  else if (!handshakeTimerArmed(p)) armHandshakeTimer(p);
}

/** Runs `init` (the connection is up: accepted, connected, TLS handshake done). */
export function start(p: ConnectionProcess): void {
  if (phaseOf(p) !== STARTING || (p.flags & G_BUSY) !== 0) return;
  if ((p.flags & F_ADMITTED) === 0 && p.spec.owner?.admit !== undefined) {
    if (!p.spec.owner!.admit(p)) {
      // No slot: wait, reading (bounded) so that a peer that leaves is noticed and its socket freed.
      p.flags |= F_WAITING;
      return;
    }
    p.flags |= F_ADMITTED;
  }
  p.flags &= ~F_WAITING;
  p.flags = (p.flags & ~GATE_MASK) | G_BUSY; // init runs; everything else queues
  p.flags = (p.flags & ~CB_MASK) | (CB_INIT << CB_SHIFT);
  const meta = viewOf(p);
  let result: unknown;
  try {
    result = p.spec.handler.init(p.spec.init, meta);
  } catch (error) {
    exit(p, new CallbackError("init", error));
    return;
  }
  if (isThenable(result)) initLater(p, result);
  else initDone(p, result);
}

/**
 * `init` returned a promise: done when it settles. A function of its own because its closures capture
 * `p`, and a function whose variables a closure captures allocates a scope object at every call: in
 * `start`, that would be one more object per connection, promise or not.
 */
function initLater(p: ConnectionProcess, result: PromiseLike<unknown>): void {
  // Promise.resolve: a thenable whose `then` throws becomes a rejection instead of escaping.
  Promise.resolve(result).then(
    (value) => initDone(p, value),
    (error) => exit(p, new CallbackError("init", error)),
  );
}

function initDone(p: ConnectionProcess, result: unknown): void {
  if (phaseOf(p) !== STARTING) return;
  if (result === "ignore") {
    p.flags |= F_IGNORED;
    exit(p, "normal", true);
    return;
  }
  const corked = beginCork(p);
  const outcome = apply(p, result, CB_INIT);
  if (corked) endCork(p);
  if (outcome !== true) {
    exit(p, outcome === false ? "normal" : outcome.reason);
    return;
  }
  setPhase(p, RUNNING);
  p.flags |= F_STARTED;
  p.flags &= ~(G_BUSY | G_NOT_RUNNING);
  p.spec.totals.started++;
  p.spec.owner?.childStarted?.(p);
  if (connectionStartChannel.hasSubscribers) {
    connectionStartChannel.publish({ connection: p.view, ...p.spec.owner?.channelInfo?.() });
  }
  const rare = p.rare;
  if (rare?.onStarted !== undefined) {
    const onStarted = rare.onStarted;
    rare.onStarted = undefined;
    onStarted(true, undefined);
  }
  eventDone(p);
  if (phaseOf(p) === RUNNING) run(p);
}

// ---------------------------------------------------------------- exit

/** Ends the process: leave the list, run `terminate`, report, let the owner decide, close the socket. */
export function exit(p: ConnectionProcess, reason: ExitReason, quiet = false): void {
  if (phaseOf(p) >= EXITING) return;
  const started = (p.flags & F_STARTED) !== 0;
  setPhase(p, EXITING);
  p.flags |= G_NOT_RUNNING;
  rareOf(p).exitReason = reason;
  clearProcessTimers(p);
  p.spec.owner?.childLeaving(p);
  if (TRACING && p.rare?.dbg !== undefined) trace(p, `terminating with reason ${describeReason(reason)}`);
  const handler = p.spec.handler;
  const terminate = started && !quiet ? handler.terminate : undefined;
  if (terminate !== undefined) {
    let result: unknown;
    try {
      result = terminate.call(handler, reason, p.state, p.view!);
    } catch (error) {
      finalize(p, reason, started, quiet, error);
      return;
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(
        () => finalize(p, reason, started, quiet, undefined),
        (error) => finalize(p, reason, started, quiet, error),
      );
      return;
    }
  }
  finalize(p, reason, started, quiet, undefined);
}

function finalize(
  p: ConnectionProcess,
  reason: ExitReason,
  started: boolean,
  quiet: boolean,
  terminateError: unknown,
): void {
  setPhase(p, DEAD);
  flushNow(p);
  const finalReason = terminateError === undefined ? reason : new CallbackError("terminate", terminateError);
  // A connection that never started (TLS handshake failed, peer gone, held and stopped) is not
  // reported: the acceptor traces it, a connector's start rejects with it. A handler bug in init is.
  const report = started
    ? isAbnormal(finalReason)
    : finalReason instanceof CallbackError || finalReason instanceof BadReturnError;
  if (!quiet && report) {
    emit(
      `** Sockerl connector <${p.id}> terminating\n** Reason for termination == ${describeReason(finalReason)}\n** State == ${formatTerm(p.state)}`,
    );
    // With the `log` option, the last events follow the report (Erlang's sys:print_log).
    const dbg = p.rare?.dbg;
    if (dbg?.log !== undefined) for (const line of dbg.logLines()) emit(line);
  }
  countEnding(p.spec.totals, finalReason);
  // Whatever is still queued will never be handled here: a pool's routed requests go elsewhere.
  for (const event of takeAll(p)) dropEvent(p, event);
  const rare = p.rare;
  if (rare?.calls !== undefined) for (const from of rare.calls.takeAll()) from.fail(new NoProcError(p.id));
  rareOf(p).exitReason = finalReason;
  if (rare !== undefined) {
    rare.resolveExited?.(finalReason);
    const waiters = rare.stopWaiters;
    rare.stopWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w();
    const onStarted = rare.onStarted;
    rare.onStarted = undefined;
    onStarted?.(false, finalReason);
  }
  if (started && connectionExitChannel.hasSubscribers) {
    connectionExitChannel.publish({
      connection: p.view,
      reason: finalReason,
      peerFault: isPeerFault(finalReason),
    });
  }
  p.spec.owner?.childExited(p, finalReason, started);
  closeSocket(p);
}

function countEnding(totals: Totals, reason: ExitReason): void {
  if (reason === "normal") totals.normal++;
  else if (reason === "shutdown") totals.shutdown++;
  else if (isPeerFault(reason)) totals.peer++;
  else totals.crash++;
}

function dropEvent(p: ConnectionProcess, event: MailboxEvent): void {
  switch (event.kind) {
    case E_CALL:
    case E_CAST:
    case E_EVENT:
    case E_SEND_ASYNC:
      rerouteOrFail(p, event);
      break;
    case E_SEND_SYNC:
      if (!rerouteOrFail(p, event)) (event.extra as SendSyncRequest).reject(new SocketSendError("noproc"));
      break;
    case E_SYS:
      (event.extra as SysRequest).reject(new NoProcError(p.id));
      break;
  }
}

/** `"normal"` and `"shutdown"` are normal exits: no report. */
export function isAbnormal(reason: ExitReason): boolean {
  return reason !== "normal" && reason !== "shutdown" && reason !== undefined;
}

// ---------------------------------------------------------------- closing the socket

/** Graceful close: flush the queue, then FIN (half-close if the peer may still talk), then close. */
function closeSocket(p: ConnectionProcess): void {
  const socket = p.socket;
  if (socket === undefined || (p.flags & F_SOCKET_CLOSED) !== 0) return;
  setPause(p, P_HELD | P_SUSPENDED | P_BACKLOG | P_HWM, false);
  const out = p.out;
  if (out !== undefined && !out.empty && (p.flags & F_WRITE_HELD) === 0) {
    // Flushing continues from drain; bounded by closeTimeout.
    armCloseTimer(p);
    return;
  }
  finishClose(p);
}

/** The queue is empty: FIN now (and wait for the peer's, unless it already sent it). */
export function finishClose(p: ConnectionProcess): void {
  const socket = p.socket;
  if (socket === undefined || (p.flags & F_SOCKET_CLOSED) !== 0) return;
  if ((p.flags & (F_PEER_ENDED | F_WRITE_HELD)) !== 0) {
    socket.end();
    return;
  }
  // The peer may still be sending: end() would close with unread data and reset the connection,
  // losing what we sent. Half-close, keep reading (and discarding) until the peer's FIN.
  socket.shutdown();
  armCloseTimer(p);
}

/** Closes at once (RST). */
export function abort(p: ConnectionProcess): void {
  if ((p.flags & F_SOCKET_CLOSED) !== 0) return;
  p.socket?.terminate();
}

/** Marks a process dead without any exit work (a connect given up on, the detached sentinel). */
export function detach(p: ConnectionProcess): void {
  setPhase(p, DEAD);
  p.flags = (p.flags & ~GATE_MASK) | G_NOT_RUNNING;
}

/** One trace line of this connection. */
export function trace(p: ConnectionProcess, text: string): void {
  p.rare?.dbg?.event(`Sockerl connector <${p.id}>`, text);
}

/** Whether the process is still running (or starting). */
export function isAlive(p: ConnectionProcess): boolean {
  return phaseOf(p) < EXITING;
}

/** For connectors: called once `init` has completed (ok) or the start failed. */
export function onStarted(p: ConnectionProcess, callback: (ok: boolean, reason: ExitReason) => void): void {
  rareOf(p).onStarted = callback;
}
