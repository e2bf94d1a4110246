/**
 * A clock that only moves when a test says so. The kit installs it as the library's clock, so every
 * library timer (idle `timeout`, `srtimeout`, send, close and handshake timers, call timeouts,
 * restart delays) waits for {@link ManualClock.advance}: a 30 s idle timeout is tested in microseconds,
 * and never fires early or late because the machine is busy.
 *
 * @module
 */
import type { Clock, TimerHandle } from "../clock.ts";

/** Lets queued microtasks and I/O callbacks run (one turn of the event loop). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class ManualTimer implements TimerHandle {
  due: number;
  seq: number;
  active = true;
  constructor(
    readonly owner: ManualClock,
    readonly callback: () => void,
    readonly ms: number,
    due: number,
    seq: number,
  ) {
    this.due = due;
    this.seq = seq;
  }

  /** Restarts the countdown from the clock's current time (re-arms a timer that already fired). */
  refresh(): this {
    this.owner.rearm(this);
    return this;
  }

  /** Nothing to do: a manual timer never keeps the process alive. */
  unref(): this {
    return this;
  }
}

/**
 * A manual {@link Clock}. Time starts at 0 and moves only in {@link advance}; timers fire in order of
 * their due time (then of creation), each at its own time, including timers scheduled by timers that
 * fired during the same advance. Timers of 0 ms (or less) are due at once: they run on their own at
 * the next turn of the event loop, as `setTimeout(fn, 0)` does, so nothing hangs on them.
 *
 * @example
 * const kit = testKit();
 * await kit.clock.advance(30_000); // every library timer due in the next 30 s fires, in order
 * kit.clock.now(); // 30000
 */
export class ManualClock implements Clock {
  #now = 0;
  #seq = 0;
  #timers = new Set<ManualTimer>();
  #immediateScheduled = false;

  /** The current time in ms (starts at 0). */
  readonly now = (): number => this.#now;

  /** Schedules `callback` at `now() + ms`. */
  readonly setTimeout = (callback: () => void, ms: number): TimerHandle => {
    const delay = Number.isNaN(ms) || ms < 0 ? 0 : ms;
    const timer = new ManualTimer(this, callback, delay, this.#now + delay, this.#seq++);
    this.#timers.add(timer);
    if (delay === 0) this.#runImmediates();
    return timer;
  };

  /** Cancels a timer; unknown, fired or cleared timers are ignored. */
  readonly clearTimeout = (timer: TimerHandle): void => {
    if (timer instanceof ManualTimer && timer.owner === this) {
      timer.active = false;
      this.#timers.delete(timer);
    }
  };

  /** Number of timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Due times (ms from now) of the waiting timers, soonest first (for leak reports and debugging). */
  pendingDelays(): number[] {
    return [...this.#timers].map((t) => t.due - this.#now).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by `ms`, firing every timer that comes due, in order, each with `now()` at its
   * due time; after each one the event loop turns once, so async callbacks it started can run and the
   * connection's mailbox moves on before the next timer fires.
   *
   * @example
   * await kit.clock.advance(29_999); // not yet
   * await kit.clock.advance(1);      // the 30 s idle timeout fires now
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`Expected \`ms\` to be a number >= 0, got \`${ms}\``);
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#earliest(target);
      if (next === undefined) break;
      this.#fire(next);
      await settle();
    }
    this.#now = target;
    await settle();
  }

  /** Fires the earliest waiting timer, whatever its due time (time jumps to it). Returns false if none. */
  async next(): Promise<boolean> {
    const timer = this.#earliest(Number.POSITIVE_INFINITY);
    if (timer === undefined) return false;
    this.#fire(timer);
    await settle();
    return true;
  }

  /** Forgets every waiting timer (the kit's clean-up, after the leak check). */
  clear(): void {
    for (const t of this.#timers) t.active = false;
    this.#timers.clear();
  }

  /** @internal */
  rearm(timer: ManualTimer): void {
    timer.due = this.#now + timer.ms;
    timer.seq = this.#seq++;
    timer.active = true;
    this.#timers.add(timer);
    if (timer.ms === 0) this.#runImmediates();
  }

  #fire(timer: ManualTimer): void {
    this.#timers.delete(timer);
    timer.active = false;
    if (timer.due > this.#now) this.#now = timer.due;
    timer.callback();
  }

  #earliest(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers) {
      if (t.due > limit) continue;
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }

  /** Zero-delay timers run by themselves, in order, at the next turn of the event loop. */
  #runImmediates(): void {
    if (this.#immediateScheduled) return;
    this.#immediateScheduled = true;
    setImmediate(() => {
      this.#immediateScheduled = false;
      for (;;) {
        let next: ManualTimer | undefined;
        for (const t of this.#timers) {
          if (t.ms === 0 && t.due <= this.#now && (next === undefined || t.seq < next.seq)) next = t;
        }
        if (next === undefined) break;
        this.#fire(next);
      }
    });
  }
}
