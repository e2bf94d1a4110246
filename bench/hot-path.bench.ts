/**
 * The per-packet hot path, without sockets: one received chunk through a server connection on an
 * in-memory transport (the transport's data event → `handlePacket` → apply the action → one
 * `write()` to a memory socket), driven only through the public API (bench/memory-socket.ts).
 *
 * 1. **Tracing off vs. tracing compiled out.** `src/trace.ts` exports
 *    `TRACING = process.env.SOCKERL_NO_TRACE !== "1"` and every trace point tests it first. This
 *    file bundles the library twice with `Bun.build` into bench/.build/: once as is, once with
 *    `process.env.SOCKERL_NO_TRACE` defined as `"1"`, so the bundler folds `TRACING` to false. A
 *    bundler that also inlines that constant into the trace points drops the tracing code. Bun 1.4.5
 *    does not: it wraps the modules in lazy initialisers (`__esm`), so `TRACING` stays a variable
 *    and the `TRACING && …` tests stay, against a constant false the JIT can fold. The file prints
 *    how many tests are left in the bundle, so its output says which case was measured.
 *    Both bundles go through the same bundler and each runs one connection, so only the flag
 *    differs. The source as shipped (`src/index.ts`, what `bun` runs) is measured next to them, but
 *    its code also runs the action-shape connections below, whose different handlers make its call
 *    sites polymorphic: compare the two bundles with each other. Tracing that is off must be within
 *    noise of the compiled-out build. (A trace point that does not test `TRACING` yet is simply
 *    not removed: the two builds then measure the same code there.)
 * 2. **Action application** per action shape: `undefined`, `{ send }`, `{ state, send }`, an array of
 *    two actions, `{ send: [a, b] }` (two sends written as one buffer), with an idle `timeout` set
 *    (the lazy timer: events only stamp a time), and with `packet: 4` framing.
 *
 * 3. **The testing kit's driver** (`sockerl/testing`): the same echo driven the way users benchmark
 *    their handlers, next to the bare memory transport.
 *
 * Run: `bun bench/hot-path.bench.ts [--filter <regex>] [--json]`.
 */
import { join } from "node:path";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import type { Action, Handler } from "../src/index.ts";
import * as shipped from "../src/index.ts";
import { testKit } from "../src/testing/index.ts";
import { type Library, type MemoryConnection, memoryConnection } from "./memory-socket.ts";

// --- the two builds -------------------------------------------------------------------------------
const root = join(import.meta.dir, "..");

/** Bundle src/index.ts into bench/.build/<name>/ with `define`; returns the module. */
async function build(name: string, define: Record<string, string>): Promise<Library> {
  const outdir = join(import.meta.dir, ".build", name);
  const result = await Bun.build({
    entrypoints: [join(root, "src/index.ts")],
    define,
    target: "bun",
    outdir,
  });
  if (!result.success) throw new AggregateError(result.logs, `Bun.build of ${name} failed`);
  return (await import(join(outdir, "index.js"))) as Library;
}

const traced = await build("trace", {});
const noTrace = await build("notrace", { "process.env.SOCKERL_NO_TRACE": '"1"' });
{
  const code = await Bun.file(join(import.meta.dir, ".build", "notrace", "index.js")).text();
  const left = code.match(/\bTRACING &&/g)?.length ?? 0;
  console.log(
    left === 0
      ? "no-trace bundle: every `TRACING && …` test was removed"
      : `no-trace bundle: TRACING is false, ${left} \`TRACING && …\` tests are still in the code (not inlined by the bundler)`,
  );
}

// --- connections ----------------------------------------------------------------------------------
const echo: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet as Uint8Array }),
};

function shaped(
  make: (packet: Uint8Array, n: number) => Action<number>,
  init?: Action<number>,
): Handler<number> {
  return { init: () => init ?? { state: 0 }, handlePacket: (packet, n) => make(packet as Uint8Array, n) };
}

const chunk = Buffer.alloc(64, 0x61);
const half = chunk.subarray(0, 32);
const frame4 = Buffer.concat([Buffer.from([0, 0, 0, 60]), Buffer.alloc(60, 0x62)]);

const open: MemoryConnection[] = [];
async function conn(
  lib: Library,
  handler: Handler<number>,
  options: Parameters<typeof memoryConnection>[2] = {},
  probe: Uint8Array = chunk,
  expectWrite = true,
): Promise<MemoryConnection> {
  const c = await memoryConnection(lib, handler, options, probe, expectWrite);
  open.push(c);
  return c;
}

const asShipped = await conn(shipped, echo);
const withTrace = await conn(traced, echo);
const withoutTrace = await conn(noTrace, echo);

const shapes: Array<[string, MemoryConnection, Uint8Array]> = [
  [
    "undefined (no action)",
    await conn(
      shipped,
      shaped(() => undefined),
      {},
      chunk,
      false,
    ),
    chunk,
  ],
  [
    "{ send }",
    await conn(
      shipped,
      shaped((p) => ({ send: p })),
    ),
    chunk,
  ],
  ["{ state, send }", await conn(shipped, echo), chunk],
  [
    "[{ state }, { send }]",
    await conn(
      shipped,
      shaped((p, n) => [{ state: n + 1 }, { send: p }]),
    ),
    chunk,
  ],
  [
    "{ send: [a, b] } (one write)",
    await conn(
      shipped,
      shaped(() => ({ send: [half, half] })),
    ),
    chunk,
  ],
  [
    "{ state, send } with timeout set",
    await conn(
      shipped,
      shaped((p, n) => ({ state: n + 1, send: p }), { state: 0, timeout: 60_000 }),
    ),
    chunk,
  ],
  ["{ state, send }, packet: 4 framing", await conn(shipped, echo, { packet: 4 }, frame4), frame4],
];

// Warm every path so the first benchmark of a group does not pay for JIT tiering.
for (let i = 0; i < 50_000; i++) {
  asShipped.feed(chunk);
  withTrace.feed(chunk);
  withoutTrace.feed(chunk);
  for (const [, c, packet] of shapes) c.feed(packet);
}

group("tracing off vs. tracing compiled out (64 B echo)", () => {
  summary(() => {
    bench("bundle, tracing compiled out (SOCKERL_NO_TRACE=1)", () =>
      do_not_optimize(withoutTrace.feed(chunk)),
    );
    bench("bundle, tracing off", () => do_not_optimize(withTrace.feed(chunk)));
    bench("src/index.ts as shipped, tracing off", () => do_not_optimize(asShipped.feed(chunk)));
  });
});

group("action application per shape (64 B packet)", () => {
  for (const [name, c, packet] of shapes) bench(name, () => do_not_optimize(c.feed(packet)));
});

// The same 64 B echo through the testing kit's driver (sockerl/testing), the way users benchmark
// their own handlers: it must cost what the bare memory transport above costs.
const kit = testKit({ clock: false });
const driven = await kit.driver(echo, undefined);
for (let i = 0; i < 50_000; i++) driven.push(chunk);
group("the testing kit's driver (64 B echo, src as shipped)", () => {
  bench("kit.driver(echo).push(chunk)", () => do_not_optimize(driven.push(chunk)));
});

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run({
  ...(pattern === undefined ? {} : { filter: new RegExp(pattern) }),
  ...(process.argv.includes("--json") ? { format: "json" as const } : {}),
});
await Promise.all(open.map((c) => c.stop()));
await kit.close();
process.exit(0); // the idle-timeout shape's timer would keep the process up
