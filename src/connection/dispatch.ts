/**
 * One event through its callback. A synchronous result is applied at once (no promise, no closure);
 * a promise closes the gate until it settles, so callbacks of one connection never overlap. A throw,
 * a rejection or a bad return ends the connection with a typed reason.
 *
 * @module
 */
import type { CallFrom } from "../call.ts";
import { clock } from "../clock.ts";
import { BadReturnError, CallbackError, SendOverflowError } from "../errors.ts";
import type { Packet } from "../handler.ts";
import { formatTerm, TRACING } from "../trace.ts";
import { apply } from "./actions.ts";
import { flushNow, stageSend } from "./cork.ts";
import { packetOf } from "./inbound.ts";
import { exit, trace } from "./lifecycle.ts";
import { run } from "./mailbox.ts";
import {
  CALLBACK_NAMES,
  CB_CALL,
  CB_CAST,
  CB_DISCONNECT,
  CB_DRAIN,
  CB_EVENT,
  CB_MASK,
  CB_PACKET,
  CB_SHIFT,
  CB_SRTIMEOUT,
  CB_TIMEOUT,
  type ConnectionProcess,
  E_CALL,
  E_CAST,
  E_DISCONNECT,
  E_DRAIN,
  E_EVENT,
  E_SEND_ASYNC,
  E_SEND_SYNC,
  E_SRTIMEOUT,
  E_STOP,
  E_SYS,
  E_TIMEOUT,
  F_PASSIVE,
  F_UTF8,
  G_BUSY,
  GATE_MASK,
  phaseOf,
  RUNNING,
  rareOf,
} from "./process.ts";
import type { SendSyncRequest, SysRequest } from "./requests.ts";
import { clearSrTimer } from "./timers.ts";
import { sendChecked, whenFlushed } from "./writer.ts";

/**
 * A packet (frame, passive read or raw chunk) to `handlePacket`. What most packets need none of (a
 * receive timer to clear, text to decode, tracing) is in {@link preparePacket}. The frame loop
 * (inbound.ts `deliverFrames`) holds a copy of the rest, written out: a change here goes there too.
 */
export function dispatchPacket(p: ConnectionProcess, frame: Uint8Array): void {
  let packet: Packet | undefined = frame;
  if (p.timers !== undefined || (p.flags & F_UTF8) !== 0 || p.rare?.dbg !== undefined) {
    packet = preparePacket(p, frame);
    if (packet === undefined) return; // only part of a UTF-8 character so far: no empty packet
  }
  p.flags = (p.flags & ~CB_MASK) | (CB_PACKET << CB_SHIFT) | G_BUSY;
  let result: unknown;
  try {
    result = p.spec.handler.handlePacket(packet, p.state, p.view!);
  } catch (error) {
    callbackFailed(p, CB_PACKET, error);
    return;
  }
  if (!isPlainSend(result)) settle(p, result, CB_PACKET);
  else if (stageSend(p, result.send)) eventDone(p);
  else sendPlain(p, result.send);
}

/** Clears the receive timer, decodes text, counts and traces; the packet, or undefined for none yet. */
function preparePacket(p: ConnectionProcess, frame: Uint8Array): Packet | undefined {
  const timers = p.timers;
  if (timers !== undefined && timers.sr !== undefined) clearSrTimer(p);
  const packet = (p.flags & F_UTF8) === 0 ? frame : packetOf(p, frame);
  if (packet === undefined) return undefined;
  const dbg = p.rare?.dbg;
  if (TRACING && dbg !== undefined) {
    if (dbg.counters !== undefined) {
      dbg.counters.packetsIn++;
      dbg.counters.bytesIn += frame.length;
    }
    if (dbg.log !== undefined || dbg.trace) trace(p, `got packet ${formatTerm(packet)}`);
  }
  return packet;
}

/**
 * Whether a callback's result is the commonest action, a plain `{ send }`: one own field, `send`, and
 * not a thenable (what settle and apply would check for it).
 */
export function isPlainSend(result: unknown): result is { send: unknown } {
  if (typeof result !== "object" || result === null || Array.isArray(result)) return false;
  const keys = Object.keys(result);
  return keys.length === 1 && keys[0] === "send" && typeof (result as { then?: unknown }).then !== "function";
}

/** Applies a plain `{ send }` (see {@link isPlainSend}) that the stage did not take, without settle, finish and apply. */
export function sendPlain(p: ConnectionProcess, send: unknown): void {
  const error = send === undefined ? undefined : sendChecked(p, send);
  if (error !== undefined) {
    p.flags &= ~G_BUSY;
    exit(p, error);
    return;
  }
  eventDone(p);
}

/** A mailbox event to its callback. */
export function dispatchEvent(p: ConnectionProcess, kind: number, value: unknown, extra: unknown): void {
  const handler = p.spec.handler;
  const meta = p.view!;
  let callback = 0;
  let result: unknown;
  p.flags |= G_BUSY;
  try {
    switch (kind) {
      case E_CALL: {
        const from = extra as CallFrom;
        if (!from.pending) {
          eventDone(p);
          return;
        }
        rareOf(p).lastMessage = { type: "call", value };
        const dbg = p.rare?.dbg;
        if (TRACING && dbg !== undefined) {
          if (dbg.counters !== undefined) dbg.counters.calls++;
          trace(p, `got call ${formatTerm(value)} from <call ${from.tag}>`);
        }
        callback = CB_CALL;
        if (handler.handleCall === undefined) {
          callbackFailed(p, CB_CALL, new Error("handler has no handleCall"));
          return;
        }
        p.rare!.currentFrom = from;
        result = handler.handleCall(value, from, p.state, meta);
        break;
      }
      case E_CAST: {
        rareOf(p).lastMessage = { type: "cast", value };
        const dbg = p.rare?.dbg;
        if (TRACING && dbg !== undefined) {
          if (dbg.counters !== undefined) dbg.counters.casts++;
          trace(p, `got cast ${formatTerm(value)}`);
        }
        callback = CB_CAST;
        if (handler.handleCast === undefined) {
          callbackFailed(p, CB_CAST, new Error("handler has no handleCast"));
          return;
        }
        result = handler.handleCast(value, p.state, meta);
        break;
      }
      case E_EVENT:
        rareOf(p).lastMessage = { type: "event", value };
        if (TRACING && p.rare?.dbg !== undefined) trace(p, `got event ${formatTerm(value)}`);
        callback = CB_EVENT;
        if (handler.handleEvent === undefined) {
          callbackFailed(p, CB_EVENT, new Error("handler has no handleEvent"));
          return;
        }
        result = handler.handleEvent(value, p.state, meta);
        break;
      case E_SEND_SYNC: {
        const request = extra as SendSyncRequest;
        rareOf(p).lastMessage = { type: "send", value };
        if (TRACING && p.rare?.dbg !== undefined) {
          trace(
            p,
            `got synchronous request for sending packet ${formatTerm(value)} from <call ${request.tag}>`,
          );
        }
        const error = sendChecked(p, value);
        if (error !== undefined) {
          request.reject(error);
          eventDone(p);
          exit(p, error);
          return;
        }
        // Resolves once the bytes are with the kernel: write what is corked now, then wait for the queue.
        flushNow(p);
        whenFlushed(p, request);
        eventDone(p);
        return;
      }
      case E_SEND_ASYNC: {
        rareOf(p).lastMessage = { type: "send", value };
        if (TRACING && p.rare?.dbg !== undefined) {
          trace(p, `got asynchronous request for sending packet ${formatTerm(value)}`);
        }
        const error = sendChecked(p, value);
        eventDone(p);
        if (error !== undefined) exit(p, error);
        return;
      }
      case E_TIMEOUT:
        rareOf(p).lastMessage = { type: "timeout", value: undefined };
        if (TRACING && p.rare?.dbg !== undefined) trace(p, "got timeout");
        callback = CB_TIMEOUT;
        if (handler.timeout === undefined) {
          eventDone(p);
          return;
        }
        result = handler.timeout(p.state, meta);
        break;
      case E_SRTIMEOUT:
        if ((p.flags & F_PASSIVE) === 0) {
          eventDone(p);
          return;
        }
        rareOf(p).lastMessage = { type: "srtimeout", value: undefined };
        if (TRACING && p.rare?.dbg !== undefined) trace(p, "got srtimeout");
        callback = CB_SRTIMEOUT;
        if (handler.srtimeout === undefined) {
          eventDone(p);
          return;
        }
        result = handler.srtimeout(p.state, meta);
        break;
      case E_DRAIN:
        callback = CB_DRAIN;
        if (handler.handleDrain === undefined) {
          eventDone(p);
          return;
        }
        if (TRACING && p.rare?.dbg !== undefined) trace(p, "got drain");
        result = handler.handleDrain(p.state, meta);
        break;
      case E_DISCONNECT:
        rareOf(p).lastMessage = { type: "disconnect", value: undefined };
        if (TRACING && p.rare?.dbg !== undefined) trace(p, "got disconnect");
        callback = CB_DISCONNECT;
        if (handler.handleDisconnect === undefined) {
          p.flags &= ~G_BUSY;
          exit(p, "normal");
          return;
        }
        result = handler.handleDisconnect(p.state, meta);
        break;
      case E_STOP:
        p.flags &= ~G_BUSY;
        exit(p, value);
        return;
      case E_SYS:
        runSys(p, value as (p: ConnectionProcess) => unknown, extra as SysRequest);
        return;
    }
  } catch (error) {
    if (p.rare !== undefined) p.rare.currentFrom = undefined;
    callbackFailed(p, callback, error);
    return;
  }
  p.flags = (p.flags & ~CB_MASK) | (callback << CB_SHIFT);
  settle(p, result, callback);
}

function runSys(p: ConnectionProcess, fn: (p: ConnectionProcess) => unknown, done: SysRequest): void {
  let value: unknown;
  try {
    value = fn(p);
  } catch (error) {
    done.reject(error);
    eventDone(p);
    return;
  }
  if (isThenable(value)) {
    Promise.resolve(value).then(
      (v) => {
        done.resolve(v);
        asyncEventDone(p);
      },
      (error) => {
        done.reject(error);
        asyncEventDone(p);
      },
    );
    return;
  }
  done.resolve(value);
  eventDone(p);
}

/** A callback returned: apply its action now, or when its promise settles. */
export function settle(p: ConnectionProcess, result: unknown, callback: number): void {
  if (result !== undefined && isThenable(result)) {
    // Promise.resolve: a thenable whose `then` throws becomes a rejection instead of escaping.
    Promise.resolve(result).then(
      (value) => {
        if (phaseOf(p) !== RUNNING) return;
        finish(p, value, callback);
        if ((p.flags & GATE_MASK) === 0) run(p);
      },
      (error) => {
        if (phaseOf(p) !== RUNNING) return;
        callbackFailed(p, callback, error);
      },
    );
    return;
  }
  finish(p, result, callback);
}

function finish(p: ConnectionProcess, result: unknown, callback: number): void {
  const outcome = result === undefined ? true : apply(p, result, callback);
  if (p.rare !== undefined) p.rare.currentFrom = undefined;
  if (outcome !== true) {
    p.flags &= ~G_BUSY;
    exit(p, outcome === false ? "normal" : outcome.reason);
    return;
  }
  if (callback === CB_DISCONNECT) {
    p.flags &= ~G_BUSY;
    exit(p, "normal");
    return;
  }
  eventDone(p);
}

/** The event is handled: the gate opens and the idle timeout counts from now. */
export function eventDone(p: ConnectionProcess): void {
  p.flags &= ~G_BUSY;
  const idle = p.timers?.idle;
  if (idle !== undefined) idle.lastEventAt = clock.now();
}

function asyncEventDone(p: ConnectionProcess): void {
  eventDone(p);
  if ((p.flags & GATE_MASK) === 0) run(p);
}

/** A callback threw, rejected, or is missing: the connection ends with a `CallbackError`. */
export function callbackFailed(p: ConnectionProcess, callback: number, error: unknown): void {
  if (p.rare !== undefined) p.rare.currentFrom = undefined;
  p.flags &= ~G_BUSY;
  // A send past maxQueuedBytes (`meta.send`) is the peer's doing, not a handler bug: keep its reason.
  const reason =
    error instanceof SendOverflowError
      ? error
      : new CallbackError(CALLBACK_NAMES[callback] ?? "callback", error);
  exit(p, reason);
}

/** The error for an action of the wrong shape. */
export function badReturn(callback: number, value: unknown, detail: string): { reason: BadReturnError } {
  return { reason: new BadReturnError(CALLBACK_NAMES[callback] ?? "callback", value, detail) };
}

/** Whether `value` is a promise or another thenable. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  // (a promise has a `then` too: no `instanceof Promise` first, which every plain action would pay)
  return (
    typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function"
  );
}
