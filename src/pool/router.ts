/**
 * Request routing for a connector pool: `pool.call / cast / notify / sendAsync / sendSync` go to a
 * live connector picked by the pool's `strategy`; with none live they wait, bounded in count
 * (`maxWaiting`) and time (`waitTimeout`), and go out in order as soon as one is up.
 *
 * The router is the `RequestRouter` of every request it sends: a connection that ends (or loses its
 * socket) before its handler took a routed request hands it back here, and it is routed again (to
 * another live connector, or to the front of the wait queue, since it was sent before anything that
 * waits). A call a handler already took is never moved: it rejects with `NoProcError`.
 *
 * ```text
 *   pool.call ──► stopped? ── yes ──► NoProcError
 *        │ no
 *        ▼
 *   pick(live) ── found ──► connection mailbox ──► handleCall ──► reply / reject
 *        │ none                     │ ends before handleCall took it
 *        ▼                          ▼
 *   waiting.length >= maxWaiting ? ── yes ──► PoolFullError
 *        │ no                       ▲ (re-routed requests skip this bound and go first)
 *        ▼                          │
 *   wait queue ── a connector is up ──► pick(live) …
 *        └─ waitTimeout ──► PoolTimeoutError (casts, events, sendAsync: dropped, counted)
 * ```
 *
 * @module
 * @internal
 */
import { CallFrom, nextCallTag, type RequestRouter } from "../call.ts";
import { clock, type TimerHandle } from "../clock.ts";
import type { ConnectionProcess } from "../connection/process.ts";
import {
  cast as castProcess,
  isOutgoing,
  notify as notifyProcess,
  postCall,
  routeCall,
  routeSendSync,
  type SendSyncRequest,
  sendAsync as sendAsyncProcess,
  sendSync as sendSyncProcess,
} from "../connection/requests.ts";
import { viewOf } from "../connection/view.ts";
import { ArgumentError, NoProcError, PoolFullError, PoolTimeoutError } from "../errors.ts";
import type { Connection, Outgoing } from "../handler.ts";
import { ConnectorPicker, type PoolStrategy, routable } from "./pick.ts";
import { ReadyWaiters } from "./ready-waiters.ts";

export type { PoolStrategy } from "./pick.ts";

type Kind = "call" | "cast" | "event" | "sendAsync" | "sendSync";

/** A request waiting for a live connector. */
interface Waiting {
  readonly kind: Kind;
  readonly value: unknown;
  /** The call's From, the sendSync's request, or undefined (cast, event, sendAsync). */
  readonly extra: CallFrom | SendSyncRequest | undefined;
  timer: TimerHandle | undefined;
  done: boolean;
}

/** Stands in as the owner of calls that wait: no connection holds them yet. */
const WAITING_OWNER = Object.freeze({ waiting: true });

/** Settings of a router (validated by the pool's options). */
export interface RouterSettings {
  readonly strategy: PoolStrategy;
  readonly maxWaiting: number;
  readonly waitTimeout: number;
}

/** The routing half of a pool (see the module notes). */
export class PoolRouter implements RequestRouter {
  /** Live connectors, in the order they came up. */
  readonly live: ConnectionProcess[] = [];
  /** Public handles of {@link live}, same order (what a strategy function sees). */
  readonly #views: Connection[] = [];
  readonly #settings: RouterSettings;
  readonly #name: string;
  readonly #picker: ConnectorPicker;
  #queue: Waiting[] = [];
  #queueHead = 0;
  /** Entries of `#queue` still waiting (timed-out ones are skipped lazily). */
  #waiting = 0;
  #stopped = false;
  readonly #ready = new ReadyWaiters();
  /** Casts, events and sendAsyncs dropped because they waited `waitTimeout` (no caller to tell). */
  dropped = 0;

  constructor(settings: RouterSettings, name: string) {
    this.#settings = settings;
    this.#name = name;
    this.#picker = new ConnectorPicker(settings.strategy, this.live, this.#views);
  }

  get waiting(): number {
    return this.#waiting;
  }

  /** Calls in flight on the live connectors (sent, not answered). */
  inFlight(): number {
    let n = 0;
    for (const p of this.live) n += p.rare?.calls?.size ?? 0;
    return n;
  }

  // ------------------------------------------------------------------ connectors up and down

  /** A connector's `init` completed: it takes requests, and the waiting ones go to it first. */
  up(p: ConnectionProcess): void {
    if (this.live.includes(p)) return;
    this.live.push(p);
    this.#views.push(viewOf(p));
    this.#flush();
    this.#wakeReady();
  }

  /** A connector stops being live (it is ending). */
  down(p: ConnectionProcess): void {
    const i = this.live.indexOf(p);
    if (i < 0) return;
    this.live.splice(i, 1);
    this.#views.splice(i, 1);
  }

  // ------------------------------------------------------------------ requests

  call(request: unknown, timeoutMs = 5000): Promise<unknown> {
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0)) {
      return Promise.reject(new ArgumentError("timeoutMs", "a number >= 0 or Infinity", timeoutMs));
    }
    if (this.#stopped) return Promise.reject(new NoProcError(this.#name));
    const p = this.#picker.pick(request);
    if (p instanceof Error) return Promise.reject(p);
    if (p !== undefined) return postCall(p, request, timeoutMs, this);
    if (this.#waiting >= this.#settings.maxWaiting) {
      return Promise.reject(new PoolFullError(this.#settings.maxWaiting));
    }
    return new Promise((resolve, reject) => {
      const from = new CallFrom(WAITING_OWNER, resolve, reject, timeoutMs, this);
      this.#wait("call", request, from, false);
    });
  }

  cast(message: unknown): void {
    this.#fireAndForget("cast", message);
  }

  notify(event: unknown): void {
    this.#fireAndForget("event", event);
  }

  sendAsync(packet: Outgoing): void {
    if (!isOutgoing(packet))
      throw new ArgumentError(
        "packet",
        "a string, an ArrayBufferView or an ArrayBuffer (or an array of them)",
        packet,
      );
    this.#fireAndForget("sendAsync", packet);
  }

  sendSync(packet: Outgoing): Promise<void> {
    if (this.#stopped) return Promise.reject(new NoProcError(this.#name));
    const p = this.#picker.pick(packet);
    if (p instanceof Error) return Promise.reject(p);
    if (p !== undefined) return sendSyncProcess(p, packet, this);
    if (!isOutgoing(packet)) {
      return Promise.reject(
        new ArgumentError(
          "packet",
          "a string, an ArrayBufferView or an ArrayBuffer (or an array of them)",
          packet,
        ),
      );
    }
    if (this.#waiting >= this.#settings.maxWaiting) {
      return Promise.reject(new PoolFullError(this.#settings.maxWaiting));
    }
    return new Promise((resolve, reject) => {
      const request: SendSyncRequest = { tag: nextCallTag(), resolve, reject, router: this };
      this.#wait("sendSync", packet, request, false);
    });
  }

  #fireAndForget(kind: "cast" | "event" | "sendAsync", value: unknown): void {
    if (this.#stopped) throw new NoProcError(this.#name);
    const p = this.#picker.pick(value);
    if (p instanceof Error) throw p;
    if (p !== undefined) {
      this.#send(p, kind, value, undefined);
      return;
    }
    if (this.#waiting >= this.#settings.maxWaiting) throw new PoolFullError(this.#settings.maxWaiting);
    this.#wait(kind, value, undefined, false);
  }

  /** Sends one request to `p` (which is routable). */
  #send(
    p: ConnectionProcess,
    kind: Kind,
    value: unknown,
    extra: CallFrom | SendSyncRequest | undefined,
  ): void {
    switch (kind) {
      case "call":
        routeCall(p, value, extra as CallFrom);
        return;
      case "sendSync":
        routeSendSync(p, value, extra as SendSyncRequest);
        return;
      case "cast":
        castProcess(p, value, this);
        return;
      case "event":
        notifyProcess(p, value, this);
        return;
      case "sendAsync":
        sendAsyncProcess(p, value as Outgoing, this);
        return;
    }
  }

  /**
   * A connection hands back a request it will never handle (it ended, or lost its socket, before
   * its handler took it): route it again.
   */
  reroute(kind: Kind, value: unknown, extra: unknown): void {
    const from = kind === "call" ? (extra as CallFrom) : undefined;
    if (from !== undefined && !from.pending) return; // it timed out meanwhile
    if (this.#stopped) {
      const error = new NoProcError(this.#name);
      if (from !== undefined) from.fail(error);
      else if (kind === "sendSync") (extra as SendSyncRequest).reject(error);
      return;
    }
    const p = this.#picker.pick(value);
    if (p instanceof Error) {
      if (from !== undefined) from.fail(p);
      else if (kind === "sendSync") (extra as SendSyncRequest).reject(p);
      return;
    }
    if (p !== undefined) {
      this.#send(p, kind, value, extra as CallFrom | SendSyncRequest | undefined);
      return;
    }
    from?.rebind(WAITING_OWNER);
    this.#wait(kind, value, extra as CallFrom | SendSyncRequest | undefined, true);
  }

  // ------------------------------------------------------------------ picking (strategies: pick.ts)

  /** Whether `p` can take a request now: running, socket open, peer not gone. */
  static routable(p: ConnectionProcess): boolean {
    return routable(p);
  }

  // ------------------------------------------------------------------ waiting

  #wait(kind: Kind, value: unknown, extra: CallFrom | SendSyncRequest | undefined, first: boolean): void {
    const entry: Waiting = { kind, value, extra, timer: undefined, done: false };
    const ms = this.#settings.waitTimeout;
    if (ms !== Number.POSITIVE_INFINITY) {
      entry.timer = clock.setTimeout(() => {
        entry.timer = undefined;
        if (entry.done) return;
        this.#settle(entry);
        const error = new PoolTimeoutError(ms);
        if (kind === "call") (extra as CallFrom).fail(error);
        else if (kind === "sendSync") (extra as SendSyncRequest).reject(error);
        else this.dropped++;
      }, ms);
    }
    if (first) {
      // Sent before anything now waiting: it goes first.
      if (this.#queueHead > 0) this.#queue[--this.#queueHead] = entry;
      else this.#queue.unshift(entry);
    } else this.#queue.push(entry);
    this.#waiting++;
  }

  #settle(entry: Waiting): void {
    entry.done = true;
    this.#waiting--;
    if (entry.timer !== undefined) {
      clock.clearTimeout(entry.timer);
      entry.timer = undefined;
    }
  }

  /** Sends waiting requests, in order, while a connector is routable. */
  #flush(): void {
    const queue = this.#queue;
    while (this.#queueHead < queue.length) {
      const entry = queue[this.#queueHead]!;
      if (entry.done || (entry.kind === "call" && !(entry.extra as CallFrom).pending)) {
        if (!entry.done) this.#settle(entry); // its call timed out while waiting
        queue[this.#queueHead++] = undefined as unknown as Waiting;
        continue;
      }
      const p = this.#picker.pick(entry.value);
      if (p === undefined) break;
      queue[this.#queueHead++] = undefined as unknown as Waiting;
      this.#settle(entry);
      if (p instanceof Error) {
        if (entry.kind === "call") (entry.extra as CallFrom).fail(p);
        else if (entry.kind === "sendSync") (entry.extra as SendSyncRequest).reject(p);
        continue;
      }
      this.#send(p, entry.kind, entry.value, entry.extra);
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    }
  }

  // ------------------------------------------------------------------ ready, stop

  /** Resolves once `count` connectors are live; rejects with `PoolTimeoutError` after `timeoutMs`. */
  ready(count: number, timeoutMs: number): Promise<void> {
    if (this.#stopped) return Promise.reject(new NoProcError(this.#name));
    if (this.#routableCount() >= count) return Promise.resolve();
    return this.#ready.wait(count, timeoutMs);
  }

  #routableCount(): number {
    let n = 0;
    for (const p of this.live) if (routable(p)) n++;
    return n;
  }

  #wakeReady(): void {
    if (this.#ready.size === 0) return;
    this.#ready.wake(this.#routableCount());
  }

  /** The pool is stopping: everything waiting rejects with `NoProcError`; new requests too. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const error = new NoProcError(this.#name);
    const queue = this.#queue;
    this.#queue = [];
    for (let i = this.#queueHead; i < queue.length; i++) {
      const entry = queue[i]!;
      if (entry.done) continue;
      this.#settle(entry);
      if (entry.kind === "call") (entry.extra as CallFrom).fail(error);
      else if (entry.kind === "sendSync") (entry.extra as SendSyncRequest).reject(error);
    }
    this.#queueHead = 0;
    this.#ready.rejectAll(error);
  }

  get stopped(): boolean {
    return this.#stopped;
  }
}
