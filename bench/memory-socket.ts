/**
 * An in-memory transport for the micro-benchmarks: the library runs a real server over it, reached
 * only through its public API (`startServer(handler, init, 0, { transport })`), and each "accepted"
 * socket's `write()` takes every byte at once and does nothing else. Feeding a chunk with
 * `events.data(socket, chunk)` then runs exactly the library's per-packet work for a received chunk
 * (dispatch → `handlePacket` → apply the action → `write()`), without a syscall. A benchmark
 * fixture, not a test double: the tests use real sockets or the testing kit's memory network.
 *
 * @module
 */
import type * as Sockerl from "../src/index.ts";
import type {
  ConnectRequest,
  Handler,
  ListenRequest,
  ServerOptions,
  Transport,
  TransportListener,
  TransportSocket,
} from "../src/index.ts";
import { COPIES_WRITES } from "../src/transport/bun-options.ts";

/** The library's public API: the module as shipped (`src/index.ts`) or a build of it. */
export type Library = typeof Sockerl;

/** A socket that takes every byte at once (write returns the length) and does nothing else. */
export interface MemorySocket extends TransportSocket {
  /** Bytes written so far. */
  written: number;
}

/** A fresh {@link MemorySocket}. */
export function memorySocket(): MemorySocket {
  const socket: MemorySocket = {
    data: undefined,
    written: 0,
    write: (bytes, _offset, length) => {
      const n = length ?? (typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length);
      socket.written += n;
      return n;
    },
    end: () => undefined,
    shutdown: () => undefined,
    terminate: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
    remoteAddress: "127.0.0.1",
    remotePort: 40000,
    localPort: 7000,
  };
  return socket;
}

/**
 * A transport whose listener "accepts" a memory socket each time {@link MemoryTransport.accept} is
 * called: it sets `socket.data` to the listen request's `data` and reports `open`, as a transport
 * must. It cannot connect.
 */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly secure = false;
  /** Its sockets keep nothing they are given (like Bun's), so the library's production write path runs. */
  readonly [COPIES_WRITES] = true;
  #request: ListenRequest | undefined;

  listen(request: ListenRequest): TransportListener {
    this.#request = request;
    return { port: 7000, hostname: request.hostname, stop: () => undefined };
  }

  connect(_request: ConnectRequest): Promise<TransportSocket> {
    return Promise.reject(new Error("the benchmark memory transport only accepts"));
  }

  /** Accepts a new memory socket; returns it and the function that delivers a received chunk. */
  accept(): { socket: MemorySocket; feed: (chunk: Uint8Array) => void } {
    const request = this.#request;
    if (request === undefined) throw new Error("accept() before listen()");
    const socket = memorySocket();
    socket.data = request.data;
    const events = request.events;
    events.open(socket);
    return { socket, feed: (chunk) => events.data(socket, chunk) };
  }
}

/** A server on a memory transport with one accepted connection, ready for packets. */
export interface MemoryConnection {
  readonly socket: MemorySocket;
  /** Delivers one received chunk (synchronously handled: checked when the connection is made). */
  readonly feed: (chunk: Uint8Array) => void;
  /** Stops the server (and the connection). */
  readonly stop: () => Promise<void>;
}

/**
 * Starts a server of `lib` with `handler` and `options` on a memory transport, accepts one
 * connection, and waits until its `init` has run. Then it feeds `probe` once and, when
 * `expectWrite`, checks that the reply was written before `feed` returned: a benchmark that fed
 * chunks into a queue handled later would measure nothing.
 *
 * @example
 * const c = await memoryConnection(sockerl, echo, {}, Buffer.alloc(64));
 * c.feed(Buffer.alloc(64)); // one packet through the library, one write
 */
export async function memoryConnection<S>(
  lib: Library,
  handler: Handler<S>,
  options: Omit<ServerOptions, "transport">,
  probe: Uint8Array,
  expectWrite = true,
): Promise<MemoryConnection> {
  const transport = new MemoryTransport();
  let inited = false;
  const wrapped: Handler<S> = {
    ...handler,
    init: (init, meta) => {
      inited = true;
      return handler.init(init, meta);
    },
  };
  const server = await lib.startServer(wrapped, undefined, 0, { ...options, transport });
  if (server === undefined) throw new Error("startServer did not start");
  const { socket, feed } = transport.accept();
  for (let i = 0; i < 200 && !inited; i++) await Bun.sleep(1);
  if (!inited) throw new Error("the connection's init did not run within 200 ms");
  await Bun.sleep(1); // let init's action be applied
  const before = socket.written;
  feed(probe);
  if (expectWrite && socket.written === before)
    throw new Error("a fed packet was not answered synchronously: update bench/memory-socket.ts");
  return { socket, feed, stop: () => lib.stopServer(server) };
}
