/**
 * A user's program, written against the packed package only (imports of "sockerl"): a TCP echo
 * server with a server-side trace, a connector pool calling it, a TLS server and client, error
 * classes. scripts/consumer-check.ts type-checks it under three tsconfigs, runs it with bun and
 * bundles it with `bun build`. It prints "consumer app: ok" and exits 0 when everything worked.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Connection,
  type ExitReason,
  type Handler,
  NoProcError,
  type ServerOptions,
  SockerlError,
  startConnector,
  startConnectorPool,
  startServer,
  sys,
  tls,
} from "sockerl";
import { lineClient } from "./client.js";
import { check } from "./internals.js";
import { kitRoundTrip } from "./kit.js";

// The check copies the test certificates to certs/ in the project folder (the working directory).
const certs = join(process.cwd(), "certs");

/** Server side: echo each line, count lines per connection, answer "count" calls. */
const echo: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (line, count) => ({ state: count + 1, send: line }),
  handleCall: (request, _from, count) => (request === "count" ? { reply: count } : undefined),
  handleDisconnect: () => undefined,
};

const options: ServerOptions = { hostname: "127.0.0.1", packet: "line", encoding: "utf8" };
const trace: string[] = [];
const previousSink = sys.setSink((line) => trace.push(line));
const server = await startServer(echo, undefined, 0, { ...options, acceptorDebug: ["trace"] });
if (server === undefined) throw new Error("not started");

/** Client side: a connector that sends one line per call and replies with the echo. */
const asker: Handler<{ waiting: ((line: string) => void) | undefined }> = {
  init: () => ({ state: { waiting: undefined } }),
  handleCall: (request, from) => {
    const { promise, resolve } = Promise.withResolvers<string>();
    promise.then((line) => from.reply(line));
    return { state: { waiting: resolve }, send: `${String(request)}\n` };
  },
  handlePacket: (line, state) => {
    state.waiting?.(String(line).trimEnd());
    return { state: { waiting: undefined } };
  },
};

const pool = await startConnectorPool(asker, undefined, [["127.0.0.1", server.port]], {
  connectorCount: 2,
  packet: "line",
  encoding: "utf8",
});
const members: Array<[number, Connection]> = pool.connections();
const first = members[0];
if (first === undefined) throw new Error("no connector");
const answer = await first[1].call("hello");
if (answer !== "hello") throw new Error(`echo: ${String(answer)}`);
// The same through the pool's router: a typed reply.
const routed: string = await pool.call<string>("routed");
if (routed !== "routed") throw new Error(`pool.call: ${routed}`);

// A server-side call: how many lines the server connection has seen.
const [entry] = server.connections();
if (entry === undefined) throw new Error("no server connection");
const counts = await Promise.all(server.connections().map(([, conn]) => conn.call<number>("count")));
if (counts.reduce((sum, n) => sum + n, 0) !== 2) throw new Error(`counts: ${JSON.stringify(counts)}`);
await pool.stop();

if (!trace.some((line) => line.startsWith("*DBG*"))) throw new Error("no trace line");
sys.setSink(previousSink);

// TLS: a server with the test certificate and a plain client through the library's connector.
const secure = await startServer(echo, undefined, 0, {
  ...options,
  transport: tls({
    cert: readFileSync(join(certs, "server.pem")),
    key: readFileSync(join(certs, "server-key.pem")),
  }),
});
if (secure === undefined) throw new Error("not started");
const tlsClient = await startConnector(asker, undefined, "localhost", secure.port, {
  packet: "line",
  encoding: "utf8",
  transport: tls({ ca: readFileSync(join(certs, "ca.pem")) }),
});
if (tlsClient === undefined) throw new Error("ignored");
if ((await tlsClient.call("secret")) !== "secret") throw new Error("tls echo");
await tlsClient.stop();

// Errors are classes with a code.
const reason: ExitReason = await new Promise<ExitReason>((resolve) => {
  tlsClient.exited.then(resolve);
});
try {
  await tlsClient.call("late");
  throw new Error("a stopped connection answered");
} catch (error) {
  if (!(error instanceof NoProcError) || !(error instanceof SockerlError)) throw error;
  if (error.code !== "ERR_NOPROC") throw error;
}
if (reason !== "normal") throw new Error(`stopped with ${String(reason)}`);

// A raw client, to show the server speaks plain lines.
if ((await lineClient(server.port, "raw\n")) !== "raw\n") throw new Error("raw echo");

// The testing kit: the same kind of handler on the memory network, no sockets.
if ((await kitRoundTrip()) !== "HELLO\n") throw new Error("testing kit");
if (typeof check !== "function") throw new Error("internals");

await secure.stop();
await server.stop();
console.log(`consumer app: ok (${trace.length} trace lines, exit ${String(await server.exited)})`);
