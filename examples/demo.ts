/**
 * The demo: an echo server and a pool of three connectors talking to it, with tracing on.
 * Run with `npm run demo`; it exits by itself after a few round trips.
 */
import { type Handler, startConnectorPool, startServer, sys } from "../src/index.ts";

// Trace lines go to stderr by default; here they share stdout so they read in order.
sys.setSink((line) => console.log(line));

// Server side: echo every packet back and count them per connection.
const echo: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, count) => ({ state: count + 1, send: packet }),
  handleCall: (request, _from, count) => (request === "how_much" ? { reply: count } : undefined),
  handleDisconnect: () => undefined,
};

const server = await startServer(echo, undefined, 0, {
  hostname: "127.0.0.1",
  packet: "line",
  encoding: "utf8",
  acceptorDebug: ["trace"],
});
if (server === undefined) throw new Error("listenInit ignored the start");
console.log(`echo server listening on 127.0.0.1:${server.port}`);

// Client side: each connector says hello, then pings on its idle timeout until it got 3 echoes.
const pinger: Handler<{ name: string; echoes: number }, string> = {
  init: (prefix, meta) => ({
    state: { name: `${prefix}-${meta.connection.id}`, echoes: 0 },
    send: `hello from ${prefix}-${meta.connection.id}\n`,
    timeout: 100,
  }),
  handlePacket: (line, state) => {
    const echoes = state.echoes + 1;
    console.log(`${state.name} got echo #${echoes}: ${String(line).trimEnd()}`);
    return echoes >= 3 ? { state: { ...state, echoes }, close: true } : { state: { ...state, echoes } };
  },
  timeout: (state) => ({ send: `ping ${state.echoes + 1} from ${state.name}\n` }),
};

const pool = await startConnectorPool(pinger, "client", [["127.0.0.1", server.port]], {
  connectorCount: 3,
  packet: "line",
  encoding: "utf8",
  connectorDebug: ["trace"],
});
console.log(`pool started: ${pool.connections().length} connectors`);

// Wait until every connector has closed itself (default plan: a normal exit deletes it), bounded.
const deadline = Date.now() + 8000;
while (pool.connections().length > 0 && Date.now() < deadline) await Bun.sleep(50);
await pool.stop();
await server.stop();
console.log(`done: pool ${String(await pool.exited)}, server ${String(await server.exited)}`);
