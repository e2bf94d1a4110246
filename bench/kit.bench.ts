/**
 * A user's handler benchmarked with `sockerl/testing`'s driver, as docs/testing.md shows: one real
 * connection process whose socket is a function call (`driver.push(chunk)` is the socket's data
 * event, synchronous; what the handler sends is only counted), so the figure is the handler plus the
 * library's per-packet work (framing, mailbox, actions) with no kernel, no event loop turn, no peer.
 *
 * Handlers: an echo (raw), a line-based key-value store (`packet: "line"`, state in a Map), a
 * JSON request/response over 4-byte frames, and the same JSON handler with an idle timeout set
 * (every event stamps the clock), plus a chunk that carries 16 pipelined lines.
 *
 * Run: `bun bench/kit.bench.ts [--filter <regex>] [--json]`.
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import type { Handler } from "../src/index.ts";
import { type HandlerDriver, testKit } from "../src/testing/index.ts";

const echo: Handler<undefined> = {
  init: () => undefined,
  handlePacket: (packet) => ({ send: packet }),
};

/** `SET k v` / `GET k`, one command per line. */
const kv: Handler<Map<string, string>> = {
  init: () => ({ state: new Map() }),
  handlePacket: (line, store) => {
    const [command, key = "", value = ""] = line.toString().trimEnd().split(" ");
    if (command === "SET") {
      store.set(key, value);
      return { send: "+OK\r\n" };
    }
    return { send: `${store.get(key) ?? "-"}\r\n` };
  },
};

const calc: Handler<undefined> = {
  init: () => undefined,
  handlePacket: (frame) => {
    const { a, b } = JSON.parse(frame.toString()) as { a: number; b: number };
    return { send: JSON.stringify({ result: a + b }) };
  },
};

const calcIdle: Handler<undefined> = { ...calc, init: () => ({ timeout: 30_000 }) };

function frame4(payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.byteLength);
  return Buffer.concat([header, body]);
}

const kit = testKit({ clock: false });
const drivers: Record<string, HandlerDriver> = {
  echo: await kit.driver(echo, undefined),
  kv: await kit.driver(kv, undefined, { packet: "line" }),
  calc: await kit.driver(calc, undefined, { packet: 4 }),
  calcIdle: await kit.driver(calcIdle, undefined, { packet: 4 }),
};
const chunk64 = Buffer.alloc(64, 0x61);
const setLine = Buffer.from("SET user:1 alice\n");
const getLine = Buffer.from("GET user:1\n");
const pipelined = Buffer.from("GET user:1\n".repeat(16));
const request = frame4(JSON.stringify({ a: 2, b: 3 }));

group("a user's handler, driven with sockerl/testing (no kernel)", () => {
  summary(() => {
    bench("echo: 64 B chunk in, echoed", () => {
      drivers.echo!.push(chunk64);
      do_not_optimize(drivers.echo!.bytesOut);
    });
    bench("kv: SET line", () => {
      drivers.kv!.push(setLine);
      do_not_optimize(drivers.kv!.bytesOut);
    });
    bench("kv: GET line", () => {
      drivers.kv!.push(getLine);
      do_not_optimize(drivers.kv!.bytesOut);
    });
    bench("kv: 16 pipelined GETs in one chunk (per chunk)", () => {
      drivers.kv!.push(pipelined);
      do_not_optimize(drivers.kv!.bytesOut);
    });
    bench("calc: JSON over 4-byte frames", () => {
      drivers.calc!.push(request);
      do_not_optimize(drivers.calc!.bytesOut);
    });
    bench("calc: JSON over 4-byte frames, idle timeout set", () => {
      drivers.calcIdle!.push(request);
      do_not_optimize(drivers.calcIdle!.bytesOut);
    });
  });
});

const filter = process.argv.indexOf("--filter");
await run({
  ...(filter >= 0 && process.argv[filter + 1] !== undefined
    ? { filter: new RegExp(process.argv[filter + 1]!) }
    : {}),
  ...(process.argv.includes("--json") ? { format: "json" as const } : {}),
});
await kit.close();
