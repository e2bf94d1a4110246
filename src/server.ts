/**
 * Servers: a port, N acceptors (listening sockets bound with SO_REUSEPORT) and one connection
 * process per accepted socket, supervised by a restart plan.
 *
 * ```text
 *   Server ── Acceptor 1..N (Bun.listen, each "accept" | "sleep")
 *      │            │ open(socket)
 *      │            ▼
 *      │      ConnectionProcess (init → callbacks → terminate)
 *      │            │ exit(reason)
 *      ▼            ▼
 *   RestartPlan.decide ── delete (server connections cannot restart)
 *                      └─ stop: every other connection gets terminate("shutdown"), the port is
 *                               released, `exited` resolves with the reason
 * ```
 *
 * @module
 */

import { ChildList } from "./child-list.ts";
import {
  allocateId,
  type ConnectionOwner,
  ConnectionProcess,
  type ConnectionSettings,
  type ConnectionSpec,
} from "./connection.ts";
import {
  BadReturnError,
  CallbackError,
  describeReason,
  errnoCode,
  errnoInfo,
  OptionError,
  SockerlError,
  SocketListenError,
} from "./errors.ts";
import { type FdBudget, fdBudget } from "./fd-limit.ts";
import type { Connection, ExitReason, Handler, ListenerInfo } from "./handler.ts";
import {
  type AcceptorMode,
  checkOptionKeys,
  connectionSettings,
  handlerArgument,
  portArgument,
  positiveInteger,
  SERVER_KEYS,
  type ServerOptions,
  stringOption,
  transportOption,
} from "./options.ts";
import { register, unregister } from "./registry.ts";
import { drainThenShutdown, Ending, type StopOptions } from "./shutdown.ts";
import { RestartPlan } from "./supervisor.ts";
import { type DebugOption, type DebugState, debugStateFor, emit, parseDebugOptions } from "./trace.ts";
import type {
  Transport,
  TransportEvents,
  TransportListener,
  TransportSocket,
} from "./transport/transport.ts";

/** One listening socket and its mode. */
export class Acceptor {
  /** Process id (as printed in traces). */
  readonly pid = allocateId();
  mode: AcceptorMode;
  listener: TransportListener | undefined = undefined;
  /** Connections that arrived while sleeping (or before the server was ready), in arrival order. */
  held: ConnectionProcess[] = [];
  dbg: DebugState | undefined;

  constructor(
    readonly index: number,
    readonly server: Server<unknown, unknown>,
    mode: AcceptorMode,
    dbg: DebugState | undefined,
  ) {
    this.mode = mode;
    this.dbg = dbg;
  }

  trace(text: string): void {
    this.dbg?.event(`Sockerl acceptor <${this.pid}>`, text);
  }

  /** Changes the mode; waking up serves the held connections in arrival order. */
  setMode(mode: AcceptorMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    if (this.dbg !== undefined) this.trace(`changed mode to ${mode}`);
    if (mode === "accept") this.server.serveHeld(this);
  }
}

function peerName(socket: TransportSocket): string {
  return socket.remoteAddress === undefined ? "unix socket" : `${socket.remoteAddress}:${socket.remotePort}`;
}

/** Bun's listener handler table: `open` creates the connection; the rest dispatch through it. */
const LISTEN_EVENTS: TransportEvents = {
  ...ConnectionProcess.EVENTS,
  open(socket) {
    const acceptor = socket.data;
    if (acceptor instanceof Acceptor) acceptor.server.accept(acceptor, socket);
    else ConnectionProcess.EVENTS.open(socket);
  },
};

/**
 * A running server. Get one from {@link startServer}.
 *
 * @typeParam S - connection state.
 * @typeParam I - init argument.
 */
export class Server<S = unknown, I = unknown> implements ConnectionOwner {
  readonly name: string | undefined;
  readonly hostname: string;
  #port = 0;
  #handler: Handler<S, I>;
  #init: I;
  #settings: ConnectionSettings;
  #spec: ConnectionSpec | undefined = undefined;
  #transport: Transport;
  #plan: RestartPlan;
  #maxConnections: number;
  #acceptors: Acceptor[] = [];
  #conns = new ChildList();
  /** Connections waiting for a free slot under maxConnections. */
  #waiting: ConnectionProcess[] = [];
  /** The acceptor of each connection accepted while that acceptor was traced (for its start failure line). */
  #tracedBy: WeakMap<ConnectionProcess, Acceptor> | undefined = undefined;
  #ready = false;
  /** Keeps accepted sockets off the last file descriptors (Bun spins at EMFILE, see fd-limit.ts). */
  #fds: FdBudget | undefined = fdBudget();
  #ending = new Ending(() => `server ${this.name ?? `<${this.#port}>`}`);

  /** @internal Use {@link startServer}. */
  constructor(handler: Handler<S, I>, init: I, options: ServerOptions | undefined) {
    const record = checkOptionKeys(options, SERVER_KEYS);
    this.#settings = connectionSettings(record);
    this.#transport = transportOption(record.transport);
    this.hostname = stringOption("hostname", record.hostname, "0.0.0.0");
    this.name = record.name === undefined ? undefined : stringOption("name", record.name, "");
    this.#plan = new RestartPlan(record.plan as never, record.planCount as number | undefined);
    const count = positiveInteger("acceptorCount", record.acceptorCount, 1);
    const mode = record.acceptorMode ?? "accept";
    if (mode !== "accept" && mode !== "sleep") {
      throw new OptionError("acceptorMode", '"accept" or "sleep"', mode);
    }
    const acceptorDebug = parseDebugOptions("acceptorDebug", record.acceptorDebug);
    const max = record.maxConnections;
    this.#maxConnections =
      max === undefined || max === Number.POSITIVE_INFINITY
        ? Number.POSITIVE_INFINITY
        : positiveInteger("maxConnections", max, 0);
    this.#handler = handler;
    this.#spec = undefined;
    this.#init = init;
    for (let i = 1; i <= count; i++) {
      this.#acceptors.push(
        new Acceptor(i, this as Server<unknown, unknown>, mode, debugStateFor(acceptorDebug)),
      );
    }
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** Binds every acceptor and runs `listenInit`. Returns false for "ignore". */
  async listen(port: number): Promise<boolean> {
    const reusePort = this.#acceptors.length > 1;
    for (const acceptor of this.#acceptors) {
      try {
        acceptor.listener = this.#transport.listen({
          hostname: this.hostname,
          port: this.#port === 0 ? port : this.#port,
          reusePort,
          events: LISTEN_EVENTS,
          data: acceptor,
        });
      } catch (error) {
        this.#closeListeners();
        if (error instanceof OptionError) throw error; // a transport refusing its options (tls() without cert)
        const code = errnoCode(error, "ELISTEN");
        throw new SocketListenError({
          code,
          reason: code.toLowerCase(),
          info: errnoInfo(code),
          transport: this.#transport.name,
          host: this.hostname,
          port: this.#port === 0 ? port : this.#port,
          cause: error,
        });
      }
      if (this.#port === 0) this.#port = acceptor.listener.port;
      if (acceptor.dbg !== undefined) {
        acceptor.trace(
          `started for listen socket ${this.hostname}:${this.#port} with options:\n\ttransporter module: '${this.#transport.name}'\n\tmode: '${acceptor.mode}'`,
        );
      }
    }
    if (this.#handler.listenInit !== undefined) {
      const info: ListenerInfo = {
        port: this.#port,
        hostname: this.hostname,
        transport: this.#transport.name,
      };
      let result: unknown;
      try {
        result = await this.#handler.listenInit(this.#init, info);
      } catch (error) {
        this.#closeListeners();
        throw new CallbackError("listenInit", error);
      }
      if (result === "ignore") {
        this.#closeListeners();
        return false;
      }
      if (result !== undefined) {
        const single =
          typeof result === "object" && result !== null && Object.keys(result).length === 1
            ? (result as Record<string, unknown>)
            : undefined;
        if (single !== undefined && "init" in single) {
          this.#init = single.init as I;
          this.#spec = undefined;
        } else {
          this.#closeListeners();
          if (single !== undefined && "stop" in single) {
            const reason = single.stop;
            throw new SockerlError(`listenInit stopped the server: ${describeReason(reason)}`, {
              code: "ERR_LISTEN_INIT_STOP",
              reason,
            });
          }
          throw new BadReturnError(
            "listenInit",
            result,
            'expected undefined, { init }, { stop } or "ignore"',
          );
        }
      }
    }
    if (this.name !== undefined) {
      try {
        register(this.name, this);
      } catch (error) {
        this.#closeListeners();
        throw error;
      }
    }
    this.#ready = true;
    for (const acceptor of this.#acceptors) if (acceptor.mode === "accept") this.serveHeld(acceptor);
    return true;
  }

  #closeListeners(): void {
    for (const acceptor of this.#acceptors) {
      acceptor.listener?.stop(false);
      acceptor.listener = undefined;
    }
  }

  /** @internal A socket arrived at `acceptor`. */
  accept(acceptor: Acceptor, socket: TransportSocket): void {
    if (this.#ending.stopping) {
      socket.terminate();
      return;
    }
    if (this.#fds !== undefined && !this.#admit(this.#fds)) {
      socket.terminate();
      return;
    }
    // One spec object shared by every connection (rebuilt when the handler, init or settings change).
    const spec = (this.#spec ??= {
      handler: this.#handler as Handler<unknown, unknown>,
      init: this.#init,
      settings: this.#settings,
      isServer: true,
    });
    const conn = new ConnectionProcess(spec, this.#transport, this);
    if (acceptor.dbg !== undefined) {
      if (acceptor.dbg.counters !== undefined) acceptor.dbg.counters.accepted++;
      acceptor.trace(`accepted socket ${peerName(socket)}`);
      (this.#tracedBy ??= new WeakMap()).set(conn, acceptor);
    }
    const hold =
      !this.#ready ||
      acceptor.mode === "sleep" ||
      (this.#maxConnections !== Number.POSITIVE_INFINITY && this.#liveCount() >= this.#maxConnections);
    this.#conns.add(conn);
    // Traced before attach: a synchronous init runs (and may fail) inside it.
    if (!hold && acceptor.dbg !== undefined) {
      acceptor.trace(`gave socket ${peerName(socket)} to connection handler <${conn.id}>`);
    }
    conn.attach(socket, hold);
    if (hold) {
      if (this.#ready && acceptor.mode === "accept") this.#waiting.push(conn);
      else acceptor.held.push(conn);
    }
  }

  /** Near the open-file limit a new connection is reset at once (one report per episode). */
  #admit(fds: FdBudget): boolean {
    const ok = fds.admit(this.#conns.size + 1);
    if (ok) fds.shedding = false;
    else if (!fds.shedding) {
      fds.shedding = true;
      emit(
        `** Sockerl server ${this.name ?? `<${this.#port}>`} is near the open file limit (${fds.limit}): new connections are reset until descriptors are free`,
      );
    }
    return ok;
  }

  /** @internal Serves connections held by a sleeping acceptor, in arrival order. */
  serveHeld(acceptor: Acceptor): void {
    if (!this.#ready || this.#ending.stopping) return;
    const held = acceptor.held;
    acceptor.held = [];
    for (const conn of held) {
      if (!conn.alive) continue;
      if (this.#liveCount() >= this.#maxConnections) {
        this.#waiting.push(conn);
        continue;
      }
      if (acceptor.dbg !== undefined)
        acceptor.trace(
          `gave socket ${conn.remoteAddress}:${conn.remotePort} to connection handler <${conn.id}>`,
        );
      conn.release();
    }
  }

  #liveCount(): number {
    return this.#conns.size - this.#waiting.length - this.#acceptors.reduce((n, a) => n + a.held.length, 0);
  }

  // ---------------------------------------------------------------- ConnectionOwner

  /** @internal */
  childLeaving(child: ConnectionProcess): void {
    this.#conns.delete(child);
  }

  /** @internal */
  childExited(child: ConnectionProcess, reason: ExitReason, started: boolean): void {
    // A slot is free: serve the next waiting connection.
    while (this.#waiting.length > 0 && this.#liveCount() < this.#maxConnections) {
      const next = this.#waiting.shift()!;
      if (next.alive) next.release();
    }
    if (this.#ending.stopping) return;
    if (!started) {
      const acceptor = this.#tracedBy?.get(child);
      if (acceptor?.dbg !== undefined) {
        const socket = `${child.remoteAddress}:${child.remotePort}`;
        if (child.ignored) {
          acceptor.trace(`starting new connection handler <${child.id}> for socket ${socket} was ignored`);
        } else if (reason !== "normal") {
          acceptor.trace(
            `could not start connection handler <${child.id}> for socket ${socket} with reason ${describeReason(reason)}`,
          );
        }
      }
      return;
    }
    const decision = this.#plan.decide(this.#plan.track(), reason, child.id);
    // Server connections cannot restart (their socket is gone): restart and wait mean delete.
    if (decision.action === "stop") void this.#end(decision.reason);
  }

  // ---------------------------------------------------------------- public API

  /** Live connections, as `[id, connection]` pairs (`get_server_connections`). */
  connections(): Array<[id: number, connection: Connection]> {
    const list: Array<[number, Connection]> = [];
    const parked = this.#parked();
    for (const conn of this.#conns.toArray()) if (parked?.has(conn) !== true) list.push([conn.id, conn]);
    return list;
  }

  /** Connections held by a sleeping acceptor or waiting for a slot: not served yet, so not listed. */
  #parked(): Set<ConnectionProcess> | undefined {
    if (this.#waiting.length === 0 && this.#acceptors.every((a) => a.held.length === 0)) return undefined;
    return new Set([...this.#waiting, ...this.#acceptors.flatMap((a) => a.held)]);
  }

  /** Acceptors as `[id, mode]` pairs, ids 1..N (`get_acceptors`). */
  acceptors(): Array<[id: number, mode: AcceptorMode]> {
    return this.#acceptors.map((a) => [a.index, a.mode]);
  }

  /** @internal The acceptor objects (sys targets). */
  acceptorList(): readonly Acceptor[] {
    return this.#acceptors;
  }

  /** @internal The live connection processes. */
  processes(): ConnectionProcess[] {
    return this.#conns.toArray();
  }

  /** Puts every acceptor to sleep: arriving connections are held unserved until wakeup. */
  sleepAcceptors(): void {
    for (const a of this.#acceptors) a.setMode("sleep");
  }

  /** Wakes every acceptor: held connections are served in arrival order. */
  wakeupAcceptors(): void {
    this.#setAllModes("accept");
  }

  /**
   * Sets every acceptor's mode. Waking takes every held connection first and serves them in arrival
   * order across acceptors (ids grow in accept order), not acceptor by acceptor.
   */
  #setAllModes(mode: AcceptorMode): void {
    const held = mode === "accept" ? this.#acceptors.flatMap((a) => a.held.map((c) => [a, c] as const)) : [];
    for (const a of this.#acceptors) {
      if (mode === "accept") a.held = [];
      a.setMode(mode);
    }
    held.sort(([, x], [, y]) => x.id - y.id);
    for (const [a, conn] of held) {
      a.held.push(conn);
      this.serveHeld(a);
    }
  }

  /** The mode all acceptors share, or `[id, mode]` pairs when they differ. */
  acceptorModes(): AcceptorMode | Array<[id: number, mode: AcceptorMode]> {
    const first = this.#acceptors[0]!.mode;
    return this.#acceptors.every((a) => a.mode === first) ? first : this.acceptors();
  }

  /** Flips the mode of every acceptor when they all agree; `"not_allowed"` otherwise. */
  changeAcceptorModes(): AcceptorMode | "not_allowed" {
    const modes = this.acceptorModes();
    if (typeof modes !== "string") return "not_allowed";
    const next: AcceptorMode = modes === "accept" ? "sleep" : "accept";
    this.#setAllModes(next);
    return next;
  }

  /** Swaps the handler for new connections (sys.changeCode on a server). @internal */
  setHandler(handler: Handler<S, I>): void {
    this.#handler = handler;
    this.#spec = undefined;
  }

  /** Switches a debug option for connections accepted from now on (sys on a whole server). @internal */
  setConnectorDebug(option: DebugOption, on: boolean): void {
    const debug = this.#settings.debug.filter((o) => o !== option);
    if (on) debug.push(option);
    this.#settings = { ...this.#settings, debug };
    this.#spec = undefined;
  }

  /**
   * Stops the server: stops listening (the port is released), terminates every connection with
   * `"shutdown"`, and resolves once all have ended. `exited` resolves with `reason`.
   */
  stop(reason?: ExitReason | StopOptions): Promise<void> {
    return this.#ending.stop(reason, (drainMs) => this.#teardown(drainMs));
  }

  /** Resolves with the reason the server ended. */
  get exited(): Promise<ExitReason> {
    return this.#ending.exited;
  }

  #end(reason: ExitReason): Promise<void> {
    return this.#ending.end(reason, () => this.#teardown(0));
  }

  async #teardown(drainMs: number): Promise<void> {
    this.#closeListeners();
    unregister(this.name, this);
    const children = this.#conns.toArray();
    for (const a of this.#acceptors) a.held = [];
    this.#waiting = [];
    await drainThenShutdown(children, drainMs);
  }
}

/**
 * Starts a server on `port` (0 picks a free one; read `server.port`). Resolves once listening, or to
 * `undefined` when `listenInit` returns `"ignore"`.
 *
 * @example
 * const server = await startServer(
 *   { init: () => ({ state: 0 }), handlePacket: (p, n) => ({ state: n + 1, send: p }) },
 *   undefined, 0, { hostname: "127.0.0.1" },
 * );
 */
export async function startServer<S = undefined, I = unknown>(
  handler: Handler<S, I>,
  init: I,
  port: number,
  options?: ServerOptions,
): Promise<Server<S, I> | undefined> {
  handlerArgument(handler);
  const checkedPort = portArgument(port);
  const server = new Server<S, I>(handler, init, options);
  return (await server.listen(checkedPort)) ? server : undefined;
}
