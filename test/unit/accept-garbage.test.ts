/**
 * Invariant: accepting a connection allocates what the connection keeps and nothing else: its process,
 * its view and Bun's socket. Every other object made per accept is garbage that 10,000 idle
 * connections leave on the heap until a collection (seen as RSS per idle connection): a closure made
 * per accept (the open-file guard's label), the scope object of a function whose variables a closure
 * captures (`start`, for its promise branch), the `...arguments` array of a derived class's implicit
 * constructor (the view). The server runs in a fresh process with the collector off
 * (`BUN_JSC_useGC=0`), so every object it made is still on its heap; the clients are another process.
 */
import { afterEach, expect, test } from "bun:test";
import type { Subprocess } from "bun";

const WARM = 300;
const CONNECTIONS = 200;

/** The library's server: `served(n)` waits until n connections have run `init`. */
const LIBRARY = `
const { startServer } = await import("./src/index.ts");
const server = await startServer({ init: () => undefined, handlePacket: () => undefined }, undefined, 0, { hostname: "127.0.0.1" });
const served = async (n) => { while (server.info().active < n) await Bun.sleep(2); };
const port = server.port;`;

/** The baseline: a raw Bun.listen server keeping one object of its own per connection. */
const RAW = `
let active = 0;
const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open(s) { s.data = { n: active++ }; }, data() {}, close() {}, drain() {} } });
const served = async (n) => { while (active < n) await Bun.sleep(2); };
const port = listener.port;`;

/** Counts what the server made per type between its first connections and the next ones. */
const COUNT = `
const { heapStats } = await import("bun:jsc");
console.log("PORT " + port);
// The first connections make what every later one shares (compiled code, the spec object).
await served(${WARM});
const before = heapStats().objectTypeCounts;
console.log("WARM");
await served(${WARM + CONNECTIONS});
const after = heapStats().objectTypeCounts;
const grown = {};
for (const [type, n] of Object.entries(after)) if (n - (before[type] ?? 0) > 0) grown[type] = n - (before[type] ?? 0);
console.log("GROWN " + JSON.stringify(grown));
await Bun.sleep(60_000); // until killed: the counts must not include the clients' closing
`;

const CLIENT = `
const port = Number(process.argv[1]);
const sockets = [];
const open = async (n) => { for (let i = 0; i < n; i++) sockets.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })); };
await open(${WARM});
for await (const _ of console) break; // "go" on stdin: the server has counted
await open(${CONNECTIONS});
await Bun.sleep(60_000);
`;

const children: Subprocess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill();
});

/** Lines of a child's stdout, as they come. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf("\n");
    while (nl !== -1) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
    }
  }
}

/** What `server` (LIBRARY or RAW) made while accepting CONNECTIONS connections, per type. */
async function grownBy(server: string): Promise<Record<string, number>> {
  const child = Bun.spawn([process.execPath, "-e", server + COUNT], {
    cwd: `${import.meta.dir}/../..`,
    env: { ...process.env, BUN_JSC_useGC: "0" },
    stdout: "pipe",
  });
  children.push(child);
  let client: Subprocess<"pipe", "ignore", "inherit"> | undefined;
  let grown: Record<string, number> | undefined;
  for await (const line of lines(child.stdout)) {
    if (line.startsWith("PORT ")) {
      client = Bun.spawn([process.execPath, "-e", CLIENT, line.slice(5)], {
        stdin: "pipe",
        stdout: "ignore",
      });
      children.push(client);
    } else if (line === "WARM") {
      client!.stdin.write("go\n");
      client!.stdin.flush();
    } else if (line.startsWith("GROWN ")) {
      grown = JSON.parse(line.slice(6)) as Record<string, number>;
      break;
    }
  }
  expect(grown).toBeDefined();
  return grown!;
}

test(`accepting ${CONNECTIONS} connections makes only their processes, views and sockets`, async () => {
  const [library, raw] = [await grownBy(LIBRARY), await grownBy(RAW)];
  // Both servers: Bun's socket and what Bun makes with it (the same in both). On top of that the
  // library keeps two objects per connection (the process and its view), the raw server one (its
  // \`data\`). Nothing else may grow by as much as one per connection.
  expect(library.TCPSocket).toBe(CONNECTIONS);
  // (a few objects more or less are the two processes' own business: compiled code, timers)
  const objects = library.Object! - raw.Object!;
  expect(objects).toBeGreaterThanOrEqual(CONNECTIONS - CONNECTIONS / 20);
  expect(objects).toBeLessThan(CONNECTIONS + CONNECTIONS / 10);
  const more = Object.entries(library).filter(
    ([type, n]) => type !== "Object" && n - (raw[type] ?? 0) >= CONNECTIONS / 2,
  );
  expect(more).toEqual([]);
}, 20_000);
