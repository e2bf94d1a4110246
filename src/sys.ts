/**
 * `sys`: debugging and hot code change of live processes, after Erlang's `sys` module.
 *
 * ## Targets
 * Every function takes a target, or a registry name (`name` start option) that resolves to one:
 * - a **connection** (a server's connection from `server.connections()`, or a connector);
 * - an **acceptor**: `{ server, acceptor: id }`, with `id` from `server.acceptors()` (1..N) and
 *   `server` a handle or a name;
 * - a **server** or a **pool**: the group. A debug switch applies to every acceptor and every live
 *   connection, **and to connections started later** (they inherit it, as with `connectorDebug`);
 *   `sys.changeCode` swaps the handler of every live connection and of connections started later.
 *
 * Debug switches (`trace`, `log`, `statistics`) take effect at once. `replaceState` and `changeCode`
 * are applied in order with the connection's other events (after the packet, call or cast being
 * handled, before the next one), and also while the connection is suspended, as in Erlang.
 *
 * ```text
 *   sys.trace(server, true)
 *      ├─ acceptor 1..N      DebugState.trace = true       *DBG* Sockerl acceptor <2> accepted socket …
 *      ├─ live connections   DebugState.trace = true       *DBG* Sockerl connector <7> got packet …
 *      └─ server default     connectorDebug += "trace"     (connections accepted later)
 * ```
 *
 * Off is free: a process with no option on holds no debug state, and its hot path tests one field.
 *
 * @module
 */
import { queueLength } from "./connection/mailbox.ts";
import { type ConnectionProcess, EXITING, phaseOf, rareOf } from "./connection/process.ts";
import { changeCodeNow, setSuspended, swapHandlerBeforeStart, sysRequest } from "./connection/requests.ts";
import { processOf } from "./connection/view.ts";
import { ArgumentError, CallbackError, NoProcError } from "./errors.ts";
import type { Connection, Handler } from "./handler.ts";
import { handlerArgument } from "./options.ts";
import { whereis } from "./registry.ts";
import type { Acceptor } from "./server/acceptor.ts";
import {
  type DebugOption,
  DebugState,
  type Statistics,
  setSink as setTraceSink,
  type TraceSink,
} from "./trace.ts";

/** A server or a connector pool (anything with live connections): see the module notes. */
export interface SysGroup {
  connections(): Array<[id: number, connection: Connection]>;
}

/** One acceptor of a server: `id` as listed by `server.acceptors()` (1..N). */
export interface AcceptorTarget {
  readonly server: SysGroup | string;
  readonly acceptor: number;
}

/** What the `sys` functions act on: a connection, an acceptor, a server or pool, or a registry name. */
export type SysTarget = Connection | AcceptorTarget | SysGroup | string;

/** `sys.statistics(server | pool)`: the statistics of each process that has them switched on. */
export interface GroupStatistics {
  /** `[acceptor id (1..N), statistics]`. Empty for pools. */
  readonly acceptors: Array<[id: number, statistics: Statistics]>;
  /** `[connection id, statistics]`, live connections only. */
  readonly connections: Array<[id: number, statistics: Statistics]>;
}

/** The internals a server or pool offers to sys (duck-typed, so pools need no import here). */
interface Group {
  processes(): ConnectionProcess[];
  acceptorList?(): readonly Acceptor[];
  setHandler?(handler: Handler<unknown, unknown>): void;
  setConnectorDebug?(option: DebugOption, on: boolean): void;
}

type Resolved =
  | { readonly kind: "connection"; readonly conn: ConnectionProcess }
  | { readonly kind: "acceptor"; readonly acceptor: Acceptor }
  | { readonly kind: "group"; readonly group: Group };

const TARGET_RULE = "a connection, a server, a pool, { server, acceptor: id } or a registry name";

function isGroup(value: unknown): value is Group {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { processes?: unknown }).processes === "function"
  );
}

function isAcceptorTarget(value: unknown): value is AcceptorTarget {
  return typeof value === "object" && value !== null && "server" in value && "acceptor" in value;
}

function resolve(target: unknown): Resolved {
  let value = target;
  if (typeof value === "string") {
    value = whereis(value);
    if (value === undefined) throw new NoProcError(target);
  }
  const conn = processOf(value);
  if (conn !== undefined) {
    if (phaseOf(conn) >= EXITING) throw new NoProcError(conn.id);
    return { kind: "connection", conn };
  }
  if (isAcceptorTarget(value)) {
    const id = value.acceptor;
    if (!Number.isSafeInteger(id)) throw new ArgumentError("acceptor", "an acceptor id (integer)", id);
    const server = typeof value.server === "string" ? whereis(value.server) : value.server;
    if (!isGroup(server) || server.acceptorList === undefined) {
      if (server === undefined) throw new NoProcError(value.server);
      throw new ArgumentError("server", "a server handle or a server's registry name", value.server);
    }
    const acceptor = server.acceptorList().find((a) => a.index === id);
    if (acceptor === undefined) throw new NoProcError(`acceptor ${id}`);
    return { kind: "acceptor", acceptor };
  }
  if (isGroup(value)) return { kind: "group", group: value };
  throw new ArgumentError("target", TARGET_RULE, target);
}

function resolveConnection(target: unknown): ConnectionProcess {
  const resolved = resolve(target);
  if (resolved.kind !== "connection") {
    throw new ArgumentError("target", "a connection handle or a connector's registry name", target);
  }
  return resolved.conn;
}

function booleanArgument(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new ArgumentError(name, "a boolean", value);
  return value;
}

function switchConnection(conn: ConnectionProcess, option: DebugOption, on: boolean): void {
  if (on) rareOf(conn).dbg ??= new DebugState();
  const dbg = conn.rare?.dbg;
  if (dbg === undefined) return;
  dbg.set(option, on);
  // Every option off: back to no debug state at all (zero cost).
  if (!dbg.active) conn.rare!.dbg = undefined;
}

function connectionStatistics(conn: ConnectionProcess): Statistics | undefined {
  return conn.rare?.dbg?.counters?.snapshot(queueLength(conn));
}

function switchAcceptor(acceptor: Acceptor, option: DebugOption, on: boolean): void {
  if (on) acceptor.dbg ??= new DebugState();
  const dbg = acceptor.dbg;
  if (dbg === undefined) return;
  dbg.set(option, on);
  if (!dbg.active) acceptor.dbg = undefined;
}

function switchOption(target: SysTarget, option: DebugOption, on: boolean): void {
  const resolved = resolve(target);
  switch (resolved.kind) {
    case "connection":
      switchConnection(resolved.conn, option, on);
      return;
    case "acceptor":
      switchAcceptor(resolved.acceptor, option, on);
      return;
    case "group": {
      const group = resolved.group;
      group.setConnectorDebug?.(option, on);
      for (const acceptor of group.acceptorList?.() ?? []) switchAcceptor(acceptor, option, on);
      for (const conn of group.processes()) switchConnection(conn, option, on);
    }
  }
}

/**
 * Switches tracing: every event of the target prints one `*DBG*` line to the sink, in SockErl's wording.
 *
 * @example
 * sys.trace(server, true);   // acceptors, live connections and connections accepted later
 * // *DBG* Sockerl connector <7> got packet <<"foo">>
 */
function trace(target: SysTarget, on: boolean): void {
  switchOption(target, "trace", booleanArgument("on", on));
}

/**
 * Switches the event log: the last 100 events of each process are kept (oldest dropped), read with
 * {@link getLog}. A connection that ends abnormally prints its log after its termination report.
 */
function log(target: SysTarget, on: boolean): void {
  switchOption(target, "log", booleanArgument("on", on));
}

/**
 * The logged events, oldest first, as the `*DBG*` lines tracing would print; `[]` when logging is off.
 * For a server or pool, the logs of its acceptors and live connections merged in the order the events
 * happened.
 */
function getLog(target: SysTarget): string[] {
  const resolved = resolve(target);
  switch (resolved.kind) {
    case "connection":
      return resolved.conn.rare?.dbg?.logLines() ?? [];
    case "acceptor":
      return resolved.acceptor.dbg?.logLines() ?? [];
    case "group": {
      const entries: Array<[number, string]> = [];
      for (const a of resolved.group.acceptorList?.() ?? []) if (a.dbg) entries.push(...a.dbg.logEntries());
      for (const c of resolved.group.processes()) {
        const dbg = c.rare?.dbg;
        if (dbg !== undefined) entries.push(...dbg.logEntries());
      }
      entries.sort((a, b) => a[0] - b[0]);
      return entries.map((e) => e[1]);
    }
  }
}

function acceptorStatistics(acceptor: Acceptor): Statistics | undefined {
  return acceptor.dbg?.counters?.snapshot(acceptor.held.length);
}

/**
 * With `on`: switches statistics (switching on again keeps the counts; off discards them).
 * Without: reads them. A connection or acceptor gives its {@link Statistics}, or `undefined` when
 * statistics are off; a server or pool gives {@link GroupStatistics}.
 *
 * @example
 * sys.statistics(conn, true);
 * await conn.call("ping");
 * sys.statistics(conn)?.calls; // 1
 */
function statistics(target: SysTarget, on: boolean): void;
function statistics(target: Connection | AcceptorTarget): Statistics | undefined;
function statistics(target: SysGroup): GroupStatistics;
function statistics(target: SysTarget): Statistics | GroupStatistics | undefined;
function statistics(target: SysTarget, on?: boolean): Statistics | GroupStatistics | undefined {
  if (on !== undefined) {
    switchOption(target, "statistics", booleanArgument("on", on));
    return undefined;
  }
  const resolved = resolve(target);
  switch (resolved.kind) {
    case "connection":
      return connectionStatistics(resolved.conn);
    case "acceptor":
      return acceptorStatistics(resolved.acceptor);
    case "group": {
      const acceptors: Array<[number, Statistics]> = [];
      for (const a of resolved.group.acceptorList?.() ?? []) {
        const s = acceptorStatistics(a);
        if (s !== undefined) acceptors.push([a.index, s]);
      }
      const connections: Array<[number, Statistics]> = [];
      for (const c of resolved.group.processes()) {
        const s = connectionStatistics(c);
        if (s !== undefined) connections.push([c.id, s]);
      }
      return { acceptors, connections };
    }
  }
}

/**
 * The connection's state: the last committed one (a callback in progress has not committed yet).
 * Throws `NoProcError` when the connection has ended.
 */
function getState<S = unknown>(conn: Connection | string): S {
  return resolveConnection(conn).state as S;
}

/**
 * Replaces the connection's state with `fn(state)`, in order with its other events; resolves with the
 * new state. When `fn` throws (or rejects), the state is unchanged, the promise rejects with that
 * error and the connection carries on.
 */
async function replaceState<S = unknown>(
  conn: Connection | string,
  fn: (state: S) => S | Promise<S>,
): Promise<S> {
  const process = resolveConnection(conn);
  if (typeof fn !== "function") throw new ArgumentError("fn", "a function", fn);
  return sysRequest(process, async (c) => {
    const next = await fn(c.state as S);
    c.state = next;
    return next;
  });
}

/**
 * Suspends the connection once its current callback (if any) is done: it then handles no packet,
 * call, cast, event or timeout, and reads nothing (unread data stays in the kernel), until
 * {@link resume}. Incoming calls, casts and events queue in order, and the idle `timeout` does not
 * fire. `replaceState` and `changeCode` are still served while suspended, except one requested while
 * an async callback of the connection is still pending: that one runs after `resume`.
 */
function suspend(conn: Connection | string): void {
  setSuspended(resolveConnection(conn), true);
}

/** Resumes a suspended connection: queued events are handled in order, reading restarts. */
function resume(conn: Connection | string): void {
  setSuspended(resolveConnection(conn), false);
}

async function changeConnectionCode(
  conn: ConnectionProcess,
  handler: Handler<unknown, unknown>,
  oldVsn: unknown,
  extra: unknown,
): Promise<void> {
  if (swapHandlerBeforeStart(conn, handler)) return;
  try {
    await sysRequest(conn, (c) => changeCodeNow(c, handler, oldVsn, extra));
  } catch (error) {
    if (error instanceof NoProcError) throw error;
    throw new CallbackError("codeChange", error);
  }
}

/**
 * Hot code change: swaps the handler of a live connection, or of a server or pool (its live
 * connections and those started later), calling `handler.codeChange(oldVsn, state, extra)` on each
 * live connection, in order with its other events, to migrate its state. A connection whose `init`
 * has not run yet just starts with the new handler.
 *
 * Rejects with `CallbackError` (callback `"codeChange"`) when a `codeChange` throws: that connection
 * keeps its old handler and state (the others have changed). Connections that end meanwhile are
 * skipped; a single connection target that has ended rejects with `NoProcError`.
 *
 * @example
 * await sys.changeCode(server, handlerV2, "v1", undefined);
 */
async function changeCode<S = unknown, I = unknown>(
  target: SysTarget,
  handler: Handler<S, I>,
  oldVsn?: unknown,
  extra?: unknown,
): Promise<void> {
  handlerArgument(handler);
  const h = handler as Handler<unknown, unknown>;
  const resolved = resolve(target);
  if (resolved.kind === "connection") return changeConnectionCode(resolved.conn, h, oldVsn, extra);
  if (resolved.kind === "acceptor") {
    throw new ArgumentError("target", "a connection, a server, a pool or a registry name", target);
  }
  const group = resolved.group;
  group.setHandler?.(h);
  const results = await Promise.allSettled(
    group.processes().map((conn) => changeConnectionCode(conn, h, oldVsn, extra)),
  );
  for (const r of results) {
    if (r.status === "rejected" && !(r.reason instanceof NoProcError)) throw r.reason;
  }
}

/**
 * Replaces the sink that receives every trace line and termination report (one string per line or
 * report, without a trailing newline); no argument restores the default (stderr). Returns the
 * previous sink, so a test can put it back.
 *
 * @example
 * const lines: string[] = [];
 * const previous = sys.setSink((line) => lines.push(line));
 * // ...
 * sys.setSink(previous);
 */
function setSink(sink?: TraceSink): TraceSink {
  if (sink !== undefined && typeof sink !== "function") throw new ArgumentError("sink", "a function", sink);
  return setTraceSink(sink);
}

/**
 * Debugging of live processes (Erlang's `sys`): tracing, event logs, statistics, state inspection
 * and replacement, suspension, hot code change. See the module notes for targets.
 */
export const sys = {
  trace,
  log,
  getLog,
  statistics,
  getState,
  replaceState,
  suspend,
  resume,
  changeCode,
  setSink,
} as const;
