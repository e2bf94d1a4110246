/**
 * sys-style debugging: `*DBG*` trace lines in SockErl's wording, a bounded event log and statistics
 * per process (acceptor or connection), written to a replaceable sink.
 *
 * Cost when off: a process without debug options holds `undefined` instead of a {@link DebugState},
 * and every trace point is one `!== undefined` test; nothing is formatted.
 *
 * @module
 */
import { describeReason, OptionError } from "./errors.ts";

/** Receives every trace line and termination report (without a trailing newline). */
export type TraceSink = (line: string) => void;

/** A debug option, as in Erlang's `sys` module. */
export type DebugOption = "trace" | "log" | "statistics";

/**
 * Statistics of one process (`sys.statistics`), counted from the moment they were switched on.
 * Bytes are payload bytes: framing headers (`packet: 1 | 2 | 4`) are not counted.
 */
export interface Statistics {
  /** When statistics were switched on. */
  readonly startTime: Date;
  /** Packets handed to `handlePacket`. */
  readonly packetsIn: number;
  readonly bytesIn: number;
  /** Packets written (action `send`, `meta.send`, `sendSync`, `sendAsync`). */
  readonly packetsOut: number;
  readonly bytesOut: number;
  /** Calls handled. */
  readonly calls: number;
  /** Casts handled. */
  readonly casts: number;
  /** Acceptors: sockets accepted. Always 0 for connections. */
  readonly accepted: number;
  /** Connections: events waiting in the mailbox now. Acceptors: connections held unserved (sleeping). */
  readonly queueLength: number;
}

const defaultSink: TraceSink = (line) => {
  process.stderr.write(`${line}\n`);
};
let sink: TraceSink = defaultSink;

/** Replaces the sink (tests capture lines with it); `undefined` restores stderr. Returns the previous sink. */
export function setSink(next?: TraceSink): TraceSink {
  const previous = sink;
  sink = next ?? defaultSink;
  return previous;
}

/** Writes one line to the sink; a throwing sink never takes a connection down. */
export function emit(line: string): void {
  try {
    sink(line);
  } catch {
    // The sink is the user's: its failure is not the connection's.
  }
}

/** Events kept per process by the `log` option (the oldest are dropped). */
export const LOG_CAPACITY = 100;

/** Orders log entries of different processes (`sys.getLog` on a server merges them). */
let logSequence = 0;

/** Mutable counters behind {@link Statistics}. */
export class Counters {
  startTime = new Date();
  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;
  calls = 0;
  casts = 0;
  accepted = 0;

  snapshot(queueLength: number): Statistics {
    return {
      startTime: this.startTime,
      packetsIn: this.packetsIn,
      bytesIn: this.bytesIn,
      packetsOut: this.packetsOut,
      bytesOut: this.bytesOut,
      calls: this.calls,
      casts: this.casts,
      accepted: this.accepted,
      queueLength,
    };
  }
}

/** Debug state of one process; allocated only while some option is on. */
export class DebugState {
  trace = false;
  /** The log ring (lines), or undefined when logging is off. */
  log: string[] | undefined = undefined;
  /** Global sequence number of each entry of `log` (same slots). */
  #seqs: number[] = [];
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
      const seq = ++logSequence;
      if (log.length < LOG_CAPACITY) {
        log.push(line);
        this.#seqs.push(seq);
      } else {
        log[this.#logNext] = line;
        this.#seqs[this.#logNext] = seq;
        this.#logNext = (this.#logNext + 1) % LOG_CAPACITY;
      }
    }
  }

  /** The logged events, oldest first. */
  logLines(): string[] {
    return this.logEntries().map((e) => e[1]);
  }

  /** The logged events with their global sequence numbers, oldest first. */
  logEntries(): Array<[seq: number, line: string]> {
    const log = this.log;
    if (log === undefined) return [];
    const entries: Array<[number, string]> = [];
    const n = log.length;
    const first = n < LOG_CAPACITY ? 0 : this.#logNext;
    for (let i = 0; i < n; i++) {
      const at = (first + i) % n;
      entries.push([this.#seqs[at]!, log[at]!]);
    }
    return entries;
  }

  setLog(on: boolean): void {
    if (on) {
      if (this.log === undefined) {
        this.log = [];
        this.#seqs = [];
        this.#logNext = 0;
      }
    } else {
      this.log = undefined;
      this.#seqs = [];
    }
  }

  setStatistics(on: boolean): void {
    if (on) this.counters ??= new Counters();
    else this.counters = undefined;
  }

  /** Switches one option. */
  set(option: DebugOption, on: boolean): void {
    if (option === "trace") this.trace = on;
    else if (option === "log") this.setLog(on);
    else this.setStatistics(on);
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

/** `options` with `option` switched on or off (for connections started later: `sys` on a group). */
export function withDebugOption(
  options: readonly DebugOption[],
  option: DebugOption,
  on: boolean,
): DebugOption[] {
  const debug = options.filter((o) => o !== option);
  if (on) debug.push(option);
  return debug;
}

/** Builds the debug state for a list of options, or undefined when the list is empty. */
export function debugStateFor(options: readonly DebugOption[]): DebugState | undefined {
  if (options.length === 0) return undefined;
  const state = new DebugState();
  for (const o of options) state.set(o, true);
  return state;
}

/** Longest payload shown in a trace line before it is cut. */
export const TRACE_PAYLOAD_MAX = 64;

const HEX = "0123456789abcdef";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes `bytes` as UTF-8 text; a cut payload may end inside a character (dropped). */
function utf8Text(bytes: Uint8Array, cut: boolean): string | undefined {
  for (let drop = 0; drop <= (cut ? 3 : 0) && drop < bytes.length; drop++) {
    try {
      return strictUtf8.decode(drop === 0 ? bytes : bytes.subarray(0, bytes.length - drop));
    } catch {
      // not UTF-8 (or cut inside a character): try one byte shorter
    }
  }
  return undefined;
}

/**
 * Bytes for a trace line: quoted and escaped like a string when they are printable text (ASCII or
 * UTF-8: `"foo\r\n"`, as in a `got packet "foo"` trace line), otherwise hex in Erlang's binary brackets
 * (`<<00 ff 10>>`); beyond {@link TRACE_PAYLOAD_MAX} bytes the payload is cut and its full size shown:
 * `"aaaa"...(4096 bytes)`.
 */
function formatBytes(bytes: Uint8Array): string {
  const cut = bytes.length > TRACE_PAYLOAD_MAX;
  const shown = cut ? bytes.subarray(0, TRACE_PAYLOAD_MAX) : bytes;
  let ascii = true;
  let control = false;
  for (let i = 0; i < shown.length; i++) {
    const b = shown[i]!;
    if (b >= 0x80) ascii = false;
    else if ((b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) || b === 0x7f) {
      control = true;
      break;
    }
  }
  let body: string | undefined;
  if (!control) {
    if (ascii) {
      body = JSON.stringify(Buffer.from(shown.buffer, shown.byteOffset, shown.byteLength).toString("latin1"));
    } else {
      const text = utf8Text(shown, cut);
      if (text !== undefined) body = JSON.stringify(text);
    }
  }
  if (body !== undefined) return cut ? `${body}...(${bytes.length} bytes)` : body;
  const parts: string[] = [];
  for (let i = 0; i < shown.length; i++) {
    const b = shown[i]!;
    parts.push(HEX[b >> 4]! + HEX[b & 15]!);
  }
  body = parts.join(" ");
  return cut ? `<<${body}...(${bytes.length} bytes)>>` : `<<${body}>>`;
}

/**
 * Formats a value for a trace line: strings quoted (`"foo"`), printable bytes quoted too and other
 * bytes as hex `<<00 ff>>` (see {@link formatBytes}), errors as `Name code: message`, long payloads cut, other values inspected on
 * one line (at most 200 characters).
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
  if (value instanceof Error) return describeReason(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || ArrayBuffer.isView(v))) {
    return `[${value.map(formatTerm).join(", ")}]`;
  }
  // One line: Bun's multi-line layout joined, without its trailing commas (strings keep "\n" escaped).
  const text = Bun.inspect(value, { depth: 4, colors: false })
    .replace(/,\s*\n\s*(?=[}\]])/g, " ")
    .replace(/\s*\n\s*/g, " ");
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/**
 * Whether trace points are compiled in. Always true at run time; a build that defines
 * `process.env.SOCKERL_NO_TRACE` as `"1"` (`bun build --define`) folds every `TRACING && …` test to
 * false and drops the tracing code, which is how `bench/hot-path.bench.ts` measures what tracing that
 * is off costs.
 */
export const TRACING: boolean = process.env.SOCKERL_NO_TRACE !== "1";
