/**
 * Servers: a port, N acceptors and one connection process per accepted socket. A connection that ends
 * goes through the server's restart plan; the default plan deletes it, whatever the reason (abnormal
 * endings still print the termination report), so no remote peer can stop the server.
 *
 * ```text
 *   Server ── Acceptor 1..N (Bun.listen, each "accept" | "sleep")
 *      │            │ open(socket)
 *      │            ▼
 *      │      ConnectionProcess ── admission (maxConnections, TLS handshake first) ── init → callbacks
 *      │            │ exit(reason)
 *      ▼            ▼
 *   RestartPlan.decide ── delete (the default; server connections cannot restart)
 *                      └─ stop (a plan that says so): every other connection gets
 *                               terminate("shutdown"), the port is released, `exited` resolves
 * ```
 *
 * @module
 */
import { ChildList } from "../child-list.ts";
import { pausedFor } from "../connection/inbound.ts";
import { attach, isAlive, release } from "../connection/lifecycle.ts";
import {
  type ConnectionOwner,
  ConnectionProcess,
  type ConnectionSettings,
  type ConnectionSpec,
  F_ADMITTED,
  F_WAITING,
  P_HELD,
  rareOf,
  Totals,
} from "../connection/process.ts";
import { viewOf } from "../connection/view.ts";
import { serverListenChannel, serverStopChannel } from "../diagnostics.ts";
import { CallbackError } from "../errors.ts";
import type { Connection, ExitReason, Handler, ListenerInfo } from "../handler.ts";
import type { AcceptorMode, ServerOptions } from "../options.ts";
import { register, unregister } from "../registry.ts";
import { drainThenShutdown, Ending, type StopOptions } from "../shutdown.ts";
import type { RestartPlan } from "../supervisor.ts";
import { type DebugOption, debugStateFor, withDebugOption } from "../trace.ts";
import type { Transport, TransportSocket } from "../transport/transport.ts";
import {
  Acceptor,
  setAllModes,
  sharedMode,
  traceAccepted,
  traceGiven,
  traceStartFailure,
} from "./acceptor.ts";
import { Admission, type ServerInfo } from "./admission.ts";

export type { ServerInfo };

import { bindAcceptors, closeListeners, listenInitArgument, pendingSockets } from "./listen.ts";
import { serverConfig } from "./options.ts";
import { proxyHeaderFor, serverTransport } from "./proxy-protocol.ts";

const running = new Set<Server<unknown, unknown>>();

/** The servers of this process that are listening (or suspended) and not stopped. */
export function runningServers(): readonly Server[] {
  return [...running];
}

/**
 * A running server. Get one from {@link startServer}.
 *
 * @typeParam S - connection state.
 * @typeParam I - init argument.
 */
export class Server<S = unknown, I = unknown> {
  readonly name: string | undefined;
  readonly hostname: string;
  #port = 0;
  #handler: Handler<S, I>;
  #init: I;
  #settings: ConnectionSettings;
  #spec: ConnectionSpec | undefined = undefined;
  #transport: Transport;
  #listenTransport: Transport;
  #reusePort: boolean;
  /** Whether connections arrive behind the PROXY protocol header stage. */
  #proxied: boolean;
  #plan: RestartPlan;
  #acceptors: Acceptor[] = [];
  #conns = new ChildList();
  #admission: Admission;
  #totals = new Totals();
  #accepted = 0;
  #startedAt = new Date();
  /** The acceptor of each connection accepted while that acceptor was traced (for its start failure line). */
  #tracedBy: WeakMap<ConnectionProcess, Acceptor> | undefined = undefined;
  #ready = false;
  #suspended = false;
  #ending = new Ending(() => `server ${this.name ?? `<${this.#port}>`}`);
  /** What connections' owner hooks call (the server's methods stay off its public surface). */
  readonly #owner: ConnectionOwner;

  /** @internal Use {@link startServer}. */
  constructor(handler: Handler<S, I>, init: I, options: ServerOptions | undefined) {
    const config = serverConfig(options);
    this.#settings = config.settings;
    this.#transport = config.transport;
    this.#listenTransport = serverTransport(
      config.transport,
      config.proxyProtocol,
      () => this.#totals.peer++,
    );
    this.#proxied = this.#listenTransport !== this.#transport;
    this.hostname = config.hostname;
    this.name = config.name;
    this.#plan = config.plan;
    this.#reusePort = config.reusePort;
    const label = (): string => this.name ?? `<${this.#port}>`; // (the guard's report)
    this.#admission = new Admission(config.maxConnections, config.maxWaiting, config.maxHandshakes, label);
    this.#handler = handler;
    this.#init = init;
    const server = this as Server<unknown, unknown>;
    for (let i = 1; i <= config.acceptorCount; i++) {
      this.#acceptors.push(new Acceptor(i, server, config.acceptorMode, debugStateFor(config.acceptorDebug)));
    }
    this.#owner = {
      childLeaving: (child) => this.#conns.delete(child),
      childExited: (child, reason, started) => this.#childExited(child, reason, started),
      channelInfo: () => ({ server: this }),
      admit: (child) => this.#admission.ready(child),
      socketClosed: () => {
        this.#admission.sockets--;
      },
    };
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** @internal Binds every acceptor and runs `listenInit`. Returns false for "ignore". */
  async listen(port: number): Promise<boolean> {
    this.#bind(port);
    try {
      if (!(await this.#listenInit())) {
        this.#closeListeners();
        return false;
      }
      if (this.name !== undefined) register(this.name, this);
    } catch (error) {
      this.#closeListeners(); // a failed start releases the port
      throw error;
    }
    this.#ready = true;
    running.add(this as Server<unknown, unknown>);
    this.#published();
    for (const acceptor of this.#acceptors) if (acceptor.mode === "accept") this.serveHeld(acceptor);
    return true;
  }

  /** Runs `listenInit` (if any): false for "ignore"; `{ init }` replaces the init argument. */
  async #listenInit(): Promise<boolean> {
    const handler = this.#handler;
    if (handler.listenInit === undefined) return true;
    const info: ListenerInfo = { port: this.#port, hostname: this.hostname, transport: this.#transport.name };
    let result: unknown;
    try {
      result = await handler.listenInit(this.#init, info);
    } catch (error) {
      throw new CallbackError("listenInit", error);
    }
    if (result === "ignore") return false;
    if (result !== undefined) {
      this.#init = listenInitArgument(result).init as I;
      this.#spec = undefined;
    }
    return true;
  }

  /** `sockerl:server:listen`: the server listens (at start, and again after `resume`). */
  #published(): void {
    if (!serverListenChannel.hasSubscribers) return;
    const transport = this.#transport.name;
    serverListenChannel.publish({ server: this, port: this.#port, hostname: this.hostname, transport });
  }

  /** Binds every acceptor on `port` (0 picks one). */
  #bind(port: number): void {
    this.#port = bindAcceptors(this.#acceptors, {
      hostname: this.hostname,
      port,
      reusePort: this.#reusePort,
      listenTransport: this.#listenTransport,
      transport: this.#transport,
      admit: this.#keepSocket,
    });
  }

  #closeListeners(): void {
    closeListeners(this.#acceptors);
  }

  /** The open-file guard: whether one more socket may be held (listeners call it for sockets they hold). */
  readonly #keepSocket = (): boolean => this.#admission.keep(pendingSockets(this.#acceptors));

  /** @internal A socket arrived at `acceptor`. */
  accept(acceptor: Acceptor, socket: TransportSocket): void {
    const admission = this.#admission;
    const secure = this.#transport.secure;
    if (
      this.#ending.stopping ||
      !this.#keepSocket() ||
      (secure && admission.handshakes >= admission.maxHandshakes)
    ) {
      socket.terminate();
      return;
    }
    this.#accepted++;
    admission.sockets++;
    // One spec object shared by every connection (rebuilt when the handler, init or settings change).
    const spec = (this.#spec ??= {
      handler: this.#handler as Handler<unknown, unknown>,
      init: this.#init,
      settings: this.#settings,
      isServer: true,
      totals: this.#totals,
      transport: this.#transport,
      owner: this.#owner,
    });
    const conn = new ConnectionProcess(spec);
    if (this.#proxied) {
      const proxy = proxyHeaderFor(socket);
      if (proxy !== undefined) rareOf(conn).proxy = proxy;
    }
    if (acceptor.dbg !== undefined) {
      traceAccepted(acceptor, socket);
      (this.#tracedBy ??= new WeakMap()).set(conn, acceptor);
    }
    const hold = !this.#ready || acceptor.mode === "sleep";
    this.#conns.add(conn);
    if (secure) admission.handshakeStarted(conn);
    // Traced before attach: a synchronous init runs (and may fail) inside it.
    if (!hold && acceptor.dbg !== undefined) traceGiven(acceptor, socket, conn);
    attach(conn, socket, hold);
    if (hold) acceptor.held.push(conn);
  }

  /** @internal Serves connections held by a sleeping acceptor, in arrival order. */
  serveHeld(acceptor: Acceptor): void {
    if (!this.#ready || this.#ending.stopping) return;
    const held = acceptor.held;
    acceptor.held = [];
    for (const conn of held) {
      if (!isAlive(conn)) continue;
      if (acceptor.dbg !== undefined) traceGiven(acceptor, conn.socket, conn);
      release(conn);
    }
  }

  #childExited(child: ConnectionProcess, reason: ExitReason, started: boolean): void {
    this.#admission.handshakeDone(child); // ended during its handshake
    this.#admission.ended(child, (child.flags & F_ADMITTED) !== 0);
    if (this.#ending.stopping) return;
    if (!started) {
      const acceptor = this.#tracedBy?.get(child);
      if (acceptor !== undefined) traceStartFailure(acceptor, child, reason);
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
    // Connections waiting for a slot or held by a sleeping acceptor are not served yet: not listed.
    for (const conn of this.#conns.toArray()) {
      if ((conn.flags & F_WAITING) === 0 && !pausedFor(conn, P_HELD)) list.push([conn.id, viewOf(conn)]);
    }
    return list;
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
    setAllModes(this.#acceptors, "accept");
  }

  /** The mode all acceptors share, or `[id, mode]` pairs when they differ. */
  acceptorModes(): AcceptorMode | Array<[id: number, mode: AcceptorMode]> {
    return sharedMode(this.#acceptors);
  }

  /** Flips the mode of every acceptor when they all agree; `"not_allowed"` otherwise. */
  changeAcceptorModes(): AcceptorMode | "not_allowed" {
    const modes = this.acceptorModes();
    if (typeof modes !== "string") return "not_allowed";
    const next: AcceptorMode = modes === "accept" ? "sleep" : "accept";
    setAllModes(this.#acceptors, next);
    return next;
  }

  /** Always-on totals (Ranch's `ranch:info/1`). */
  info(): ServerInfo {
    return this.#admission.info(this.#totals, {
      port: this.#port,
      hostname: this.hostname,
      transport: this.#transport.name,
      accepted: this.#accepted,
      startedAt: this.#startedAt,
    });
  }

  /**
   * Changes `maxConnections` at run time: raising it serves waiting connections at once; lowering it
   * lets running connections finish (new ones wait until the count is under the new limit).
   */
  setMaxConnections(n: number): void {
    this.#admission.setMaxConnections(n);
  }

  /**
   * Stops listening (new connects are refused) and keeps every connection (Ranch's suspend_listener).
   * {@link resume} listens again on the same port.
   */
  suspend(): void {
    if (this.#suspended || this.#ending.stopping) return;
    this.#suspended = true;
    this.#closeListeners();
  }

  /** Listens again on the same port after {@link suspend}. Throws `SocketListenError` if it is taken. */
  resume(): void {
    if (!this.#suspended || this.#ending.stopping) return;
    this.#bind(this.#port);
    this.#suspended = false;
    this.#published();
  }

  /** @internal Swaps the handler for new connections (sys.changeCode on a server). */
  setHandler(handler: Handler<S, I>): void {
    this.#handler = handler;
    this.#spec = undefined;
  }

  /** @internal Switches a debug option for connections accepted from now on (sys on a whole server). */
  setConnectorDebug(option: DebugOption, on: boolean): void {
    this.#settings = { ...this.#settings, debug: withDebugOption(this.#settings.debug, option, on) };
    this.#spec = undefined;
  }

  /**
   * Stops the server: stops listening (the port is released), terminates every connection with
   * `"shutdown"`, and resolves once all have ended. `exited` resolves with `reason`.
   */
  stop(reason?: ExitReason | StopOptions): Promise<void> {
    return this.#ending.stop(reason, (drainMs, why) => this.#teardown(drainMs, why));
  }

  /** Resolves with the reason the server ended. */
  get exited(): Promise<ExitReason> {
    return this.#ending.exited;
  }

  #end(reason: ExitReason): Promise<void> {
    return this.#ending.end(reason, () => this.#teardown(0, reason));
  }

  async #teardown(drainMs: number, reason: ExitReason): Promise<void> {
    this.#closeListeners();
    running.delete(this as Server<unknown, unknown>);
    unregister(this.name, this);
    const children = this.#conns.toArray();
    for (const a of this.#acceptors) a.held = [];
    this.#admission.waiting = [];
    await drainThenShutdown(children, drainMs);
    if (serverStopChannel.hasSubscribers) serverStopChannel.publish({ server: this, reason });
  }
}
