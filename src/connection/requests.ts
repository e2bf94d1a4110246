/**
 * What handles ask of a process: `call`, `cast`, `notify`, `sendSync`, `sendAsync`, `stop`, and the
 * internal requests of servers, pools and `sys` (shutdown, suspend, code change). Each is an event in
 * the mailbox, served in order with the packets.
 *
 * Requests a pool routed carry their router: when the connection ends (or loses its socket) before a
 * handler took them, they go back to the pool to be routed again, never lost and never duplicated. A
 * call a handler already took cannot move (the handler may have written it): it rejects with
 * `NoProcError`.
 *
 * @module
 */
import { CallFrom, CallList, nextCallTag, type RequestRouter, setCallHooks } from "../call.ts";
import { clock } from "../clock.ts";
import { ArgumentError, NoProcError } from "../errors.ts";
import type { ExitReason, Handler, Outgoing } from "../handler.ts";
import { formatTerm, TRACING } from "../trace.ts";
import { dispatchEvent } from "./dispatch.ts";
import { setPause } from "./inbound.ts";
import { exit, trace } from "./lifecycle.ts";
import { post, postFirst, run } from "./mailbox.ts";
import {
  type ConnectionProcess,
  DEAD,
  E_CALL,
  E_CAST,
  E_EVENT,
  E_SEND_ASYNC,
  E_SEND_SYNC,
  E_STOP,
  E_SYS,
  EXITING,
  G_BUSY,
  G_SUSPENDED,
  GATE_MASK,
  type MailboxEvent,
  P_SUSPENDED,
  phaseOf,
  RUNNING,
  rareOf,
  STARTING,
} from "./process.ts";

/** A pending `sendSync`. */
export interface SendSyncRequest {
  readonly tag: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly router?: RequestRouter | undefined;
}

/** A pending sys request. */
export interface SysRequest {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

setCallHooks({
  replied(owner, from, value) {
    const p = owner as ConnectionProcess;
    if (TRACING && p.rare?.dbg !== undefined) trace(p, `sent ${formatTerm(value)} to <call ${from.tag}>`);
  },
  settled(owner, from) {
    (owner as ConnectionProcess).rare?.calls?.remove(from);
  },
});

const PACKET_RULE = "a string, an ArrayBufferView or an ArrayBuffer (or an array of them)";

function isPacketValue(value: unknown): boolean {
  return typeof value === "string" || ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

/** Whether `value` is something `sendSync`/`sendAsync` can send. */
export function isOutgoing(value: unknown): boolean {
  return isPacketValue(value) || (Array.isArray(value) && value.every(isPacketValue));
}

/** `conn.call(request, timeoutMs)`. */
export function call(
  p: ConnectionProcess,
  request: unknown,
  timeoutMs = 5000,
  router?: RequestRouter,
): Promise<unknown> {
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
    return Promise.reject(new ArgumentError("timeoutMs", "a number >= 0 or Infinity", timeoutMs));
  }
  if (phaseOf(p) >= EXITING) return Promise.reject(new NoProcError(p.id));
  return postCall(p, request, timeoutMs, router);
}

/**
 * A call to `p` (running, `timeoutMs` checked): a pool's call once it picked a connector. The new
 * `From` is `p`'s from the start, so it skips {@link routeCall}'s re-check and rebind (a hook call and
 * a list removal per call).
 */
export function postCall(
  p: ConnectionProcess,
  request: unknown,
  timeoutMs: number,
  router?: RequestRouter,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    postTaken(p, request, new CallFrom(p, resolve, reject, timeoutMs, router));
  });
}

/** Posts a call `p` owns: listed among its pending calls (failed if it ends), then to the mailbox. */
function postTaken(p: ConnectionProcess, request: unknown, from: CallFrom): void {
  (rareOf(p).calls ??= new CallList()).add(from);
  post(p, E_CALL, request, from);
}

/** Posts a call whose {@link CallFrom} exists already (made by `call`, or a pool re-routing it). */
export function routeCall(p: ConnectionProcess, request: unknown, from: CallFrom): void {
  if (phaseOf(p) >= EXITING) {
    if (from.router !== undefined) from.router.reroute("call", request, from);
    else from.fail(new NoProcError(p.id));
    return;
  }
  from.rebind(p);
  postTaken(p, request, from);
}

/** `conn.cast(message)`. */
export function cast(p: ConnectionProcess, message: unknown, router?: RequestRouter): void {
  if (phaseOf(p) < EXITING) post(p, E_CAST, message, router);
  else router?.reroute("cast", message, undefined);
}

/** `conn.notify(event)`. */
export function notify(p: ConnectionProcess, event: unknown, router?: RequestRouter): void {
  if (phaseOf(p) < EXITING) post(p, E_EVENT, event, router);
  else router?.reroute("event", event, undefined);
}

/** `conn.sendSync(packet)`. */
export function sendSync(p: ConnectionProcess, packet: Outgoing, router?: RequestRouter): Promise<void> {
  if (!isOutgoing(packet)) return Promise.reject(new ArgumentError("packet", PACKET_RULE, packet));
  if (phaseOf(p) >= EXITING) return Promise.reject(new NoProcError(p.id));
  return new Promise((resolve, reject) => {
    const tag = nextCallTag();
    const request: SendSyncRequest = {
      tag,
      resolve: () => {
        if (TRACING && p.rare?.dbg !== undefined) trace(p, `sent ok to <call ${tag}>`);
        resolve();
      },
      reject,
      router,
    };
    post(p, E_SEND_SYNC, packet, request);
  });
}

/** Posts a sendSync whose request exists already (a pool re-routing it). */
export function routeSendSync(p: ConnectionProcess, packet: unknown, request: SendSyncRequest): void {
  if (phaseOf(p) >= EXITING) {
    if (request.router !== undefined) request.router.reroute("sendSync", packet, request);
    else request.reject(new NoProcError(p.id));
    return;
  }
  post(p, E_SEND_SYNC, packet, request);
}

/** `conn.sendAsync(packet)`. A bad packet is the caller's mistake: it throws, the connection goes on. */
export function sendAsync(p: ConnectionProcess, packet: Outgoing, router?: RequestRouter): void {
  if (!isOutgoing(packet)) throw new ArgumentError("packet", PACKET_RULE, packet);
  if (phaseOf(p) < EXITING) post(p, E_SEND_ASYNC, packet, router);
  else router?.reroute("sendAsync", packet, undefined);
}

/**
 * A request that could not be handled here goes back to its router; returns false when it has none
 * (then the caller fails it).
 */
export function rerouteOrFail(p: ConnectionProcess, event: MailboxEvent): boolean {
  if (event.kind === E_CALL) {
    const from = event.extra as CallFrom;
    if (!from.pending) return true;
    if (from.router === undefined) {
      from.fail(new NoProcError(p.id));
      return false;
    }
    p.rare?.calls?.remove(from);
  }
  const router = routerOf(event);
  if (router === undefined) return false;
  const extra = event.kind === E_CALL || event.kind === E_SEND_SYNC ? event.extra : undefined;
  router.reroute(ROUTED_KINDS[event.kind]!, event.value, extra);
  return true;
}

/** What a router is told a request was, by mailbox event kind. */
const ROUTED_KINDS: Partial<Record<number, "call" | "cast" | "event" | "sendAsync" | "sendSync">> = {
  [E_CALL]: "call",
  [E_CAST]: "cast",
  [E_EVENT]: "event",
  [E_SEND_ASYNC]: "sendAsync",
  [E_SEND_SYNC]: "sendSync",
};

/** The router a queued request came with (a pool), or undefined for a direct one. */
function routerOf(event: MailboxEvent): RequestRouter | undefined {
  switch (event.kind) {
    case E_CALL:
      return (event.extra as CallFrom).router;
    case E_SEND_SYNC:
      return (event.extra as SendSyncRequest).router;
    case E_CAST:
    case E_EVENT:
    case E_SEND_ASYNC:
      return event.extra as RequestRouter | undefined;
  }
  return undefined;
}

/** The socket is gone: routed requests still queued go back to their pool now (packets stay first). */
export function rerouteQueued(p: ConnectionProcess): void {
  const mailbox = p.mailbox;
  if (mailbox === undefined) return;
  const kept: MailboxEvent[] = [];
  const events = mailbox.events;
  let moved = false;
  let keptBeforeBytes = 0;
  for (let i = mailbox.head; i < events.length; i++) {
    const event = events[i]!;
    if (routerOf(event) !== undefined) {
      moved = true;
      rerouteOrFail(p, event);
    } else {
      kept.push(event);
      if (i < mailbox.bytesAfter) keptBeforeBytes++;
    }
  }
  if (!moved) return;
  if (kept.length === 0) p.mailbox = undefined;
  else {
    mailbox.events = kept;
    mailbox.head = 0;
    if (mailbox.bytesAfter >= 0) mailbox.bytesAfter = keptBeforeBytes;
  }
}

/**
 * `conn.stop(reason)`: like an Erlang exit signal, it preempts the mailbox (the callback already
 * running finishes; nothing queued behind it runs). Resolves once `terminate` ran.
 */
export function stop(p: ConnectionProcess, reason: ExitReason = "normal"): Promise<void> {
  if (phaseOf(p) >= DEAD) return Promise.resolve();
  return new Promise((resolve) => {
    (rareOf(p).stopWaiters ??= []).push(resolve);
    if (phaseOf(p) === EXITING) return;
    if (phaseOf(p) === STARTING && (p.flags & G_BUSY) === 0) {
      exit(p, reason);
      return;
    }
    if ((p.flags & GATE_MASK) === 0) {
      exit(p, reason);
      return;
    }
    postFirst(p, E_STOP, reason);
  });
}

/** Ends the connection now, whatever it is doing (server or pool shutdown): `terminate(reason)` runs. */
export function shutdown(p: ConnectionProcess, reason: ExitReason): Promise<void> {
  if (phaseOf(p) >= DEAD) return Promise.resolve();
  return new Promise((resolve) => {
    const rare = rareOf(p);
    (rare.stopWaiters ??= []).push(resolve);
    if (phaseOf(p) === EXITING) return;
    if ((p.flags & G_BUSY) !== 0 && phaseOf(p) === RUNNING) {
      // A callback is pending: stop as soon as it settles, before anything else queued; a callback
      // that never settles is abandoned after closeTimeout (Director's terminate timeout).
      postFirst(p, E_STOP, reason);
      const timer = clock.setTimeout(() => {
        if (phaseOf(p) !== RUNNING) return;
        p.flags &= ~G_BUSY;
        exit(p, reason);
      }, p.spec.settings.closeTimeout);
      rare.stopWaiters!.push(() => clock.clearTimeout(timer));
      return;
    }
    exit(p, reason);
  });
}

/** A draining server or pool tells its children with `handleEvent("shutdown")` (if they have one). */
export function noticeShutdown(p: ConnectionProcess): void {
  if (phaseOf(p) < EXITING && p.spec.handler.handleEvent !== undefined)
    post(p, E_EVENT, "shutdown", undefined);
}

/** Resolves with the exit reason once ended. */
export function exited(p: ConnectionProcess): Promise<ExitReason> {
  const rare = rareOf(p);
  if (rare.exited === undefined) {
    if (phaseOf(p) === DEAD) rare.exited = Promise.resolve(rare.exitReason);
    else rare.exited = new Promise((resolve) => (rare.resolveExited = resolve));
  }
  return rare.exited;
}

/** Runs `fn` in order with the connection's other events (sys requests). */
export function sysRequest<T>(
  p: ConnectionProcess,
  fn: (p: ConnectionProcess) => T | Promise<T>,
): Promise<T> {
  if (phaseOf(p) >= EXITING) return Promise.reject(new NoProcError(p.id));
  return new Promise<T>((resolve, reject) => {
    const request: SysRequest = { resolve: resolve as (value: unknown) => void, reject };
    // As in Erlang, a suspended process still serves system requests (replaceState, changeCode).
    if ((p.flags & GATE_MASK) === G_SUSPENDED) dispatchEvent(p, E_SYS, fn, request);
    else post(p, E_SYS, fn, request);
  });
}

/** sys.suspend / sys.resume. */
export function setSuspended(p: ConnectionProcess, on: boolean): void {
  if (on) p.flags |= G_SUSPENDED;
  else p.flags &= ~G_SUSPENDED;
  setPause(p, P_SUSPENDED, on);
  if (!on && (p.flags & GATE_MASK) === 0) run(p);
}

/**
 * sys.changeCode on a connection whose `init` has not begun (held, in its TLS handshake, connecting):
 * it will start with `handler`, and there is no state to migrate. False once `init` has begun.
 */
export function swapHandlerBeforeStart(p: ConnectionProcess, handler: Handler<unknown, unknown>): boolean {
  if (phaseOf(p) !== STARTING || (p.flags & G_BUSY) !== 0) return false;
  p.spec = { ...p.spec, handler, scratch: undefined };
  return true;
}

/** sys.changeCode: swap the handler and run `codeChange` (inside a sys request). */
export async function changeCodeNow(
  p: ConnectionProcess,
  handler: Handler<unknown, unknown>,
  oldVsn: unknown,
  extra: unknown,
): Promise<void> {
  // A codeChange that throws leaves the old handler and state in place.
  const state = handler.codeChange === undefined ? p.state : await handler.codeChange(oldVsn, p.state, extra);
  p.spec = { ...p.spec, handler, scratch: undefined };
  p.state = state;
}
