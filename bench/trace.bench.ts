/**
 * Cost of sys debugging on the per-packet hot path: one packet through `ConnectionProcess.EVENTS.data`
 * (Bun's data event → `handlePacket` → apply the action → one `write()`), with debugging off, with
 * `trace` on (a no-op sink: formatting is measured, the I/O is not), with `log` on and with
 * `statistics` on; against a hand-written baseline doing the same handler call and write without the
 * library. "Off costs nothing measurable" means: off ≈ baseline + the library's fixed per-packet work,
 * and no formatting.
 *
 * The connection is attached to an in-memory TransportSocket whose `write()` takes everything: no
 * syscall, so the library's own overhead is what is measured (this is a micro-benchmark, not a test).
 *
 * Run: `bun bench/trace.bench.ts [--filter <regex>] [--json]`.
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { ConnectionProcess } from "../src/connection.ts";
import type { Handler, Meta } from "../src/handler.ts";
import { type DebugOption, setSink } from "../src/trace.ts";
import type { TransportSocket } from "../src/transport/transport.ts";
import { attachedSocket, memorySocket } from "./memory-socket.ts";

/** An echo handler counting packets: the smallest realistic callback. */
const handler: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet }),
};

/** A started connection with the given debug options, attached to a memory socket. */
function connection(debug: DebugOption[]): TransportSocket {
  return attachedSocket(handler, debug.length === 0 ? {} : { connectorDebug: debug });
}

/** The same work without the library: call the handler, keep the state, write the reply. */
function baselineFor(socket: TransportSocket): (chunk: Uint8Array) => void {
  let state = 0;
  const meta = {} as Meta<number>;
  return (chunk) => {
    const action = handler.handlePacket(chunk, state, meta) as { state: number; send: Uint8Array };
    state = action.state;
    socket.write(action.send);
  };
}

setSink(() => undefined); // trace lines are formatted, then dropped
const data = ConnectionProcess.EVENTS.data;

for (const size of [64, 4096]) {
  const chunk = Buffer.alloc(size, 0x61);
  const baseline = baselineFor(memorySocket());
  const off = connection([]);
  const traced = connection(["trace"]);
  const logged = connection(["log"]);
  const counted = connection(["statistics"]);

  // Warm the JIT on every path first, so the first benchmark of a group does not pay for tiering.
  for (let i = 0; i < 50_000; i++) {
    baseline(chunk);
    for (const socket of [off, traced, logged, counted]) data(socket, chunk);
  }

  group(`one packet, ${size} B`, () => {
    summary(() => {
      bench(`baseline (no library) ${size} B`, () => do_not_optimize(baseline(chunk)));
      bench(`debug off ${size} B`, () => do_not_optimize(data(off, chunk)));
      bench(`trace on (no-op sink) ${size} B`, () => do_not_optimize(data(traced, chunk)));
      bench(`log on ${size} B`, () => do_not_optimize(data(logged, chunk)));
      bench(`statistics on ${size} B`, () => do_not_optimize(data(counted, chunk)));
    });
  });
}

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run({
  ...(pattern === undefined ? {} : { filter: new RegExp(pattern) }),
  ...(process.argv.includes("--json") ? { format: "json" as const } : {}),
});
