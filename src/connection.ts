/**
 * The connection process: one per accepted or connected socket, with its own state, a mailbox and
 * callbacks that never overlap (SockErl's `sockerl_connector`).
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
 * Hot path (a synchronous handler in active raw mode): Bun's `data` → `handlePacket` → apply the
 * action → one `write()`. No promise, no closure, no copy, no timer work per packet.
 *
 * @module
 */

import { CallFrom } from "./call.ts";
import {
  ArgumentError,
  BadReturnError,
  CallbackError,
  describeReason,
  HandshakeTimeoutError,
  NoProcError,
  SendTimeoutError,
  SocketSendError,
  TlsHandshakeError,
} from "./errors.ts";
import { encodeFrame, FrameDecoder, type PacketFraming } from "./framing/framing.ts";
import type {
  Action,
  ActionObject,
  Connection,
  ExitReason,
  Handler,
  LastMessage,
  Meta,
  Outgoing,
  Packet,
  ReceiveMode,
} from "./handler.ts";
import { FLUSH_CLOSED, FLUSH_EMPTY, OutboundQueue } from "./outbound.ts";
import { type DebugOption, DebugState, debugStateFor, emit, formatTerm, type Statistics } from "./trace.ts";
import {
  isTransport,
  type Transport,
  type TransportEvents,
  type TransportSocket,
} from "./transport/transport.ts";

/** Settings shared by the connections of one server, pool or connector (validated at start). */
export interface ConnectionSettings {
  readonly framing: PacketFraming;
  readonly utf8: boolean;
  readonly maxPacketSize: number;
  readonly highWaterMark: number;
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

/** The server, pool slot or connector that owns a connection. */
export interface ConnectionOwner {
  /** The child stops being live (before `terminate`). */
  childLeaving(child: ConnectionProcess): void;
  /** The child has ended: `started` is false when `init` never completed (a start failure). */
  childExited(child: ConnectionProcess, reason: ExitReason, started: boolean): void;
  /** `init` completed. */
  childStarted?(child: ConnectionProcess): void;
}

// Lifecycle phases.
const STARTING = 0;
const RUNNING = 1;
const EXITING = 2;
const DEAD = 3;

// Gate bits: while any is set, events queue instead of being dispatched.
const G_BUSY = 1; // a callback is running or its promise is pending
const G_SUSPENDED = 2; // sys.suspend
const G_NOT_RUNNING = 4; // not yet started (TLS handshake, held by a sleeping acceptor) or exiting
const G_UPGRADING = 8; // a transport swap waits for plain bytes to drain: bytes behind it belong to the new transport

// Pause bits: while any is set, the socket is paused (data stays in the kernel).
const P_BACKLOG = 1; // data arrived that cannot be delivered now
const P_HWM = 2; // outbound queue above highWaterMark
const P_HELD = 4; // held by a sleeping acceptor
const P_SUSPENDED = 8;

// Mailbox event kinds.
const E_CALL = 1;
const E_CAST = 2;
const E_EVENT = 3;
const E_SEND_SYNC = 4;
const E_SEND_ASYNC = 5;
const E_TIMEOUT = 6;
const E_SRTIMEOUT = 7;
const E_DISCONNECT = 8;
const E_STOP = 9;
const E_SYS = 10;

/** Callback names, indexed by the numbers kept in `#lastCallback`. */
const CALLBACK_NAMES = [
  undefined,
  "init",
  "handlePacket",
  "handleCall",
  "handleCast",
  "handleEvent",
  "handleDisconnect",
  "timeout",
  "srtimeout",
  "codeChange",
] as const;
const CB_INIT = 1;
const CB_PACKET = 2;
const CB_CALL = 3;
const CB_CAST = 4;
const CB_EVENT = 5;
const CB_DISCONNECT = 6;
const CB_TIMEOUT = 7;
const CB_SRTIMEOUT = 8;

// `#flags` layout.
const PHASE_MASK = 0b11;
const F_UTF8 = 1 << 2;
const F_RAW_ACTIVE = 1 << 3;
const F_PASSIVE = 1 << 4;
const F_CORKED = 1 << 5;
const F_WRITE_HELD = 1 << 6;
const F_PEER_ENDED = 1 << 7;
const F_SOCKET_CLOSED = 1 << 8;
const F_DISCONNECT_QUEUED = 1 << 9;
const F_STARTED = 1 << 10;
const F_IGNORED = 1 << 11;
const F_PAUSED = 1 << 12;
const PAUSE_SHIFT = 13;
const PAUSE_MASK = 0b1111 << PAUSE_SHIFT;
const CB_SHIFT = 17;
const CB_MASK = 0b1111 << CB_SHIFT;
/** Passive: a packet was just delivered, so a queued event goes next (see `#eventFirst`). */
const F_EVENT_TURN = 1 << 21;

type Timer = ReturnType<typeof setTimeout>;

/** What all connections of a server (or one connector) share. */
export interface ConnectionSpec {
  readonly handler: Handler<unknown, unknown>;
  readonly init: unknown;
  readonly settings: ConnectionSettings;
  /** Whether connections were accepted (TLS server role). */
  readonly isServer: boolean;
  /** Connectors: the address connected to. */
  readonly host?: string | undefined;
  readonly port?: number | undefined;
}

/** The rarely used part of a connection, allocated on first use. */
class Extras {
  mbHead = 0;
  length = 0;
  timeoutMs = Number.POSITIVE_INFINITY;
  srtimeoutMs = Number.POSITIVE_INFINITY;
  lastEventAt = 0;
  timer: Timer | undefined = undefined;
  srTimer: Timer | undefined = undefined;
  handshakeTimer: Timer | undefined = undefined;
  closeTimer: Timer | undefined = undefined;
  sendTimer: Timer | undefined = undefined;
  streamDecoder: TextDecoder | undefined = undefined;
  corkList: Uint8Array[] | undefined = undefined;
  pendingUpgrade: Transport | undefined = undefined;
  afterUpgrade: Uint8Array[] | undefined = undefined;
  currentFrom: CallFrom | undefined = undefined;
  calls: Set<CallFrom> | undefined = undefined;
  lastMessage: LastMessage | undefined = undefined;
  exited: Promise<ExitReason> | undefined = undefined;
  resolveExited: ((reason: ExitReason) => void) | undefined = undefined;
  stopWaiters: (() => void)[] | undefined = undefined;
  onStarted: ((ok: boolean, reason: ExitReason) => void) | undefined = undefined;
}

class MailboxEvent {
  constructor(
    readonly kind: number,
    readonly value: unknown,
    readonly extra: unknown,
  ) {}
}

type SysFn = (conn: ConnectionProcess) => unknown;

let nextId = 1;

/** Allocates a process id (shared by acceptors and connections, like Erlang pids). */
export function allocateId(): number {
  return nextId++;
}

const now = (): number => performance.now();
const textDecoder = new TextDecoder();

let nextCallTag = 1;

/**
 * One connection process. Also the {@link Meta} handed to callbacks (a live view, no copy) and the
 * public {@link Connection} handle.
 */
export class ConnectionProcess implements Connection, Meta<unknown> {
  readonly id: number;
  // Memory matters (servers hold 10k+ idle connections): a connection keeps 16 slots. Booleans,
  // the phase, the pause bits and the last callback are packed into `#flags`; what only some
  // connections use (timers, calls, exit bookkeeping) lives in `#x`, allocated on first use; what
  // all connections of a server share (handler, init, settings) lives in one `#spec`. Private
  // accessors keep the code below written as if they were plain fields.
  #spec: ConnectionSpec;
  #state: unknown = undefined;
  #owner: ConnectionOwner | undefined;
  #transport: Transport;
  #socket: TransportSocket | undefined = undefined;
  #flags: number;
  #gate = G_NOT_RUNNING;
  #mailbox: MailboxEvent[] | undefined = undefined;
  #decoder: FrameDecoder | undefined = undefined;
  #out: OutboundQueue | undefined = undefined;
  #cork: Uint8Array | undefined = undefined;
  #dbg: DebugState | undefined;
  #x: Extras | undefined = undefined;
  /** Set on exit (a slot of its own: exiting must not allocate the extras, connect/close churn). */
  #exitReason: ExitReason = undefined;
  /** @internal Position in the owner's `ChildList`. */
  listIndex = -1;

  constructor(spec: ConnectionSpec, transport: Transport, owner: ConnectionOwner | undefined) {
    this.id = nextId++;
    this.#spec = spec;
    this.#transport = transport;
    this.#owner = owner;
    const settings = spec.settings;
    const passive = settings.mode === "passive";
    this.#flags =
      STARTING |
      (settings.utf8 ? F_UTF8 : 0) |
      (passive ? F_PASSIVE : 0) |
      (!passive && settings.framing === "raw" && !settings.utf8 ? F_RAW_ACTIVE : 0);
    this.#dbg = settings.debug.length === 0 ? undefined : debugStateFor(settings.debug);
    if (settings.framing !== "raw")
      this.#decoder = new FrameDecoder(settings.framing, settings.maxPacketSize);
  }

  #ext(): Extras {
    let x = this.#x;
    if (x === undefined) x = this.#x = new Extras();
    return x;
  }

  #flag(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }

  // Packed and shared fields.
  get #phase(): number {
    return this.#flags & PHASE_MASK;
  }
  set #phase(phase: number) {
    this.#flags = (this.#flags & ~PHASE_MASK) | phase;
  }
  get #pause(): number {
    return (this.#flags & PAUSE_MASK) >> PAUSE_SHIFT;
  }
  set #pause(bits: number) {
    this.#flags = (this.#flags & ~PAUSE_MASK) | (bits << PAUSE_SHIFT);
  }
  get #paused(): boolean {
    return (this.#flags & F_PAUSED) !== 0;
  }
  set #paused(on: boolean) {
    this.#flag(F_PAUSED, on);
  }
  get #lastCallback(): number {
    return (this.#flags & CB_MASK) >> CB_SHIFT;
  }
  set #lastCallback(callback: number) {
    this.#flags = (this.#flags & ~CB_MASK) | (callback << CB_SHIFT);
  }
  get #utf8(): boolean {
    return (this.#flags & F_UTF8) !== 0;
  }
  get #rawActive(): boolean {
    return (this.#flags & F_RAW_ACTIVE) !== 0;
  }
  set #rawActive(on: boolean) {
    this.#flag(F_RAW_ACTIVE, on);
  }
  get #passive(): boolean {
    return (this.#flags & F_PASSIVE) !== 0;
  }
  set #passive(on: boolean) {
    this.#flag(F_PASSIVE, on);
  }
  get #corked(): boolean {
    return (this.#flags & F_CORKED) !== 0;
  }
  set #corked(on: boolean) {
    this.#flag(F_CORKED, on);
  }
  get #writeHeld(): boolean {
    return (this.#flags & F_WRITE_HELD) !== 0;
  }
  set #writeHeld(on: boolean) {
    this.#flag(F_WRITE_HELD, on);
  }
  get #peerEnded(): boolean {
    return (this.#flags & F_PEER_ENDED) !== 0;
  }
  set #peerEnded(on: boolean) {
    this.#flag(F_PEER_ENDED, on);
  }
  get #socketClosed(): boolean {
    return (this.#flags & F_SOCKET_CLOSED) !== 0;
  }
  set #socketClosed(on: boolean) {
    this.#flag(F_SOCKET_CLOSED, on);
  }
  get #disconnectQueued(): boolean {
    return (this.#flags & F_DISCONNECT_QUEUED) !== 0;
  }
  set #disconnectQueued(on: boolean) {
    this.#flag(F_DISCONNECT_QUEUED, on);
  }
  get #started(): boolean {
    return (this.#flags & F_STARTED) !== 0;
  }
  set #started(on: boolean) {
    this.#flag(F_STARTED, on);
  }
  get #ignored(): boolean {
    return (this.#flags & F_IGNORED) !== 0;
  }
  set #ignored(on: boolean) {
    this.#flag(F_IGNORED, on);
  }
  get #handler(): Handler<unknown, unknown> {
    return this.#spec.handler;
  }
  set #handler(handler: Handler<unknown, unknown>) {
    this.#spec = { ...this.#spec, handler };
  }
  get #init(): unknown {
    return this.#spec.init;
  }
  get #settings(): ConnectionSettings {
    return this.#spec.settings;
  }
  get #framing(): PacketFraming {
    return this.#spec.settings.framing;
  }
  get #host(): string | undefined {
    return this.#spec.host;
  }
  get #port(): number | undefined {
    return this.#spec.port;
  }
  /** Whether this side accepted the connection. */
  get isServer(): boolean {
    return this.#spec.isServer;
  }

  // Fields kept in `#x`: reading never allocates; writing allocates unless it writes the default.
  get #mbHead(): number {
    return this.#x?.mbHead ?? 0;
  }
  set #mbHead(head: number) {
    if (head !== 0 || this.#x !== undefined) this.#ext().mbHead = head;
  }
  get #streamDecoder(): TextDecoder | undefined {
    return this.#x?.streamDecoder;
  }
  set #streamDecoder(decoder: TextDecoder | undefined) {
    this.#ext().streamDecoder = decoder;
  }
  get #length(): number {
    return this.#x?.length ?? 0;
  }
  set #length(length: number) {
    if (length !== 0 || this.#x !== undefined) this.#ext().length = length;
  }
  get #corkList(): Uint8Array[] | undefined {
    return this.#x?.corkList;
  }
  set #corkList(list: Uint8Array[] | undefined) {
    if (list !== undefined || this.#x !== undefined) this.#ext().corkList = list;
  }
  get #pendingUpgrade(): Transport | undefined {
    return this.#x?.pendingUpgrade;
  }
  set #pendingUpgrade(transport: Transport | undefined) {
    if (transport !== undefined || this.#x !== undefined) this.#ext().pendingUpgrade = transport;
  }
  get #sendTimer(): Timer | undefined {
    return this.#x?.sendTimer;
  }
  set #sendTimer(timer: Timer | undefined) {
    if (timer !== undefined || this.#x !== undefined) this.#ext().sendTimer = timer;
  }
  get #timeoutMs(): number {
    return this.#x?.timeoutMs ?? Number.POSITIVE_INFINITY;
  }
  set #timeoutMs(ms: number) {
    if (ms !== Number.POSITIVE_INFINITY || this.#x !== undefined) this.#ext().timeoutMs = ms;
  }
  get #timer(): Timer | undefined {
    return this.#x?.timer;
  }
  set #timer(timer: Timer | undefined) {
    if (timer !== undefined || this.#x !== undefined) this.#ext().timer = timer;
  }
  get #lastEventAt(): number {
    return this.#x?.lastEventAt ?? 0;
  }
  set #lastEventAt(at: number) {
    this.#ext().lastEventAt = at;
  }
  get #srtimeoutMs(): number {
    return this.#x?.srtimeoutMs ?? Number.POSITIVE_INFINITY;
  }
  set #srtimeoutMs(ms: number) {
    if (ms !== Number.POSITIVE_INFINITY || this.#x !== undefined) this.#ext().srtimeoutMs = ms;
  }
  get #srTimer(): Timer | undefined {
    return this.#x?.srTimer;
  }
  set #srTimer(timer: Timer | undefined) {
    if (timer !== undefined || this.#x !== undefined) this.#ext().srTimer = timer;
  }
  get #handshakeTimer(): Timer | undefined {
    return this.#x?.handshakeTimer;
  }
  set #handshakeTimer(timer: Timer | undefined) {
    if (timer !== undefined || this.#x !== undefined) this.#ext().handshakeTimer = timer;
  }
  get #closeTimer(): Timer | undefined {
    return this.#x?.closeTimer;
  }
  set #closeTimer(timer: Timer | undefined) {
    if (timer !== undefined || this.#x !== undefined) this.#ext().closeTimer = timer;
  }
  get #currentFrom(): CallFrom | undefined {
    return this.#x?.currentFrom;
  }
  set #currentFrom(from: CallFrom | undefined) {
    if (from !== undefined || this.#x !== undefined) this.#ext().currentFrom = from;
  }
  get #calls(): Set<CallFrom> | undefined {
    return this.#x?.calls;
  }
  set #calls(calls: Set<CallFrom> | undefined) {
    if (calls !== undefined || this.#x !== undefined) this.#ext().calls = calls;
  }
  get #lastMessage(): LastMessage | undefined {
    return this.#x?.lastMessage;
  }
  set #lastMessage(message: LastMessage | undefined) {
    if (message !== undefined || this.#x !== undefined) this.#ext().lastMessage = message;
  }
  get #exited(): Promise<ExitReason> | undefined {
    return this.#x?.exited;
  }
  set #exited(promise: Promise<ExitReason> | undefined) {
    if (promise !== undefined || this.#x !== undefined) this.#ext().exited = promise;
  }
  get #resolveExited(): ((reason: ExitReason) => void) | undefined {
    return this.#x?.resolveExited;
  }
  set #resolveExited(resolve: ((reason: ExitReason) => void) | undefined) {
    if (resolve !== undefined || this.#x !== undefined) this.#ext().resolveExited = resolve;
  }
  get #stopWaiters(): (() => void)[] | undefined {
    return this.#x?.stopWaiters;
  }
  set #stopWaiters(waiters: (() => void)[] | undefined) {
    if (waiters !== undefined || this.#x !== undefined) this.#ext().stopWaiters = waiters;
  }
  get #onStarted(): ((ok: boolean, reason: ExitReason) => void) | undefined {
    return this.#x?.onStarted;
  }
  set #onStarted(callback: ((ok: boolean, reason: ExitReason) => void) | undefined) {
    if (callback !== undefined || this.#x !== undefined) this.#ext().onStarted = callback;
  }

  // ---------------------------------------------------------------- Bun socket events

  /** The handler table every transport reports to; dispatches through `socket.data`. */
  static readonly EVENTS: TransportEvents = {
    open(socket) {
      const conn = socket.data;
      if (conn instanceof ConnectionProcess) conn.#onOpen(socket);
    },
    data(socket, chunk) {
      (socket.data as ConnectionProcess).#onData(chunk);
    },
    drain(socket) {
      (socket.data as ConnectionProcess).#onDrain();
    },
    end(socket) {
      (socket.data as ConnectionProcess).#onEnd();
    },
    close(socket, error) {
      const conn = socket.data;
      if (conn instanceof ConnectionProcess) conn.#onClose(socket, error);
    },
    error(socket, error) {
      const conn = socket.data;
      if (conn instanceof ConnectionProcess) conn.#onError(error);
    },
    handshake(socket, success, authorizationError) {
      (socket.data as ConnectionProcess).#onHandshake(socket, success, authorizationError);
    },
  };

  /** Attaches an accepted or connected socket; the connection starts unless `hold` (sleeping acceptor). */
  attach(socket: TransportSocket, hold: boolean): void {
    this.#socket = socket;
    socket.data = this;
    const s = this.#settings;
    if (s.noDelay === false) socket.setNoDelay?.(false);
    if (s.keepAlive !== undefined && s.keepAlive !== false) {
      socket.setKeepAlive?.(true, s.keepAlive === true ? 0 : s.keepAlive);
    }
    if (this.#transport.secure) {
      this.#writeHeld = true;
      // A held connection's handshake waits with it: its timer starts on release.
      if (!hold) this.#armHandshakeTimer();
    }
    if (hold) this.#setPause(P_HELD, true);
    else if (!this.#transport.secure) this.#start();
  }

  /** Serves a connection held by a sleeping acceptor. */
  release(): void {
    if (this.#phase !== STARTING) return;
    this.#setPause(P_HELD, false);
    if (!this.#writeHeld) this.#start();
    else if (this.#handshakeTimer === undefined) this.#armHandshakeTimer();
  }

  #onOpen(socket: TransportSocket): void {
    if (this.#phase === DEAD || this.#phase === EXITING) {
      // A connect that completed after we gave up on it (connect timeout, stop).
      socket.terminate();
      return;
    }
    if (this.#socket !== undefined) return; // Bun may call open after the connect promise resolved
    this.attach(socket, false);
  }

  /** Whether a socket is attached. */
  get attached(): boolean {
    return this.#socket !== undefined;
  }

  /** For transports whose connect promise resolves without calling `open`. */
  attachSocket(socket: TransportSocket): void {
    this.#onOpen(socket);
  }

  /** For connectors: called once `init` has completed (ok) or the start failed. */
  onStarted(callback: (ok: boolean, reason: ExitReason) => void): void {
    this.#onStarted = callback;
  }

  #onData(chunk: Uint8Array): void {
    // Fast path: idle, active, raw bytes, nothing buffered.
    if (this.#gate === 0 && this.#rawActive && this.#decoder === undefined) {
      this.#dispatchPacket(chunk);
      if (this.#gate === 0 && this.#mailbox !== undefined) this.#run();
      return;
    }
    if (this.#phase >= EXITING) return; // closing: what the peer sends now is discarded
    let decoder = this.#decoder;
    if (decoder === undefined)
      decoder = this.#decoder = new FrameDecoder("raw", this.#settings.maxPacketSize);
    decoder.push(chunk);
    if (this.#gate === 0) this.#run();
    else this.#setPause(P_BACKLOG, true);
  }

  #onDrain(): void {
    const out = this.#out;
    const socket = this.#socket;
    if (out === undefined || out.empty || this.#writeHeld || socket === undefined) return; // spurious drain
    const before = out.flushed;
    const result = out.flush(socket);
    this.#afterFlush(result, out.flushed !== before);
  }

  #afterFlush(result: number, progressed: boolean): void {
    const out = this.#out!;
    if (result === FLUSH_CLOSED) {
      this.#socketGone();
      return;
    }
    if (result === FLUSH_EMPTY) {
      if (this.#sendTimer !== undefined) {
        clearTimeout(this.#sendTimer);
        this.#sendTimer = undefined;
      }
      if (this.#pendingUpgrade !== undefined && this.#phase === RUNNING) this.#doUpgrade();
      else if (this.#phase === DEAD && !this.#socketClosed) this.#finishClose();
    } else if (progressed && this.#sendTimer !== undefined) this.#sendTimer.refresh();
    if ((this.#pause & P_HWM) !== 0 && out.bytes <= this.#settings.highWaterMark / 2) {
      this.#setPause(P_HWM, false);
      // Packets left buffered while above highWaterMark are handled now.
      if (this.#gate === 0 && this.#phase === RUNNING) this.#run();
    }
  }

  #onEnd(): void {
    this.#peerEnded = true;
    if (this.#phase === DEAD) {
      // We half-closed and were waiting for the peer's FIN.
      if (this.#out === undefined || this.#out.empty) this.#socket?.end();
      return;
    }
    this.#queueDisconnect();
  }

  #onClose(socket: TransportSocket, error: Error | undefined): void {
    if (socket !== this.#socket) return; // a stale socket (the raw twin of a TLS upgrade)
    this.#socketClosed = true;
    this.#peerEnded = true;
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    if (this.#sendTimer !== undefined) clearTimeout(this.#sendTimer);
    this.#out?.fail(new SocketSendError("closed", error));
    if ((this.#pause & P_HWM) !== 0) this.#setPause(P_HWM, false); // the queue is gone
    if (this.#phase === STARTING && !this.#started && (this.#gate & G_BUSY) === 0) {
      // Gone before init ran (TLS handshake failed, held by a sleeping acceptor, reset early).
      this.#exit(
        this.#transport.secure && this.#writeHeld
          ? new TlsHandshakeError("connection closed", error)
          : "normal",
      );
      return;
    }
    this.#queueDisconnect();
  }

  #onError(error: Error): void {
    // TLS protocol errors arrive here; the close event follows. Before the handshake it is a handshake failure.
    if (this.#phase === STARTING && this.#writeHeld && this.#transport.secure) {
      this.#exit(new TlsHandshakeError(error.message, error));
    }
  }

  #onHandshake(socket: TransportSocket, success: boolean, authorizationError: Error | null): void {
    if (socket !== this.#socket || this.#phase >= EXITING) return;
    if (this.#handshakeTimer !== undefined) {
      clearTimeout(this.#handshakeTimer);
      this.#handshakeTimer = undefined;
    }
    // A transport's handshakeError is the verdict (Bun's `success` is false for an ignored verification
    // failure under rejectUnauthorized: false, and true for an untrusted client certificate).
    const transport = this.#transport;
    const failure =
      transport.handshakeError !== undefined
        ? transport.handshakeError(socket, success, authorizationError, this.isServer)
        : success
          ? undefined
          : new TlsHandshakeError(authorizationError?.message ?? "handshake failed", authorizationError);
    if (failure !== undefined) {
      this.#exit(failure);
      return;
    }
    if (this.#dbg !== undefined) this.#trace(`finished TLS handshake (${socket.alpnProtocol || "no ALPN"})`);
    this.#writeHeld = false;
    if (this.#phase === STARTING) {
      if ((this.#pause & P_HELD) === 0) this.#start();
    } else this.#flushQueue();
  }

  #armHandshakeTimer(): void {
    const ms = this.#settings.handshakeTimeout;
    if (ms === Number.POSITIVE_INFINITY) return;
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = undefined;
      if (this.#writeHeld && this.#phase < EXITING) this.#exit(new HandshakeTimeoutError(ms));
    }, ms);
  }

  // ---------------------------------------------------------------- starting

  #start(): void {
    if (this.#phase !== STARTING || (this.#gate & G_BUSY) !== 0) return;
    this.#gate = G_BUSY; // init runs; everything else queues
    this.#lastCallback = CB_INIT;
    let result: unknown;
    try {
      result = this.#handler.init(this.#init, this);
    } catch (error) {
      this.#startFailed(new CallbackError("init", error));
      return;
    }
    if (isThenable(result)) {
      // Promise.resolve: a thenable whose `then` throws becomes a rejection instead of escaping.
      Promise.resolve(result).then(
        (value) => this.#initDone(value),
        (error) => this.#startFailed(new CallbackError("init", error)),
      );
    } else this.#initDone(result);
  }

  #initDone(result: unknown): void {
    if (this.#phase !== STARTING) return;
    if (result === "ignore") {
      this.#ignored = true;
      this.#exit("normal", true);
      return;
    }
    this.#corked = true;
    const outcome = this.#apply(result, CB_INIT);
    this.#uncork();
    if (outcome !== true) {
      this.#startFailed(outcome === false ? "normal" : outcome.reason);
      return;
    }
    this.#phase = RUNNING;
    this.#started = true;
    this.#gate &= ~(G_BUSY | G_NOT_RUNNING);
    this.#owner?.childStarted?.(this);
    const onStarted = this.#onStarted;
    this.#onStarted = undefined;
    onStarted?.(true, undefined);
    this.#eventDone();
    if (this.#phase === RUNNING) this.#run();
  }

  #startFailed(reason: ExitReason): void {
    this.#exit(reason);
  }

  // ---------------------------------------------------------------- the run loop

  /** Dispatches buffered packets, then queued events, until a callback goes async or nothing is left. */
  #run(): void {
    while (this.#gate === 0) {
      const decoder = this.#decoder;
      if (decoder !== undefined && decoder.buffered > 0 && !this.#eventFirst()) {
        if ((this.#pause & P_HWM) !== 0) {
          // Above highWaterMark, buffered packets wait for the peer to read: each may be answered, and
          // one chunk can hold thousands of small frames (the queue would grow without bound). A
          // disconnect waits behind them; other events go on.
          const mailbox = this.#mailbox;
          if (mailbox === undefined || mailbox[this.#mbHead]!.kind === E_DISCONNECT) break;
        } else {
          let frame: Uint8Array | undefined;
          try {
            frame = this.#passive && this.#framing === "raw" ? decoder.take(this.#length) : decoder.next();
          } catch (error) {
            this.#exit(error);
            return;
          }
          if (frame !== undefined) {
            if (this.#decoder === decoder && decoder.buffered === 0 && this.#framing === "raw") {
              this.#decoder = undefined; // back to the fast path
            }
            this.#flag(F_EVENT_TURN, this.#passive);
            this.#dispatchPacket(frame);
            continue;
          }
        }
      }
      this.#flags &= ~F_EVENT_TURN;
      const mailbox = this.#mailbox;
      if (mailbox === undefined) break;
      const head = this.#mbHead;
      const event = mailbox[head]!;
      if (head + 1 === mailbox.length) {
        // Emptied: a one-event mailbox (the common case) never touches the extras.
        this.#mailbox = undefined;
        if (head !== 0) this.#mbHead = 0;
      } else this.#mbHead = head + 1;
      this.#dispatchEvent(event);
    }
    if (this.#gate === 0) this.#idle();
  }

  /**
   * Whether the next mailbox event goes before the buffered bytes: a stop (server shutdown) always
   * does; in passive mode one event goes between reads (SockErl's loop), so a backlog handled by a slow
   * handler never starves calls, casts and timeouts. A disconnect always waits for the buffered bytes.
   */
  #eventFirst(): boolean {
    const mailbox = this.#mailbox;
    if (mailbox === undefined) return false;
    const kind = mailbox[this.#mbHead]!.kind;
    return kind === E_STOP || ((this.#flags & F_EVENT_TURN) !== 0 && kind !== E_DISCONNECT);
  }

  /** Nothing left to do: read again, and arm the passive receive timeout. */
  #idle(): void {
    if ((this.#pause & P_BACKLOG) !== 0) this.#setPause(P_BACKLOG, false);
    if (this.#passive && this.#srtimeoutMs !== Number.POSITIVE_INFINITY && this.#srTimer === undefined) {
      this.#srTimer = setTimeout(() => this.#onSrTimer(), this.#srtimeoutMs);
    }
  }

  #post(kind: number, value: unknown, extra: unknown): void {
    const event = new MailboxEvent(kind, value, extra);
    const mailbox = this.#mailbox;
    if (mailbox !== undefined) mailbox.push(event);
    else if (this.#gate === 0 && (this.#decoder === undefined || this.#decoder.buffered === 0)) {
      // Idle with nothing queued or buffered: handle it now, as the run loop would, without a queue.
      this.#flags &= ~F_EVENT_TURN;
      this.#dispatchEvent(event);
      if (this.#gate === 0) this.#run();
      return;
    } else this.#mailbox = [event];
    if (this.#gate === 0) this.#run();
  }

  #queueDisconnect(): void {
    if (this.#disconnectQueued || this.#phase >= EXITING) return;
    this.#disconnectQueued = true;
    this.#post(E_DISCONNECT, undefined, undefined);
  }

  #dispatchPacket(frame: Uint8Array): void {
    if (this.#srTimer !== undefined) {
      clearTimeout(this.#srTimer);
      this.#srTimer = undefined;
    }
    let packet: Packet = frame;
    if (this.#utf8) {
      if (this.#framing === "raw") {
        packet = (this.#streamDecoder ??= new TextDecoder()).decode(frame, { stream: true });
        if (packet === "") return; // only part of a character so far: no empty packet
      } else packet = textDecoder.decode(frame);
    }
    const dbg = this.#dbg;
    if (dbg !== undefined) {
      if (dbg.counters !== undefined) {
        dbg.counters.packetsIn++;
        dbg.counters.bytesIn += frame.length;
      }
      if (dbg.log !== undefined || dbg.trace) this.#trace(`got packet ${formatTerm(packet)}`);
    }
    this.#gate |= G_BUSY;
    this.#lastCallback = CB_PACKET;
    let result: unknown;
    try {
      result = this.#handler.handlePacket(packet, this.#state, this);
    } catch (error) {
      this.#callbackFailed(CB_PACKET, error);
      return;
    }
    this.#settle(result, CB_PACKET);
  }

  #dispatchEvent(event: MailboxEvent): void {
    const handler = this.#handler;
    let callback = 0;
    let result: unknown;
    this.#gate |= G_BUSY;
    try {
      switch (event.kind) {
        case E_CALL: {
          const from = event.extra as CallFrom;
          if (!from.pending) {
            this.#eventDone();
            return;
          }
          this.#lastMessage = { type: "call", value: event.value };
          if (this.#dbg !== undefined) {
            if (this.#dbg.counters !== undefined) this.#dbg.counters.calls++;
            this.#trace(`got call ${formatTerm(event.value)} from <call ${from.tag}>`);
          }
          callback = CB_CALL;
          this.#currentFrom = from;
          if (handler.handleCall === undefined) {
            this.#currentFrom = undefined;
            this.#callbackFailed(CB_CALL, new Error("handler has no handleCall"));
            return;
          }
          result = handler.handleCall(event.value, from, this.#state, this);
          break;
        }
        case E_CAST:
          this.#lastMessage = { type: "cast", value: event.value };
          if (this.#dbg !== undefined) {
            if (this.#dbg.counters !== undefined) this.#dbg.counters.casts++;
            this.#trace(`got cast ${formatTerm(event.value)}`);
          }
          callback = CB_CAST;
          if (handler.handleCast === undefined) {
            this.#callbackFailed(CB_CAST, new Error("handler has no handleCast"));
            return;
          }
          result = handler.handleCast(event.value, this.#state, this);
          break;
        case E_EVENT:
          this.#lastMessage = { type: "event", value: event.value };
          if (this.#dbg !== undefined) this.#trace(`got event ${formatTerm(event.value)}`);
          callback = CB_EVENT;
          if (handler.handleEvent === undefined) {
            this.#callbackFailed(CB_EVENT, new Error("handler has no handleEvent"));
            return;
          }
          result = handler.handleEvent(event.value, this.#state, this);
          break;
        case E_SEND_SYNC: {
          const from = event.extra as SendSyncRequest;
          this.#lastMessage = { type: "send", value: event.value };
          if (this.#dbg !== undefined) {
            this.#trace(
              `got synchronous request for sending packet ${formatTerm(event.value)} from <call ${from.tag}>`,
            );
          }
          this.#corked = true;
          const error = this.#sendChecked(event.value);
          this.#uncork();
          if (error !== undefined) {
            from.reject(error);
            this.#exit(error);
            return;
          }
          this.#whenFlushed(from);
          this.#eventDone();
          return;
        }
        case E_SEND_ASYNC: {
          this.#lastMessage = { type: "send", value: event.value };
          if (this.#dbg !== undefined) {
            this.#trace(`got asynchronous request for sending packet ${formatTerm(event.value)}`);
          }
          this.#corked = true;
          const error = this.#sendChecked(event.value);
          this.#uncork();
          if (error !== undefined) {
            this.#exit(error);
            return;
          }
          this.#eventDone();
          return;
        }
        case E_TIMEOUT:
          this.#lastMessage = { type: "timeout", value: undefined };
          if (this.#dbg !== undefined) this.#trace("got timeout");
          callback = CB_TIMEOUT;
          if (handler.timeout === undefined) {
            this.#eventDone();
            return;
          }
          result = handler.timeout(this.#state, this);
          break;
        case E_SRTIMEOUT:
          if (!this.#passive) {
            this.#eventDone();
            return;
          }
          this.#lastMessage = { type: "srtimeout", value: undefined };
          if (this.#dbg !== undefined) this.#trace("got srtimeout");
          callback = CB_SRTIMEOUT;
          if (handler.srtimeout === undefined) {
            this.#eventDone();
            return;
          }
          result = handler.srtimeout(this.#state, this);
          break;
        case E_DISCONNECT:
          this.#lastMessage = { type: "disconnect", value: undefined };
          if (this.#dbg !== undefined) this.#trace("got disconnect");
          callback = CB_DISCONNECT;
          if (handler.handleDisconnect === undefined) {
            this.#gate &= ~G_BUSY;
            this.#exit("normal");
            return;
          }
          result = handler.handleDisconnect(this.#state, this);
          break;
        case E_STOP: {
          this.#gate &= ~G_BUSY;
          this.#exit(event.value);
          return;
        }
        case E_SYS: {
          const fn = event.value as SysFn;
          const done = event.extra as SysRequest;
          let value: unknown;
          try {
            value = fn(this);
          } catch (error) {
            done.reject(error);
            this.#eventDone();
            return;
          }
          if (isThenable(value)) {
            Promise.resolve(value).then(
              (v) => {
                done.resolve(v);
                this.#asyncEventDone();
              },
              (error) => {
                done.reject(error);
                this.#asyncEventDone();
              },
            );
            return;
          }
          done.resolve(value);
          this.#eventDone();
          return;
        }
      }
    } catch (error) {
      this.#currentFrom = undefined;
      this.#callbackFailed(callback, error);
      return;
    }
    this.#lastCallback = callback;
    this.#settle(result, callback);
  }

  /** A callback returned: apply its action now, or when its promise settles. */
  #settle(result: unknown, callback: number): void {
    if (result !== undefined && isThenable(result)) {
      // Promise.resolve: a thenable whose `then` throws becomes a rejection instead of escaping.
      Promise.resolve(result).then(
        (value) => {
          if (this.#phase !== RUNNING) return;
          this.#finish(value, callback);
          if (this.#gate === 0) this.#run();
        },
        (error) => {
          if (this.#phase !== RUNNING) return;
          this.#callbackFailed(callback, error);
        },
      );
      return;
    }
    this.#finish(result, callback);
  }

  #finish(result: unknown, callback: number): void {
    this.#corked = true;
    const outcome = result === undefined ? true : this.#apply(result, callback);
    this.#uncork();
    this.#currentFrom = undefined;
    if (outcome !== true) {
      this.#gate &= ~G_BUSY;
      this.#exit(outcome === false ? "normal" : outcome.reason);
      return;
    }
    if (callback === CB_DISCONNECT) {
      this.#gate &= ~G_BUSY;
      this.#exit("normal");
      return;
    }
    this.#eventDone();
  }

  #eventDone(): void {
    this.#gate &= ~G_BUSY;
    if (this.#timeoutMs !== Number.POSITIVE_INFINITY) this.#lastEventAt = now();
  }

  #asyncEventDone(): void {
    this.#eventDone();
    if (this.#gate === 0) this.#run();
  }

  #callbackFailed(callback: number, error: unknown): void {
    this.#corked = false;
    this.#cork = undefined;
    this.#corkList = undefined;
    this.#currentFrom = undefined;
    this.#gate &= ~G_BUSY;
    const reason = new CallbackError(CALLBACK_NAMES[callback] ?? "callback", error);
    if (this.#phase === STARTING) this.#startFailed(reason);
    else this.#exit(reason);
  }

  // ---------------------------------------------------------------- actions

  /**
   * Applies an action. Returns true to go on, false for `close`, or `{ reason }` to stop (a `stop`
   * field, a bad return, a failed send).
   */
  #apply(action: unknown, callback: number): true | false | { reason: ExitReason } {
    if (action === undefined) return true;
    if (typeof action !== "object" || action === null)
      return this.#bad(callback, action, "not an action object");
    if (Array.isArray(action)) {
      for (const element of action) {
        const outcome = this.#apply(element, callback);
        if (outcome !== true) return outcome;
      }
      return true;
    }
    const a = action as ActionObject<unknown>;
    let fields = 0;
    for (const key in a) {
      switch (key) {
        case "state":
          fields |= 1;
          break;
        case "send":
          fields |= 2;
          break;
        case "reply":
          fields |= 4;
          break;
        case "timeout":
          fields |= 8;
          break;
        case "srtimeout":
          fields |= 16;
          break;
        case "length":
          fields |= 32;
          break;
        case "mode":
          fields |= 64;
          break;
        case "transport":
          fields |= 128;
          break;
        case "close":
          fields |= 256;
          break;
        case "stop":
          fields |= 512;
          break;
        default:
          return this.#bad(callback, action, `unknown action field \`${key}\``);
      }
    }
    if (fields === 0) return true;
    if ((fields & 1) !== 0) this.#state = a.state;
    if ((fields & 2) !== 0 && a.send !== undefined) {
      const error = this.#sendChecked(a.send);
      if (error !== undefined) return { reason: error };
    }
    if ((fields & ~3) === 0) return true;
    if ((fields & 4) !== 0) {
      const from = this.#currentFrom;
      if (from === undefined) return this.#bad(callback, action, "`reply` outside handleCall");
      from.reply(a.reply);
    }
    if ((fields & 8) !== 0 && a.timeout !== undefined) {
      if (!isTimeout(a.timeout))
        return this.#bad(callback, action, "`timeout` must be a number >= 0 or Infinity");
      this.#setTimeoutMs(a.timeout);
    }
    if ((fields & 16) !== 0 && a.srtimeout !== undefined) {
      if (!isTimeout(a.srtimeout)) {
        return this.#bad(callback, action, "`srtimeout` must be a number >= 0 or Infinity");
      }
      this.#srtimeoutMs = a.srtimeout;
      if (this.#srTimer !== undefined) {
        clearTimeout(this.#srTimer);
        this.#srTimer = undefined;
      }
    }
    if ((fields & 32) !== 0 && a.length !== undefined) {
      const length = a.length;
      if (!Number.isSafeInteger(length) || length < 0) {
        return this.#bad(callback, action, "`length` must be an integer >= 0");
      }
      if (length > this.#settings.maxPacketSize) {
        return this.#bad(
          callback,
          action,
          `\`length\` exceeds maxPacketSize ${this.#settings.maxPacketSize}`,
        );
      }
      this.#length = length;
    }
    if ((fields & 64) !== 0 && a.mode !== undefined) {
      if (a.mode !== "active" && a.mode !== "passive") {
        return this.#bad(callback, action, '`mode` must be "active" or "passive"');
      }
      this.#setMode(a.mode);
    }
    if ((fields & 128) !== 0 && a.transport !== undefined) {
      if (!isTransport(a.transport)) return this.#bad(callback, action, "`transport` must be a Transport");
      const error = this.#swapTransport(a.transport);
      if (error !== undefined) return { reason: error };
    }
    if ((fields & 512) !== 0) return { reason: a.stop };
    if ((fields & 256) !== 0 && a.close !== undefined && a.close !== false) {
      if (a.close !== true) return this.#bad(callback, action, "`close` must be a boolean");
      return false;
    }
    return true;
  }

  #bad(callback: number, value: unknown, detail: string): { reason: ExitReason } {
    return { reason: new BadReturnError(CALLBACK_NAMES[callback] ?? "callback", value, detail) };
  }

  #setMode(mode: ReceiveMode): void {
    const passive = mode === "passive";
    if (passive === this.#passive) return;
    this.#passive = passive;
    this.#rawActive = !passive && this.#framing === "raw" && !this.#utf8;
    if (this.#dbg !== undefined) this.#trace(`changed mode to ${mode}`);
    if (!passive && this.#srTimer !== undefined) {
      clearTimeout(this.#srTimer);
      this.#srTimer = undefined;
    }
  }

  // ---------------------------------------------------------------- timeouts

  #setTimeoutMs(ms: number): void {
    this.#timeoutMs = ms;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (ms === Number.POSITIVE_INFINITY) return;
    this.#lastEventAt = now();
    this.#timer = setTimeout(() => this.#onTimer(), ms);
  }

  /** The idle timer is re-armed lazily: events only stamp `#lastEventAt`; the timer checks it when it fires. */
  #onTimer(): void {
    this.#timer = undefined;
    const ms = this.#timeoutMs;
    if (ms === Number.POSITIVE_INFINITY || this.#phase !== RUNNING) return;
    const idleFor = now() - this.#lastEventAt;
    // Busy or suspended (sys.suspend): the connection is not idle, the timeout does not fire.
    const busy = (this.#gate & (G_BUSY | G_SUSPENDED)) !== 0;
    if (busy || idleFor < ms - 1) {
      this.#timer = setTimeout(() => this.#onTimer(), busy ? ms : ms - idleFor);
      return;
    }
    this.#timer = setTimeout(() => this.#onTimer(), ms);
    this.#lastEventAt = now();
    this.#post(E_TIMEOUT, undefined, undefined);
  }

  #onSrTimer(): void {
    this.#srTimer = undefined;
    if (this.#phase !== RUNNING || !this.#passive) return;
    this.#post(E_SRTIMEOUT, undefined, undefined);
  }

  // ---------------------------------------------------------------- writing

  /** Queues `out` for writing (framed); returns an error when it is not sendable. */
  #sendChecked(out: unknown): Error | undefined {
    if (Array.isArray(out)) {
      for (const item of out) {
        const error = this.#sendOne(item);
        if (error !== undefined) return error;
      }
      return undefined;
    }
    return this.#sendOne(out);
  }

  #sendOne(item: unknown): Error | undefined {
    let bytes: Uint8Array;
    if (item instanceof Uint8Array) bytes = item;
    else if (typeof item === "string") bytes = Buffer.from(item);
    else if (ArrayBuffer.isView(item)) bytes = new Uint8Array(item.buffer, item.byteOffset, item.byteLength);
    else if (item instanceof ArrayBuffer) bytes = new Uint8Array(item);
    else {
      return new BadReturnError(
        CALLBACK_NAMES[this.#lastCallback] ?? "send",
        item,
        "a packet must be a string, ArrayBufferView or ArrayBuffer",
      );
    }
    const size = bytes.length; // statistics count payload bytes, as bytesIn does
    if (this.#framing !== "raw") {
      try {
        bytes = encodeFrame(this.#framing, bytes, this.#settings.maxPacketSize);
      } catch (error) {
        return error as Error;
      }
    }
    const dbg = this.#dbg;
    if (dbg !== undefined) {
      if (dbg.counters !== undefined) {
        dbg.counters.packetsOut++;
        dbg.counters.bytesOut += size;
      }
      if (dbg.log !== undefined || dbg.trace) this.#trace(`sent packet ${formatTerm(item)}`);
    }
    if (this.#corked) {
      if (this.#cork === undefined) this.#cork = bytes;
      else (this.#corkList ??= [this.#cork]).push(bytes);
    } else this.#write(bytes);
    return undefined;
  }

  /** Writes what was sent during the callback, as one write. */
  #uncork(): void {
    this.#corked = false;
    const single = this.#cork;
    if (single === undefined) return;
    this.#cork = undefined;
    const list = this.#corkList;
    if (list === undefined) {
      this.#write(single);
      return;
    }
    this.#corkList = undefined;
    let size = 0;
    for (const c of list) size += c.length;
    const merged = Buffer.allocUnsafe(size);
    let at = 0;
    for (const c of list) {
      merged.set(c, at);
      at += c.length;
    }
    this.#write(merged);
  }

  #write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#pendingUpgrade !== undefined) {
      // Sent after a transport swap that waits for the plain bytes to drain: for the new transport.
      (this.#ext().afterUpgrade ??= []).push(bytes);
      return;
    }
    const socket = this.#socket;
    let out = this.#out;
    if (socket === undefined || this.#writeHeld || (out !== undefined && !out.empty)) {
      if (this.#socketClosed) return;
      (out ??= this.#out = new OutboundQueue()).push(bytes);
      this.#queued(out);
      return;
    }
    const n = socket.write(bytes);
    if (n === bytes.length) return;
    if (n < 0) {
      this.#socketGone();
      return;
    }
    out ??= this.#out = new OutboundQueue();
    out.enqueued += n;
    out.flushed += n;
    out.push(n === 0 ? bytes : bytes.subarray(n));
    this.#queued(out);
  }

  /**
   * A write returned -1: the socket is gone (the peer reset it). Bun reports the close only while it
   * reads, and a paused socket (highWaterMark, passive backlog, held) does not: a connection would wait
   * for a close event that never comes, its queue held forever. Close it now (the close event follows).
   */
  #socketGone(): void {
    if (!this.#socketClosed) this.#socket?.terminate();
  }

  #queued(out: OutboundQueue): void {
    if (out.bytes > this.#settings.highWaterMark && (this.#pause & P_HWM) === 0) this.#setPause(P_HWM, true);
    const ms = this.#settings.sendTimeout;
    if (ms !== Number.POSITIVE_INFINITY && this.#sendTimer === undefined && !this.#writeHeld) {
      this.#sendTimer = setTimeout(() => {
        this.#sendTimer = undefined;
        const q = this.#out;
        if (q === undefined || q.empty) return;
        const error = new SendTimeoutError(ms, q.bytes);
        if (this.#phase === RUNNING || this.#phase === STARTING) this.#exit(error);
        // Dropped: flushing to a peer that does not read would only hold the socket for closeTimeout more.
        this.#abort();
      }, ms);
    }
  }

  #flushQueue(): void {
    const out = this.#out;
    const socket = this.#socket;
    if (out === undefined || out.empty || socket === undefined || this.#writeHeld) {
      if (this.#phase === DEAD && !this.#socketClosed && (out === undefined || out.empty))
        this.#finishClose();
      return;
    }
    const before = out.flushed;
    this.#afterFlush(out.flush(socket), out.flushed !== before);
  }

  #whenFlushed(request: SendSyncRequest): void {
    const out = this.#out;
    if (out === undefined) request.resolve();
    else out.waitFlushed(request.resolve, request.reject);
  }

  // ---------------------------------------------------------------- transport swap (STARTTLS)

  #swapTransport(next: Transport): Error | undefined {
    if (next.upgrade === undefined) {
      return new BadReturnError("transport", next, `transport ${next.name} cannot upgrade a live connection`);
    }
    if (this.#socket === undefined) return new BadReturnError("transport", next, "no socket to upgrade");
    // Plain bytes sent before the swap go out first, in plain text.
    this.#uncork();
    this.#corked = true;
    if (this.#out === undefined || this.#out.empty || this.#writeHeld) {
      this.#pendingUpgrade = next;
      this.#doUpgrade();
    } else {
      // Plain bytes are still queued: flush them first (drain), then upgrade. Until then no
      // packet is dispatched (bytes behind the command belong to the new transport).
      this.#pendingUpgrade = next;
      this.#gate |= G_UPGRADING;
    }
    return undefined;
  }

  #doUpgrade(): void {
    const next = this.#pendingUpgrade!;
    this.#pendingUpgrade = undefined;
    const old = this.#socket!;
    // Bytes sent behind the swap: queued for the new transport (held until its handshake).
    const x = this.#x;
    const after = x?.afterUpgrade;
    if (x !== undefined) x.afterUpgrade = undefined;
    const held = this.#out?.takeAll();
    const rest =
      this.#decoder !== undefined && this.#decoder.buffered > 0 ? this.#decoder.drain() : undefined;
    if (this.#framing === "raw") this.#decoder = undefined;
    let socket: TransportSocket;
    // Detach the old socket *before* the upgrade: Bun's upgradeTLS returns [raw, tls], and the raw
    // twin copies the old socket's `data` at that moment and keeps receiving the ciphertext.
    old.data = DETACHED;
    try {
      socket = next.upgrade!(old, {
        isServer: this.isServer,
        events: ConnectionProcess.EVENTS,
        data: this,
        initialData: rest,
      });
    } catch (error) {
      old.data = this;
      this.#exit(new TlsHandshakeError(`upgrade to ${next.name} failed`, error));
      return;
    }
    this.#socket = socket;
    socket.data = this;
    this.#transport = next;
    if (this.#dbg !== undefined) this.#trace(`transport swapped to ${next.name}`);
    if (held !== undefined || after !== undefined) {
      const out = (this.#out ??= new OutboundQueue());
      if (held !== undefined) out.push(held);
      if (after !== undefined) for (const bytes of after) out.push(bytes);
    }
    if (next.secure) {
      this.#writeHeld = true;
      this.#armHandshakeTimer();
    } else {
      this.#writeHeld = false;
      this.#flushQueue();
    }
    if ((this.#gate & G_UPGRADING) !== 0) {
      this.#gate &= ~G_UPGRADING;
      if (this.#gate === 0) this.#run();
    }
  }

  // ---------------------------------------------------------------- flow control

  #setPause(bit: number, on: boolean): void {
    this.#pause = on ? this.#pause | bit : this.#pause & ~bit;
    const paused = this.#pause !== 0;
    if (paused === this.#paused) return;
    this.#paused = paused;
    const socket = this.#socket;
    if (socket === undefined || this.#socketClosed) return;
    if (paused) socket.pause();
    else socket.resume();
  }

  // ---------------------------------------------------------------- exit

  /** Ends the process: leave the list, run `terminate`, report, let the owner decide, close the socket. */
  #exit(reason: ExitReason, quiet = false): void {
    if (this.#phase >= EXITING) return;
    const started = this.#started;
    this.#phase = EXITING;
    this.#gate |= G_NOT_RUNNING;
    this.#exitReason = reason;
    this.#clearTimers();
    this.#owner?.childLeaving(this);
    if (this.#dbg !== undefined) this.#trace(`terminating with reason ${describeReason(reason)}`);
    const terminate = started && !quiet ? this.#handler.terminate : undefined;
    if (terminate !== undefined) {
      this.#corked = false;
      let result: unknown;
      try {
        result = terminate.call(this.#handler, reason, this.#state, this);
      } catch (error) {
        this.#exited2(reason, started, quiet, error);
        return;
      }
      if (isThenable(result)) {
        Promise.resolve(result).then(
          () => this.#exited2(reason, started, quiet, undefined),
          (error) => this.#exited2(reason, started, quiet, error),
        );
        return;
      }
    }
    this.#exited2(reason, started, quiet, undefined);
  }

  #exited2(reason: ExitReason, started: boolean, quiet: boolean, terminateError: unknown): void {
    this.#phase = DEAD;
    this.#uncork();
    const finalReason =
      terminateError === undefined ? reason : new CallbackError("terminate", terminateError);
    // A connection that never started (TLS handshake failed, peer gone, held and stopped) is not
    // reported: the acceptor traces it, a connector's start rejects with it. A handler bug in init is.
    const report = started
      ? isAbnormal(finalReason)
      : finalReason instanceof CallbackError || finalReason instanceof BadReturnError;
    if (!quiet && report) {
      emit(
        `** Sockerl connector <${this.id}> terminating\n** Reason for termination == ${describeReason(finalReason)}\n** State == ${formatTerm(this.#state)}`,
      );
      // With the `log` option, the last events follow the report (Erlang's sys:print_log).
      if (this.#dbg?.log !== undefined) for (const line of this.#dbg.logLines()) emit(line);
    }
    // Whatever is still queued will never be handled.
    const mailbox = this.#mailbox;
    this.#mailbox = undefined;
    if (mailbox !== undefined) {
      for (let i = this.#mbHead; i < mailbox.length; i++) this.#dropEvent(mailbox[i]!);
    }
    if (this.#calls !== undefined) for (const from of [...this.#calls]) from.fail(new NoProcError(this.id));
    this.#exitReason = finalReason;
    this.#resolveExited?.(finalReason);
    const waiters = this.#stopWaiters;
    this.#stopWaiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w();
    const onStarted = this.#onStarted;
    this.#onStarted = undefined;
    onStarted?.(false, finalReason);
    this.#owner?.childExited(this, finalReason, started);
    this.#closeSocket();
  }

  #dropEvent(event: MailboxEvent): void {
    switch (event.kind) {
      case E_CALL:
        (event.extra as CallFrom).fail(new NoProcError(this.id));
        break;
      case E_SEND_SYNC:
        (event.extra as SendSyncRequest).reject(new SocketSendError("noproc"));
        break;
      case E_STOP:
        break;
      case E_SYS:
        (event.extra as SysRequest).reject(new NoProcError(this.id));
        break;
    }
  }

  #clearTimers(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#srTimer !== undefined) clearTimeout(this.#srTimer);
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer);
    this.#timer = this.#srTimer = this.#handshakeTimer = undefined;
    this.#timeoutMs = Number.POSITIVE_INFINITY;
  }

  /** Graceful close: flush the queue, then FIN (half-close if the peer may still talk), then close. */
  #closeSocket(): void {
    const socket = this.#socket;
    if (socket === undefined || this.#socketClosed) return;
    this.#setPause(P_HELD | P_SUSPENDED | P_BACKLOG | P_HWM, false);
    const out = this.#out;
    if (out !== undefined && !out.empty && !this.#writeHeld) {
      // Flushing continues from drain; bounded by closeTimeout.
      this.#armCloseTimer();
      return;
    }
    this.#finishClose();
  }

  #finishClose(): void {
    const socket = this.#socket;
    if (socket === undefined || this.#socketClosed) return;
    if (this.#peerEnded || this.#writeHeld) {
      socket.end();
      return;
    }
    // The peer may still be sending: end() would close with unread data and reset the connection,
    // losing what we sent. Half-close, keep reading (and discarding) until the peer's FIN.
    socket.shutdown();
    this.#armCloseTimer();
  }

  #armCloseTimer(): void {
    if (this.#closeTimer !== undefined) return;
    this.#closeTimer = setTimeout(() => {
      this.#closeTimer = undefined;
      this.#abort();
    }, this.#settings.closeTimeout);
  }

  /** Closes at once (RST). */
  #abort(): void {
    if (this.#socketClosed) return;
    const socket = this.#socket;
    if (socket !== undefined) socket.terminate();
  }

  // ---------------------------------------------------------------- the public handle

  call(request: unknown, timeoutMs = 5000): Promise<unknown> {
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      return Promise.reject(new ArgumentError("timeoutMs", "a number >= 0 or Infinity", timeoutMs));
    }
    if (this.#phase >= EXITING) return Promise.reject(new NoProcError(this.id));
    return new Promise((resolve, reject) => {
      const from = new CallFrom(this, resolve, reject, timeoutMs, nextCallTag++);
      (this.#calls ??= new Set()).add(from);
      this.#post(E_CALL, request, from);
    });
  }

  cast(message: unknown): void {
    if (this.#phase < EXITING) this.#post(E_CAST, message, undefined);
  }

  notify(event: unknown): void {
    if (this.#phase < EXITING) this.#post(E_EVENT, event, undefined);
  }

  sendSync(packet: Outgoing): Promise<void> {
    if (!isOutgoing(packet)) return Promise.reject(new ArgumentError("packet", PACKET_RULE, packet));
    if (this.#phase >= EXITING) return Promise.reject(new NoProcError(this.id));
    return new Promise((resolve, reject) => {
      const request: SendSyncRequest = {
        tag: nextCallTag++,
        resolve: () => {
          if (this.#dbg !== undefined) this.#trace(`sent ok to <call ${request.tag}>`);
          resolve();
        },
        reject,
      };
      this.#post(E_SEND_SYNC, packet, request);
    });
  }

  sendAsync(packet: Outgoing): void {
    // A bad packet is the caller's mistake: it must not end the connection (as a failed send does).
    if (!isOutgoing(packet)) throw new ArgumentError("packet", PACKET_RULE, packet);
    if (this.#phase < EXITING) this.#post(E_SEND_ASYNC, packet, undefined);
  }

  stop(reason: ExitReason = "normal"): Promise<void> {
    if (this.#phase >= DEAD) return Promise.resolve();
    return new Promise((resolve) => {
      (this.#stopWaiters ??= []).push(resolve);
      if (this.#phase === EXITING) return;
      if (this.#phase === STARTING && (this.#gate & G_BUSY) === 0) {
        this.#exit(reason);
        return;
      }
      this.#post(E_STOP, reason, undefined);
    });
  }

  /** Ends the connection now, whatever it is doing (server or pool shutdown): `terminate(reason)` runs. */
  shutdown(reason: ExitReason): Promise<void> {
    if (this.#phase >= DEAD) return Promise.resolve();
    return new Promise((resolve) => {
      (this.#stopWaiters ??= []).push(resolve);
      if (this.#phase === EXITING) return;
      if ((this.#gate & G_BUSY) !== 0 && this.#phase === RUNNING) {
        // A callback is pending: stop as soon as it settles, before anything else queued; a callback
        // that never settles is abandoned after closeTimeout (Director's terminate timeout).
        (this.#mailbox ??= []).splice(this.#mbHead, 0, new MailboxEvent(E_STOP, reason, undefined));
        const timer = setTimeout(() => {
          if (this.#phase !== RUNNING) return;
          this.#gate &= ~G_BUSY;
          this.#exit(reason);
        }, this.#settings.closeTimeout);
        (this.#stopWaiters ??= []).push(() => clearTimeout(timer));
        return;
      }
      this.#exit(reason);
    });
  }

  /** A draining server or pool tells its children with `handleEvent("shutdown")` (if they have one). */
  noticeShutdown(): void {
    if (this.#phase < EXITING && this.#handler.handleEvent !== undefined) this.notify("shutdown");
  }

  get exited(): Promise<ExitReason> {
    if (this.#exited === undefined) {
      if (this.#phase === DEAD) this.#exited = Promise.resolve(this.#exitReason);
      else this.#exited = new Promise((resolve) => (this.#resolveExited = resolve));
    }
    return this.#exited;
  }

  /** Marks this process dead without any exit work (the sentinel for detached sockets). */
  detach(): void {
    this.#phase = DEAD;
    this.#gate = G_NOT_RUNNING;
  }

  /** Whether `init` returned "ignore". */
  get ignored(): boolean {
    return this.#ignored;
  }

  /** Whether the process is still running (or starting). */
  get alive(): boolean {
    return this.#phase < EXITING;
  }

  /** Whether `init` has completed. */
  get started(): boolean {
    return this.#started;
  }

  // ---------------------------------------------------------------- Meta

  get connection(): Connection {
    return this;
  }
  get transport(): string {
    return this.#transport.name;
  }
  get secure(): boolean {
    return this.#transport.secure;
  }
  get timeout(): number {
    return this.#timeoutMs;
  }
  get srtimeout(): number {
    return this.#srtimeoutMs;
  }
  get length(): number {
    return this.#length;
  }
  get mode(): ReceiveMode {
    return this.#passive ? "passive" : "active";
  }
  get options(): Readonly<Record<string, unknown>> {
    return this.#settings.options;
  }
  get lastMessage(): LastMessage | undefined {
    return this.#lastMessage;
  }
  get lastCallback(): string | undefined {
    return CALLBACK_NAMES[this.#lastCallback];
  }
  get remoteAddress(): string | undefined {
    return this.#socket?.remoteAddress ?? this.#host;
  }
  get remotePort(): number | undefined {
    return this.#socket?.remotePort ?? this.#port;
  }
  get localPort(): number | undefined {
    return this.#socket?.localPort;
  }
  get alpnProtocol(): string | undefined {
    const alpn = this.#socket?.alpnProtocol;
    return typeof alpn === "string" ? alpn : undefined;
  }
  get peerCertificate(): unknown {
    if (!this.#transport.secure) return undefined;
    return this.#socket?.getPeerCertificate?.();
  }
  get state(): unknown {
    return this.#state;
  }

  send(packet: Outgoing): void {
    if (this.#socket === undefined || this.#socketClosed) return;
    const error = this.#sendChecked(packet);
    if (error !== undefined) throw error;
  }

  // ---------------------------------------------------------------- internals for the server, pool and sys

  /** The handler in use (changed by `sys.changeCode`). */
  get handler(): Handler<unknown, unknown> {
    return this.#handler;
  }

  /** The exit reason once ended. */
  get exitReason(): ExitReason {
    return this.#exitReason;
  }

  /** Runs `fn` in order with the connection's other events (sys requests). */
  sys<T>(fn: (conn: ConnectionProcess) => T | Promise<T>): Promise<T> {
    if (this.#phase >= EXITING) return Promise.reject(new NoProcError(this.id));
    return new Promise<T>((resolve, reject) => {
      const request: SysRequest = { resolve: resolve as (value: unknown) => void, reject };
      // As in Erlang, a suspended process still serves system requests (replaceState, changeCode).
      if (this.#gate === G_SUSPENDED) this.#dispatchEvent(new MailboxEvent(E_SYS, fn, request));
      else this.#post(E_SYS, fn, request);
    });
  }

  /** sys.replaceState. */
  replaceStateNow(fn: (state: unknown) => unknown): unknown {
    this.#state = fn(this.#state);
    return this.#state;
  }

  /**
   * sys.changeCode on a connection whose `init` has not begun (held by a sleeping acceptor, in its TLS
   * handshake, connecting): it will start with `handler`, and there is no state to migrate. Returns
   * false once `init` has begun (then use {@link changeCodeNow} through {@link sys}).
   */
  swapHandlerBeforeStart(handler: Handler<unknown, unknown>): boolean {
    if (this.#phase !== STARTING || (this.#gate & G_BUSY) !== 0) return false;
    this.#handler = handler;
    return true;
  }

  /** sys.changeCode: swap the handler and run `codeChange` (inside a sys request). */
  async changeCodeNow(handler: Handler<unknown, unknown>, oldVsn: unknown, extra: unknown): Promise<void> {
    // A codeChange that throws leaves the old handler and state in place.
    const state =
      handler.codeChange === undefined ? this.#state : await handler.codeChange(oldVsn, this.#state, extra);
    this.#handler = handler;
    this.#state = state;
  }

  /** sys.suspend / sys.resume. */
  setSuspended(on: boolean): void {
    if (on) this.#gate |= G_SUSPENDED;
    else this.#gate &= ~G_SUSPENDED;
    this.#setPause(P_SUSPENDED, on);
    if (!on && this.#gate === 0) this.#run();
  }

  get suspended(): boolean {
    return (this.#gate & G_SUSPENDED) !== 0;
  }

  /** The debug state (created on demand when `create`). */
  debugState(create: boolean): DebugState | undefined {
    if (this.#dbg === undefined && create) this.#dbg = new DebugState();
    return this.#dbg;
  }

  /** Drops the debug state once every option is off (back to zero cost). */
  debugChanged(): void {
    if (this.#dbg !== undefined && !this.#dbg.active) this.#dbg = undefined;
  }

  statistics(): Statistics | undefined {
    return this.#dbg?.counters?.snapshot(this.queueLength);
  }

  /** Events waiting in the mailbox. */
  get queueLength(): number {
    return this.#mailbox === undefined ? 0 : this.#mailbox.length - this.#mbHead;
  }

  /** Bytes waiting in the outbound queue. */
  get queuedBytes(): number {
    return this.#out?.bytes ?? 0;
  }

  /** Trace line for a reply to a call. */
  traceReply(from: CallFrom, value: unknown): void {
    if (this.#dbg !== undefined) this.#trace(`sent ${formatTerm(value)} to <call ${from.tag}>`);
  }

  forgetCall(from: CallFrom): void {
    this.#calls?.delete(from);
  }

  #trace(text: string): void {
    this.#dbg?.event(`Sockerl connector <${this.id}>`, text);
  }
}

interface SendSyncRequest {
  readonly tag: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface SysRequest {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** The `socket.data` of sockets the library no longer listens to (the raw twin of a TLS upgrade). */
const DETACHED_SETTINGS: ConnectionSettings = {
  framing: "raw",
  utf8: false,
  maxPacketSize: Number.POSITIVE_INFINITY,
  highWaterMark: 0,
  mode: "active",
  noDelay: undefined,
  keepAlive: undefined,
  sendTimeout: Number.POSITIVE_INFINITY,
  handshakeTimeout: Number.POSITIVE_INFINITY,
  closeTimeout: 0,
  debug: [],
  options: {},
};
const DETACHED = new ConnectionProcess(
  {
    handler: { init: () => undefined, handlePacket: () => undefined },
    init: undefined,
    settings: DETACHED_SETTINGS,
    isServer: false,
  },
  {
    name: "detached",
    secure: false,
    listen: () => {
      throw new Error("detached");
    },
    connect: () => Promise.reject(new Error("detached")),
  },
  undefined,
);
DETACHED.detach();

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value instanceof Promise ||
    (typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function")
  );
}

const PACKET_RULE = "a string, an ArrayBufferView or an ArrayBuffer (or an array of them)";

function isPacketValue(value: unknown): boolean {
  return typeof value === "string" || ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

/** Whether `value` is something `sendSync`/`sendAsync` can send. */
function isOutgoing(value: unknown): boolean {
  return isPacketValue(value) || (Array.isArray(value) && value.every(isPacketValue));
}

function isTimeout(value: unknown): value is number {
  return typeof value === "number" && value >= 0 && !Number.isNaN(value);
}

/** `"normal"` and `"shutdown"` are normal exits: no report. */
export function isAbnormal(reason: ExitReason): boolean {
  return reason !== "normal" && reason !== "shutdown" && reason !== undefined;
}

// Action type is re-exported for callers that build actions programmatically.
export type { Action };
