/**
 * The demo (`npm run demo`): an echo server and a pool of connectors talking to it. It shows a
 * server-side trace, a `call` into a server connection, a call through the pool, and a restart
 * plan bringing a crashed connector back. It exits by itself in well under a second.
 */
import { type Handler, startConnectorPool, startServer, sys } from "../src/index.ts";

// Trace lines go to stderr by default; here they share stdout so they read in order.
sys.setSink((line) => console.log(line.replace(/^/gm, "  ")));

// Server side: echo every line back and count them per connection.
const echo = {
  init: () => ({ state: 0 }),
  handlePacket: (line, count) => ({ state: count + 1, send: line }),
  handleCall: (request, _from, count) => (request === "how_much" ? { reply: count } : undefined),
} satisfies Handler<number, unknown, string>;

const server = await startServer(echo, undefined, 0, {
  hostname: "127.0.0.1",
  packet: "line",
  encoding: "utf8",
});
console.log(`echo server listening on 127.0.0.1:${server.port}`);

// Client side: a connector's call sends a line, and the echo answers it (a deferred reply).
const asker = {
  init: () => ({ state: undefined }),
  handleCall: (request, from) => ({
    state: (line) => from.reply(line.trimEnd()),
    send: `${String(request)}\n`,
  }),
  handlePacket: (line, answer) => {
    answer?.(line);
    return { state: undefined };
  },
} satisfies Handler<((line: string) => void) | undefined, string, string>;

const pool = await startConnectorPool(asker, "client", [["127.0.0.1", server.port]], {
  connectorCount: 3,
  packet: "line",
  encoding: "utf8",
  plan: [{ restart: 20 }], // a connector that ends is reconnected 20 ms later
});
console.log(`pool started: ${pool.connections().length} connectors`);

// 1. A server-side trace: switch tracing on for one server connection, at run time.
while (server.connections().length < 3) await Bun.sleep(5);
const [serverId, serverConn] = server.connections()[0] ?? [];
if (serverConn === undefined) throw new Error("no server connection");
console.log(`tracing server connection <${serverId}>:`);
sys.trace(serverConn, true);

// 2. Calls through the pool: each is routed to a live connector (round-robin), the echo is the reply.
for (let i = 1; i <= 3; i++) console.log(`pool.call #${i} got: ${await pool.call<string>(`hello ${i}`)}`);
sys.trace(serverConn, false);

// 3. A call into a server connection: how many lines it echoed.
const counts = await Promise.all(
  server.connections().map(([id, conn]) => conn.call<number>("how_much").then((n) => `<${id}>: ${n}`)),
);
console.log(`lines echoed per server connection: ${counts.join(", ")}`);

// 4. A restart: one connector crashes; the plan reconnects it (a new connection, `init` runs again).
const [slot, victim] = pool.connections()[0] ?? [];
if (victim === undefined) throw new Error("no connector");
await victim.stop("crash");
const deadline = Date.now() + 2000;
while (!pool.connections().some(([s, conn]) => s === slot && conn !== victim) && Date.now() < deadline) {
  await Bun.sleep(5);
}
const revived = pool.connections().find(([s]) => s === slot)?.[1];
console.log(
  `slot ${slot}: connector <${victim.id}> crashed, restarted as <${revived?.id}>: ${await revived?.call<string>("back")}`,
);

await pool.stop();
await server.stop();
console.log(`done: pool ${String(await pool.exited)}, server ${String(await server.exited)}`);
