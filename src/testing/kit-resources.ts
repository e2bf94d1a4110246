/**
 * What a `TestKit` started and must stop at clean-up: servers, pools, connectors and scripted
 * listeners, whether each has ended, and the lines the leak check reports for them (still running,
 * did not stop in time, a `listen` script that threw). The kit's network and clock report their own
 * leaks; the kit puts the lines together.
 *
 * @module
 */
/** A stoppable thing the kit stops at clean-up. */
export interface Stoppable {
  stop(): Promise<unknown>;
  readonly exited?: Promise<unknown>;
}

/** @internal The kit's list of started resources (one per kit). */
export class KitResources {
  readonly #started: Array<{ what: string; resource: Stoppable; ended: boolean }> = [];
  readonly #scriptErrors: string[] = [];
  readonly #stuck: string[] = [];
  readonly #stopTimeoutMs: number;

  constructor(stopTimeoutMs: number) {
    this.#stopTimeoutMs = stopTimeoutMs;
  }

  /** Adds `resource`; it counts as ended once its `exited` settles (or once it stopped, without one). */
  track<T extends Stoppable>(resource: T, what: string): T {
    const entry = { what, resource, ended: false };
    this.#started.push(entry);
    resource.exited?.then(
      () => {
        entry.ended = true;
      },
      () => {
        entry.ended = true;
      },
    );
    return resource;
  }

  /** A `listen` script failed: reported by the leak check. */
  scriptFailed(line: string): void {
    this.#scriptErrors.push(line);
  }

  /** One line per resource that has not ended. */
  running(): string[] {
    const out: string[] = [];
    for (const e of this.#started) if (!e.ended) out.push(`${e.what} is running`);
    return out;
  }

  /** The errors of `listen` scripts so far. */
  get scriptErrors(): readonly string[] {
    return this.#scriptErrors;
  }

  /** Resources that did not stop within the stop timeout at clean-up. */
  get stuck(): readonly string[] {
    return this.#stuck;
  }

  /** Stops every resource not yet ended, newest first, each bounded by the stop timeout. */
  async stopAll(): Promise<void> {
    for (const e of [...this.#started].reverse()) {
      if (e.ended) continue;
      try {
        // Bounded in real time: a callback that never settles would otherwise hang the clean-up.
        const stopped = await Promise.race([
          e.resource.stop().then(() => true),
          Bun.sleep(this.#stopTimeoutMs).then(() => false),
        ]);
        if (!stopped) {
          e.ended = true; // reported once, as stuck
          this.#stuck.push(
            `${e.what} did not stop within ${this.#stopTimeoutMs} ms (a callback still pending?)`,
          );
        } else if (e.resource.exited === undefined) e.ended = true;
      } catch {
        // Already gone (NoProcError) or stopping: what is left shows in the leak check.
      }
    }
  }
}
