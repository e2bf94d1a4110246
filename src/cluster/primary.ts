/**
 * The primary side of `cluster()`: spawns the workers, supervises each slot with the restart plan,
 * runs rolling restarts and the graceful stop, and sums the workers' info. Its {@link Primary} is
 * the {@link ClusterHandle} that `cluster()` resolves to.
 *
 * @module
 */
import { describeReason, SockerlError, WorkerExitError } from "../errors.ts";
import type { PlanTrack } from "../supervisor.ts";
import { addInfo, type ClusterInfo } from "./info.ts";
import { type FromWorker, type ToWorker, WORKER_ENV } from "./ipc.ts";
import { ms, type Settings } from "./settings.ts";

/** What `cluster()` resolves to in the primary. */
export interface ClusterHandle {
  /** `[slot id, pid]` of each running worker. */
  workers(): Array<[id: number, pid: number]>;
  /**
   * Rolling restart: one slot at a time, the new worker listening before the old one stops. Rejects
   * with {@link WorkerExitError} when a new worker exits before it is ready (that slot's old worker
   * keeps serving; the slots after it are not restarted).
   */
  restart(options?: { drainMs?: number }): Promise<void>;
  /** Graceful stop of every worker; resolves once all exited. */
  stop(options?: { drainMs?: number }): Promise<void>;
  /** Resolves with the reason the cluster ended (`"normal"` after `stop`, or a plan's stop reason). */
  readonly exited: Promise<unknown>;
  /** The sum of the workers' `server.info()`, asked over IPC. */
  info(): Promise<ClusterInfo>;
}

/** One worker process, as the primary tracks it. */
class Worker {
  ready = false;
  /** The primary asked it to stop (its exit does not go to the plan). */
  retiring = false;
  /** Started by a rolling restart and not ready yet: if it dies, the restart fails, not the slot. */
  candidate = false;
  readonly startedAt = performance.now();
  readonly readyPromise: Promise<void>;
  readonly exitedPromise: Promise<void>;
  resolveReady!: () => void;
  rejectReady!: (error: unknown) => void;
  resolveExited!: () => void;
  startTimer: ReturnType<typeof setTimeout> | undefined;
  proc!: Bun.Subprocess;

  constructor(readonly id: number) {
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {});
    this.exitedPromise = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  send(message: ToWorker): void {
    try {
      this.proc.send(message);
    } catch {
      // the channel is already closed: the worker is exiting
    }
  }
}

interface Slot {
  worker: Worker | undefined;
  track: PlanTrack;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The primary of a cluster: its slots, their workers, and the handle's methods. */
export class Primary implements ClusterHandle {
  readonly #settings: Settings;
  readonly #slots = new Map<number, Slot>();
  /** Every live worker process, retiring ones included. */
  readonly #live = new Set<Worker>();
  #ending = false;
  #reason: unknown;
  readonly exited: Promise<unknown>;
  #resolveExited!: (reason: unknown) => void;
  #started = Promise.withResolvers<void>();
  #restarting: Promise<void> = Promise.resolve();
  #nextRef = 1;
  readonly #infoWaiters = new Map<number, (servers: Array<Record<string, unknown>>) => void>();
  #signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  #signals = 0;

  constructor(settings: Settings) {
    this.#settings = settings;
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
    this.#started.promise.catch(() => {});
  }

  async start(): Promise<void> {
    if (this.#settings.handleSignals) {
      this.#signalHandler = (signal) => this.#onSignal(signal);
      process.on("SIGTERM", this.#signalHandler);
      process.on("SIGINT", this.#signalHandler);
    }
    for (let id = 1; id <= this.#settings.workers; id++) {
      const slot: Slot = { worker: undefined, track: this.#settings.plan.track(), timer: undefined };
      this.#slots.set(id, slot);
      slot.worker = this.#spawn(id);
    }
    await this.#started.promise;
  }

  workers(): Array<[id: number, pid: number]> {
    const out: Array<[number, number]> = [];
    for (const [id, slot] of this.#slots) if (slot.worker !== undefined) out.push([id, slot.worker.proc.pid]);
    return out;
  }

  restart(options: { drainMs?: number } = {}): Promise<void> {
    const drainMs = ms("drainMs", options.drainMs, this.#settings.drainMs);
    // One rolling restart at a time; a second call runs after the first.
    const run = this.#restarting.then(() => this.#rollingRestart(drainMs));
    this.#restarting = run.catch(() => {});
    return run;
  }

  async stop(options: { drainMs?: number } = {}): Promise<void> {
    const drainMs = ms("drainMs", options.drainMs, this.#settings.drainMs);
    await this.#end("normal", drainMs);
  }

  async info(): Promise<ClusterInfo> {
    const total: ClusterInfo = {
      workers: 0,
      reporting: 0,
      servers: 0,
      active: 0,
      waiting: 0,
      maxConnections: 0,
      accepted: 0,
      ended: { normal: 0, peer: 0, crash: 0, shutdown: 0 },
      bytesIn: 0,
      bytesOut: 0,
      perWorker: [],
    };
    const asks: Array<Promise<void>> = [];
    for (const [id, slot] of this.#slots) {
      const worker = slot.worker;
      if (worker === undefined || !worker.ready) continue;
      total.workers++;
      const ref = this.#nextRef++;
      const { promise, resolve } = Promise.withResolvers<Array<Record<string, unknown>> | undefined>();
      this.#infoWaiters.set(ref, resolve);
      const timer = setTimeout(() => resolve(undefined), 1000);
      worker.send({ t: "info", ref });
      asks.push(
        promise.then((servers) => {
          clearTimeout(timer);
          this.#infoWaiters.delete(ref);
          if (servers === undefined) return;
          total.reporting++;
          total.perWorker.push({ id, pid: worker.proc.pid, servers });
          for (const info of servers) addInfo(total, info);
        }),
      );
    }
    await Promise.all(asks);
    total.perWorker.sort((a, b) => a.id - b.id);
    return total;
  }

  // ---------------------------------------------------------------- internals

  #spawn(id: number): Worker {
    const worker = new Worker(id);
    const settings = this.#settings;
    worker.proc = Bun.spawn({
      cmd: settings.cmd,
      env: { ...process.env, ...settings.env, [WORKER_ENV]: String(id) },
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc: (message: FromWorker) => this.#onMessage(worker, message),
    });
    this.#live.add(worker);
    worker.startTimer = setTimeout(() => {
      if (!worker.ready) worker.proc.kill("SIGKILL");
    }, settings.startTimeoutMs);
    void worker.proc.exited.then(() => this.#onExit(worker));
    return worker;
  }

  #onMessage(worker: Worker, message: FromWorker): void {
    if (message?.t === "ready") {
      clearTimeout(worker.startTimer);
      worker.ready = true;
      worker.resolveReady();
      this.#checkStarted();
    } else if (message?.t === "info") {
      this.#infoWaiters.get(message.ref)?.(message.servers);
    }
  }

  #checkStarted(): void {
    for (const slot of this.#slots.values()) if (slot.worker === undefined || !slot.worker.ready) return;
    this.#started.resolve();
  }

  #onExit(worker: Worker): void {
    clearTimeout(worker.startTimer);
    this.#live.delete(worker);
    if (!worker.ready) {
      const { pid, exitCode, signalCode } = worker.proc;
      const signal = typeof signalCode === "string" ? signalCode : null;
      worker.rejectReady(new WorkerExitError(worker.id, pid, exitCode, signal));
    }
    worker.resolveExited();
    const slot = this.#slots.get(worker.id);
    // Cases:
    //   1. the primary retired it (stop, rolling restart) or is ending → nothing to decide
    //   2. a rolling restart's new worker died before it was ready      → the restart rejects and
    //      puts the old worker back; the slot's plan is not run
    //   3. it is not the slot's current worker (a stale one)          → nothing to decide
    //   4. otherwise it crashed or quit: the slot's plan decides
    if (worker.retiring || this.#ending) {
      if (this.#ending && this.#live.size === 0) this.#finish();
      return;
    }
    if (worker.candidate) return;
    if (slot === undefined || slot.worker !== worker) return;
    slot.worker = undefined;
    const proc = worker.proc;
    const reason =
      proc.signalCode !== null && proc.signalCode !== undefined
        ? proc.signalCode
        : proc.exitCode === 0
          ? "normal"
          : `exit ${proc.exitCode}`;
    // A worker that stayed up long enough starts its plan over (backoff delays reset).
    if (worker.ready && performance.now() - worker.startedAt >= this.#settings.resetAfterMs) {
      slot.track = this.#settings.plan.track();
    }
    const decision = this.#settings.plan.decide(slot.track, reason, worker.id);
    switch (decision.action) {
      case "restart":
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          if (!this.#ending) slot.worker = this.#spawn(worker.id);
        }, decision.delayMs);
        return;
      case "delete":
        this.#slots.delete(worker.id);
        if (this.#slots.size === 0) void this.#end("normal", 0);
        else this.#checkStarted();
        return;
      case "wait":
        return;
      case "stop":
        void this.#end(decision.reason, this.#settings.drainMs);
        return;
    }
  }

  async #rollingRestart(drainMs: number): Promise<void> {
    for (const [id, slot] of [...this.#slots]) {
      if (this.#ending) return;
      const old = slot.worker;
      if (old === undefined) continue;
      const fresh = this.#spawn(id);
      fresh.candidate = true;
      slot.worker = fresh;
      try {
        await fresh.readyPromise;
        fresh.candidate = false;
      } catch (error) {
        // The new worker died before listening: keep the old one serving, and say so.
        if (slot.worker === fresh) slot.worker = old;
        throw error;
      }
      await this.#retire(old, drainMs);
    }
  }

  /** Graceful stop of one worker: "stop" over IPC, SIGKILL if it is still there drainMs + 5 s later. */
  async #retire(worker: Worker, drainMs: number): Promise<void> {
    worker.retiring = true;
    if (!this.#live.has(worker)) return;
    worker.send({ t: "stop", drainMs });
    const timer = setTimeout(() => worker.proc.kill("SIGKILL"), drainMs + 5000);
    await worker.exitedPromise;
    clearTimeout(timer);
  }

  async #end(reason: unknown, drainMs: number): Promise<void> {
    if (!this.#ending) {
      this.#ending = true;
      this.#reason = reason;
      for (const slot of this.#slots.values()) clearTimeout(slot.timer);
      // cluster() is still waiting for the first workers: it rejects with the reason.
      this.#started.reject(
        reason instanceof Error
          ? reason
          : new SockerlError(`The cluster ended before it was ready: ${describeReason(reason)}`, { reason }),
      );
      if (this.#live.size === 0) this.#finish();
      else for (const worker of [...this.#live]) void this.#retire(worker, drainMs);
    }
    await this.exited;
  }

  #finish(): void {
    if (this.#signalHandler !== undefined) {
      process.off("SIGTERM", this.#signalHandler);
      process.off("SIGINT", this.#signalHandler);
      this.#signalHandler = undefined;
    }
    this.#resolveExited(this.#reason);
  }

  #onSignal(_signal: NodeJS.Signals): void {
    this.#signals++;
    if (this.#signals > 1) {
      // A second signal: no more patience.
      for (const worker of this.#live) worker.proc.kill("SIGKILL");
      process.exit(1);
    }
    void this.stop().then(() => process.exit(0));
  }
}
