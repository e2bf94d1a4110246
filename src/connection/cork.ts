/**
 * Auto-cork: inside a socket event, everything the connection's callbacks send collects in `p.cork` and
 * goes out as one write when the event is handled (a chunk of 16 pipelined requests, handled one
 * callback each, is answered by one write). Sends made anywhere else (a call from another connection,
 * a timer, a promise that settled) are collected the same way until the end of the current turn of the
 * event loop: one microtask flushes every connection that has bytes corked, before the loop waits for
 * I/O again, so batching adds no latency.
 *
 * Several corked payloads become one buffer, length prefixes written in place. For a socket that copies
 * what it takes (Bun's) and can take it now, they are copied as they are sent into one stage buffer
 * that the connection holds until the write ({@link Stage}); otherwise (another connection holds the
 * stage, bytes must wait) they are listed and merged at the end, into a shared buffer when the merge
 * goes straight to such a socket. Either way a pipelined batch allocates nothing but the packets.
 *
 * @module
 */
import type { PacketFraming } from "../framing/framing.ts";
import { writePrefix } from "../framing/framing.ts";
import { COPIES_WRITES } from "../transport/bun-options.ts";
import { type ConnectionProcess, F_CORKED, F_FLUSH_SCHEDULED } from "./process.ts";
import { writableNow, write, writeShared } from "./writer.ts";
/**
 * Several corked payloads, written as one buffer. With a 1/2/4-byte length prefix the payloads are
 * kept as sent and `bytes` counts their headers too: the headers are written straight into the merged
 * buffer, so pipelined frames cost no allocation each. Lists are reused once written (see
 * {@link corkList}): their arrays keep their capacity, so a batch does not regrow one.
 */
export class CorkList {
  /** The payloads: bytes, or text (encoded as UTF-8 straight into the merged buffer). */
  readonly chunks: (Uint8Array | string | undefined)[] = [];
  /** Payloads in `chunks` (entries past it are empty). */
  count = 0;
  /** Bytes on the wire, headers included. */
  bytes = 0;

  /** Appends one payload of `wire` bytes on the wire (header included). */
  add(payload: Uint8Array | string, wire: number): void {
    this.chunks[this.count++] = payload;
    this.bytes += wire;
  }
}

/** Bytes the stage holds at most (one write of a batch; a bigger batch is written in several). */
export const STAGE_SIZE = 64 * 1024;

/**
 * One buffer that the corked payloads of one connection at a time are copied into as they are sent,
 * length prefixes written in place: a pipelined batch is then one copy per payload and one write, with
 * no list to walk. Only for a socket that copies what it takes and can take it now (the buffer is
 * reused as soon as the write returns); the connection holding it has the stage as its `p.cork`, and others
 * cork in lists meanwhile. A process has one: JavaScript runs one connection's callbacks at a time, and
 * the stage is given back by the write at the end of the socket event (or of the turn).
 */
export class Stage {
  readonly buf: Buffer = Buffer.allocUnsafe(STAGE_SIZE);
  /** Bytes filled. */
  at = 0;
  /** The connection whose corked bytes these are. */
  owner: ConnectionProcess | undefined = undefined;

  /** Appends one payload after its `hs`-byte prefix (the caller checked that it fits). */
  put(payload: Uint8Array | string, hs: number): void {
    const buf = this.buf;
    const at = this.at + hs;
    let n: number;
    if (typeof payload === "string") n = buf.write(payload, at);
    else {
      buf.set(payload, at);
      n = payload.length;
    }
    if (hs !== 0) writePrefix(buf, at - hs, hs as 1 | 2 | 4, n);
    this.at = at + n;
  }

  /**
   * {@link put} for bytes, the reply of every pipelined echo: small enough for the JIT to inline. The
   * prefix is written here rather than by `writePrefix`: that call kept the frame loop from inlining
   * this (`packet: 4` at 16 frames per chunk, in process: 43 ns per frame here, 45.5 with the call).
   */
  putBytes(bytes: Uint8Array, hs: number): void {
    const buf = this.buf;
    const at = this.at;
    const n = bytes.length;
    if (hs === 4) {
      buf[at] = n >>> 24;
      buf[at + 1] = (n >>> 16) & 0xff;
      buf[at + 2] = (n >>> 8) & 0xff;
      buf[at + 3] = n & 0xff;
    } else if (hs === 2) {
      buf[at] = n >>> 8;
      buf[at + 1] = n & 0xff;
    } else if (hs === 1) buf[at] = n;
    buf.set(bytes, at + hs);
    this.at = at + hs + n;
  }
}

const stage = new Stage();

/** Whether a cork is the stage (identity; also narrows the type). */
function isStage(cork: Uint8Array | CorkList | Stage | undefined): cork is Stage {
  return cork === stage;
}

/** Writes the stage (`p` holds it) and gives it back; a copy when the bytes cannot go to the socket now. */
function writeStage(p: ConnectionProcess): void {
  const n = stage.at;
  stage.owner = undefined;
  stage.at = 0;
  if (writableNow(p)) writeShared(p, stage.buf, n);
  else write(p, Buffer.from(stage.buf.subarray(0, n)));
}

/** Written lists kept for reuse (bounded: a burst of connections corking at once leaves at most these). */
const spareLists: CorkList[] = [];
const SPARE_LISTS_MAX = 64;

/**
 * A list holding `first` (when defined: the bytes corked so far, with an `hs`-byte header), then
 * `second` of `secondWire` bytes on the wire (a spare list when there is one).
 */
function corkList(
  first: Uint8Array | undefined,
  second: Uint8Array | string,
  secondWire: number,
  hs: number,
): CorkList {
  const list = spareLists.pop() ?? new CorkList();
  if (first !== undefined) list.add(first, first.length + hs);
  list.add(second, secondWire);
  return list;
}

/** Bytes corked, on the wire (length prefixes included). */
export function corkedBytes(p: ConnectionProcess): number {
  const cork = p.cork;
  if (cork === undefined) return 0;
  if (isStage(cork)) return stage.at;
  return cork instanceof CorkList ? cork.bytes : cork.length + p.spec.settings.prefixBytes;
}

/**
 * Adds one payload of `wire` bytes on the wire (with its `hs`-byte prefix) to the cork: alone while it
 * is the only bytes; with the bytes before it, copied into the stage when the connection may take it
 * (see {@link Stage}), else in a list. Text always goes with others (it is encoded when copied).
 */
export function addToCork(
  p: ConnectionProcess,
  payload: Uint8Array | string,
  wire: number,
  hs: number,
): void {
  const cork = p.cork;
  if (isStage(cork)) {
    if (stage.at + wire <= STAGE_SIZE) {
      stage.put(payload, hs);
      return;
    }
    writeCork(p); // the stage is full: what it holds goes now, this payload starts the next write
    addToCork(p, payload, wire, hs);
  } else if (cork instanceof CorkList) cork.add(payload, wire);
  else if (cork === undefined && typeof payload !== "string") p.cork = payload;
  else if ((cork === undefined ? 0 : cork.length + hs) + wire <= STAGE_SIZE && mayTakeStage(p)) {
    stage.owner = p;
    stage.at = 0;
    p.cork = stage;
    if (cork !== undefined) stage.put(cork, hs);
    stage.put(payload, hs);
  } else p.cork = corkList(cork, payload, wire, hs);
}

/**
 * The hot case of a reply: tracing is off, `packet` is bytes or text the framing takes as they are,
 * within every bound, and `p` holds the stage, or takes it for its first send of a socket event when
 * the bytes would be copied anyway (behind a length prefix, or with more frames of the chunk to
 * answer: see {@link framesFollow}): copied in after its prefix.
 * Returns false (nothing done) otherwise: the caller takes the general path (writer.ts `sendChecked`).
 */
export function stageSend(p: ConnectionProcess, packet: unknown): boolean {
  // The hot case, small enough for the JIT to inline into the frame loop: `p` holds the stage and
  // sends bytes that fit.
  if (p.cork === stage && packet instanceof Uint8Array && p.rare?.dbg === undefined) {
    const settings = p.spec.settings;
    const size = packet.length;
    const hs = settings.prefixBytes;
    if (size <= settings.stageRoom - stage.at && size <= settings.stageSendMax && (size !== 0 || hs !== 0)) {
      stage.putBytes(packet, hs);
      return true;
    }
  }
  // A lone payload without a prefix goes out as it is, uncopied (see stageSendSlow): said here too,
  // so the commonest reply of all, a raw echo, costs no call.
  if (p.cork === undefined && batch !== p && p.spec.settings.prefixBytes === 0) return false;
  return stageSendSlow(p, packet);
}

/** {@link stageSend} for the rest: taking the stage, text, the bounds' corner cases, tracing. */
function stageSendSlow(p: ConnectionProcess, packet: unknown): boolean {
  const cork = p.cork;
  const settings = p.spec.settings;
  const hs = settings.prefixBytes;
  // A lone payload without a prefix goes out as it is, uncopied (cheaper than any copy): the stage
  // is taken at the first send only behind a length prefix, where the payload is copied anyway, or
  // when more frames of the chunk follow (their replies would be merged with it anyway).
  if (!isStage(cork) && (cork !== undefined || (hs === 0 && batch !== p) || !mayTakeStage(p))) return false;
  if (p.rare?.dbg !== undefined) return false; // traced: the general path logs each send
  // What the payload may take: the stage's room and the cork's bound, after its prefix.
  const room = settings.stageRoom - stage.at;
  const max = settings.stageSendMax;
  if (packet instanceof Uint8Array) {
    const size = packet.length;
    if (size > room || size > max || (size === 0 && hs === 0)) return false;
    if (cork === undefined) takeStage(p);
    stage.putBytes(packet, hs);
    return true;
  }
  if (typeof packet !== "string") return false;
  // At most 3 UTF-8 bytes per UTF-16 unit: a bound that fits spares measuring the text first.
  let size = packet.length * 3;
  if (size > room || size > max) size = Buffer.byteLength(packet);
  if (size > room || size > max || (size === 0 && hs === 0)) return false;
  if (cork === undefined) takeStage(p);
  stage.put(packet, hs);
  return true;
}

/** `p` takes the free stage as its cork. */
function takeStage(p: ConnectionProcess): void {
  stage.owner = p;
  stage.at = 0;
  p.cork = stage;
}

/**
 * The connection whose current frame has more bytes behind it in the same chunk (set by inbound.ts
 * `deliverFrames`): its first reply takes the stage even without a prefix, since the replies to the
 * next frames will be copied in after it anyway.
 */
let batch: ConnectionProcess | undefined;

/** Says whether more bytes follow the frame `p` is about to handle in its chunk (see {@link stageSend}). */
export function framesFollow(p: ConnectionProcess | undefined): void {
  batch = p;
}

/** Whether `p` may take the free stage now: inside a socket event, on a socket that copies and can write. */
function mayTakeStage(p: ConnectionProcess): boolean {
  return stage.owner === undefined && (p.flags & F_CORKED) !== 0 && copiesWrites(p) && writableNow(p);
}

/** Corked bytes beyond this are written at once (a loop of big sends must not build one huge buffer). */
export const CORK_MAX = 256 * 1024;

/**
 * Corks the bytes of one send when nothing needs the general path: a size the framing allows (a 1/2/4
 * prefix can announce it, a line or delimiter frame is within `maxPacketSize`; raw bytes and a codec's
 * frames have no bound on sends), at least one byte on the wire, and a cork that stays under
 * `CORK_MAX`, `highWaterMark` and `maxQueuedBytes`. Returns false (nothing done) otherwise: the
 * general path (writer.ts `sendBytes`) then decides.
 */
export function corkFramed(
  p: ConnectionProcess,
  payload: Uint8Array | string,
  size: number,
  framing: PacketFraming,
): boolean {
  const settings = p.spec.settings;
  let hs = 0;
  if (typeof framing === "number") {
    if (size > settings.maxPacketSize || size > PREFIX_LIMIT[framing]!) return false;
    hs = framing;
  } else if (size === 0) return false;
  else if (framing === "line" || (typeof framing === "object" && !("frameLength" in framing))) {
    if (size > settings.maxPacketSize) return false; // the payload is the whole frame
  }
  const wire = size + hs;
  const corked = corkedBytes(p) + wire;
  if (corked > CORK_MAX || corked > settings.corkLimit) return false;
  addToCork(p, payload, wire, hs);
  return true;
}

/** Largest payload a 1, 2 or 4-byte length prefix announces (by prefix size). */
const PREFIX_LIMIT = [0, 0xff, 0xffff, 0, 0xffffffff];

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

/** A send outside a socket event: cork it, and flush at the end of this turn (one microtask for all). */
export function scheduleFlush(p: ConnectionProcess): void {
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

/** Writes what is corked as one buffer (length prefixes written in place), and empties the cork. */
export function writeCork(p: ConnectionProcess): void {
  const cork = p.cork;
  if (cork === undefined) return;
  p.cork = undefined;
  if (isStage(cork)) {
    writeStage(p);
    return;
  }
  const hs = p.spec.settings.prefixBytes;
  if (hs === 0 && !(cork instanceof CorkList)) {
    write(p, cork);
    return;
  }
  const total = cork instanceof CorkList ? cork.bytes : hs + cork.length;
  // Straight to the kernel (the common case): merged into the shared buffer, which the kernel copies
  // from, so a pipelined batch costs no allocation. Bytes that must wait get a buffer of their own.
  const direct = total <= MERGE_MAX && copiesWrites(p) && writableNow(p);
  const merged = direct ? mergeBuffer(total) : Buffer.allocUnsafe(total);
  if (cork instanceof CorkList) mergeList(cork, merged, hs);
  else {
    writePrefix(merged, 0, hs as 1 | 2 | 4, cork.length);
    merged.set(cork, hs);
  }
  if (direct) writeShared(p, merged, total);
  else write(p, merged);
}

/** Copies the payloads of `list` into `merged`, each after its `hs`-byte prefix, and recycles the list. */
function mergeList(list: CorkList, merged: Buffer, hs: 0 | 1 | 2 | 4): void {
  const chunks = list.chunks;
  const count = list.count;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const c = chunks[i]!;
    chunks[i] = undefined; // the list is reused: it must not keep the payload alive
    // the payload goes after its prefix, whose value is its length once written (text: UTF-8 bytes)
    let n: number;
    if (typeof c === "string") n = merged.write(c, at + hs);
    else {
      merged.set(c, at + hs);
      n = c.length;
    }
    if (hs !== 0) writePrefix(merged, at, hs, n);
    at += hs + n;
  }
  list.count = 0;
  list.bytes = 0;
  if (spareLists.length < SPARE_LISTS_MAX) spareLists.push(list);
}

/** Largest batch merged into the shared buffer (bigger ones are rare and get their own). */
const MERGE_MAX = 64 * 1024;
let shared: Buffer | undefined;

/** The shared merge buffer, at least `size` bytes (grown by doubling, up to {@link MERGE_MAX}). */
function mergeBuffer(size: number): Buffer {
  if (shared === undefined || shared.length < size) {
    shared = Buffer.allocUnsafe(Math.min(MERGE_MAX, Math.max(4096, 2 ** Math.ceil(Math.log2(size)))));
  }
  return shared;
}

/** Whether the connection's transport copies written bytes (so the shared merge buffer may be reused). */
function copiesWrites(p: ConnectionProcess): boolean {
  return (p.spec.transport as { [COPIES_WRITES]?: boolean })[COPIES_WRITES] === true;
}
