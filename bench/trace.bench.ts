/**
 * Cost of sys debugging on the per-packet hot path: one received chunk through a server connection
 * (the transport's data event → `handlePacket` → apply the action → one `write()`), with debugging
 * off, with `trace` on (a no-op sink: formatting is measured, the I/O is not), with `log` on and with
 * `statistics` on; against a hand-written baseline doing the same handler call and write without the
 * library. "Off costs nothing measurable" means: off ≈ baseline + the library's fixed per-packet work,
 * and no formatting.
 *
 * The server runs on an in-memory transport (bench/memory-socket.ts), driven only through the public
 * API, whose sockets' `write()` takes everything: no syscall, so the library's own overhead is what
 * is measured (this is a micro-benchmark, not a test).
 *
 * Run: `bun bench/trace.bench.ts [--filter <regex>] [--json]`.
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import type { DebugOption, Handler, Meta } from "../src/index.ts";
import * as sockerl from "../src/index.ts";
import { type MemoryConnection, type MemorySocket, memoryConnection, memorySocket } from "./memory-socket.ts";

/** An echo handler counting packets: the smallest realistic callback. */
const handler: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet as Uint8Array }),
};

const open: MemoryConnection[] = [];
/** A started server connection with the given debug options, on a memory socket. */
async function connection(debug: DebugOption[], probe: Uint8Array): Promise<MemoryConnection> {
  const c = await memoryConnection(
    sockerl,
    handler,
    debug.length === 0 ? {} : { connectorDebug: debug },
    probe,
  );
  open.push(c);
  return c;
}

/** The same work without the library: call the handler, keep the state, write the reply. */
function baselineFor(socket: MemorySocket): (chunk: Uint8Array) => void {
  let state = 0;
  const meta = {} as Meta<number>;
  return (chunk) => {
    const action = handler.handlePacket(chunk, state, meta) as { state: number; send: Uint8Array };
    state = action.state;
    socket.write(action.send);
  };
}

sockerl.sys.setSink(() => undefined); // trace lines are formatted, then dropped

for (const size of [64, 4096]) {
  const chunk = Buffer.alloc(size, 0x61);
  const baseline = baselineFor(memorySocket());
  const off = await connection([], chunk);
  const traced = await connection(["trace"], chunk);
  const logged = await connection(["log"], chunk);
  const counted = await connection(["statistics"], chunk);

  // Warm the JIT on every path first, so the first benchmark of a group does not pay for tiering.
  for (let i = 0; i < 50_000; i++) {
    baseline(chunk);
    for (const c of [off, traced, logged, counted]) c.feed(chunk);
  }

  group(`one packet, ${size} B`, () => {
    summary(() => {
      bench(`baseline (no library) ${size} B`, () => do_not_optimize(baseline(chunk)));
      bench(`debug off ${size} B`, () => do_not_optimize(off.feed(chunk)));
      bench(`trace on (no-op sink) ${size} B`, () => do_not_optimize(traced.feed(chunk)));
      bench(`log on ${size} B`, () => do_not_optimize(logged.feed(chunk)));
      bench(`statistics on ${size} B`, () => do_not_optimize(counted.feed(chunk)));
    });
  });
}

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run({
  ...(pattern === undefined ? {} : { filter: new RegExp(pattern) }),
  ...(process.argv.includes("--json") ? { format: "json" as const } : {}),
});
await Promise.all(open.map((c) => c.stop()));
