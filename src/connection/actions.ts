/**
 * Actions: what a callback returns. The own enumerable fields of one object apply in the contract's
 * order (`state`, `send`, `reply`, `timeout`, `srtimeout`, `length`, `mode`, `transport`, then `close`
 * or `stop`); an array applies element by element. Anything else ends the connection with a
 * `BadReturnError`.
 *
 * @module
 */
import type { ActionObject, ReceiveMode } from "../handler.ts";
import { TRACING } from "../trace.ts";
import { isTransport } from "../transport/transport.ts";
import { stageSend } from "./cork.ts";
import { badReturn } from "./dispatch.ts";
import { trace } from "./lifecycle.ts";
import {
  type ConnectionProcess,
  type ExitReasonBox,
  F_PASSIVE,
  F_RAW_ACTIVE,
  F_UTF8,
  rareOf,
} from "./process.ts";
import { clearSrTimer, setIdleTimeout, setSrTimeout } from "./timers.ts";
import { swapTransport } from "./upgrade.ts";
import { sendChecked } from "./writer.ts";

// One bit per field, to check the keys once and then apply in the fixed order.
const A_STATE = 1;
const A_SEND = 2;
const A_REPLY = 4;
const A_TIMEOUT = 8;
const A_SRTIMEOUT = 16;
const A_LENGTH = 32;
const A_MODE = 64;
const A_TRANSPORT = 128;
const A_CLOSE = 256;
const A_STOP = 512;

/**
 * Applies an action. Returns true to go on, false for `close`, or `{ reason }` to stop (a `stop`
 * field, a bad return, a failed send).
 */
export function apply(p: ConnectionProcess, action: unknown, callback: number): true | false | ExitReasonBox {
  if (action === undefined) return true;
  if (typeof action !== "object" || action === null)
    return badReturn(callback, action, "not an action object");
  if (Array.isArray(action)) {
    for (const element of action) {
      const outcome = apply(p, element, callback);
      if (outcome !== true) return outcome;
    }
    return true;
  }
  const a = action as ActionObject<unknown>;
  let fields = 0;
  // The own enumerable fields (what an object literal has). Object.keys, not for-in: JSC caches an
  // object shape's keys, so this is the cheaper check on the hot path (about 4 ns per action).
  const keys = Object.keys(a);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    switch (key) {
      case "state":
        fields |= A_STATE;
        break;
      case "send":
        fields |= A_SEND;
        break;
      case "reply":
        fields |= A_REPLY;
        break;
      case "timeout":
        fields |= A_TIMEOUT;
        break;
      case "srtimeout":
        fields |= A_SRTIMEOUT;
        break;
      case "length":
        fields |= A_LENGTH;
        break;
      case "mode":
        fields |= A_MODE;
        break;
      case "transport":
        fields |= A_TRANSPORT;
        break;
      case "close":
        fields |= A_CLOSE;
        break;
      case "stop":
        fields |= A_STOP;
        break;
      default:
        return badReturn(callback, action, `unknown action field \`${key}\``);
    }
  }
  if (fields === 0) return true;
  if ((fields & A_STATE) !== 0) p.state = a.state;
  if ((fields & A_SEND) !== 0 && a.send !== undefined) {
    const error = sendPacket(p, a.send);
    if (error !== undefined) return { reason: error };
  }
  if ((fields & ~(A_STATE | A_SEND)) === 0) return true;
  return applyRest(p, a, fields, callback);
}

/** An action's `send`: straight into the cork stage when it can go there, else the general path. */
function sendPacket(p: ConnectionProcess, send: unknown): Error | undefined {
  return stageSend(p, send) ? undefined : sendChecked(p, send);
}

/** The fields after `state` and `send` (rarer: kept out of the hot function). */
function applyRest(
  p: ConnectionProcess,
  a: ActionObject<unknown>,
  fields: number,
  callback: number,
): true | false | ExitReasonBox {
  if ((fields & A_REPLY) !== 0) {
    const from = p.rare?.currentFrom;
    if (from === undefined) return badReturn(callback, a, "`reply` outside handleCall");
    from.reply(a.reply);
  }
  if ((fields & A_TIMEOUT) !== 0 && a.timeout !== undefined) {
    if (!isTimeout(a.timeout)) return badReturn(callback, a, "`timeout` must be a number >= 0 or Infinity");
    setIdleTimeout(p, a.timeout);
  }
  if ((fields & A_SRTIMEOUT) !== 0 && a.srtimeout !== undefined) {
    if (!isTimeout(a.srtimeout))
      return badReturn(callback, a, "`srtimeout` must be a number >= 0 or Infinity");
    setSrTimeout(p, a.srtimeout);
  }
  if ((fields & A_LENGTH) !== 0 && a.length !== undefined) {
    const length = a.length;
    if (!Number.isSafeInteger(length) || length < 0) {
      return badReturn(callback, a, "`length` must be an integer >= 0");
    }
    const max = p.spec.settings.maxPacketSize;
    if (length > max) return badReturn(callback, a, `\`length\` exceeds maxPacketSize ${max}`);
    if (length !== 0 || p.rare !== undefined) rareOf(p).length = length;
  }
  if ((fields & A_MODE) !== 0 && a.mode !== undefined) {
    if (a.mode !== "active" && a.mode !== "passive") {
      return badReturn(callback, a, '`mode` must be "active" or "passive"');
    }
    setMode(p, a.mode);
  }
  if ((fields & A_TRANSPORT) !== 0 && a.transport !== undefined) {
    if (!isTransport(a.transport)) return badReturn(callback, a, "`transport` must be a Transport");
    const error = swapTransport(p, a.transport);
    if (error !== undefined) return { reason: error };
  }
  if ((fields & A_STOP) !== 0) return { reason: a.stop };
  if ((fields & A_CLOSE) !== 0 && a.close !== undefined && a.close !== false) {
    if (a.close !== true) return badReturn(callback, a, "`close` must be a boolean");
    return false;
  }
  return true;
}

function setMode(p: ConnectionProcess, mode: ReceiveMode): void {
  const passive = mode === "passive";
  if (passive === ((p.flags & F_PASSIVE) !== 0)) return;
  const raw = p.spec.settings.framing === "raw" && (p.flags & F_UTF8) === 0;
  p.flags = (p.flags & ~(F_PASSIVE | F_RAW_ACTIVE)) | (passive ? F_PASSIVE : raw ? F_RAW_ACTIVE : 0);
  if (TRACING && p.rare?.dbg !== undefined) trace(p, `changed mode to ${mode}`);
  if (!passive) clearSrTimer(p);
}

function isTimeout(value: unknown): value is number {
  return typeof value === "number" && value >= 0 && !Number.isNaN(value);
}
