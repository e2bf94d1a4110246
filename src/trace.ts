/**
 * sys-style debugging: `*DBG*` trace lines in SockErl's wording, a bounded event log and statistics
 * per process (acceptor or connection), written to a replaceable sink.
 *
 * Cost when off: a process without debug options holds `undefined` instead of a {@link DebugState},
 * and every trace point is one `!== undefined` test; nothing is formatted.
 *
 * @module
 */
import { OptionError } from "./errors.ts";

/** Receives every trace line and termination report (without a trailing newline). */
export type TraceSink = (line: string) => void;

/** A debug option, as in Erlang's `sys` module. */
export type DebugOption = "trace" | "log" | "statistics";

/** Statistics of one process (`sys.statistics`). */
export interface Statistics {
  /** When statistics were switched on. */
  readonly startTime: Date;
  readonly packetsIn: number;
  readonly bytesIn: number;
  readonly packetsOut: number;
  readonly bytesOut: number;
  readonly calls: number;
  readonly casts: number;
  /** Events waiting in the mailbox now. */
  readonly queueLength: number;
}

const defaultSink: TraceSink = (line) => {
  process.stderr.write(`${line}\n`);
};
let sink: TraceSink = defaultSink;

/** Replaces the sink (tests capture lines with it); `undefined` restores stderr. */
export function setSink(next?: TraceSink): void {
  sink = next ?? defaultSink;
}

/** Writes one line to the sink; a throwing sink never takes a connection down. */
export function emit(line: string): void {
  try {
    sink(line);
  } catch {
    // The sink is the user's: its failure is not the connection's.
  }
}

/** Events kept per process by the `log` option. */
export const LOG_CAPACITY = 100;

/** Mutable counters behind {@link Statistics}. */
export class Counters {
  startTime = new Date();
  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;
  calls = 0;
  casts = 0;
}

/** Debug state of one process; allocated only while some option is on. */
export class DebugState {
  trace = false;
  log: string[] | undefined = undefined;
  #logNext = 0;
  counters: Counters | undefined = undefined;

  /** Whether any option is still on. */
  get active(): boolean {
    return this.trace || this.log !== undefined || this.counters !== undefined;
  }

  /** Records an event (the text after the process name): printed when tracing, kept when logging. */
  event(who: string, text: string): void {
    if (!this.trace && this.log === undefined) return;
    const line = `*DBG* ${who} ${text}`;
    if (this.trace) emit(line);
    const log = this.log;
    if (log !== undefined) {
      if (log.length < LOG_CAPACITY) log.push(line);
      else {
        log[this.#logNext] = line;
        this.#logNext = (this.#logNext + 1) % LOG_CAPACITY;
      }
    }
  }

  /** The logged events, oldest first. */
  logLines(): string[] {
    const log = this.log;
    if (log === undefined) return [];
    return log.length < LOG_CAPACITY
      ? log.slice()
      : [...log.slice(this.#logNext), ...log.slice(0, this.#logNext)];
  }

  setLog(on: boolean): void {
    if (on) {
      if (this.log === undefined) {
        this.log = [];
        this.#logNext = 0;
      }
    } else this.log = undefined;
  }

  setStatistics(on: boolean): void {
    if (on) this.counters ??= new Counters();
    else this.counters = undefined;
  }
}

const DEBUG_RULE = 'an array of "trace", "log" and "statistics"';

/** Validates a debug option list (`acceptorDebug`, `connectorDebug`). */
export function parseDebugOptions(option: string, value: unknown): readonly DebugOption[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new OptionError(option, DEBUG_RULE, value);
  for (const v of value) {
    if (v !== "trace" && v !== "log" && v !== "statistics") throw new OptionError(option, DEBUG_RULE, value);
  }
  return value as DebugOption[];
}

/** Builds the debug state for a list of options, or undefined when the list is empty. */
export function debugStateFor(options: readonly DebugOption[]): DebugState | undefined {
  if (options.length === 0) return undefined;
  const state = new DebugState();
  for (const o of options) {
    if (o === "trace") state.trace = true;
    else if (o === "log") state.setLog(true);
    else state.setStatistics(true);
  }
  return state;
}

/** Longest payload shown in a trace line before it is cut. */
export const TRACE_PAYLOAD_MAX = 64;

const HEX = "0123456789abcdef";

function formatBytes(bytes: Uint8Array): string {
  const shown = bytes.length > TRACE_PAYLOAD_MAX ? bytes.subarray(0, TRACE_PAYLOAD_MAX) : bytes;
  let printable = true;
  for (let i = 0; i < shown.length; i++) {
    const b = shown[i]!;
    if ((b < 0x20 || b > 0x7e) && b !== 0x0a && b !== 0x0d && b !== 0x09) {
      printable = false;
      break;
    }
  }
  let body: string;
  if (printable) {
    body = JSON.stringify(Buffer.from(shown.buffer, shown.byteOffset, shown.byteLength).toString("latin1"));
  } else {
    const parts: string[] = [];
    for (let i = 0; i < shown.length; i++) {
      const b = shown[i]!;
      parts.push(HEX[b >> 4]! + HEX[b & 15]!);
    }
    body = parts.join(" ");
  }
  const more = bytes.length > shown.length ? `...(${bytes.length} bytes)` : "";
  return `<<${body}${more}>>`;
}

/**
 * Formats a value for a trace line: strings quoted (`"foo"`), bytes as `<<"foo">>` when printable or
 * `<<66 6f>>` in hex otherwise, long payloads cut, other values inspected on one line.
 */
export function formatTerm(value: unknown): string {
  if (typeof value === "string") {
    return value.length > TRACE_PAYLOAD_MAX
      ? `${JSON.stringify(value.slice(0, TRACE_PAYLOAD_MAX))}...(${value.length} chars)`
      : JSON.stringify(value);
  }
  if (value instanceof Uint8Array) return formatBytes(value);
  if (ArrayBuffer.isView(value))
    return formatBytes(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  if (value instanceof ArrayBuffer) return formatBytes(new Uint8Array(value));
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || ArrayBuffer.isView(v))) {
    return `[${value.map(formatTerm).join(", ")}]`;
  }
  const text = Bun.inspect(value, { depth: 4, colors: false }).replace(/\s*\n\s*/g, " ");
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
