/**
 * The testing kit's in-memory network: a {@link Transport} whose sockets are pairs of
 * {@link MemorySocket} ends in one process, built only on the public transport contract (so the
 * library runs its real connection process over it, exactly as over TCP).
 *
 * This file holds the network itself: listeners by memory port (several per port with
 * `reusePort`, dialled round-robin), black-holed ports, every open socket (for the leak check), and
 * the {@link Transport} the library is given. How one end's bytes reach the other is in
 * `memory-socket.ts`.
 *
 * @module
 */
import type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportEvents,
  TransportListener,
  TransportSocket,
} from "../index.ts";
import { errnoError, MemorySocket } from "./memory-socket.ts";

/** Default receive window of a memory socket in bytes: what it buffers unread before writes come back short. */
export const DEFAULT_WINDOW = 256 * 1024;

/** A listener on the memory network: the library's (events from `listen`) or a test script's. */
export interface MemoryAcceptor {
  /** Called with the server end of each new connection. */
  accept(socket: MemorySocket): void;
  /** The events table the server end reports to. */
  readonly events: TransportEvents;
}

class MemoryListener implements TransportListener {
  #stopped = false;
  /** Server ends this listener accepted and still open (for `stop(true)`). */
  readonly accepted = new Set<MemorySocket>();
  constructor(
    readonly network: MemoryNetwork,
    readonly port: number,
    readonly hostname: string,
    readonly acceptor: MemoryAcceptor,
    readonly reusePort: boolean,
  ) {}

  get stopped(): boolean {
    return this.#stopped;
  }

  stop(closeActive?: boolean): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.network.unbind(this, closeActive === true);
  }
}

/** Options of one memory connection. */
export interface MemoryConnectOptions {
  /** Receive window of the connecting end, in bytes. */
  readonly window?: number;
  /** Receive window of the accepting end, in bytes. */
  readonly serverWindow?: number;
  /** The connecting end's address as the listener sees it (`meta.remoteAddress`). @default "127.0.0.1" */
  readonly remoteAddress?: string;
  /** The connecting end's port as the listener sees it (`meta.remotePort`). @default an ephemeral port from 49152 */
  readonly remotePort?: number;
}

/**
 * The kit's network: memory listeners by port and every open memory socket, so a test can connect
 * to a server by port and the leak check can see what is still open.
 */
export class MemoryNetwork {
  readonly #ports = new Map<number, MemoryListener[]>();
  readonly #roundRobin = new Map<number, number>();
  readonly #open = new Set<MemorySocket>();
  readonly #blackholes = new Set<number>();
  #nextPort = 1;
  #nextEphemeral = 49152;
  /** Receive window of new sockets, in bytes. */
  window: number;

  constructor(window = DEFAULT_WINDOW) {
    this.window = window;
  }

  /** Binds `acceptor` on `port` (0 picks the next free memory port). Throws EADDRINUSE like the kernel. */
  bind(port: number, hostname: string, acceptor: MemoryAcceptor, reusePort: boolean): TransportListener {
    let bound = port;
    if (bound === 0) {
      while (this.#ports.has(this.#nextPort)) this.#nextPort++;
      bound = this.#nextPort++;
    }
    const list = this.#ports.get(bound);
    if (list !== undefined && !(reusePort && list.every((l) => l.reusePort))) {
      throw errnoError("EADDRINUSE", `memory port ${bound} is in use`);
    }
    const listener = new MemoryListener(this, bound, hostname, acceptor, reusePort);
    if (list === undefined) this.#ports.set(bound, [listener]);
    else list.push(listener);
    return listener;
  }

  /** @internal */
  unbind(listener: MemoryListener, closeActive: boolean): void {
    const list = this.#ports.get(listener.port);
    if (list !== undefined) {
      const rest = list.filter((l) => l !== listener);
      if (rest.length === 0) this.#ports.delete(listener.port);
      else this.#ports.set(listener.port, rest);
    }
    if (closeActive) for (const socket of [...listener.accepted]) socket.terminate();
  }

  /** Makes `port` a black hole: connects to it never complete, as when a firewall drops the SYN. */
  blackhole(port: number): number {
    let bound = port;
    if (bound === 0) {
      while (this.#ports.has(this.#nextPort) || this.#blackholes.has(this.#nextPort)) this.#nextPort++;
      bound = this.#nextPort++;
    }
    this.#blackholes.add(bound);
    return bound;
  }

  /** Whether connects to `port` hang. */
  isBlackhole(port: number): boolean {
    return this.#blackholes.has(port);
  }

  /** Whether something listens on `port`. */
  listening(port: number): boolean {
    return this.#ports.has(port);
  }

  /**
   * Opens a connection to `port`: the listener accepts the server end, then `clientEvents` gets the
   * client end (its `open` is the caller's business). Throws ECONNREFUSED when nothing listens.
   */
  dial(port: number, clientEvents: TransportEvents, options: MemoryConnectOptions = {}): MemorySocket {
    const list = this.#ports.get(port);
    if (list === undefined || list.length === 0) {
      throw errnoError("ECONNREFUSED", `nothing listens on memory port ${port}`);
    }
    // Several listeners on one port (acceptorCount > 1, SO_REUSEPORT): spread round-robin.
    const turn = this.#roundRobin.get(port) ?? 0;
    this.#roundRobin.set(port, turn + 1);
    const listener = list[turn % list.length]!;
    const clientAddress = options.remoteAddress ?? "127.0.0.1";
    const clientPort = options.remotePort ?? this.#nextEphemeral++;
    const serverAddress = listener.hostname === "0.0.0.0" ? "127.0.0.1" : listener.hostname;
    const client = new MemorySocket(
      this,
      clientEvents,
      options.window ?? this.window,
      { address: clientAddress, port: clientPort },
      { address: serverAddress, port },
    );
    const server = new MemorySocket(
      this,
      listener.acceptor.events,
      options.serverWindow ?? this.window,
      { address: serverAddress, port },
      { address: clientAddress, port: clientPort },
    );
    client.other = server;
    server.other = client;
    this.#open.add(client);
    this.#open.add(server);
    listener.accepted.add(server);
    server.acceptedBy = listener.accepted;
    listener.acceptor.accept(server);
    return client;
  }

  /** @internal A socket closed. */
  forget(socket: MemorySocket): void {
    this.#open.delete(socket);
    socket.acceptedBy?.delete(socket);
  }

  /** Open sockets (either end of a connection). */
  openSockets(): MemorySocket[] {
    return [...this.#open];
  }

  /** Bound listeners, as `[port, hostname]`. */
  listeners(): Array<[port: number, hostname: string]> {
    const out: Array<[number, string]> = [];
    for (const [port, list] of this.#ports) for (const l of list) out.push([port, l.hostname]);
    return out;
  }

  /** Unbinds every listener and resets every open socket (the kit's last clean-up). */
  shutdown(): void {
    for (const list of [...this.#ports.values()]) for (const l of list) l.stop(false);
    for (const socket of [...this.#open]) socket.terminate();
  }
}

/** A listener table for the library: its `open` gets the server end with `socket.data` set. */
function libraryAcceptor(request: ListenRequest): MemoryAcceptor {
  return {
    events: request.events,
    accept(socket) {
      socket.data = request.data;
      request.events.open(socket);
    },
  };
}

/** The memory {@link Transport}: `listen` binds on the kit's network, `connect` dials it by port. */
class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly secure = false;
  readonly #network: MemoryNetwork;

  constructor(network: MemoryNetwork) {
    this.#network = network;
  }

  listen(request: ListenRequest): TransportListener {
    return this.#network.bind(request.port, request.hostname, libraryAcceptor(request), request.reusePort);
  }

  async connect(request: ConnectRequest): Promise<TransportSocket> {
    // Connecting takes a turn, as a real connect does: the caller's code after connect() runs first.
    await Promise.resolve();
    // A black hole drops the SYN: the connect never completes (the connector's connectTimeout decides).
    if (this.#network.isBlackhole(request.port)) return new Promise<never>(() => {});
    const socket = this.#network.dial(request.port, request.events);
    socket.data = request.data;
    request.events.open(socket);
    return socket;
  }
}

/** The memory transport of `network`. @internal Use `testKit().transport`. */
export function memoryTransport(network: MemoryNetwork): Transport {
  return new MemoryTransport(network);
}
