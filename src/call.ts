/**
 * A pending `call` (`conn.call(request)`): the {@link From} a `handleCall` gets. It settles once:
 * with a reply (`reply` in the action, or `from.reply(value)` later), with `CallTimeoutError` after
 * the caller's timeout, or with `NoProcError` when the connection ends first.
 *
 * @module
 */
import type { ConnectionProcess } from "./connection.ts";
import { CallTimeoutError } from "./errors.ts";
import type { From } from "./handler.ts";

/** A pending `call`: the `From` a handler gets. */
export class CallFrom implements From {
  #conn: ConnectionProcess | undefined;
  #resolve: (value: unknown) => void;
  #reject: (error: Error) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly tag: number;

  constructor(
    conn: ConnectionProcess,
    resolve: (value: unknown) => void,
    reject: (error: Error) => void,
    timeoutMs: number,
    tag: number,
  ) {
    this.#conn = conn;
    this.#resolve = resolve;
    this.#reject = reject;
    this.tag = tag;
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      this.#timer = setTimeout(() => this.fail(new CallTimeoutError(timeoutMs)), timeoutMs);
    }
  }

  get pending(): boolean {
    return this.#conn !== undefined;
  }

  reply(value: unknown): boolean {
    const conn = this.#conn;
    if (conn === undefined) return false;
    this.#settled();
    conn.traceReply(this, value);
    this.#resolve(value);
    return true;
  }

  fail(error: Error): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    this.#settled();
    this.#reject(error);
  }

  #settled(): void {
    this.#conn?.forgetCall(this);
    this.#conn = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}
