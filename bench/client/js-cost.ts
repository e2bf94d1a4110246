/**
 * The JavaScript cost of the example Redis client per command, without a kernel or a server: the
 * pool's connectors run on an in-process transport whose "server" answers every command at once
 * (`+OK` for a SET, a 16-byte bulk string for a GET), one reply chunk per write, delivered in a later
 * turn of the event loop (`setImmediate`, as a socket read would be). What is left is the client's
 * own work: encoding, `pool.call`, the mailbox, the write path, parsing, settling the promises.
 *
 * On a shared 2-CPU machine the socket benchmark (run.ts) moves with the other load; this one counts
 * CPU time of one process and is steady to a few percent, so it tells whether a change to the client
 * made it cheaper.
 *
 * Usage: bun bench/client/js-cost.ts [--commands N] [--reps N]
 * Prints, per cell (sequential; 100 in flight on 1 and on 8 connectors), CPU ns per command: the
 * least of the repetitions (the one the machine's other load disturbed least), and their median.
 *
 * @module
 */
import { RedisClient } from "../../examples/redis-client.ts";
import type { ConnectRequest, Transport, TransportEvents, TransportSocket } from "../../src/index.ts";

const OK = Buffer.from("+OK\r\n");
const VALUE = Buffer.from("$16\r\nvalue-0000000000\r\n");

/** The client end of a fake connection: each write is answered, in one chunk, on the next turn. */
class FakeRedisSocket implements TransportSocket {
  data: unknown;
  readonly #events: TransportEvents;
  #replies: Buffer[] = [];
  #scheduled = false;
  #closed = false;
  constructor(events: TransportEvents, data: unknown) {
    this.#events = events;
    this.data = data;
  }

  write(data: Uint8Array | string): number {
    if (this.#closed) return -1;
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    // A command is `*<n>\r\n...`; no key or value here holds a `*`. Two arguments: GET; three: SET.
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 42) this.#replies.push(bytes[i + 1] === 51 ? OK : VALUE);
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#deliver());
    }
    return bytes.length;
  }

  #deliver(): void {
    this.#scheduled = false;
    const replies = this.#replies;
    this.#replies = [];
    if (this.#closed || replies.length === 0) return;
    this.#events.data(this, replies.length === 1 ? Buffer.from(replies[0]!) : Buffer.concat(replies));
  }

  end(): void {
    this.terminate();
  }
  shutdown(): void {}
  terminate(): void {
    if (this.#closed) return;
    this.#closed = true;
    queueMicrotask(() => this.#events.close(this));
  }
  pause(): void {}
  resume(): void {}
}

const fakeRedis: Transport = {
  name: "fake-redis",
  secure: false,
  listen() {
    throw new Error("fake-redis cannot listen");
  },
  async connect(request: ConnectRequest): Promise<TransportSocket> {
    const socket = new FakeRedisSocket(request.events, request.data);
    queueMicrotask(() => request.events.open(socket));
    return socket;
  },
};

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const commands = opt("--commands", 100_000);
const reps = opt("--reps", 9);

async function drive(client: RedisClient, n: number, inFlight: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const key = `key:${(i >> 1) % 1000}`;
      if ((i & 1) === 0) await client.call("SET", key, "value-0000000000");
      else await client.call("GET", key);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
}

const cells = [
  { name: "sequential", inFlight: 1, connections: 1 },
  { name: "100 in flight", inFlight: 100, connections: 1 },
  { name: "100 in flight, 8 conns", inFlight: 100, connections: 8 },
];
for (const cell of cells) {
  const client = await RedisClient.connect(1, {
    connections: cell.connections,
    pool: { transport: fakeRedis },
  });
  await drive(client, 20_000, cell.inFlight); // warm-up
  const ns: number[] = [];
  for (let r = 0; r < reps; r++) {
    Bun.gc(true);
    const before = process.cpuUsage();
    await drive(client, commands, cell.inFlight);
    const cpu = process.cpuUsage(before);
    ns.push(((cpu.user + cpu.system) * 1000) / commands);
  }
  await client.close();
  ns.sort((a, b) => a - b);
  const med = ns[ns.length >> 1]!;
  console.log(
    `${cell.name.padEnd(24)} min ${ns[0]!.toFixed(0).padStart(5)} ns/command, median ${med.toFixed(0).padStart(5)}`,
  );
}
process.exit(0);
