/**
 * The per-packet hot path, without sockets: one packet through `ConnectionProcess.EVENTS.data`
 * (Bun's data event → `handlePacket` → apply the action → one `write()` to an in-memory socket).
 *
 * 1. **Tracing off vs. no tracing code at all.** This file builds a copy of `src/connection.ts` in
 *    which every trace test (`this.#dbg !== undefined`, `dbg !== undefined`) is replaced by `false`,
 *    i.e. tracing compiled out, and runs both side by side in the same process. Tracing that is off
 *    must be within noise of the copy.
 * 2. **Action application** per action shape: `undefined`, `{ send }`, `{ state, send }`, an array of
 *    two actions, `{ send: [a, b] }` (two sends written as one buffer), and with an idle `timeout` set
 *    (the lazy timer: events only stamp a time).
 *
 * Run: `bun bench/hot-path.bench.ts [--filter <regex>] [--json]`.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { ConnectionProcess } from "../src/connection.ts";
import type { Action, Handler } from "../src/handler.ts";
import type { TransportSocket } from "../src/transport/transport.ts";
import { attachedSocket } from "./memory-socket.ts";

// --- the no-tracing build -------------------------------------------------------------------------
const here = dirname(new URL(import.meta.url).pathname);
const source = readFileSync(join(here, "../src/connection.ts"), "utf8");
const stripped = source
  .replaceAll("this.#dbg !== undefined", "false")
  .replaceAll("dbg !== undefined", "false")
  .replaceAll('from "./', 'from "../../src/');
if (stripped === source) throw new Error("no trace tests found to strip: update this benchmark");
const buildDir = join(here, ".build");
mkdirSync(buildDir, { recursive: true });
const strippedPath = join(buildDir, "connection-notrace.ts");
writeFileSync(strippedPath, stripped);
const { ConnectionProcess: NoTraceProcess } = (await import(strippedPath)) as {
  ConnectionProcess: typeof ConnectionProcess;
};

const echo: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet }),
};

function shaped(
  make: (packet: Uint8Array, n: number) => Action<number>,
  init?: Action<number>,
): Handler<number> {
  return { init: () => init ?? { state: 0 }, handlePacket: (packet, n) => make(packet as Uint8Array, n) };
}

const chunk = Buffer.alloc(64, 0x61);
const half = chunk.subarray(0, 32);
const data = ConnectionProcess.EVENTS.data;
const noTraceData = NoTraceProcess.EVENTS.data;

const withTrace = attachedSocket(echo);
const withoutTrace = attachedSocket(echo, {}, NoTraceProcess);

const shapes: Array<[string, TransportSocket]> = [
  ["undefined (no action)", attachedSocket(shaped(() => undefined))],
  ["{ send }", attachedSocket(shaped((p) => ({ send: p })))],
  ["{ state, send }", attachedSocket(echo)],
  ["[{ state }, { send }]", attachedSocket(shaped((p, n) => [{ state: n + 1 }, { send: p }]))],
  ["{ send: [a, b] } (one write)", attachedSocket(shaped(() => ({ send: [half, half] })))],
  [
    "{ state, send } with timeout set",
    attachedSocket(shaped((p, n) => ({ state: n + 1, send: p }), { state: 0, timeout: 60_000 })),
  ],
  ["{ state, send }, packet: 4 framing", attachedSocket(echo, { packet: 4 })],
];

// Warm every path so the first benchmark of a group does not pay for JIT tiering.
const frame4 = Buffer.concat([Buffer.from([0, 0, 0, 60]), Buffer.alloc(60, 0x62)]);
for (let i = 0; i < 50_000; i++) {
  data(withTrace, chunk);
  noTraceData(withoutTrace, chunk);
  for (const [name, socket] of shapes) data(socket, name.includes("packet: 4") ? frame4 : chunk);
}

group("tracing off vs. tracing compiled out (64 B echo)", () => {
  summary(() => {
    bench("tracing code compiled out", () => do_not_optimize(noTraceData(withoutTrace, chunk)));
    bench("tracing off (the library as shipped)", () => do_not_optimize(data(withTrace, chunk)));
  });
});

group("action application per shape (64 B packet)", () => {
  for (const [name, socket] of shapes) {
    const packet = name.includes("packet: 4") ? frame4 : chunk;
    bench(name, () => do_not_optimize(data(socket, packet)));
  }
});

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run({
  ...(pattern === undefined ? {} : { filter: new RegExp(pattern) }),
  ...(process.argv.includes("--json") ? { format: "json" as const } : {}),
});
