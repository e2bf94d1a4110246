/**
 * A small Redis client on a connector pool: RESP2 commands out, replies parsed (pipelined replies
 * split anywhere across chunks included), `client.call("GET", key)` resolves with the value and a
 * Redis error reply rejects with a {@link RedisError}. RESP itself (encoding, the reply parser) is in
 * examples/redis-resp.ts.
 *
 * How it maps onto the pool: `client.call` encodes the command and hands it to `pool.call`, which
 * routes it to a live connector (or waits while none is live). The connector's `handleCall` writes the
 * bytes and pushes the caller's `From` on a FIFO in its state; `handlePacket` parses what arrives and
 * settles the oldest `From` per reply, because Redis answers the commands of one connection in order.
 * Nothing else is needed for pipelining: many calls in flight on one connector are many `From`s on
 * its FIFO, and the writes of the callbacks it runs in one turn go out as one socket write.
 *
 * @example
 * const client = await RedisClient.connect(6379, { connections: 4 });
 * await client.call("SET", "greeting", "hello");
 * await client.call("GET", "greeting"); // "hello"
 * await client.close();
 *
 * @module
 */
import { type From, type Handler, type Pool, type PoolOptions, startConnectorPool } from "../src/index.ts";
import { encodeArgs, type RedisArg, RedisError, type RedisReply, RespParser } from "./redis-resp.ts";

export { encodeCommand, type RedisArg, RedisError, type RedisReply, RespParser } from "./redis-resp.ts";

// ----------------------------------------------------------------------------------------- handler

/** One connector's state: the reply parser and the callers waiting for replies, oldest first. */
export interface RedisConnState {
  readonly parser: RespParser;
  /** Pending callers; `head` is the index of the oldest (a queue without `shift`'s copying). */
  readonly waiting: From[];
  head: number;
  /** `settle` bound to this state, made once (not a closure per packet). */
  readonly onReply: (reply: RedisReply) => void;
}

function connState(): RedisConnState {
  const state: RedisConnState = {
    parser: new RespParser(),
    waiting: [],
    head: 0,
    onReply: (reply) => settle(state, reply),
  };
  return state;
}

function settle(state: RedisConnState, reply: RedisReply): void {
  const from = state.waiting[state.head];
  if (from === undefined) return; // a reply nobody asked for (a server bug): drop it
  state.waiting[state.head++] = undefined as unknown as From;
  if (state.head === state.waiting.length) {
    state.waiting.length = 0;
    state.head = 0;
  }
  if (reply instanceof RedisError) from.reject(reply);
  else from.reply(reply);
}

/**
 * The connector handler: `handleCall` gets an encoded command, writes it and keeps the `From`;
 * `handlePacket` settles the `From`s in order as replies complete. A connection that drops rejects
 * its pending calls with `NoProcError` (the pool's doing) and reconnects under the pool's plan.
 */
export const redisHandler: Handler<RedisConnState> = {
  init: () => ({ state: connState() }),
  handleCall(request, from, state, meta) {
    state.waiting.push(from);
    // `meta.send` and no action: the same corked write as `{ send }`, without an action object to
    // allocate and read per call.
    meta.send(request as Uint8Array);
    return undefined;
  },
  handlePacket(packet, state) {
    try {
      state.parser.feed(packet as Uint8Array, state.onReply);
    } catch (error) {
      // Bytes that are not RESP: nothing after them can be matched to a caller. Fail the callers
      // waiting here with the parse error and drop the connection (the plan reconnects it).
      for (let i = state.head; i < state.waiting.length; i++) state.waiting[i]?.reject(error);
      state.waiting.length = 0;
      state.head = 0;
      return { stop: error };
    }
    return undefined;
  },
  handleDisconnect: () => undefined,
};

// ------------------------------------------------------------------------------------------ client

/** Options of {@link RedisClient.connect}. */
export interface RedisClientOptions {
  /** Server host. @default "127.0.0.1" */
  host?: string;
  /**
   * Connections in the pool. Calls go to the one with the fewest in flight (`strategy: "least-busy"`,
   * unless `pool.strategy` says otherwise): the calls made in one turn then mostly share a connection
   * and one write, where round-robin gave each connection a write of its own (10,000 commands with 100
   * in flight over 8 connections: 3,889 `sendto` round-robin). @default 1
   */
  connections?: number;
  /** Milliseconds a command may take, waiting for a connection included. @default 5000 */
  timeoutMs?: number;
  /** Any other pool option (`plan`, `maxWaiting`, `waitTimeout`, `watchdog`, ...). */
  pool?: Omit<PoolOptions, "connectorCount">;
}

/**
 * A Redis client: a pool of connectors running {@link redisHandler}. Every call is one request routed
 * by the pool; calls made while every connection is down wait for a reconnect (bounded by the pool's
 * `maxWaiting` and `waitTimeout`).
 *
 * @example
 * const client = await RedisClient.connect(6379);
 * await client.call("INCR", "hits"); // 1
 */
export class RedisClient {
  readonly pool: Pool<RedisConnState, undefined>;
  readonly #timeoutMs: number;

  private constructor(pool: Pool<RedisConnState, undefined>, timeoutMs: number) {
    this.pool = pool;
    this.#timeoutMs = timeoutMs;
  }

  /** Starts the pool; resolves once every connection is up (with `pool: { watchdog: true }`, at once). */
  static async connect(port: number, options: RedisClientOptions = {}): Promise<RedisClient> {
    const pool = await startConnectorPool(redisHandler, undefined, [[options.host ?? "127.0.0.1", port]], {
      strategy: "least-busy",
      ...options.pool,
      connectorCount: options.connections ?? 1,
    });
    return new RedisClient(pool, options.timeoutMs ?? 5000);
  }

  /**
   * Runs one command. Resolves with the reply; rejects with {@link RedisError} for an error reply,
   * `NoProcError` when the connection carrying it dropped after it was written (it may have run),
   * `PoolTimeoutError` / `PoolFullError` when no connection came up in time, `CallTimeoutError`.
   */
  call(command: string, ...args: RedisArg[]): Promise<RedisReply> {
    return this.pool.call<RedisReply>(encodeArgs(command, args), this.#timeoutMs);
  }

  /** Stops the pool; pending calls reject with `NoProcError`. */
  close(): Promise<void> {
    return this.pool.stop();
  }
}

// `bun examples/redis-client.ts [port]`: a few commands against a redis-server on 127.0.0.1.
if (import.meta.main) {
  const port = Number(process.argv[2] ?? 6379);
  const client = await RedisClient.connect(port, { connections: 2 });
  console.log(await client.call("SET", "sockerl:greeting", "hello")); // OK
  console.log(await client.call("GET", "sockerl:greeting")); // hello
  const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => client.call("ECHO", `m${i}`)));
  console.log(replies); // [ "m0", "m1", "m2", "m3", "m4" ]: pipelined, each caller gets its own reply
  await client.call("LPUSH", "sockerl:greeting", "x").catch((error: unknown) => {
    if (error instanceof RedisError) console.log(error.kind); // WRONGTYPE
  });
  await client.call("DEL", "sockerl:greeting");
  await client.close();
}
