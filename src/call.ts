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
import { clock, type TimerHandle } from "./clock.ts";
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

/** A pending `call`: the `From` a handler gets. */
export class CallFrom implements From {
  #owner: object | undefined;
  #resolve: (value: unknown) => void;
  #reject: (error: unknown) => void;
  #timer: TimerHandle | undefined;
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
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      this.#timer = clock.setTimeout(() => this.fail(new CallTimeoutError(timeoutMs)), timeoutMs);
    }
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
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
  }
}
