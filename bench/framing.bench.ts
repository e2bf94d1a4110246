/**
 * Framing codec micro-benchmarks: per-packet decode (frame inside one chunk, and split over two chunks)
 * and encode, for `{packet, 4}` and line mode, at 64 B, 4 KiB and 64 KiB payloads.
 *
 * Run: `bun bench/framing.bench.ts [--filter <regex>]` (the regex matches benchmark names).
 */
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { encodeFrame, FrameDecoder, type PacketFraming } from "../src/framing/framing.ts";

const SIZES = [64, 4096, 65536];

/** A payload of `size` bytes; in line mode its last byte is the "\n". */
function makePayload(framing: PacketFraming, size: number): Uint8Array {
  const p = Buffer.alloc(size, 0x61);
  if (framing === "line") p[size - 1] = 0x0a;
  return p;
}

for (const framing of [4, "line"] as const) {
  for (const size of SIZES) {
    const payload = makePayload(framing, size);
    const wire = encodeFrame(framing, payload);
    const half = wire.length >> 1;
    const first = wire.subarray(0, half);
    const second = wire.subarray(half);
    const decoder = new FrameDecoder(framing, Number.POSITIVE_INFINITY);

    group(`packet ${framing}, ${size} B`, () => {
      summary(() => {
        bench(`decode ${framing} ${size} one chunk`, () => {
          decoder.push(wire);
          do_not_optimize(decoder.next());
        });
        bench(`decode ${framing} ${size} split`, () => {
          decoder.push(first);
          decoder.next();
          decoder.push(second);
          do_not_optimize(decoder.next());
        });
        bench(`encode ${framing} ${size}`, () => do_not_optimize(encodeFrame(framing, payload)));
      });
    });
  }
}

/** Many small frames per chunk: the common case of a busy connection. */
group("packet 4, 64 frames of 64 B per chunk", () => {
  const frames = Array.from({ length: 64 }, () => encodeFrame(4, makePayload(4, 64)));
  const chunk = Buffer.concat(frames);
  const decoder = new FrameDecoder(4, Number.POSITIVE_INFINITY);
  bench("decode 4 64x64 one chunk", () => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) do_not_optimize(f);
  });
});

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run(pattern === undefined ? {} : { filter: new RegExp(pattern) });
