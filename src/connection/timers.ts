/**
 * The timers of a connection, each made on first use and paid for only by connections that use it:
 * the idle `timeout` ({@link IdleTimer}, re-armed lazily: events only stamp a time, the timer checks it
 * when it fires), and the rarer passive receive, TLS handshake, send and close timers ({@link Timers}).
 * Every timer goes through the library's clock (`src/clock.ts`), so the testing kit can drive them.
 *
 * @module
 */
import { clock, type TimerHandle } from "../clock.ts";
import { HandshakeTimeoutError, SendTimeoutError } from "../errors.ts";
import { abort, exit } from "./lifecycle.ts";
import { post } from "./mailbox.ts";
import {
  type ConnectionProcess,
  E_SRTIMEOUT,
  E_TIMEOUT,
  EXITING,
  F_PASSIVE,
  F_WRITE_HELD,
  G_BUSY,
  G_SUSPENDED,
  phaseOf,
  RUNNING,
  STARTING,
} from "./process.ts";

/** The idle `timeout` of a connection: `timeout()` fires after `ms` without events, every period. */
export class IdleTimer {
  ms: number;
  handle: TimerHandle | undefined = undefined;
  lastEventAt: number;
  readonly fire: () => void;
  constructor(p: ConnectionProcess, ms: number) {
    this.ms = ms;
    this.lastEventAt = clock.now();
    this.fire = () => onIdleTimer(p);
  }
}

/** The rarer timers of a connection. */
export class Timers {
  /** The idle timeout (the `timeout` action), while one is set. */
  idle: IdleTimer | undefined = undefined;
  /** Passive receive timeout in ms (`Infinity` = none). */
  srMs = Number.POSITIVE_INFINITY;
  sr: TimerHandle | undefined = undefined;
  handshake: TimerHandle | undefined = undefined;
  send: TimerHandle | undefined = undefined;
  close: TimerHandle | undefined = undefined;
}

function timersOf(p: ConnectionProcess): Timers {
  let timers = p.timers;
  if (timers === undefined) timers = p.timers = new Timers();
  return timers;
}

// ---------------------------------------------------------------- idle timeout

/** The `timeout` action: `ms` (or `Infinity` for none), counted from now. */
export function setIdleTimeout(p: ConnectionProcess, ms: number): void {
  const idle = p.timers?.idle;
  if (idle?.handle !== undefined) {
    clock.clearTimeout(idle.handle);
    idle.handle = undefined;
  }
  if (ms === Number.POSITIVE_INFINITY) {
    if (idle !== undefined) p.timers!.idle = undefined;
    return;
  }
  let timer = idle;
  if (timer === undefined) timer = timersOf(p).idle = new IdleTimer(p, ms);
  else {
    timer.ms = ms;
    timer.lastEventAt = clock.now();
  }
  timer.handle = clock.setTimeout(timer.fire, ms);
}

function onIdleTimer(p: ConnectionProcess): void {
  const idle = p.timers?.idle;
  if (idle === undefined) return;
  idle.handle = undefined;
  if (phaseOf(p) !== RUNNING) return;
  const ms = idle.ms;
  const idleFor = clock.now() - idle.lastEventAt;
  // Busy or suspended (sys.suspend): the connection is not idle, the timeout does not fire.
  const busy = (p.flags & (G_BUSY | G_SUSPENDED)) !== 0;
  if (busy || idleFor < ms - 1) {
    idle.handle = clock.setTimeout(idle.fire, busy ? ms : ms - idleFor);
    return;
  }
  idle.handle = clock.setTimeout(idle.fire, ms);
  idle.lastEventAt = clock.now();
  post(p, E_TIMEOUT, undefined, undefined);
}

// ---------------------------------------------------------------- passive receive timeout

/** The `srtimeout` action. */
export function setSrTimeout(p: ConnectionProcess, ms: number): void {
  if (ms === Number.POSITIVE_INFINITY && p.timers === undefined) return;
  const timers = timersOf(p);
  timers.srMs = ms;
  clearSrTimer(p);
}

/** Idle and waiting for passive data: arm the receive timeout (if set and not armed). */
export function armSrTimer(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers === undefined || timers.sr !== undefined || timers.srMs === Number.POSITIVE_INFINITY) return;
  timers.sr = clock.setTimeout(() => {
    timers.sr = undefined;
    if (phaseOf(p) !== RUNNING || (p.flags & F_PASSIVE) === 0) return;
    post(p, E_SRTIMEOUT, undefined, undefined);
  }, timers.srMs);
}

/** Data arrived, or the mode or the timeout changed. */
export function clearSrTimer(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers?.sr === undefined) return;
  clock.clearTimeout(timers.sr);
  timers.sr = undefined;
}

// ---------------------------------------------------------------- TLS handshake

/** A TLS handshake starts (at accept, connect or STARTTLS): bounded by `handshakeTimeout`. */
export function armHandshakeTimer(p: ConnectionProcess): void {
  const ms = p.spec.settings.handshakeTimeout;
  if (ms === Number.POSITIVE_INFINITY) return;
  const timers = timersOf(p);
  if (timers.handshake !== undefined) clock.clearTimeout(timers.handshake);
  timers.handshake = clock.setTimeout(() => {
    timers.handshake = undefined;
    if ((p.flags & F_WRITE_HELD) !== 0 && phaseOf(p) < EXITING) exit(p, new HandshakeTimeoutError(ms));
  }, ms);
}

/** Whether a handshake timer runs (a held connection's starts when it is released). */
export function handshakeTimerArmed(p: ConnectionProcess): boolean {
  return p.timers?.handshake !== undefined;
}

export function clearHandshakeTimer(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers?.handshake === undefined) return;
  clock.clearTimeout(timers.handshake);
  timers.handshake = undefined;
}

// ---------------------------------------------------------------- send timeout

/** Bytes are queued for a peer that is not reading: it gets `sendTimeout` ms to take them. */
export function armSendTimer(p: ConnectionProcess): void {
  const ms = p.spec.settings.sendTimeout;
  if (ms === Number.POSITIVE_INFINITY || (p.flags & F_WRITE_HELD) !== 0) return;
  const timers = timersOf(p);
  if (timers.send !== undefined) return;
  timers.send = clock.setTimeout(() => {
    timers.send = undefined;
    const out = p.out;
    if (out === undefined || out.empty) return;
    const phase = phaseOf(p);
    if (phase === RUNNING || phase === STARTING) exit(p, new SendTimeoutError(ms, out.bytes));
    // Dropped: flushing to a peer that does not read would only hold the socket for closeTimeout more.
    abort(p);
  }, ms);
}

/** The peer took bytes: its send timeout starts again. */
export function refreshSendTimer(p: ConnectionProcess): void {
  p.timers?.send?.refresh();
}

export function clearSendTimer(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers?.send === undefined) return;
  clock.clearTimeout(timers.send);
  timers.send = undefined;
}

// ---------------------------------------------------------------- close

/** Waiting for queued bytes to drain or for the peer's FIN: at most `closeTimeout`, then reset. */
export function armCloseTimer(p: ConnectionProcess): void {
  const timers = timersOf(p);
  if (timers.close !== undefined) return;
  timers.close = clock.setTimeout(() => {
    timers.close = undefined;
    abort(p);
  }, p.spec.settings.closeTimeout);
}

/** The socket closed: the send and close timers have nothing left to guard. */
export function clearSocketTimers(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers === undefined) return;
  if (timers.close !== undefined) clock.clearTimeout(timers.close);
  if (timers.send !== undefined) clock.clearTimeout(timers.send);
  timers.close = timers.send = undefined;
}

/** Exit: the idle, receive and handshake timers stop (send and close timers guard the closing socket). */
export function clearProcessTimers(p: ConnectionProcess): void {
  const timers = p.timers;
  if (timers === undefined) return;
  const idle = timers.idle;
  if (idle !== undefined) {
    if (idle.handle !== undefined) clock.clearTimeout(idle.handle);
    timers.idle = undefined;
  }
  if (timers.sr !== undefined) clock.clearTimeout(timers.sr);
  if (timers.handshake !== undefined) clock.clearTimeout(timers.handshake);
  timers.sr = timers.handshake = undefined;
}
