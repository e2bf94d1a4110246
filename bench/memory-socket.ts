/**
 * A TransportSocket that lives in memory: `write()` takes every byte at once and nothing else
 * happens. The micro-benchmarks attach connections to it so that the library's own per-packet work
 * is measured without a syscall (a benchmark fixture, not a test double: tests use real sockets).
 */
import { ConnectionProcess } from "../src/connection.ts";
import type { Handler } from "../src/handler.ts";
import { connectionSettings } from "../src/options.ts";
import { type TransportSocket, tcp } from "../src/transport/transport.ts";

/** A socket that takes every byte at once (write returns the length) and does nothing else. */
export function memorySocket(): TransportSocket {
  return {
    data: undefined,
    write: (bytes) => (typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length),
    end: () => undefined,
    shutdown: () => undefined,
    terminate: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
    remoteAddress: "127.0.0.1",
    remotePort: 40000,
    localPort: 7000,
  };
}

/**
 * Starts a server-side connection of `Process` (the library's class, or a variant built from its
 * source) with `handler` and start `options`, attached to a fresh memory socket; returns the socket
 * (feed it with `Process.EVENTS.data(socket, chunk)`).
 */
export function attachedSocket(
  handler: Handler<number>,
  options: Record<string, unknown> = {},
  Process: typeof ConnectionProcess = ConnectionProcess,
): TransportSocket {
  const conn = new Process(
    {
      handler: handler as Handler<unknown, unknown>,
      init: undefined,
      settings: connectionSettings(options),
      isServer: true,
    },
    tcp(),
    undefined,
  );
  const socket = memorySocket();
  conn.attach(socket, false);
  return socket;
}
