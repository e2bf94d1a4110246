/**
 * Captures what the library writes to its debug sink (trace lines and termination reports), so tests
 * can assert on reports and crash tests do not spam stderr. The sink is restored by `cleanup()`
 * (`./server.ts`), or by calling `restore()`.
 *
 * @module
 */
import { setSink } from "../../src/trace.ts";
import { Log } from "./wait.ts";

/** A running capture of sink lines. */
export interface SinkCapture {
  /** Every line written since the capture started. */
  readonly lines: string[];
  /** The termination reports among them (`** Sockerl connector <id> terminating ...`). */
  reports(): string[];
  /**
   * Resolves once `check()` holds, re-checking it on every line written to the sink; rejects with
   * `WaitTimeoutError` after `timeoutMs`.
   */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Restores the default sink (stderr). */
  restore(): void;
}

let active: SinkCapture | undefined;

/** Replaces the sink with one that records lines; only one capture is active at a time. */
export function captureSink(): SinkCapture {
  active?.restore();
  const log = new Log<string>();
  const lines = log.items;
  const capture: SinkCapture = {
    lines,
    reports: () => lines.filter((l) => l.startsWith("** Sockerl ")),
    until: (check, timeoutMs, what) => log.until(check, timeoutMs, what),
    restore() {
      if (active === capture) {
        active = undefined;
        setSink(undefined);
      }
    },
  };
  active = capture;
  setSink((line) => log.push(line));
  return capture;
}

/** Restores the default sink if a capture is active. */
export function restoreSink(): void {
  active?.restore();
}
