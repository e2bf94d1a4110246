/**
 * Data from the transport. Two fast paths, for a connection that is idle, active and holds nothing:
 * raw bytes go straight to `handlePacket` (the chunk is the packet), and a framed chunk's whole frames
 * go to it one by one as views of the chunk (see {@link deliverFrames}). Otherwise the bytes go into a
 * {@link FrameDecoder} (borrowed only while it holds bytes) and the run loop cuts them into frames or
 * passive reads. While nothing can be delivered the socket is paused, so unread data stays in the
 * kernel: that is the flow control of passive mode, async callbacks and a full outbound queue.
 *
 * The frame loop is written out by hand where a call would do: it cuts a length-prefixed frame itself
 * (reading the header with the cutter's `prefixAt`; `FrameCutter.end` cuts the other framings) and
 * holds `dispatchPacket`'s body for a packet that needs no preparation (no receive timer, no text, no
 * tracing). Whether JavaScriptCore inlines those calls into the loop differs from one process to the
 * next, and with them written out the pipelined framed echo (16 frames per chunk, 100 connections) ran
 * 3 to 6% faster under load (`packet: 4` ×1.06 and ×1.03, lines ×1.04 and ×1.04, same-run A/B of 5
 * repetitions each) though in process, without syscalls, the two measured the same. The small
 * `prefixAt` call costs nothing measurable (×0.99, 0.98–1.05, against the header read written out).
 * `eventDone` is written out too where no timer is set: that call was often left out of line, and
 * writing it out gave ×1.02 (`packet: 4`) and ×1.03 (lines) in the same kind of A/B.
 *
 * @module
 */
import { FrameTooLargeError } from "../errors.ts";
import { type FrameCutter, FrameDecoder, K_PREFIX, prefixAt } from "../framing/framing.ts";
import type { Packet } from "../handler.ts";
import { beginCork, endCork, framesFollow, stageSend } from "./cork.ts";
import { callbackFailed, dispatchPacket, eventDone, isPlainSend, sendPlain, settle } from "./dispatch.ts";
import { exit } from "./lifecycle.ts";
import { markBytesArrived, run } from "./mailbox.ts";
import {
  CB_MASK,
  CB_PACKET,
  CB_SHIFT,
  type ConnectionProcess,
  EXITING,
  F_PASSIVE,
  F_PAUSED,
  F_RAW_ACTIVE,
  F_SOCKET_CLOSED,
  F_UTF8,
  F_WAITING,
  G_BUSY,
  GATE_MASK,
  P_BACKLOG,
  PAUSE_MASK,
  PAUSE_SHIFT,
  phaseOf,
  rareOf,
} from "./process.ts";

const textDecoder = new TextDecoder();

/** Bytes a connection waiting for a slot reads ahead before its socket is paused. */
const WAITING_BUFFER_MAX = 64 * 1024;

/** A chunk arrived from the transport. */
export function onData(p: ConnectionProcess, chunk: Uint8Array): void {
  p.spec.totals.bytesIn += chunk.length;
  if ((p.flags & GATE_MASK) === 0 && p.rare?.decoder === undefined) {
    // Fast path: idle, active, raw bytes, nothing buffered.
    if ((p.flags & F_RAW_ACTIVE) !== 0) {
      const corked = beginCork(p);
      dispatchPacket(p, chunk);
      afterDelivery(p);
      if (corked) endCork(p);
      return;
    }
    // Framed, idle, active, nothing queued: the chunk's frames straight to the handler.
    const cutter = p.spec.settings.cutter;
    if (cutter !== undefined && (p.flags & NOT_BATCHED) === 0 && p.mailbox === undefined) {
      deliverFrames(p, chunk, cutter);
      return;
    }
  }
  if (phaseOf(p) >= EXITING) return; // closing: what the peer sends now is discarded
  const decoder = p.rare?.decoder ?? borrowDecoder(p);
  if (decoder.empty && p.mailbox !== undefined) markBytesArrived(p);
  decoder.push(chunk);
  if ((p.flags & F_WAITING) !== 0) {
    // Waiting for a slot: keep reading (so a peer that leaves is noticed) up to a bound.
    if (decoder.buffered >= WAITING_BUFFER_MAX) setPause(p, P_BACKLOG, true);
    return;
  }
  const corked = beginCork(p);
  serveBuffered(p);
  if (corked) endCork(p);
}

/** Serves the buffered bytes now when the gate is open, else pauses the socket until it opens. */
function serveBuffered(p: ConnectionProcess): void {
  if ((p.flags & GATE_MASK) === 0) run(p);
  else setPause(p, P_BACKLOG, true);
  releaseDecoder(p);
}

/** What sends a framed chunk through the decoder and the run loop: passive reads, a slot wait, a pause. */
const NOT_BATCHED = F_PASSIVE | F_WAITING | PAUSE_MASK;

/**
 * The chunk being cut by {@link deliverFrames} and where its unread bytes start, so that a transport
 * swap made by a handler mid-chunk finds them ({@link spillUnread}). One at a time per process; a
 * nested delivery (a handler that makes another connection receive) saves and restores it.
 */
const unread: { of: ConnectionProcess | undefined; chunk: Uint8Array | undefined; at: number } = {
  of: undefined,
  chunk: undefined,
  at: 0,
};

/**
 * The frames of a chunk that arrived while the connection was idle, active and had nothing buffered
 * or queued: each whole frame goes to `handlePacket` as a view of the chunk, in a loop that stops as
 * soon as the connection cannot take the next one at once (a callback went async, an event was
 * posted, the mode became passive, the socket was paused, it stopped). What is left (a frame cut at
 * the chunk's end, or frames the connection cannot take now) goes into the decoder and the run loop,
 * exactly as if the chunk had taken that path. An error from the framing ends the connection, as the
 * decoder's does.
 */
function deliverFrames(p: ConnectionProcess, chunk: Uint8Array, cutter: FrameCutter): void {
  const corked = beginCork(p);
  const n = chunk.length;
  const savedOf = unread.of;
  const savedChunk = unread.chunk;
  const savedAt = unread.at;
  unread.of = p; // (a nested delivery puts back what it found: this)
  unread.chunk = chunk;
  const handler = p.spec.handler;
  const hs = cutter.kind === K_PREFIX ? cutter.hs : 0;
  const max = cutter.max;
  let off = 0;
  for (;;) {
    let end: number;
    let frame: Uint8Array;
    if (hs !== 0) {
      // FrameCutter.end's length-prefix case, written out (see the module notes).
      const at = off + hs;
      if (at > n) break;
      const len = prefixAt(chunk, off, hs);
      if (len > max) {
        exit(p, new FrameTooLargeError(len, max));
        break;
      }
      end = at + len;
      if (end > n) break;
      frame = chunk.subarray(at, end);
    } else {
      try {
        end = cutter.end(chunk, off);
      } catch (error) {
        exit(p, error);
        break;
      }
      if (end < 0) break;
      const start = cutter.start;
      frame = start === 0 && end === n ? chunk : chunk.subarray(start, end);
    }
    off = end;
    unread.at = end;
    framesFollow(end < n ? p : undefined);
    if (p.timers !== undefined || (p.flags & F_UTF8) !== 0 || p.rare?.dbg !== undefined)
      dispatchPacket(p, frame);
    else {
      // dispatchPacket's body, written out (see the module notes); keep the two in step.
      p.flags = (p.flags & ~CB_MASK) | (CB_PACKET << CB_SHIFT) | G_BUSY;
      let result: unknown;
      try {
        result = handler.handlePacket(frame, p.state, p.view!);
      } catch (error) {
        callbackFailed(p, CB_PACKET, error);
        break;
      }
      if (!isPlainSend(result)) settle(p, result, CB_PACKET);
      else if (!stageSend(p, result.send)) sendPlain(p, result.send);
      // eventDone, written out where no timer is set (see the module notes)
      else if (p.timers === undefined) p.flags &= ~G_BUSY;
      else eventDone(p);
    }
    if (unread.of !== p) {
      off = n; // a transport swap took the rest
      break;
    }
    if (end === n || (p.flags & (GATE_MASK | NOT_BATCHED)) !== 0 || p.mailbox !== undefined) break;
  }
  framesFollow(undefined);
  unread.of = savedOf;
  unread.chunk = savedChunk;
  unread.at = savedAt;
  if (off < n && phaseOf(p) < EXITING) {
    borrowDecoder(p).push(off === 0 ? chunk : chunk.subarray(off));
    serveBuffered(p);
  } else afterDelivery(p);
  if (corked) endCork(p);
}

/**
 * A chunk was handled whole without the run loop: what the callbacks posted to their own connection
 * (a cast, a stop, a sys request) is served now, a switch to passive arms its receive timeout, and a
 * decoder left empty by a transport swap goes back (the run loop's end-of-turn work).
 */
function afterDelivery(p: ConnectionProcess): void {
  if (
    (p.flags & GATE_MASK) === 0 &&
    (p.mailbox !== undefined || (p.flags & F_PASSIVE) !== 0 || p.rare?.decoder !== undefined)
  ) {
    run(p);
  }
}

/**
 * A handler swaps the transport while {@link deliverFrames} is cutting a chunk of this connection:
 * the bytes after the current frame go into the decoder, where the swap collects what arrived behind
 * the command.
 */
export function spillUnread(p: ConnectionProcess): void {
  if (unread.of !== p) return;
  unread.of = undefined;
  const chunk = unread.chunk!;
  if (unread.at < chunk.length) (p.rare?.decoder ?? borrowDecoder(p)).push(chunk.subarray(unread.at));
}

/** The spec's empty decoder when it is free (no other connection holds it), else a new one. */
function borrowDecoder(p: ConnectionProcess): FrameDecoder {
  const spec = p.spec;
  const scratch = spec.scratch;
  let decoder: FrameDecoder;
  if (scratch !== undefined) {
    spec.scratch = undefined; // lent: a connection that re-enters here meanwhile gets its own
    decoder = scratch;
  } else {
    const settings = spec.settings;
    decoder = new FrameDecoder(settings.framing, settings.maxPacketSize);
  }
  return (rareOf(p).decoder = decoder);
}

/** An empty decoder goes back to the spec (or is dropped); one with bytes left stays with the connection. */
export function releaseDecoder(p: ConnectionProcess): void {
  const rare = p.rare;
  const decoder = rare?.decoder;
  if (decoder === undefined || !decoder.empty) return;
  rare!.decoder = undefined;
  const spec = p.spec;
  if (spec.scratch === undefined) {
    decoder.reset();
    spec.scratch = decoder;
  }
}

/** The packet handed to `handlePacket` for `frame`: the bytes, or text with `encoding: "utf8"`. */
export function packetOf(p: ConnectionProcess, frame: Uint8Array): Packet | undefined {
  if ((p.flags & F_UTF8) === 0) return frame;
  if (p.spec.settings.framing !== "raw") return textDecoder.decode(frame);
  // A raw stream may cut a character in two: decode with state, and deliver nothing for half a one.
  const rare = rareOf(p);
  const text = (rare.streamDecoder ??= new TextDecoder()).decode(frame, { stream: true });
  return text === "" ? undefined : text;
}

/** Sets or clears one reason to keep the socket paused; the socket follows the union of reasons. */
export function setPause(p: ConnectionProcess, bit: number, on: boolean): void {
  const bits = (p.flags & PAUSE_MASK) >> PAUSE_SHIFT;
  const next = on ? bits | bit : bits & ~bit;
  p.flags = (p.flags & ~PAUSE_MASK) | (next << PAUSE_SHIFT);
  const paused = next !== 0;
  if (paused === ((p.flags & F_PAUSED) !== 0)) return;
  if (paused) p.flags |= F_PAUSED;
  else p.flags &= ~F_PAUSED;
  const socket = p.socket;
  if (socket === undefined || (p.flags & F_SOCKET_CLOSED) !== 0) return;
  if (paused) socket.pause();
  else socket.resume();
}

/** Whether a pause reason is set. */
export function pausedFor(p: ConnectionProcess, bit: number): boolean {
  return ((p.flags >> PAUSE_SHIFT) & bit) !== 0;
}
