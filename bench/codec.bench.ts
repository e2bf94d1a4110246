/**
 * Codec micro-benchmark: cutting a RESP command stream into frames with `packet: resp` (the
 * FrameDecoder and the RESP codec of examples/resp.ts) vs the hand-kept buffer a handler needs
 * without codecs (`Buffer.concat` of the state's buffer and every chunk, then a scan from the
 * unconsumed start, the same RESP scan, after every chunk).
 *
 * Cells: 1, 16 and 256 `SET key value` commands per chunk (whole commands in every chunk), and the
 * same stream cut into 1460-byte TCP segments (commands split across chunks); plus one 256 KiB SET
 * arriving in 1460-byte segments, where rescanning a growing buffer costs the most. Prints mitata's
 * table, then ns per frame for each cell.
 *
 * Run: `bun bench/codec.bench.ts [--filter <regex>]`.
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { resp } from "../examples/resp.ts";
import { FrameDecoder } from "../src/framing/framing.ts";

const command = (args: string[]): Buffer =>
  Buffer.from(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`);

/** `n` SET commands with 16-byte keys and 32-byte values (~70 bytes each, like redis-benchmark's). */
const commands = (n: number): Buffer[] =>
  Array.from({ length: n }, (_, i) => command(["SET", `key:${String(i).padStart(12, "0")}`, "v".repeat(32)]));

/** Cuts `stream` into `size`-byte chunks. */
function segments(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < stream.length; at += size) out.push(stream.subarray(at, at + size));
  return out;
}

/** The library: push every chunk, pull every frame. */
function viaCodec(chunks: Buffer[]): number {
  const decoder = new FrameDecoder(resp, Number.POSITIVE_INFINITY);
  let frames = 0;
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
      do_not_optimize(f);
      frames++;
    }
  }
  return frames;
}

/** The hand-kept buffer: concatenate, rescan from the unconsumed start, keep the rest. */
function viaHandKeptBuffer(chunks: Buffer[]): number {
  let buffer = Buffer.alloc(0);
  let frames = 0;
  for (const chunk of chunks) {
    buffer = Buffer.concat([buffer, chunk]);
    let at = 0;
    for (;;) {
      const n = resp.frameLength(buffer.subarray(at));
      if (n <= 0) break;
      do_not_optimize(buffer.subarray(at, at + n));
      at += n;
      frames++;
    }
    buffer = buffer.subarray(at);
  }
  return frames;
}

/** Each cell: its chunks and how many frames one iteration yields (for ns per frame). */
const CELLS: Array<{ name: string; chunks: Buffer[]; frames: number }> = [];
for (const perChunk of [1, 16, 256]) {
  const cmds = commands(perChunk * 16);
  const chunks = Array.from({ length: 16 }, (_, i) =>
    Buffer.concat(cmds.slice(i * perChunk, (i + 1) * perChunk)),
  );
  CELLS.push({ name: `${perChunk} per chunk`, chunks, frames: cmds.length });
  if (perChunk > 1) {
    CELLS.push({
      name: `${perChunk} per chunk, 1460 B segments`,
      chunks: segments(Buffer.concat(chunks), 1460),
      frames: cmds.length,
    });
  }
}
CELLS.push({
  name: "one 256 KiB SET, 1460 B segments",
  chunks: segments(command(["SET", "big", "b".repeat(256 * 1024)]), 1460),
  frames: 1,
});

for (const cell of CELLS) {
  if (viaCodec(cell.chunks) !== cell.frames || viaHandKeptBuffer(cell.chunks) !== cell.frames) {
    throw new Error(`${cell.name}: the two approaches disagree on the frames`);
  }
  group(cell.name, () => {
    summary(() => {
      bench(`codec: ${cell.name}`, () => viaCodec(cell.chunks));
      bench(`hand-kept buffer: ${cell.name}`, () => viaHandKeptBuffer(cell.chunks));
    });
  });
}

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
const results = await run(pattern === undefined ? {} : { filter: new RegExp(pattern) });

// ns per frame: mitata times one iteration, which decodes every frame of the cell. The median and
// the minimum are printed (the mean moves with whatever else the machine runs).
console.log("\nns per frame (median / min):");
for (const b of results.benchmarks) {
  const name = b.alias;
  const cell = CELLS.find((c) => name.endsWith(`: ${c.name}`));
  const stats = b.runs[0]?.stats;
  if (cell === undefined || stats === undefined) continue;
  const perFrame = (ns: number) => (ns / cell.frames).toFixed(0).padStart(9);
  console.log(`  ${name.padEnd(52)} ${perFrame(stats.p50)} / ${perFrame(stats.min)} ns`);
}
