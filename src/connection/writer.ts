/**
 * Sending. Bun's `write()` has no buffer (what the kernel does not take is dropped), so bytes the kernel
 * refuses wait in the connection's {@link OutboundQueue} and go out on `drain`. What callbacks send is
 * first corked (cork.ts: one write per event or per turn of the event loop); this module checks and
 * encodes each packet, and owns the socket side: writes, the queue, drain.
 *
 * Bounds: above `highWaterMark` queued bytes the connection stops reading (and handling buffered
 * packets) until the queue falls to half of it, then `handleDrain` runs; a send that would take the
 * queue past `maxQueuedBytes` ends the connection with `SendOverflowError` (the peer is not reading).
 *
 * @module
 */

import { BadReturnError, SendOverflowError } from "../errors.ts";
import { checkPrefixed, encodeFrame, type PacketFraming } from "../framing/framing.ts";
import type { Outgoing } from "../handler.ts";
import { FLUSH_CLOSED, FLUSH_EMPTY, OutboundQueue } from "../outbound.ts";
import { formatTerm, TRACING } from "../trace.ts";
import { addToCork, CORK_MAX, corkedBytes, corkFramed, scheduleFlush, writeCork } from "./cork.ts";
import { pausedFor, setPause } from "./inbound.ts";
import { finishClose, trace } from "./lifecycle.ts";
import { post, run } from "./mailbox.ts";
import {
  CALLBACK_NAMES,
  CB_MASK,
  CB_SHIFT,
  type ConnectionProcess,
  DEAD,
  E_DRAIN,
  F_CORKED,
  F_DRAIN_WANTED,
  F_SOCKET_CLOSED,
  F_WRITE_HELD,
  GATE_MASK,
  P_HWM,
  phaseOf,
  RUNNING,
} from "./process.ts";
import type { SendSyncRequest } from "./requests.ts";
import { armSendTimer, clearSendTimer, refreshSendTimer } from "./timers.ts";
import { doUpgrade } from "./upgrade.ts";

/** Strings are sent as UTF-8 (TextEncoder is ~3x cheaper than Buffer.from for short strings). */
const textEncoder = new TextEncoder();

const PACKET_RULE = "a packet must be a string, ArrayBufferView or ArrayBuffer";

/** Queues `out` (a packet or an array of them) for writing; returns an error when it cannot be sent. */
export function sendChecked(p: ConnectionProcess, out: unknown): Error | undefined {
  if (Array.isArray(out)) {
    for (const item of out) {
      const error = sendOne(p, item);
      if (error !== undefined) return error;
    }
    return undefined;
  }
  return sendOne(p, out);
}

function sendOne(p: ConnectionProcess, packet: unknown): Error | undefined {
  const settings = p.spec.settings;
  const framing = settings.framing;
  // The hot case (an echo): raw bytes inside a socket event, nothing corked or queued yet, no tracing:
  // the bytes are the cork, written as they are when the event is handled.
  if (
    framing === "raw" &&
    packet instanceof Uint8Array &&
    p.cork === undefined &&
    p.out === undefined &&
    (p.flags & F_CORKED) !== 0 &&
    (p.rare === undefined || p.rare.dbg === undefined) &&
    packet.length <= settings.highWaterMark &&
    packet.length <= settings.maxQueuedBytes
  ) {
    if (packet.length !== 0) p.cork = packet;
    return undefined;
  }
  let item = packet;
  // A codec may turn what the handler sends into bytes (`packet: { frameLength, encode }`).
  const encode =
    typeof framing === "object" ? (framing as { encode?: (packet: Outgoing) => Outgoing }).encode : undefined;
  if (encode !== undefined) {
    try {
      item = encode(item as Outgoing);
    } catch (error) {
      return error as Error;
    }
    if (Array.isArray(item)) {
      for (const part of item) {
        const error = sendBytes(p, part, part, framing);
        if (error !== undefined) return error;
      }
      return undefined;
    }
  }
  // The hot case of framed protocols: bytes or text inside a socket event, nothing queued, no tracing,
  // under every bound (see corkFramed). Anything else takes the general path.
  if (
    p.out === undefined &&
    (p.flags & F_CORKED) !== 0 &&
    (p.rare === undefined || p.rare.dbg === undefined)
  ) {
    if (typeof item === "string") {
      if (corkFramed(p, item, Buffer.byteLength(item), framing)) return undefined;
    } else if (item instanceof Uint8Array && corkFramed(p, item, item.length, framing)) return undefined;
  }
  return sendBytes(p, item, packet, framing);
}

function sendBytes(
  p: ConnectionProcess,
  item: unknown,
  shown: unknown,
  framing: PacketFraming,
): Error | undefined {
  let bytes: Uint8Array;
  if (item instanceof Uint8Array) bytes = item;
  else if (typeof item === "string") bytes = textEncoder.encode(item);
  else if (ArrayBuffer.isView(item)) bytes = new Uint8Array(item.buffer, item.byteOffset, item.byteLength);
  else if (item instanceof ArrayBuffer) bytes = new Uint8Array(item);
  else {
    const callback = CALLBACK_NAMES[(p.flags & CB_MASK) >> CB_SHIFT] ?? "send";
    return new BadReturnError(callback, item, PACKET_RULE);
  }
  const size = bytes.length; // statistics count payload bytes, as bytesIn does
  // A 1/2/4-byte length prefix is written when the cork is (see CorkList); other framings encode now.
  const hs = p.spec.settings.prefixBytes;
  if (framing !== "raw") {
    try {
      if (hs !== 0) checkPrefixed(hs as 1 | 2 | 4, size, p.spec.settings.maxPacketSize);
      else bytes = encodeFrame(framing, bytes, p.spec.settings.maxPacketSize);
    } catch (error) {
      return error as Error;
    }
  }
  const wire = bytes.length + hs;
  if (p.out !== undefined || p.cork !== undefined) {
    const queued = queuedBytes(p);
    const max = p.spec.settings.maxQueuedBytes;
    if (queued + wire > max) return new SendOverflowError(queued, max);
  }
  const dbg = p.rare?.dbg;
  if (TRACING && dbg !== undefined) {
    if (dbg.counters !== undefined) {
      dbg.counters.packetsOut++;
      dbg.counters.bytesOut += size;
    }
    if (dbg.log !== undefined || dbg.trace) trace(p, `sent packet ${formatTerm(shown)}`);
  }
  if (wire === 0) return undefined;
  if ((p.flags & F_CORKED) === 0) scheduleFlush(p);
  addToCork(p, bytes, wire, hs);
  const corked = corkedBytes(p);
  // Write early what would pass highWaterMark (so the queue stops the reading in time) or build a huge buffer.
  if (corked > CORK_MAX || corked + (p.out?.bytes ?? 0) > p.spec.settings.highWaterMark) writeCork(p);
  return undefined;
}

/** Bytes sent and not yet with the kernel: corked plus queued. */
export function queuedBytes(p: ConnectionProcess): number {
  return corkedBytes(p) + (p.out?.bytes ?? 0);
}

/** Whether a write would go straight to the socket (nothing queued, held, or waiting for an upgrade). */
export function writableNow(p: ConnectionProcess): boolean {
  const out = p.out;
  return (
    p.socket !== undefined &&
    (p.flags & F_WRITE_HELD) === 0 &&
    (out === undefined || out.empty) &&
    p.rare?.pendingUpgrade === undefined
  );
}

/** Writes the first `length` bytes of the shared merge buffer; what the kernel leaves is copied into the queue. */
export function writeShared(p: ConnectionProcess, merged: Buffer, length: number): void {
  wrote(p, p.socket!.write(merged, 0, length), merged, length, true);
}

// ---------------------------------------------------------------- the socket

/** Writes `bytes` now, or queues them behind what is already queued (or held for a handshake). */
export function write(p: ConnectionProcess, bytes: Uint8Array): void {
  const rare = p.rare;
  if (rare?.pendingUpgrade !== undefined) {
    // Sent after a transport swap that waits for the plain bytes to drain: for the new transport.
    (rare.afterUpgrade ??= []).push(bytes);
    return;
  }
  const socket = p.socket;
  let out = p.out;
  if (socket === undefined || (p.flags & F_WRITE_HELD) !== 0 || (out !== undefined && !out.empty)) {
    if ((p.flags & F_SOCKET_CLOSED) !== 0) return;
    if (out === undefined) out = p.out = new OutboundQueue();
    out.push(bytes);
    queued(p, out);
    return;
  }
  wrote(p, socket.write(bytes), bytes, bytes.length, false);
}

/**
 * What a write of the first `length` bytes of `bytes` did (`n`, as `write()` returned it): counted, and
 * what the kernel left queued for `drain`; a copy of it when `bytes` is the shared merge buffer, which
 * the next merge overwrites.
 */
function wrote(p: ConnectionProcess, n: number, bytes: Uint8Array, length: number, shared: boolean): void {
  if (n > 0) p.spec.totals.bytesOut += n;
  if (n === length) return;
  if (n < 0) {
    socketGone(p);
    return;
  }
  const rest = n === 0 && length === bytes.length ? bytes : bytes.subarray(n, length);
  let out = p.out;
  if (out === undefined) out = p.out = new OutboundQueue();
  out.enqueued += n;
  out.flushed += n;
  out.push(shared ? Buffer.from(rest) : rest);
  queued(p, out);
}

/**
 * A write returned -1: the socket is gone (the peer reset it). Bun reports the close only while it
 * reads, and a paused socket (highWaterMark, passive backlog, held) does not: a connection would wait
 * for a close event that never comes, its queue held forever. Close it now (the close event follows).
 */
export function socketGone(p: ConnectionProcess): void {
  if ((p.flags & F_SOCKET_CLOSED) === 0) p.socket?.terminate();
}

function queued(p: ConnectionProcess, out: OutboundQueue): void {
  if (out.bytes > p.spec.settings.highWaterMark && !pausedFor(p, P_HWM)) {
    setPause(p, P_HWM, true);
    p.flags |= F_DRAIN_WANTED;
  }
  armSendTimer(p);
}

/** The socket can take more (Bun's `drain`; also spurious ones, which find nothing to do). */
export function onDrain(p: ConnectionProcess): void {
  const out = p.out;
  const socket = p.socket;
  if (out === undefined || out.empty || (p.flags & F_WRITE_HELD) !== 0 || socket === undefined) return;
  flushQueue(p);
}

/** Writes as much of the queue as the kernel takes; finishes a close or an upgrade waiting for it. */
export function flushQueue(p: ConnectionProcess): void {
  const out = p.out;
  const socket = p.socket;
  if (out === undefined || out.empty || socket === undefined || (p.flags & F_WRITE_HELD) !== 0) {
    if (phaseOf(p) === DEAD && (p.flags & F_SOCKET_CLOSED) === 0 && (out === undefined || out.empty)) {
      finishClose(p);
    }
    return;
  }
  const before = out.flushed;
  const result = out.flush(socket);
  const progressed = out.flushed - before;
  if (progressed > 0) p.spec.totals.bytesOut += progressed;
  if (result === FLUSH_CLOSED) {
    socketGone(p);
    return;
  }
  if (result === FLUSH_EMPTY) {
    clearSendTimer(p);
    if (p.rare?.pendingUpgrade !== undefined && phaseOf(p) === RUNNING) doUpgrade(p);
    else if (phaseOf(p) === DEAD && (p.flags & F_SOCKET_CLOSED) === 0) finishClose(p);
  } else if (progressed > 0) refreshSendTimer(p);
  if (pausedFor(p, P_HWM) && out.bytes <= p.spec.settings.highWaterMark / 2) {
    setPause(p, P_HWM, false);
    if (phaseOf(p) === RUNNING) {
      if ((p.flags & F_DRAIN_WANTED) !== 0) {
        p.flags &= ~F_DRAIN_WANTED;
        if (p.spec.handler.handleDrain !== undefined) {
          post(p, E_DRAIN, undefined, undefined);
          return;
        }
      }
      // Packets left buffered while above highWaterMark are handled now.
      if ((p.flags & GATE_MASK) === 0) run(p);
    }
  }
}

/** Resolves `request` once everything sent so far has been taken by the kernel. */
export function whenFlushed(p: ConnectionProcess, request: SendSyncRequest): void {
  const out = p.out;
  if (out === undefined || out.empty) request.resolve();
  else out.waitFlushed(request.resolve, request.reject);
}

/** Everything queued, removed (a transport swap re-queues it for the new transport). */
export function takeQueued(p: ConnectionProcess): Uint8Array | undefined {
  return p.out?.takeAll();
}

/** The rare part's list of bytes sent behind a pending upgrade. */
export function takeAfterUpgrade(p: ConnectionProcess): Uint8Array[] | undefined {
  const rare = p.rare;
  if (rare === undefined) return undefined;
  const after = rare.afterUpgrade;
  rare.afterUpgrade = undefined;
  return after;
}

/** Queues `bytes` for the socket (held until a handshake completes when writes are held). */
export function enqueue(p: ConnectionProcess, bytes: Uint8Array): void {
  let out = p.out;
  if (out === undefined) out = p.out = new OutboundQueue();
  out.push(bytes);
}
