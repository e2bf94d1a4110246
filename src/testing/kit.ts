/**
 * The test kit: one memory network, one manual clock, and everything a test started on them, so a
 * test runs the library's real connection process with no port, no kernel and no real time, and one
 * `await using` cleans it all up and fails the test if something was left running.
 *
 * ```text
 *   testKit() ── installs the manual clock (library timers wait for kit.clock.advance)
 *     ├─ startServer / startConnector / startPool   the library's own functions, { transport: kit.transport }
 *     ├─ connect(server) ─▶ Peer                     a scripted client
 *     ├─ listen(script)  ─▶ ScriptedListener         a scripted server for connectors and pools
 *     ├─ driver(handler) ─▶ HandlerDriver            packets in, sends out, synchronously (benchmarks)
 *     └─ close() / [Symbol.asyncDispose]             stop all, reset peers, leak check, clock back
 * ```
 *
 * @module
 */
import { installClock } from "../clock.ts";
import { TestLeakError } from "../errors.ts";
import type { CheckedActions, Encoding, PacketFor, UnlessIgnored } from "../handler-check.ts";
import {
  type Connection,
  type ConnectorOptions,
  type Handler,
  type Pool,
  type PoolOptions,
  type Server,
  type ServerOptions,
  SockerlError,
  startConnector,
  startConnectorPool,
  startServer,
  type Transport,
} from "../index.ts";
import { HandlerDriver, type HandlerDriverOptions } from "./driver.ts";
import { KitResources, type Stoppable } from "./kit-resources.ts";
import { ManualClock, settle } from "./manual-clock.ts";
import {
  DEFAULT_WINDOW,
  type MemoryConnectOptions,
  MemoryNetwork,
  memoryTransport,
} from "./memory-transport.ts";
import { Peer, type PeerOptions } from "./peer.ts";
import { type ListenOptions, type PeerScript, ScriptedListener } from "./scripted-listener.ts";
import { connectionIds, newConnection, type Target } from "./target.ts";

/** Options of {@link testKit}. */
export interface TestKitOptions {
  /** Install a manual clock for the library's timers (`false`: keep real time). @default true */
  readonly clock?: boolean;
  /** Receive window of every memory socket, in bytes. @default 262144 (256 KiB) */
  readonly window?: number;
  /** Default real-time limit of a peer's reads. @default 2000 */
  readonly readTimeoutMs?: number;
  /** Real-time limit of each stop at clean-up (a stop that takes longer is reported as a leak). @default 1000 */
  readonly stopTimeoutMs?: number;
}

/** Options of {@link TestKit.connect}. */
export interface ConnectOptions extends PeerOptions {
  /** The peer's address as the handler sees it (`meta.remoteAddress`). @default "127.0.0.1" */
  readonly remoteAddress?: string;
  /** The peer's port as the handler sees it (`meta.remotePort`). @default an ephemeral port from 49152 */
  readonly remotePort?: number;
  /** Receive window of the handler's socket, in bytes: how much of the peer's writes it buffers unread. @default the kit's `window` */
  readonly handlerWindow?: number;
}

/** The open kit whose manual clock is installed (one at a time). */
let clockKit: TestKit | undefined;

/**
 * A test's memory network, clock and clean-up. Get one with {@link testKit}.
 *
 * @example
 * test("echoes", async () => {
 *   await using kit = testKit();
 *   const server = await kit.startServer(echo, undefined);
 *   const peer = await kit.connect(server);
 *   await peer.write("hello", { splitAt: [2] });
 *   expect((await peer.read(5)).toString()).toBe("hello");
 * }); // servers stopped, peers closed, leak check, clock uninstalled
 */
export class TestKit implements AsyncDisposable {
  /** The manual clock the library's timers use (installed unless `clock: false`). */
  readonly clock: ManualClock;
  /** The memory transport: pass it as `{ transport: kit.transport }` to the library's start functions. */
  readonly transport: Transport;
  readonly #network: MemoryNetwork;
  readonly #uninstall: (() => void) | undefined;
  readonly #readTimeoutMs: number;
  readonly #resources: KitResources;
  readonly #peers: Peer[] = [];
  #closed = false;

  /** @internal Use {@link testKit}. */
  constructor(options: TestKitOptions = {}) {
    this.#network = new MemoryNetwork(options.window ?? DEFAULT_WINDOW);
    this.transport = memoryTransport(this.#network);
    this.clock = new ManualClock();
    if (options.clock !== false) {
      // A kit left open would keep every later test of the process on its frozen clock.
      // The earlier kit's test is over (a test that timed out never runs its `await using`): take over
      // and say so, rather than fail this test for another's leak.
      if (clockKit !== undefined) {
        console.warn(
          "sockerl/testing: an earlier testKit() was never closed (a test timed out, or no `await using` / `kit.close()`); its sockets are reset and its clock removed",
        );
        clockKit.abandon();
      }
      clockKit = this;
      const uninstall = installClock(this.clock);
      this.#uninstall = () => {
        uninstall();
        if (clockKit === this) clockKit = undefined;
      };
    } else this.#uninstall = undefined;
    this.#readTimeoutMs = options.readTimeoutMs ?? 2000;
    this.#resources = new KitResources(options.stopTimeoutMs ?? 1000);
  }

  /**
   * Starts a server on the memory network (the library's `startServer` with `transport: kit.transport`
   * and a free memory port). Rejects with a `SockerlError` when `listenInit` returns `"ignore"`.
   *
   * @example
   * const server = await kit.startServer(handler, undefined, { packet: 4 });
   */
  startServer<
    S = undefined,
    I = unknown,
    E extends Encoding | undefined = undefined,
    T = Handler<S, I, PacketFor<E>>,
  >(
    handler: Handler<S, I, PacketFor<E>> & T & NoInfer<CheckedActions<T>>,
    init: I,
    options?: Omit<ServerOptions, "transport"> & { encoding?: E },
  ): Promise<Server<S, I>>;
  async startServer<S, I>(
    handler: Handler<S, I>,
    init: I,
    options: Omit<ServerOptions, "transport"> = {},
  ): Promise<Server<S, I>> {
    const server = await startServer<S, I, Encoding | undefined, Handler<S, I>>(handler, init, 0, {
      hostname: "127.0.0.1",
      ...options,
      transport: this.transport,
    });
    if (server === undefined) {
      throw new SockerlError('listenInit returned "ignore": there is no server to test', {
        reason: "ignore",
      });
    }
    this.track(server, `server on memory port ${server.port}`);
    return server;
  }

  /**
   * Starts a connector to a memory target (a {@link ScriptedListener}, a memory server or a port).
   * Resolves like the library's `startConnector`.
   */
  startConnector<
    S = undefined,
    I = unknown,
    E extends Encoding | undefined = undefined,
    T = Handler<S, I, PacketFor<E>>,
  >(
    handler: Handler<S, I, PacketFor<E>> & T & NoInfer<CheckedActions<T>>,
    init: I,
    target: Target,
    options?: Omit<ConnectorOptions, "transport"> & { encoding?: E },
  ): Promise<UnlessIgnored<T, "init", Connection>>;
  async startConnector<S, I>(
    handler: Handler<S, I>,
    init: I,
    target: Target,
    options: Omit<ConnectorOptions, "transport"> = {},
  ): Promise<Connection | undefined> {
    const port = typeof target === "number" ? target : target.port;
    const conn = await startConnector<S, I, Encoding | undefined, Handler<S, I>>(
      handler,
      init,
      "127.0.0.1",
      port,
      {
        ...options,
        transport: this.transport,
      },
    );
    if (conn !== undefined) this.track(conn, `connector <${conn.id}> to memory port ${port}`);
    return conn;
  }

  /** Starts a connector pool to memory targets. Resolves like the library's `startConnectorPool`. */
  async startPool<S = undefined, I = unknown>(
    handler: Handler<S, I>,
    init: I,
    targets: readonly Target[],
    options: Omit<PoolOptions, "transport"> = {},
  ): Promise<Pool<S, I>> {
    const addresses = targets.map(
      (t) => ["127.0.0.1", typeof t === "number" ? t : t.port] as const satisfies readonly [string, number],
    );
    const pool = await startConnectorPool(handler, init, addresses, {
      ...options,
      transport: this.transport,
    });
    this.track(pool, `pool to memory ports ${addresses.map((a) => a[1]).join(", ")}`);
    return pool;
  }

  /**
   * Connects a scripted {@link Peer} to a memory server (or any memory listener). Rejects with an
   * `ECONNREFUSED` error when nothing listens there.
   *
   * @example
   * const peer = await kit.connect(server, { window: 1024 });
   */
  async connect(target: Target, options: ConnectOptions = {}): Promise<Peer> {
    const port = typeof target === "number" ? target : target.port;
    const dial: MemoryConnectOptions = {
      ...(options.window === undefined ? {} : { window: options.window }),
      ...(options.handlerWindow === undefined ? {} : { serverWindow: options.handlerWindow }),
      ...(options.remoteAddress === undefined ? {} : { remoteAddress: options.remoteAddress }),
      ...(options.remotePort === undefined ? {} : { remotePort: options.remotePort }),
    };
    const before = connectionIds(target);
    const socket = this.#network.dial(port, Peer.EVENTS, dial);
    const peer = new Peer(socket, { readTimeoutMs: this.#readTimeoutMs, ...options });
    peer.connection = newConnection(target, before);
    this.#peers.push(peer);
    return peer;
  }

  /**
   * Listens on the memory network with a script instead of a handler, for connectors and pools:
   * `script` (if given) runs for every accepted peer; `accept()` hands them out in order.
   *
   * @example
   * const upstream = kit.listen(async (peer) => {
   *   await peer.readUntil("\n");
   *   await peer.write("+OK\n");
   * });
   * const conn = await kit.startConnector(client, undefined, upstream);
   */
  listen(script?: PeerScript, options: ListenOptions = {}): ScriptedListener {
    let scripted: ScriptedListener | undefined;
    const peerOptions: PeerOptions = { readTimeoutMs: this.#readTimeoutMs, ...options };
    const listener = this.#network.bind(
      options.port ?? 0,
      "127.0.0.1",
      {
        events: Peer.EVENTS,
        accept: (socket) => {
          const peer = new Peer(socket, peerOptions);
          this.#peers.push(peer);
          scripted!.arrived(peer);
          if (script !== undefined) {
            Promise.resolve()
              .then(() => script(peer))
              .catch((error: unknown) => {
                this.#resources.scriptFailed(
                  `the listen script on memory port ${listener.port} threw: ${error instanceof Error ? error.message : String(error)}`,
                );
              });
          }
        },
      },
      false,
    );
    scripted = new ScriptedListener(listener.port, () => listener.stop());
    const stop = async (): Promise<void> => listener.stop();
    this.track({ stop }, `scripted listener on memory port ${listener.port}`);
    return scripted;
  }

  /**
   * A memory port where connects never complete (a dropped SYN), to test `connectTimeout` and what a
   * pool does with a peer that does not answer.
   *
   * @example
   * const nowhere = kit.blackhole();
   * await kit.startConnector(handler, undefined, nowhere, { connectTimeout: 50 }); // rejects ETIMEDOUT
   */
  blackhole(): { readonly host: string; readonly port: number } {
    return { host: "127.0.0.1", port: this.#network.blackhole(0) };
  }

  /**
   * A driver for benchmarks and tight tests: one connection of `handler` on the memory network whose
   * {@link HandlerDriver.push} delivers a chunk synchronously; what the handler sends is counted (and
   * kept with `collect: true`).
   *
   * @example
   * const driver = await kit.driver(handler, undefined, { packet: "line" });
   * driver.push(request); // handlePacket ran, its sends are counted in driver.bytesOut
   */
  async driver<S = undefined, I = unknown>(
    handler: Handler<S, I>,
    init: I,
    options: HandlerDriverOptions = {},
  ): Promise<HandlerDriver> {
    const { collect, ...serverOptions } = options;
    const server = await this.startServer(handler, init, serverOptions);
    return HandlerDriver.open(this.#network, server, collect === true);
  }

  /** Stops `resource` (a server, pool or connection started some other way) at clean-up. */
  track<T extends Stoppable>(resource: T, what = "a resource"): T {
    return this.#resources.track(resource, what);
  }

  /**
   * What is still running, one line each: servers, pools and connectors the kit started and that
   * have not ended, bound memory listeners, open memory sockets, waiting library timers, errors of
   * `listen` scripts. Empty when the test left nothing behind.
   */
  leaks(): string[] {
    const out = this.#resources.running();
    for (const [port] of this.#network.listeners()) out.push(`memory port ${port} is still listening`);
    for (const s of this.#network.openSockets()) out.push(`memory socket ${s.describe()} is open`);
    const delays = this.clock.pendingDelays();
    if (this.#uninstall !== undefined && delays.length > 0) {
      out.push(`${delays.length} library timer(s) pending, due in ${delays.join(", ")} ms`);
    }
    out.push(...this.#resources.scriptErrors);
    return out;
  }

  /** Throws {@link TestLeakError} when {@link leaks} is not empty. */
  assertNoLeaks(): void {
    const leaks = this.leaks();
    if (leaks.length > 0) throw new TestLeakError(leaks);
  }

  /**
   * Cleans up: stops everything the kit started (newest first), resets peers still connected,
   * checks for leaks, unbinds and resets whatever is left, and puts the real clock back. Throws
   * {@link TestLeakError} when something was still running after the kit's own stops (a server started
   * with `kit.transport` but not through the kit, a timer left pending, a failing `listen` script).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#resources.stopAll();
      for (const peer of this.#peers) if (!peer.isClosed) peer.reset();
      // Let resets, closes and the exits they cause run through.
      for (let i = 0; i < 3; i++) await settle();
      const leaks = [...this.#resources.stuck, ...this.leaks()];
      this.#network.shutdown();
      this.clock.clear();
      if (leaks.length > 0) throw new TestLeakError(leaks);
    } finally {
      this.#uninstall?.();
    }
  }

  /** @internal Synchronous last resort for a kit nobody closed: unbind, reset, clock back. */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#network.shutdown();
    this.clock.clear();
    this.#uninstall?.();
  }

  /** `await using kit = testKit()`: {@link close} at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a {@link TestKit}: a memory network, a manual clock installed for the library's timers,
 * and clean-up with a leak check. Use one per test, with `await using` (or `await kit.close()` in
 * `afterEach`).
 *
 * @example
 * import { testKit } from "sockerl/testing";
 * test("greets", async () => {
 *   await using kit = testKit();
 *   const server = await kit.startServer({ init: () => ({ send: "hi\n" }), handlePacket: () => undefined }, undefined);
 *   const peer = await kit.connect(server);
 *   expect((await peer.readUntil("\n")).toString()).toBe("hi\n");
 * });
 */
export function testKit(options: TestKitOptions = {}): TestKit {
  return new TestKit(options);
}
