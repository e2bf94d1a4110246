/**
 * A Redis-protocol server in one handler: PING, ECHO, SET, GET, INCR, DEL (plus QUIT, and empty
 * answers to the CONFIG GET / COMMAND probes clients send), over the RESP codec of `./resp.ts`.
 *
 * The codec makes every `handlePacket` one whole command, however TCP cut the bytes; pipelined
 * commands (redis-cli --pipe, redis-benchmark -P) are just many frames in one chunk, each answered in
 * order, and the replies of one chunk leave in one write (the connection corks them).
 *
 *     bun examples/resp-server.ts [port]     # default 6379
 *     redis-cli -p 6379 SET greeting hello && redis-cli -p 6379 GET greeting
 *
 * @module
 */

import { type Handler, type Server, type ServerOptions, startServer } from "../src/index.ts";
import { array, bulk, error, integer, NULL_BULK, parseCommand, resp, simple } from "./resp.ts";

/** The keyspace, shared by every connection of one server. Keys are byte strings (latin1: 1 char = 1 byte). */
export type Store = Map<string, Uint8Array>;

const latin1 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
const wrongArgs = (name: string): string => error(`ERR wrong number of arguments for '${name}' command`);

/** Runs one command against the store: the reply, and whether to close after it. */
export function execute(
  args: Uint8Array[],
  store: Store,
): { reply: Uint8Array | string | undefined; close?: boolean } {
  // An empty inline line gets no reply, as redis-server does (redis-cli --pipe sends one before its
  // closing ECHO).
  if (args.length === 0) return { reply: undefined };
  const name = latin1(args[0]!).toLowerCase();
  const n = args.length;
  switch (name) {
    case "ping":
      return { reply: n === 1 ? simple("PONG") : n === 2 ? bulk(args[1]!) : wrongArgs(name) };
    case "echo":
      return { reply: n === 2 ? bulk(args[1]!) : wrongArgs(name) };
    case "set":
      if (n < 3) return { reply: wrongArgs(name) };
      // A copy: the frame is a view of a socket chunk, which a stored value would keep alive whole.
      store.set(latin1(args[1]!), Uint8Array.from(args[2]!));
      return { reply: simple("OK") };
    case "get": {
      if (n !== 2) return { reply: wrongArgs(name) };
      const value = store.get(latin1(args[1]!));
      return { reply: value === undefined ? NULL_BULK : bulk(value) };
    }
    case "incr": {
      if (n !== 2) return { reply: wrongArgs(name) };
      const key = latin1(args[1]!);
      const old = store.get(key);
      const text = old === undefined ? "0" : latin1(old);
      if (!/^-?\d{1,19}$/.test(text)) return { reply: error("ERR value is not an integer or out of range") };
      const next = BigInt(text) + 1n;
      if (next > 9223372036854775807n) return { reply: error("ERR increment or decrement would overflow") };
      store.set(key, Buffer.from(next.toString()));
      return { reply: integer(next) };
    }
    case "del": {
      if (n < 2) return { reply: wrongArgs(name) };
      let deleted = 0;
      for (let i = 1; i < n; i++) if (store.delete(latin1(args[i]!))) deleted++;
      return { reply: integer(deleted) };
    }
    case "config": {
      // redis-benchmark asks for `save` and `appendonly` before it starts: no persistence here.
      const param = n === 3 && latin1(args[1]!).toLowerCase() === "get" ? latin1(args[2]!).toLowerCase() : "";
      const value = param === "save" ? "" : param === "appendonly" ? "no" : undefined;
      return { reply: value === undefined ? array([]) : array([bulk(param), bulk(value)]) };
    }
    case "command": // redis-cli asks for command docs: none
      return { reply: array([]) };
    case "quit":
      return { reply: simple("OK"), close: true };
    default:
      return { reply: error(`ERR unknown command '${name}'`) };
  }
}

/** One connection: no state of its own, the store is the init argument. */
const handler: Handler<Store, Store> = {
  init: (store) => ({ state: store }),
  handlePacket(frame, store) {
    const { reply, close } = execute(parseCommand(frame as Uint8Array), store);
    if (reply === undefined) return undefined;
    return close ? { send: reply, close: true } : { send: reply };
  },
  handleDisconnect: () => undefined,
};

/**
 * Starts the RESP server on `port` (0 = pick one) with a new empty store.
 *
 * @example
 * ```ts
 * const server = await startRespServer(0, { hostname: "127.0.0.1" });
 * console.log(`redis-cli -p ${server.port} PING`);
 * ```
 */
export async function startRespServer(
  port = 6379,
  options: ServerOptions = {},
): Promise<Server<Store, Store>> {
  const server = await startServer(handler, new Map(), port, {
    hostname: "127.0.0.1",
    // A bulk string may be large; the frame bound is what a client may make the server buffer.
    maxPacketSize: 64 * 1024 * 1024,
    ...options,
    packet: resp,
  });
  if (server === undefined) throw new Error("the RESP server did not start");
  return server;
}

if (import.meta.main) {
  const server = await startRespServer(Number(process.argv[2] ?? 6379));
  console.log(`RESP server on 127.0.0.1:${server.port} (try: redis-cli -p ${server.port} PING)`);
}
