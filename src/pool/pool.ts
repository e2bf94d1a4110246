/**
 * Connector pools: N connectors per address, each a child with its own restart-plan track, and a
 * router that sends requests (`pool.call`, `cast`, `notify`, `sendAsync`, `sendSync`) to a live one
 * (src/pool/router.ts). A child that exits (or fails to connect) goes through the plan: the default
 * `[backoff()]` reconnects forever, `{ restart: ms }` reconnects and runs `init` again, `"delete"`
 * forgets it, `"wait"` keeps it idle, `"stop"` ends the pool.
 *
 * ```text
 *   Pool ── slot 1..N ── connectOnce ──► running ConnectionProcess
 *              ▲              │ fails               │ exits (reason)
 *              │              ▼                     ▼
 *              └── restart ◄── RestartPlan.decide(track, reason, slot id)
 *                    (timer)        ├─ delete: slot removed
 *                                   ├─ wait:   slot kept, not running
 *                                   └─ stop:   every child gets terminate("shutdown"); `exited` resolves
 * ```
 *
 * @module
 */
import { clock, type TimerHandle } from "../clock.ts";
import type { ConnectionOwner, ConnectionProcess } from "../connection/process.ts";
import { shutdown } from "../connection/requests.ts";
import { viewOf } from "../connection/view.ts";
import { type ConnectCancel, type ConnectSpec, connectOnce } from "../connector.ts";
import { connectorDownChannel, connectorUpChannel } from "../diagnostics.ts";
import { ArgumentError, NoProcError } from "../errors.ts";
import type { Connection, ExitReason, Handler, Outgoing } from "../handler.ts";
import { milliseconds, portArgument, positiveInteger } from "../options.ts";
import { unregister } from "../registry.ts";
import { drainThenShutdown, Ending, type StopOptions } from "../shutdown.ts";
import type { PlanTrack, RestartPlan } from "../supervisor.ts";
import { type DebugOption, withDebugOption } from "../trace.ts";
import { PoolRouter, type RouterSettings } from "./router.ts";

/** What {@link Pool.info} reports. */
export interface PoolInfo {
  /** Connectors the pool has (live, connecting, waiting to reconnect, or kept by a `"wait"` plan step). */
  readonly size: number;
  /** Connectors that take requests now. */
  readonly live: number;
  /** Connectors connecting, or waiting for their reconnect delay. */
  readonly connecting: number;
  /** Requests waiting for a live connector. */
  readonly waiting: number;
  /** Calls sent to connectors and not answered yet. */
  readonly inFlight: number;
  /** Reconnects the plan has ordered since the pool started. */
  readonly restarts: number;
}

/** Options of {@link Pool.ready}. */
export interface PoolReadyOptions {
  /** Live connectors to wait for. @default 1 */
  readonly count?: number;
  /** Milliseconds to wait before `PoolTimeoutError`. @default the pool's `waitTimeout` */
  readonly timeoutMs?: number;
}

/** One child of a pool: an address, a plan track and (while running) a connection. */
class Slot implements ConnectionOwner {
  conn: ConnectionProcess | undefined = undefined;
  timer: TimerHandle | undefined = undefined;
  /** The connect (and init) in flight, awaited by a stopping pool. */
  connecting: Promise<ConnectionProcess | undefined> | undefined = undefined;
  /** Abandons the connect in flight (a stopping pool does not wait out `connectTimeout`). */
  readonly control: ConnectCancel = {};
  readonly track: PlanTrack;
  constructor(
    readonly id: number,
    public spec: ConnectSpec,
    plan: RestartPlan,
    readonly pool: Pool<unknown, unknown>,
  ) {
    this.track = plan.track();
  }

  childStarted(child: ConnectionProcess): void {
    this.conn = child;
    this.pool.connectorUp(this, child);
  }

  childLeaving(child: ConnectionProcess): void {
    if (this.conn === child) this.conn = undefined;
    this.pool.connectorDown(this, child);
  }

  channelInfo(): Record<string, unknown> {
    return { pool: this.pool };
  }

  childExited(_child: ConnectionProcess, reason: ExitReason, started: boolean): void {
    // A start failure rejects connectOnce, whose caller runs the plan.
    if (started) this.pool.decide(this, reason);
  }
}

/**
 * A running connector pool. Get one from {@link startConnectorPool}.
 */
export class Pool<S = unknown, I = unknown> {
  readonly name: string | undefined;
  #base: Omit<ConnectSpec, "host" | "port">;
  #plan: RestartPlan;
  #slots = new Map<number, Slot>();
  #nextSlot = 1;
  #ending = new Ending(() => `pool ${this.name ?? "(unnamed)"}`);
  readonly #router: PoolRouter;
  readonly #waitTimeout: number;
  #restarts = 0;

  /** @internal Use {@link startConnectorPool}. */
  constructor(
    base: Omit<ConnectSpec, "host" | "port">,
    plan: RestartPlan,
    name: string | undefined,
    routing: RouterSettings,
  ) {
    this.#base = base;
    this.#plan = plan;
    this.name = name;
    this.#router = new PoolRouter(routing, name ?? "pool");
    this.#waitTimeout = routing.waitTimeout;
  }

  /** @internal A connector's `init` completed: it is live. */
  connectorUp(slot: Slot, child: ConnectionProcess): void {
    if (this.#ending.stopping) return;
    this.#router.up(child);
    if (connectorUpChannel.hasSubscribers) {
      connectorUpChannel.publish({ pool: this, connection: viewOf(child), id: slot.id });
    }
  }

  /** @internal A connector stops being live (it is ending). */
  connectorDown(slot: Slot, child: ConnectionProcess): void {
    this.#router.down(child);
    if (connectorDownChannel.hasSubscribers) {
      connectorDownChannel.publish({
        pool: this,
        connection: viewOf(child),
        id: slot.id,
        reason: child.rare?.exitReason,
      });
    }
  }

  /**
   * Live connectors as `[slot, connection]` pairs (restarting and waiting ones are left out). The
   * first number is the pool's slot id, which a connector keeps across reconnects; it is not the
   * connection's `id` (which a server's `connections()` gives), since each reconnect is a new
   * connection.
   */
  connections(): Array<[id: number, connection: Connection]> {
    const list: Array<[number, Connection]> = [];
    for (const slot of this.#slots.values())
      if (slot.conn !== undefined) list.push([slot.id, viewOf(slot.conn)]);
    return list;
  }

  /** @internal Live connection processes (sys targets). */
  processes(): ConnectionProcess[] {
    const list: ConnectionProcess[] = [];
    for (const slot of this.#slots.values()) if (slot.conn !== undefined) list.push(slot.conn);
    return list;
  }

  /** @internal Swaps the handler for future (re)connects (sys.changeCode). */
  setHandler(handler: Handler<S, I>): void {
    this.#base = { ...this.#base, handler: handler as Handler<unknown, unknown> };
    for (const slot of this.#slots.values())
      slot.spec = { ...slot.spec, handler: handler as Handler<unknown, unknown> };
  }

  /** @internal Switches a debug option for connectors (re)started from now on (sys on a whole pool). */
  setConnectorDebug(option: DebugOption, on: boolean): void {
    const debug = withDebugOption(this.#base.settings.debug, option, on);
    this.#base = { ...this.#base, settings: { ...this.#base.settings, debug } };
    for (const slot of this.#slots.values()) slot.spec = { ...slot.spec, settings: this.#base.settings };
  }

  /** @internal Creates a slot and makes its first connect attempt. */
  async startSlot(host: string, port: number, watchdog: boolean): Promise<ConnectionProcess | undefined> {
    const slot = new Slot(
      this.#nextSlot++,
      { ...this.#base, host, port },
      this.#plan,
      this as Pool<unknown, unknown>,
    );
    this.#slots.set(slot.id, slot);
    try {
      return await this.#connect(slot);
    } catch (error) {
      if (!watchdog) this.#slots.delete(slot.id);
      else this.decide(slot, error);
      throw error;
    }
  }

  async #connect(slot: Slot): Promise<ConnectionProcess | undefined> {
    const attempt = connectOnce(slot.spec, slot, slot.control);
    slot.connecting = attempt;
    let conn: ConnectionProcess | undefined;
    try {
      conn = await attempt;
    } finally {
      if (slot.connecting === attempt) slot.connecting = undefined;
    }
    if (conn === undefined) {
      // init returned "ignore": the child is done, normally.
      this.decide(slot, "normal");
      return undefined;
    }
    if (this.#ending.stopping || !this.#slots.has(slot.id)) {
      await shutdown(conn, "shutdown");
      return conn;
    }
    return conn;
  }

  /** @internal Runs the plan for one exit (or failed connect) of `slot`. */
  decide(slot: Slot, reason: ExitReason): void {
    if (this.#ending.stopping || !this.#slots.has(slot.id)) return;
    const decision = this.#plan.decide(slot.track, reason, slot.id);
    switch (decision.action) {
      case "restart":
        this.#restarts++;
        slot.timer = clock.setTimeout(() => {
          slot.timer = undefined;
          if (this.#ending.stopping || !this.#slots.has(slot.id)) return;
          this.#connect(slot).catch((error: unknown) => this.decide(slot, error));
        }, decision.delayMs);
        return;
      case "delete":
        this.#slots.delete(slot.id);
        return;
      case "wait":
        return;
      case "stop":
        void this.#end(decision.reason);
        return;
    }
  }

  // ---------------------------------------------------------------- public API

  /**
   * Sends `request` to the `handleCall` of a live connector picked by `strategy`, and resolves with
   * its reply (or rejects with what it passed to `from.reject`). With no connector live, the call
   * waits (see `maxWaiting`, `waitTimeout`). A call still in the mailbox of a connector that ends is
   * routed again; one its handler already took rejects with `NoProcError`.
   *
   * @param timeoutMs Milliseconds for the whole call, waiting included (`CallTimeoutError`). @default 5000
   * @example
   * const value = await pool.call({ get: "key" });
   */
  call<R = unknown>(request: unknown, timeoutMs?: number): Promise<R> {
    return this.#router.call(request, timeoutMs) as Promise<R>;
  }

  /**
   * Sends `message` to the `handleCast` of a live connector (or queues it while none is). Throws
   * `PoolFullError` past `maxWaiting`, `NoProcError` once stopped. A cast that waits past
   * `waitTimeout` is dropped.
   *
   * @example
   * pool.cast({ publish: "news" });
   */
  cast(message: unknown): void {
    this.#router.cast(message);
  }

  /** Like {@link Pool.cast}, to `handleEvent`. @example pool.notify("flush"); */
  notify(event: unknown): void {
    this.#router.notify(event);
  }

  /** Writes `packet` on a live connector, in order with its other events (like {@link Pool.cast}). @example pool.sendAsync("PING\r\n"); */
  sendAsync(packet: Outgoing): void {
    this.#router.sendAsync(packet);
  }

  /**
   * Writes `packet` on a live connector; resolves once the bytes are with the kernel.
   *
   * @example
   * await pool.sendSync("QUIT\r\n");
   */
  sendSync(packet: Outgoing): Promise<void> {
    return this.#router.sendSync(packet);
  }

  /**
   * Resolves once `count` connectors (default 1) are live; rejects with `PoolTimeoutError` after
   * `timeoutMs` (default `waitTimeout`), with `NoProcError` if the pool stops first.
   *
   * @example
   * await pool.ready({ count: 4, timeoutMs: 10_000 });
   */
  ready(options: PoolReadyOptions = {}): Promise<void> {
    const count = positiveInteger("count", options.count, 1);
    const timeoutMs = milliseconds("timeoutMs", options.timeoutMs, this.#waitTimeout);
    return this.#router.ready(count, timeoutMs);
  }

  /**
   * Counts: connectors (`size`, `live`, `connecting`), requests (`waiting`, `inFlight`), `restarts`.
   *
   * @example
   * const { live, waiting } = pool.info();
   */
  info(): PoolInfo {
    let live = 0;
    let connecting = 0;
    for (const slot of this.#slots.values()) {
      if (slot.conn !== undefined && PoolRouter.routable(slot.conn)) live++;
      else if (slot.connecting !== undefined || slot.timer !== undefined) connecting++;
    }
    return {
      size: this.#slots.size,
      live,
      connecting,
      waiting: this.#router.waiting,
      inFlight: this.#router.inFlight(),
      restarts: this.#restarts,
    };
  }

  /** Starts one more connector to `host:port` (under the pool's plan); resolves once it is connected. */
  async addConnector(host: string, port: number): Promise<Connection> {
    if (this.#ending.stopping) throw new NoProcError(this.name ?? "pool");
    if (typeof host !== "string" || host.length === 0)
      throw new ArgumentError("host", "a non-empty string", host);
    const conn = await this.startSlot(host, portArgument(port), false);
    if (conn === undefined)
      throw new ArgumentError("init", 'not to return "ignore" for addConnector', "ignore");
    return viewOf(conn);
  }

  /**
   * Stops the pool: every connector gets `terminate("shutdown")` (after `handleEvent("shutdown")` and
   * up to `drainMs` with `{ drainMs }`); resolves once all have ended. `exited` resolves with the reason.
   */
  stop(reason?: ExitReason | StopOptions): Promise<void> {
    return this.#ending.stop(reason, (drainMs) => this.#teardown(drainMs));
  }

  /** Resolves with the reason the pool ended. */
  get exited(): Promise<ExitReason> {
    return this.#ending.exited;
  }

  #end(reason: ExitReason): Promise<void> {
    return this.#ending.end(reason, () => this.#teardown(0));
  }

  async #teardown(drainMs: number): Promise<void> {
    unregister(this.name, this);
    // Requests waiting for a connector, and any made from now on, reject with NoProcError.
    this.#router.stop();
    const ending: Promise<unknown>[] = [];
    const running: ConnectionProcess[] = [];
    for (const slot of this.#slots.values()) {
      if (slot.timer !== undefined) clock.clearTimeout(slot.timer);
      if (slot.conn !== undefined) running.push(slot.conn);
      // A connect in flight would start a connector after the pool ended: abandon it (its socket
      // closes now) or, once connected and running init, wait for it and end it.
      slot.control.cancel?.();
      if (slot.connecting !== undefined) {
        ending.push(
          slot.connecting.then(
            (c) => (c === undefined ? undefined : shutdown(c, "shutdown")),
            () => undefined,
          ),
        );
      }
    }
    ending.push(drainThenShutdown(running, drainMs));
    await Promise.all(ending);
    this.#slots.clear();
  }
}
