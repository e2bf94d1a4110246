/**
 * The connection process object: one per accepted or connected socket. It holds fields only; its
 * behaviour lives in the modules beside it, as functions that take it (undici's `client.js` +
 * `client-h1.js` split):
 *
 * ```text
 *   events.ts     Bun's socket events → the process (open, data, drain, end, close, handshake)
 *   inbound.ts    data from the transport: framing, passive reads, pausing the socket
 *   mailbox.ts    the mailbox (calls, casts, events, timeouts) and the run loop that serves it
 *   dispatch.ts   one event through its callback; sync and async results; failures
 *   actions.ts    validate and apply one returned action, in the contract's field order
 *   writer.ts     send: check and encode packets; the outbound queue, highWaterMark, maxQueuedBytes, drain
 *   cork.ts       auto-cork: a callback's sends (or a turn's) merged into one write
 *   timers.ts     idle / srtimeout / handshake / send / close timers (made on first use)
 *   upgrade.ts    transport swap (STARTTLS)
 *   lifecycle.ts  start (init), exit (terminate, report), graceful close of the socket
 *   requests.ts   what handles ask of the process: call, cast, notify, send, stop, sys
 *   view.ts       the public Connection / Meta object users get (nothing internal reachable)
 * ```
 *
 * Life of a process:
 *
 * ```text
 *   (accepted / connected)
 *          │  TLS: wait for handshake (writes held)
 *          ▼
 *      STARTING ── init() ──"ignore" / close / stop / throw──► exit (no terminate: a start failure)
 *          │ action applied
 *          ▼
 *      RUNNING ◄──────────────────────────────┐
 *          │ event: packet, call, cast,        │ callback done (sync: at once;
 *          │ event, send, timeout, srtimeout,  │ async: when its promise settles;
 *          │ disconnect, stop, sys             │ meanwhile events queue in order and
 *          ▼                                   │ reading pauses)
 *      dispatch ── apply action ───────────────┘
 *          │ close / stop / throw / bad return / peer closed
 *          ▼
 *      EXITING: leave the owner's list → terminate() → report (abnormal only)
 *          │ → owner's plan decides → flush queued bytes → FIN (shutdown) → close
 *          ▼
 *        DEAD
 * ```
 *
 * Memory matters (servers hold 10k+ idle connections): the object keeps 12 plain fields, which JSC
 * stores in a 112-byte cell (13 to 18 take 160 bytes: test/unit/process-size.test.ts guards it).
 * Booleans, the phase, the pause bits, the last callback and the gate share one `flags` word; what
 * only some connections use (timers, calls, a decoder holding a partial frame, exit bookkeeping) lives in small
 * objects made on first use; what all connections of a server share lives in one `spec`.
 *
 * @module
 */
import type { CallFrom, CallList } from "../call.ts";
import type { FrameCutter, FrameDecoder, PacketFraming } from "../framing/framing.ts";
import {
  CALLBACK_NAMES,
  type ExitReason,
  type Handler,
  type LastMessage,
  type ReceiveMode,
} from "../handler.ts";
import type { OutboundQueue } from "../outbound.ts";
import { type DebugOption, type DebugState, debugStateFor } from "../trace.ts";
import type { Transport, TransportSocket } from "../transport/transport.ts";
import type { CorkList, Stage } from "./cork.ts";
import type { Timers } from "./timers.ts";
import type { ConnectionView } from "./view.ts";

/** Settings shared by the connections of one server, pool or connector (validated at start). */
export interface ConnectionSettings {
  readonly framing: PacketFraming;
  /** The framing's cutter, which finds the frames of a chunk without a decoder (undefined for `"raw"`). */
  readonly cutter: FrameCutter | undefined;
  /** The length-prefix size (1, 2 or 4), 0 for the other framings. */
  readonly prefixBytes: 0 | 1 | 2 | 4;
  /**
   * Largest payload a send may copy straight into the cork stage: what the framing lets one frame
   * carry (a prefix's limit and `maxPacketSize`, `maxPacketSize` for lines and delimiters, no bound for
   * raw bytes and codecs without `encode`); -1 when every send must be encoded first.
   */
  readonly stageSendMax: number;
  /** Bytes the cork may hold before it is written at once: the least of `highWaterMark` and `maxQueuedBytes`. */
  readonly corkLimit: number;
  /** The largest payload an empty cork stage takes: the stage's size and `corkLimit`, less the prefix. */
  readonly stageRoom: number;
  readonly utf8: boolean;
  readonly maxPacketSize: number;
  readonly highWaterMark: number;
  /** Bytes the outbound queue may hold; a send past it ends the connection with `SendOverflowError`. */
  readonly maxQueuedBytes: number;
  readonly mode: ReceiveMode;
  readonly noDelay: boolean | undefined;
  readonly keepAlive: boolean | number | undefined;
  /** ms a peer may leave queued bytes unread before the connection is dropped. */
  readonly sendTimeout: number;
  /** ms a TLS handshake may take. */
  readonly handshakeTimeout: number;
  /** ms to wait for the peer's FIN after our half-close (and for queued bytes on close). */
  readonly closeTimeout: number;
  readonly debug: readonly DebugOption[];
  /** The user's start options (shown as `meta.options`). */
  readonly options: Readonly<Record<string, unknown>>;
}

/** Always-on totals of a server, pool or connector, shared by its connections (`info()`). */
export class Totals {
  bytesIn = 0;
  bytesOut = 0;
  /** Connections whose `init` completed. */
  started = 0;
  /** Ended connections by kind. */
  normal = 0;
  peer = 0;
  crash = 0;
  shutdown = 0;
}

/** The server, pool slot or connector that owns a connection. */
export interface ConnectionOwner {
  /** The child stops being live (before `terminate`). */
  childLeaving(child: ConnectionProcess): void;
  /** The child has ended: `started` is false when `init` never completed (a start failure). */
  childExited(child: ConnectionProcess, reason: ExitReason, started: boolean): void;
  /** `init` completed. */
  childStarted?(child: ConnectionProcess): void;
  /** What the diagnostics channels say of the owner (`{ server }`, `{ pool }`). */
  channelInfo?(): Record<string, unknown>;
  /**
   * The child is ready to run `init` (accepted, TLS handshake done): false when it must wait for a
   * slot (the owner then calls `release` later, or ends it).
   */
  admit?(child: ConnectionProcess): boolean;
  /** The child's socket has closed (the owner counts the descriptors it holds). */
  socketClosed?(child: ConnectionProcess): void;
}

/** What all connections of a server (or one connector) share. */
export interface ConnectionSpec {
  readonly handler: Handler<unknown, unknown>;
  readonly init: unknown;
  readonly settings: ConnectionSettings;
  /** Whether connections were accepted (TLS server role). */
  readonly isServer: boolean;
  /** Totals of the server, pool or connector (kept across spec rebuilds). */
  readonly totals: Totals;
  /** Connectors: the address connected to. */
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  /** Connectors: bytes written first, before anything else (a PROXY protocol header). */
  readonly preamble?: Uint8Array | undefined;
  /** The transport (a connection swapping it for STARTTLS gets a spec of its own). */
  readonly transport: Transport;
  /** The server, pool slot or connector that owns the connections. */
  readonly owner: ConnectionOwner | undefined;
  /**
   * An empty decoder the connections of this spec borrow for one chunk when they have none (so a
   * framed connection neither keeps a decoder while idle nor allocates one per chunk); a connection
   * that is left with bytes buffered keeps it.
   */
  scratch?: FrameDecoder | undefined;
}

// Lifecycle phases (the low bits of `flags`).
export const STARTING = 0;
export const RUNNING = 1;
export const EXITING = 2;
export const DEAD = 3;
export const PHASE_MASK = 0b11;

// `flags` bits.
export const F_UTF8 = 1 << 2;
/** Active, raw, binary: a chunk is a packet (the fast path). */
export const F_RAW_ACTIVE = 1 << 3;
export const F_PASSIVE = 1 << 4;
/** Writes collect in `cork` (inside a socket event, or until the scheduled flush). */
export const F_CORKED = 1 << 5;
/** Writes wait for the TLS handshake. */
export const F_WRITE_HELD = 1 << 6;
export const F_PEER_ENDED = 1 << 7;
export const F_SOCKET_CLOSED = 1 << 8;
export const F_DISCONNECT_QUEUED = 1 << 9;
export const F_STARTED = 1 << 10;
export const F_IGNORED = 1 << 11;
export const F_PAUSED = 1 << 12;
/** Passive: a packet was just delivered, so a queued event goes next. */
export const F_EVENT_TURN = 1 << 13;
/** A flush of `cork` is scheduled for the end of this turn (auto-cork outside socket events). */
export const F_FLUSH_SCHEDULED = 1 << 14;
/** The queue went above highWaterMark: `handleDrain` runs once it falls back. */
export const F_DRAIN_WANTED = 1 << 15;
/** Counted in the owner's served connections (a `maxConnections` slot). */
export const F_ADMITTED = 1 << 24;
/** Waiting for a slot under `maxConnections`: reads (bounded) so a peer that leaves is noticed. */
export const F_WAITING = 1 << 25;
/** Counted in the owner's TLS handshakes in progress. */
export const F_HANDSHAKING = 1 << 26;
export const PAUSE_SHIFT = 16;
export const PAUSE_MASK = 0b1111 << PAUSE_SHIFT;
export const CB_SHIFT = 20;
export const CB_MASK = 0b1111 << CB_SHIFT;

// Gate bits (in `flags`): while any is set, events queue instead of being dispatched.
/** A callback is running or its promise is pending. */
export const G_BUSY = 1 << 27;
/** sys.suspend. */
export const G_SUSPENDED = 1 << 28;
/** Not yet started (TLS handshake, held by a sleeping acceptor) or exiting. */
export const G_NOT_RUNNING = 1 << 29;
/** A transport swap waits for plain bytes to drain: bytes behind it belong to the new transport. */
export const G_UPGRADING = 1 << 30;
/** The gate: `(flags & GATE_MASK) === 0` = idle and running, events are dispatched at once. */
export const GATE_MASK = G_BUSY | G_SUSPENDED | G_NOT_RUNNING | G_UPGRADING;

// Pause bits: while any is set, the socket is paused (data stays in the kernel).
/** Data arrived that cannot be delivered now. */
export const P_BACKLOG = 1;
/** Outbound queue above highWaterMark. */
export const P_HWM = 2;
/** Held by a sleeping acceptor or waiting for a slot. */
export const P_HELD = 4;
export const P_SUSPENDED = 8;

// Mailbox event kinds.
export const E_CALL = 1;
export const E_CAST = 2;
export const E_EVENT = 3;
export const E_SEND_SYNC = 4;
export const E_SEND_ASYNC = 5;
export const E_TIMEOUT = 6;
export const E_SRTIMEOUT = 7;
export const E_DISCONNECT = 8;
export const E_STOP = 9;
export const E_SYS = 10;
export const E_DRAIN = 11;

/** Callback numbers kept in `flags`, and their names. */
export const CB_INIT = 1;
export const CB_PACKET = 2;
export const CB_CALL = 3;
export const CB_CAST = 4;
export const CB_EVENT = 5;
export const CB_DISCONNECT = 6;
export const CB_TIMEOUT = 7;
export const CB_SRTIMEOUT = 8;
export const CB_DRAIN = 10;
export { CALLBACK_NAMES };

/** An exit reason, boxed: what action application returns to stop the connection. */
export interface ExitReasonBox {
  readonly reason: ExitReason;
}

/** The rarely used part of a connection, made on first use. */
export class Rare {
  /**
   * Bytes received and not yet delivered: a frame cut at a chunk's end, a passive read, packets that
   * wait for a callback (borrowed when a chunk cannot be delivered whole, given back once empty).
   */
  decoder: FrameDecoder | undefined = undefined;
  /** Passive read length. */
  length = 0;
  streamDecoder: TextDecoder | undefined = undefined;
  pendingUpgrade: Transport | undefined = undefined;
  afterUpgrade: Uint8Array[] | undefined = undefined;
  currentFrom: CallFrom | undefined = undefined;
  calls: CallList | undefined = undefined;
  lastMessage: LastMessage | undefined = undefined;
  exited: Promise<ExitReason> | undefined = undefined;
  resolveExited: ((reason: ExitReason) => void) | undefined = undefined;
  stopWaiters: (() => void)[] | undefined = undefined;
  onStarted: ((ok: boolean, reason: ExitReason) => void) | undefined = undefined;
  /** Why the process ended (set when it starts exiting, final once `terminate` has run). */
  exitReason: ExitReason = undefined;
  /** The PROXY protocol header the connection arrived with. */
  proxy: unknown = undefined;
  /** sys debug state (trace, log, statistics), while some option is on. */
  dbg: DebugState | undefined = undefined;
}

let nextId = 1;

/** Allocates a process id (shared by acceptors and connections, like Erlang pids). */
export function allocateId(): number {
  return nextId++;
}

/** One connection process: fields only (see the module notes). */
export class ConnectionProcess {
  readonly id: number = nextId++;
  spec: ConnectionSpec;
  state: unknown = undefined;
  socket: TransportSocket | undefined = undefined;
  /**
   * Phase, booleans, pause bits, last callback, and the gate: why events cannot be dispatched now (see
   * the `F_*`, `PAUSE_*`, `CB_*` and `G_*` constants).
   */
  flags: number;
  mailbox: Mailbox | undefined = undefined;
  out: OutboundQueue | undefined = undefined;
  /** Bytes sent while corked: one buffer, or several to merge into one write. */
  cork: Uint8Array | CorkList | Stage | undefined = undefined;
  timers: Timers | undefined = undefined;
  rare: Rare | undefined = undefined;
  /** Position in the owner's `ChildList`. */
  listIndex = -1;
  /** The public handle and meta (made at start). */
  view: ConnectionView | undefined = undefined;

  constructor(spec: ConnectionSpec) {
    this.spec = spec;
    const settings = spec.settings;
    const passive = settings.mode === "passive";
    this.flags =
      STARTING |
      G_NOT_RUNNING |
      (settings.utf8 ? F_UTF8 : 0) |
      (passive ? F_PASSIVE : 0) |
      (!passive && settings.framing === "raw" && !settings.utf8 ? F_RAW_ACTIVE : 0);
    if (settings.debug.length !== 0) rareOf(this).dbg = debugStateFor(settings.debug);
  }
}

/** The phase (`STARTING`, `RUNNING`, `EXITING`, `DEAD`). */
export function phaseOf(p: ConnectionProcess): number {
  return p.flags & PHASE_MASK;
}

/** Sets the phase. */
export function setPhase(p: ConnectionProcess, phase: number): void {
  p.flags = (p.flags & ~PHASE_MASK) | phase;
}

/** The rare part, made on first use. */
export function rareOf(p: ConnectionProcess): Rare {
  let rare = p.rare;
  if (rare === undefined) rare = p.rare = new Rare();
  return rare;
}

/** One queued event. */
export class MailboxEvent {
  constructor(
    readonly kind: number,
    readonly value: unknown,
    readonly extra: unknown,
  ) {}
}

/** Queued events in order: an array with its head index inside (no shift per event). */
export class Mailbox {
  events: MailboxEvent[];
  head = 0;
  /**
   * Arrival order across the socket and the mailbox: the events before this index were posted before
   * the bytes now buffered arrived, so they go first (-1: no bytes arrived behind queued events).
   */
  bytesAfter = -1;
  constructor(first: MailboxEvent) {
    this.events = [first];
  }
}
