/**
 * An instrumented `tcp()` for tests: a user-level custom transport (the public `Transport` interface,
 * no mock of the socket layer) that counts what the library does with the kernel, so a test can await
 * "the server has read these bytes" or "the server's side has closed" instead of sleeping, and can see
 * how much the library holds in memory.
 *
 * @module
 */
import { type Transport, type TransportEvents, type TransportSocket, tcp } from "../../src/index.ts";
import { within } from "./wait.ts";

/** What {@link countingTcp} returns: the transport and its counters. */
export interface CountingTcp {
  /** Pass as the `transport` option of a server or connector. */
  readonly transport: Transport;
  /** Bytes read from the kernel so far (Bun `data` events), over every socket. */
  read(): number;
  /** Bytes the kernel has taken from the library's writes so far, over every socket. */
  written(): number;
  /** Sockets whose close has been reported so far. */
  closes(): number;
  /** Resolves once at least `n` bytes have been read in all; rejects after `timeoutMs`. */
  untilRead(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves on the next socket close (call it before causing the close). */
  nextClose(): Promise<void>;
}

/**
 * `tcp()` wrapped to count the bytes the library reads and writes and the sockets that close, on
 * listening and connecting sockets alike. `name` is the transport's name (`meta.transport`).
 *
 * @example
 * const counter = countingTcp();
 * const server = await startTestServer(handler, null, { transport: counter.transport });
 * client.write("a");
 * await counter.untilRead(1); // the byte is its own TCP chunk
 */
export function countingTcp(name = "tcp"): CountingTcp {
  const inner = tcp();
  let read = 0;
  let written = 0;
  let closes = 0;
  let readWaiters: { n: number; resolve: () => void }[] = [];
  let closeWaiters: Array<() => void> = [];
  const wrapWrite = (socket: TransportSocket): void => {
    const marked = socket as TransportSocket & { __counted?: boolean };
    if (marked.__counted) return;
    marked.__counted = true;
    const write = socket.write.bind(socket);
    socket.write = (data, offset, length) => {
      const n = offset === undefined ? write(data) : write(data, offset, length);
      if (n > 0) written += n;
      return n;
    };
  };
  const wrap = (events: TransportEvents): TransportEvents => ({
    ...events,
    open(socket) {
      wrapWrite(socket);
      events.open(socket);
    },
    data(socket, chunk) {
      read += chunk.length;
      events.data(socket, chunk);
      readWaiters = readWaiters.filter((w) => {
        if (read < w.n) return true;
        w.resolve();
        return false;
      });
    },
    close(socket, error) {
      closes++;
      events.close(socket, error);
      const list = closeWaiters;
      closeWaiters = [];
      for (const w of list) w();
    },
  });
  return {
    transport: {
      name,
      secure: false,
      listen: (request) => inner.listen({ ...request, events: wrap(request.events) }),
      connect: (request) => inner.connect({ ...request, events: wrap(request.events) }),
    },
    read: () => read,
    written: () => written,
    closes: () => closes,
    untilRead(n, timeoutMs = 3000) {
      if (read >= n) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      readWaiters.push({ n, resolve });
      return within(promise, timeoutMs, `the server to read ${n} bytes (read ${read})`);
    },
    nextClose: () => new Promise<void>((resolve) => closeWaiters.push(resolve)),
  };
}
