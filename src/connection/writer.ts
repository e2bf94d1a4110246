/**
 * Sending. Bun's `write()` has no buffer (what the kernel does not take is dropped), so bytes the kernel
 * refuses wait in the connection's {@link OutboundQueue} and go out on `drain`.
 *
 * Auto-cork: inside a socket event, everything the connection's callbacks send collects in `cork` and
 * goes out as one write when the event is handled (a chunk of 16 pipelined requests, handled one
 * callback each, is answered by one write). Sends made anywhere else (a call from another connection,
 * a timer, a promise that settled) are collected the same way until the end of the current turn of the
 * event loop: one microtask flushes every connection that has bytes corked, before the loop waits for
 * I/O again, so batching adds no latency.
 *
 * Bounds: above `highWaterMark` queued bytes the connection stops reading (and handling buffered
 * packets) until the queue falls to half of it, then `handleDrain` runs; a send that would take the
 * queue past `maxQueuedBytes` ends the connection with `SendOverflowError` (the peer is not reading).
 *
 * @module
 */

import { BadReturnError, SendOverflowError } from "../errors.ts";
import { checkPrefixed, encodeFrame, type PacketFraming, writePrefix } from "../framing/framing.ts";
import type { Outgoing } from "../handler.ts";
import { FLUSH_CLOSED, FLUSH_EMPTY, OutboundQueue } from "../outbound.ts";
import { formatTerm, TRACING } from "../trace.ts";
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
  F_FLUSH_SCHEDULED,
  F_SOCKET_CLOSED,
  F_WRITE_HELD,
  P_HWM,
  phaseOf,
  RUNNING,
} from "./process.ts";
import type { SendSyncRequest } from "./requests.ts";
import { armSendTimer, clearSendTimer, refreshSendTimer } from "./timers.ts";
import { doUpgrade } from "./upgrade.ts";

/** Strings are sent as UTF-8 (TextEncoder is ~3x cheaper than Buffer.from for short strings). */
const textEncoder = new TextEncoder();

/**
 * Several corked payloads, written as one buffer. With a 1/2/4-byte length prefix the payloads are
 * kept as sent and `bytes` counts their headers too: the headers are written straight into the merged
 * buffer, so pipelined frames cost no allocation each.
 */
export class CorkList {
  readonly chunks: Uint8Array[];
  /** Bytes on the wire, headers included. */
  bytes: number;
  constructor(first: Uint8Array, second: Uint8Array, headerBytes: number) {
    this.chunks = [first, second];
    this.bytes = first.length + second.length + 2 * headerBytes;
  }
}

/** The length-prefix size of the connection's framing (1, 2 or 4), or 0. */
function prefixOf(p: ConnectionProcess): 0 | 1 | 2 | 4 {
  const framing = p.spec.settings.framing;
  return typeof framing === "number" ? framing : 0;
}

/** Corked bytes beyond this are written at once (a loop of big sends must not build one huge buffer). */
const CORK_MAX = 256 * 1024;

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
  const hs = typeof framing === "number" ? framing : 0;
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
  const cork = p.cork;
  let corked: number;
  if (cork === undefined) {
    p.cork = bytes;
    corked = wire;
  } else if (cork instanceof CorkList) {
    cork.chunks.push(bytes);
    corked = cork.bytes += wire;
  } else {
    const list = (p.cork = new CorkList(cork, bytes, hs));
    corked = list.bytes;
  }
  // Write early what would pass highWaterMark (so the queue stops the reading in time) or build a huge buffer.
  if (corked > CORK_MAX || corked + (p.out?.bytes ?? 0) > p.spec.settings.highWaterMark) writeCork(p);
  return undefined;
}

/** Bytes sent and not yet with the kernel: corked plus queued. */
export function queuedBytes(p: ConnectionProcess): number {
  const cork = p.cork;
  const corked = cork === undefined ? 0 : cork instanceof CorkList ? cork.bytes : cork.length + prefixOf(p);
  return corked + (p.out?.bytes ?? 0);
}

// ---------------------------------------------------------------- auto-cork

/** Connections with a flush scheduled for the end of this turn. */
let pending: ConnectionProcess[] = [];

function flushPending(): void {
  const list = pending;
  pending = [];
  for (const p of list) {
    if ((p.flags & F_FLUSH_SCHEDULED) === 0) continue; // flushed earlier (sendSync, close, upgrade)
    p.flags &= ~(F_CORKED | F_FLUSH_SCHEDULED);
    writeCork(p);
  }
}

function scheduleFlush(p: ConnectionProcess): void {
  p.flags |= F_CORKED | F_FLUSH_SCHEDULED;
  if (pending.push(p) === 1) queueMicrotask(flushPending);
}

/** A socket event begins: sends collect until {@link endCork}. Returns false when already corked. */
export function beginCork(p: ConnectionProcess): boolean {
  if ((p.flags & F_CORKED) !== 0) return false;
  p.flags |= F_CORKED;
  return true;
}

/** The socket event is handled: write what its callbacks sent, as one write. */
export function endCork(p: ConnectionProcess): void {
  p.flags &= ~F_CORKED;
  if (p.cork !== undefined) writeCork(p);
}

/** Writes the corked bytes now and stops corking (before a close, an upgrade, a `sendSync`). */
export function flushNow(p: ConnectionProcess): void {
  p.flags &= ~(F_CORKED | F_FLUSH_SCHEDULED);
  if (p.cork !== undefined) writeCork(p);
}

function writeCork(p: ConnectionProcess): void {
  const cork = p.cork;
  if (cork === undefined) return;
  p.cork = undefined;
  const hs = prefixOf(p);
  if (!(cork instanceof CorkList)) {
    if (hs === 0) {
      write(p, cork);
      return;
    }
    const framed = Buffer.allocUnsafe(hs + cork.length);
    writePrefix(framed, 0, hs, cork.length);
    framed.set(cork, hs);
    write(p, framed);
    return;
  }
  const merged = Buffer.allocUnsafe(cork.bytes);
  let at = 0;
  for (const c of cork.chunks) {
    if (hs !== 0) {
      writePrefix(merged, at, hs, c.length);
      at += hs;
    }
    merged.set(c, at);
    at += c.length;
  }
  write(p, merged);
}

// ---------------------------------------------------------------- the socket

/** Writes `bytes` now, or queues them behind what is already queued (or held for a handshake). */
function write(p: ConnectionProcess, bytes: Uint8Array): void {
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
  const n = socket.write(bytes);
  if (n > 0) p.spec.totals.bytesOut += n;
  if (n === bytes.length) return;
  if (n < 0) {
    socketGone(p);
    return;
  }
  if (out === undefined) out = p.out = new OutboundQueue();
  out.enqueued += n;
  out.flushed += n;
  out.push(n === 0 ? bytes : bytes.subarray(n));
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
      if (p.gate === 0) run(p);
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
