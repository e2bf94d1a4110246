/**
 * JSON request/response over `packet: 4` (a 4-byte big-endian length before every message), with a
 * pool of connectors on the client side: `await rpc(pool, "add", 2, 3)` resolves to `5`.
 *
 * Framing does the work on both sides: every `handlePacket` is one whole JSON message, and every
 * string sent gets its length prefix. A connector may have many calls in flight (requests carry an
 * id, replies are matched to the waiting `from`), and the pool spreads calls over its connectors.
 *
 *     bun examples/rpc.ts [port]        # a server on port (default 7070), then 8 calls through a pool
 *
 * @module
 */

import {
  type From,
  type Handler,
  type Pool,
  type PoolOptions,
  type Server,
  type ServerOptions,
  startConnectorPool,
  startServer,
} from "../src/index.ts";

/** A request on the wire. */
interface Request {
  id: number;
  method: string;
  params: unknown[];
}

/** A reply on the wire: `result`, or `error` (a message). */
interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

/** What a remote method threw, as the caller sees it. */
export class RpcError extends Error {
  override readonly name = "RpcError";
}

// ----------------------------------------------------------------------------------------- server

/** The methods the server offers. */
const METHODS: Record<string, (...params: never[]) => unknown> = {
  add: (a: number, b: number) => a + b,
  upper: (s: string) => s.toUpperCase(),
  echo: (x: unknown) => x,
  sum: (xs: number[]) => xs.reduce((a, b) => a + b, 0),
  fail: (message: string) => {
    throw new Error(message);
  },
};

/** Answers one request; a bad one gets an error reply (the connection carries on). */
function answer(frame: string): string {
  let request: Request;
  try {
    request = JSON.parse(frame) as Request;
  } catch {
    return JSON.stringify({ id: -1, error: "not JSON" } satisfies Reply);
  }
  const method = METHODS[request.method];
  if (method === undefined) return JSON.stringify({ id: request.id, error: `no method ${request.method}` });
  try {
    const result = (method as (...p: unknown[]) => unknown)(...(request.params ?? []));
    return JSON.stringify({ id: request.id, result } satisfies Reply);
  } catch (error) {
    return JSON.stringify({ id: request.id, error: (error as Error).message } satisfies Reply);
  }
}

/** Server connections: one request in, one reply out; the count is for `conn.call("served")`. */
const service: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (frame, served) => ({ state: served + 1, send: answer(String(frame)) }),
  handleCall: (request, _from, served) => (request === "served" ? { reply: served } : undefined),
  handleDisconnect: () => undefined,
};

/**
 * Starts the RPC server on `port` (0 = pick one).
 *
 * @example
 * ```ts
 * const server = await startRpcServer(0);
 * ```
 */
export async function startRpcServer(
  port = 7070,
  options: ServerOptions = {},
): Promise<Server<number, unknown>> {
  const server = await startServer(service, undefined, port, {
    hostname: "127.0.0.1",
    encoding: "utf8",
    maxPacketSize: 1024 * 1024,
    ...options,
    packet: 4,
  });
  if (server === undefined) throw new Error("the RPC server did not start");
  return server;
}

// ----------------------------------------------------------------------------------------- client

/** One connector: the next request id and the calls waiting for their reply. */
interface Caller {
  next: number;
  pending: Map<number, From>;
}

const caller: Handler<Caller> = {
  init: () => ({ state: { next: 1, pending: new Map() } }),
  handleCall(request, from, state) {
    const { method, params } = request as { method: string; params: unknown[] };
    const id = state.next++;
    state.pending.set(id, from); // answered from handlePacket, when the reply with this id comes
    return { send: JSON.stringify({ id, method, params } satisfies Request) };
  },
  handlePacket(frame, state) {
    const reply = JSON.parse(String(frame)) as Reply;
    const from = state.pending.get(reply.id);
    if (from === undefined) return { stop: new RpcError(`reply to no request: ${String(frame)}`) };
    state.pending.delete(reply.id);
    if (reply.error !== undefined) from.reject(new RpcError(reply.error));
    else from.reply(reply.result);
    return undefined;
  },
  handleDisconnect: () => undefined,
};

/**
 * Starts a pool of `connectorCount` connectors to the RPC server at `host`:`port`.
 *
 * @example
 * ```ts
 * const pool = await startRpcPool("127.0.0.1", server.port, { connectorCount: 4 });
 * await rpc(pool, "add", 2, 3); // → 5
 * ```
 */
export function startRpcPool(
  host: string,
  port: number,
  options: PoolOptions = {},
): Promise<Pool<Caller, undefined>> {
  return startConnectorPool(caller, undefined, [[host, port]], {
    connectorCount: 4,
    encoding: "utf8",
    maxPacketSize: 1024 * 1024,
    ...options,
    packet: 4,
  });
}

/** Calls `method` on the server through `pool`; rejects with {@link RpcError} when it threw there. */
export function rpc<R = unknown>(
  pool: Pool<Caller, undefined>,
  method: string,
  ...params: unknown[]
): Promise<R> {
  return pool.call<R>({ method, params });
}

if (import.meta.main) {
  const server = await startRpcServer(Number(process.argv[2] ?? 7070));
  const pool = await startRpcPool("127.0.0.1", server.port);
  const results = await Promise.all([
    rpc(pool, "add", 2, 3),
    rpc(pool, "upper", "sockerl"),
    rpc(pool, "sum", [1, 2, 3, 4]),
    rpc(pool, "echo", { nested: [true, null] }),
    rpc(pool, "fail", "on purpose").catch((e: Error) => `${e.name}: ${e.message}`),
  ]);
  for (const r of results) console.log(JSON.stringify(r));
  await pool.stop();
  await server.stop();
}
