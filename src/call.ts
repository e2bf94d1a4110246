/**
 * A pending `call` (`conn.call(request)`): the {@link From} a `handleCall` gets. It settles once:
 * with a reply (`reply` in the action, or `from.reply(value)` later), with the error given to
 * `from.reject(error)`, with `CallTimeoutError` after the caller's timeout, or with `NoProcError` when
 * the connection ends first. A call a pool routed may move to another connection before a handler
 * takes it ({@link CallFrom.router}).
 *
 * This module knows nothing of the connection process: the process registers what it needs to hear
 * (a reply to trace, a settled call to forget) with {@link setCallHooks}.
 *
 * @module
 */
import { clock, realClock, type TimerHandle } from "./clock.ts";
import { CallTimeoutError } from "./errors.ts";
import type { From } from "./handler.ts";

/** What a call's owner (the connection it was sent to) hears. */
export interface CallHooks {
  replied(owner: object, from: CallFrom, value: unknown): void;
  settled(owner: object, from: CallFrom): void;
}

let hooks: CallHooks = { replied() {}, settled() {} };

/** Registers the owner's hooks (once, by the connection process). */
export function setCallHooks(next: CallHooks): void {
  hooks = next;
}

/** Takes back requests that a connection ends without handling (a pool routes them again). */
export interface RequestRouter {
  /** `kind` is the request's kind; `extra` is the {@link CallFrom} of a call, the sendSync request, or undefined. */
  reroute(kind: "call" | "cast" | "event" | "sendAsync" | "sendSync", value: unknown, extra: unknown): void;
}

let nextTag = 1;

/** A fresh tag for a call or a sendSync (as printed in traces: `<call 3>`). */
export function nextCallTag(): number {
  return nextTag++;
}

/**
 * Call timeouts share timers: calls whose deadline falls in the same millisecond (with one
 * `timeoutMs`, every call made in one turn: a pipelined batch) go in one bucket with one timer,
 * cleared when the last of them settles. A timer per call was 9% of the CPU of a client pipelining
 * 100 calls. Deadlines round up to the millisecond: a call never times out early, at most 1 ms late.
 */
class TimeoutBucket {
  /**
   * The calls put in this bucket, settled ones included (an array is cheaper per call than a Set's
   * add and delete); emptied when the last one settles, compacted when mostly settled.
   */
  calls: CallFrom[] = [];
  /** Calls of `calls` still pending. */
  pending = 0;
  timer: TimerHandle | undefined = undefined;
  /** The timer is unref'd (the bucket is empty, kept for the calls of the same millisecond). */
  idle = false;
  constructor(
    readonly at: number,
    readonly map: Map<number, TimeoutBucket>,
    /** The clock's clearTimeout when the timer was made (a test may swap the clock later). */
    readonly clear: (timer: TimerHandle) => void,
  ) {}

  add(from: CallFrom): void {
    const calls = this.calls;
    // Settled calls stay listed until the bucket empties: past half of a long list, keep the pending ones.
    if (calls.length >= 64 && this.pending * 2 < calls.length) this.calls = calls.filter((c) => c.pending);
    this.calls.push(from);
    this.pending++;
  }
}

/** Buckets by deadline (an integer ms on the clock's scale); calls with other timeouts may share one. */
let buckets = new Map<number, TimeoutBucket>();
/** The bucket of the last call (calls of one turn share it: no map lookup for them). */
let lastBucket: TimeoutBucket | undefined;
/** The clock the buckets' deadlines are on: a swapped clock (the testing kit's) starts a fresh map. */
let bucketsClock = clock.setTimeout;

function expire(bucket: TimeoutBucket): void {
  bucket.map.delete(bucket.at);
  bucket.timer = undefined;
  const calls = bucket.calls;
  bucket.calls = [];
  bucket.pending = 0;
  for (const from of calls) if (from.pending) from.timedOut();
}

/** The bucket for deadline `at` (made, with its timer, when there is none); `now` is the clock's time. */
function bucketFor(at: number, now: number): TimeoutBucket {
  const last = lastBucket;
  if (last !== undefined && last.at === at && last.map === buckets && last.timer !== undefined) return last;
  let bucket = buckets.get(at);
  if (bucket === undefined) {
    const b = new TimeoutBucket(at, buckets, clock.clearTimeout);
    buckets.set(at, b);
    b.timer = clock.setTimeout(() => expire(b), at - now);
    bucket = b;
  }
  lastBucket = bucket;
  return bucket;
}

/**
 * The calls a connection has taken and not settled (a connection that ends fails them): a list
 * threaded through the calls themselves, so adding and removing one allocates nothing.
 */
export class CallList {
  /** Calls in the list. */
  size = 0;
  #first: CallFrom | undefined = undefined;

  /** Adds `from` (which must be in no list). */
  add(from: CallFrom): void {
    const first = this.#first;
    from.list = this;
    from.prevCall = undefined;
    from.nextCall = first;
    if (first !== undefined) first.prevCall = from;
    this.#first = from;
    this.size++;
  }

  /** Removes `from` if it is in this list. */
  remove(from: CallFrom): void {
    if (from.list !== this) return;
    const { prevCall, nextCall } = from;
    if (prevCall === undefined) this.#first = nextCall;
    else prevCall.nextCall = nextCall;
    if (nextCall !== undefined) nextCall.prevCall = prevCall;
    from.list = from.prevCall = from.nextCall = undefined;
    this.size--;
  }

  /** Empties the list; returns what it held. */
  takeAll(): CallFrom[] {
    const out: CallFrom[] = [];
    for (let from = this.#first; from !== undefined; ) {
      const next = from.nextCall;
      from.list = from.prevCall = from.nextCall = undefined;
      out.push(from);
      from = next;
    }
    this.#first = undefined;
    this.size = 0;
    return out;
  }
}

/** A pending `call`: the `From` a handler gets. */
export class CallFrom implements From {
  /** @internal The {@link CallList} of the connection that took it, and its neighbours there. */
  list: CallList | undefined = undefined;
  /** @internal */
  prevCall: CallFrom | undefined = undefined;
  /** @internal */
  nextCall: CallFrom | undefined = undefined;
  #owner: object | undefined;
  #resolve: (value: unknown) => void;
  #reject: (error: unknown) => void;
  #bucket: TimeoutBucket | undefined;
  readonly #timeoutMs: number;
  readonly tag: number;
  /** The pool that routed this call, if any: it takes the call back when the connection cannot handle it. */
  readonly router: RequestRouter | undefined;

  constructor(
    owner: object,
    resolve: (value: unknown) => void,
    reject: (error: unknown) => void,
    timeoutMs: number,
    router?: RequestRouter,
  ) {
    this.#owner = owner;
    this.#resolve = resolve;
    this.#reject = reject;
    this.tag = nextTag++;
    this.router = router;
    this.#timeoutMs = timeoutMs;
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      if (bucketsClock !== clock.setTimeout) {
        bucketsClock = clock.setTimeout;
        buckets = new Map();
      }
      const now = clock.now();
      const bucket = bucketFor(Math.ceil(now + timeoutMs), now);
      if (bucket.idle) {
        bucket.idle = false;
        (bucket.timer as { ref?(): unknown } | undefined)?.ref?.();
      }
      bucket.add(this);
      this.#bucket = bucket;
    }
  }

  /** @internal The call's timeout has passed (its bucket's timer fired). */
  timedOut(): void {
    this.#bucket = undefined;
    this.fail(new CallTimeoutError(this.#timeoutMs));
  }

  /** Whether the call is still waiting for an answer. */
  get pending(): boolean {
    return this.#owner !== undefined;
  }

  /** Moves the call to another owner (a pool re-routing it); false once it has settled. */
  rebind(owner: object): boolean {
    if (this.#owner === undefined) return false;
    hooks.settled(this.#owner, this);
    this.#owner = owner;
    return true;
  }

  reply(value: unknown): boolean {
    const owner = this.#owner;
    if (owner === undefined) return false;
    this.#settled(owner);
    hooks.replied(owner, this, value);
    this.#resolve(value);
    return true;
  }

  reject(error: unknown): boolean {
    const owner = this.#owner;
    if (owner === undefined) return false;
    this.#settled(owner);
    this.#reject(error);
    return true;
  }

  /** Rejects the call (timeout, the connection ended). */
  fail(error: Error): void {
    const owner = this.#owner;
    if (owner === undefined) return;
    this.#settled(owner);
    this.#reject(error);
  }

  #settled(owner: object): void {
    hooks.settled(owner, this);
    this.#owner = undefined;
    const bucket = this.#bucket;
    if (bucket === undefined) return;
    this.#bucket = undefined;
    if (--bucket.pending !== 0 || bucket.timer === undefined) return;
    bucket.calls.length = 0;
    // The last call of the bucket settled: its timer must not keep the process alive. On the real
    // clock the bucket stays, its timer unref'd, for the next calls of the same millisecond (one
    // at a time, sequential calls would otherwise make and clear a timer each); on another clock
    // (the testing kit's) it goes, so the clock shows no timer pending.
    if (bucket.clear === realClock.clearTimeout) {
      bucket.idle = true;
      bucket.timer.unref?.();
      return;
    }
    bucket.clear(bucket.timer);
    bucket.timer = undefined;
    bucket.map.delete(bucket.at);
  }
}
