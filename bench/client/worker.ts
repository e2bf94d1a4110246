/**
 * One measurement of one Redis client, run in a process of its own by bench/client/run.ts (so every
 * client gets the same process layout: one Bun process, nothing else in it).
 *
 * Usage: bun bench/client/worker.ts <client> <port> <commands> <inFlight> <connections> [warmup]
 *   client: "sockerl" (examples/redis-client.ts), "bun" (Bun's built-in RedisClient), "ioredis", or
 *           "raw" (the example's RESP code on a bare Bun socket: see openRaw)
 *   commands: how many commands to time; half SET, half GET, over 1,000 keys with 16-byte values
 *   inFlight: commands kept in flight (1 = sequential: each awaits the previous one)
 *   connections: connections (pool connectors, or clients used round-robin)
 *
 * Prints one JSON line: `{ "client", "commands", "ms", "opsPerSec", "cpuUsPerOp", "userUsPerOp" }` (CPU
 * time of the whole process, every thread, per timed command: user + system, and user alone). Exits
 * non-zero on any error or a wrong reply (every GET is checked against what this run SET).
 * `SOCKERL_STRATEGY=round-robin` (or `least-busy`) sets the pool strategy of the sockerl client.
 *
 * @module
 */
import { RedisClient as BunRedisClient } from "bun";
import IORedis from "ioredis";
import { RedisClient } from "../../examples/redis-client.ts";
import { encodeArgs, RespParser } from "../../examples/redis-resp.ts";

/** What the benchmark needs from a client: GET, SET, close. */
interface BenchClient {
  get(key: string): Promise<unknown>;
  set(key: string, value: string): Promise<unknown>;
  close(): Promise<void>;
}

async function open(kind: string, port: number, connections: number): Promise<BenchClient> {
  switch (kind) {
    case "sockerl": {
      const strategy = process.env.SOCKERL_STRATEGY as "round-robin" | "least-busy" | undefined;
      const client = await RedisClient.connect(port, {
        connections,
        pool: strategy === undefined ? {} : { strategy },
      });
      return {
        get: (k) => client.call("GET", k),
        set: (k, v) => client.call("SET", k, v),
        close: () => client.close(),
      };
    }
    case "bun": {
      const clients: BunRedisClient[] = [];
      for (let i = 0; i < connections; i++) {
        const c = new BunRedisClient(`redis://127.0.0.1:${port}`);
        await c.connect();
        clients.push(c);
      }
      let next = 0;
      const pick = (): BunRedisClient => clients[next++ % clients.length] as BunRedisClient;
      return {
        get: (k) => pick().get(k),
        set: (k, v) => pick().set(k, v),
        close: async () => {
          for (const c of clients) c.close();
        },
      };
    }
    case "ioredis": {
      const clients: IORedis[] = [];
      for (let i = 0; i < connections; i++) {
        const c = new IORedis({ host: "127.0.0.1", port, lazyConnect: true });
        await c.connect();
        clients.push(c);
      }
      let next = 0;
      const pick = (): IORedis => clients[next++ % clients.length] as IORedis;
      return {
        get: (k) => pick().get(k),
        set: (k, v) => pick().set(k, v),
        close: async () => {
          await Promise.all(clients.map((c) => c.quit()));
        },
      };
    }
    case "raw":
      return openRaw(port);
    default:
      throw new Error(`unknown client ${kind}`);
  }
}

/**
 * "raw": the example's RESP encoder and parser on a bare `Bun.connect` socket, one write per command
 * and a FIFO of promise callbacks (one connection; not in run.ts's cells). The floor of a Redis client
 * written in JS on Bun's sockets: what the pool and the connection process add is the difference.
 */
async function openRaw(port: number): Promise<BenchClient> {
  const waiting: Array<{ resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  let head = 0;
  const parser = new RespParser();
  const onReply = (reply: unknown): void => {
    const w = waiting[head++]!;
    if (head === waiting.length) {
      waiting.length = 0;
      head = 0;
    }
    w.resolve(reply);
  };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_s, chunk) => parser.feed(chunk, onReply) },
  });
  const send = (bytes: Uint8Array): Promise<unknown> =>
    new Promise((resolve, reject) => {
      waiting.push({ resolve, reject });
      socket.write(bytes);
    });
  return {
    get: (k) => send(encodeArgs("GET", [k])),
    set: (k, v) => send(encodeArgs("SET", [k, v])),
    close: async () => {
      socket.end();
    },
  };
}

const KEYS = 1000;
const value = (i: number): string => `value-${String(i % KEYS).padStart(10, "0")}`; // 16 bytes

/** Runs `commands` commands, `inFlight` at a time; command i is SET for even i, GET for odd i. */
async function drive(client: BenchClient, commands: number, inFlight: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < commands) {
      const i = next++;
      const key = `key:${(i >> 1) % KEYS}`;
      if ((i & 1) === 0) {
        await client.set(key, value(i >> 1));
      } else {
        const got = await client.get(key);
        // Lanes interleave, so a key may have been SET by a later lane: check the shape only.
        const ok = typeof got === "string" ? got.startsWith("value-") : got === null && !prefill;
        if (!ok) throw new Error(`bad GET reply ${got}`);
      }
    }
  };
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < inFlight; i++) lanes.push(lane());
  await Promise.all(lanes);
}

const [kind = "", portArg = "", commandsArg = "", inFlightArg = "1", connectionsArg = "1", warmupArg] =
  process.argv.slice(2);
const port = Number(portArg);
const commands = Number(commandsArg);
const inFlight = Number(inFlightArg);
const connections = Number(connectionsArg);
const warmup = warmupArg === undefined ? Math.min(commands, 5000) : Number(warmupArg);
// PREFILL=0 (the strace run): no untimed commands before the measured ones, so the syscall count is
// the measured commands' only; GETs of keys not yet set may then be null.
const prefill = process.env.PREFILL !== "0";

const client = await open(kind, port, connections);
// Every key exists before the timed run, so each GET is checked.
if (prefill) await drive(client, 2 * KEYS, 1);
if (warmup > 0) await drive(client, warmup, inFlight);
const start = performance.now();
const cpuBefore = process.cpuUsage();
await drive(client, commands, inFlight);
const cpu = process.cpuUsage(cpuBefore);
const ms = performance.now() - start;
await client.close();
// CPU time per command: what the client costs, much less moved than the wall clock by the other load
// of a shared machine. The JIT's and the GC's threads count too (pinned, they share the client's CPU).
const cpuUsPerOp = (cpu.user + cpu.system) / commands;
const userUsPerOp = cpu.user / commands;
console.log(
  JSON.stringify({ client: kind, commands, ms, opsPerSec: (commands / ms) * 1000, cpuUsPerOp, userUsPerOp }),
);
process.exit(0);
