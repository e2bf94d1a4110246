import { describe, expect, test } from "bun:test";
import { resp } from "../../examples/resp.ts";
import { FrameTooLargeError, FramingError } from "../../src/errors.ts";
import {
  type Codec,
  encodeFrame,
  FrameDecoder,
  headerSize,
  type PacketFraming,
} from "../../src/framing/framing.ts";
import { concatBytes, hex } from "../helpers/client.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Seeded xorshift32: reproducible streams, no dependency. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Random integer in [0, n). */
type Rand = (n: number) => number;
const randOf =
  (next: () => number): Rand =>
  (n) =>
    next() % n;

/** Random frame size, biased towards small ones and chunk-boundary-ish sizes. */
function frameSize(rand: Rand, limit: number): number {
  const r = rand(10);
  const size = r < 2 ? 0 : r < 6 ? rand(16) : r < 9 ? rand(300) : rand(5000);
  return Math.min(size, limit);
}

function randomFrame(rand: Rand, framing: PacketFraming): Uint8Array {
  if (framing === "line") {
    const out = new Uint8Array(frameSize(rand, 4000) + 1);
    for (let i = 0; i < out.length - 1; i++) {
      const b = rand(256);
      out[i] = b === 0x0a ? 0x0d : b;
    }
    out[out.length - 1] = 0x0a;
    return out;
  }
  const out = new Uint8Array(frameSize(rand, framing === 1 ? 255 : 65535));
  for (let i = 0; i < out.length; i++) out[i] = rand(256);
  return out;
}

/** Cuts `stream` into random-size chunks (sometimes empty, sometimes one byte, sometimes large). */
function randomChunks(rand: Rand, stream: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let o = 0;
  while (o < stream.length) {
    const r = rand(10);
    const n = r === 0 ? 0 : r < 4 ? 1 + rand(4) : r < 8 ? 1 + rand(64) : 1 + rand(8000);
    chunks.push(stream.subarray(o, Math.min(stream.length, o + n)));
    o += n;
  }
  return chunks;
}

const MODES: PacketFraming[] = [1, 2, 4, "line"];

describe("fuzz: valid streams decode exactly", () => {
  for (const framing of MODES) {
    test(`${framing}`, () => {
      const rand = randOf(xorshift(0xc0ffee + headerSize(framing) + (framing === "line" ? 99 : 0)));
      for (let iter = 0; iter < 400; iter++) {
        const frames = Array.from({ length: 1 + rand(30) }, () => randomFrame(rand, framing));
        const stream = concatBytes(frames.map((f) => encodeFrame(framing, f)));
        const chunks = randomChunks(rand, stream);
        const d = new FrameDecoder(framing, rand(2) === 0 ? Number.POSITIVE_INFINITY : 70000);
        const got: Uint8Array[] = [];
        // Lazy pulls: sometimes no pull or a single one after a push, so chunks pile up and the
        // decoder's chunk list is compacted while a frame (or a line scan) is in progress.
        const lazy = rand(3) === 0;
        for (const chunk of chunks) {
          d.push(chunk);
          const pulls = lazy ? rand(3) : Number.POSITIVE_INFINITY;
          for (let p = 0; p < pulls; p++) {
            const f = d.next();
            if (f === undefined) break;
            got.push(f);
          }
        }
        for (let f = d.next(); f !== undefined; f = d.next()) got.push(f);
        expect(got.length).toBe(frames.length);
        expect(hex(concatBytes(got))).toBe(hex(concatBytes(frames)));
        for (let i = 0; i < frames.length; i++) expect(got[i]!.length).toBe(frames[i]!.length);
        expect(d.buffered).toBe(0);
      }
    });
  }

  test("raw: take(n) / take(0) / next() reassemble the stream", () => {
    const rand = randOf(xorshift(0xbeef));
    for (let iter = 0; iter < 400; iter++) {
      const stream = randomFrame(rand, 4);
      const chunks = randomChunks(rand, stream);
      const d = new FrameDecoder("raw", Number.POSITIVE_INFINITY);
      const got: Uint8Array[] = [];
      for (const chunk of chunks) {
        d.push(chunk);
        for (;;) {
          const r = rand(3);
          const f = r === 0 ? d.next() : r === 1 ? d.take(0) : d.take(1 + rand(100));
          if (f === undefined) break;
          got.push(f);
        }
      }
      const rest = d.drain();
      got.push(rest);
      expect(hex(concatBytes(got))).toBe(hex(stream));
      expect(d.buffered).toBe(0);
    }
  });
});

/** Adversarial streams: random bytes, huge headers, no newlines. */
function adversarialStream(rand: Rand, framing: PacketFraming): Uint8Array {
  const kind = rand(4);
  const n = 1 + rand(3000);
  const out = new Uint8Array(n);
  if (kind === 0) {
    for (let i = 0; i < n; i++) out[i] = rand(256);
  } else if (kind === 1) {
    out.fill(0xff); // maximal length headers
  } else if (kind === 2) {
    out.fill(0x61); // no newline at all
  } else {
    // valid small frames with a bad one somewhere
    const parts: Uint8Array[] = [];
    let size = 0;
    while (size < n) {
      const e = encodeFrame(framing, randomFrame(rand, framing === "line" ? "line" : 1));
      parts.push(e);
      size += e.length;
      if (rand(8) === 0) parts.push(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 0x61, 0x62));
    }
    return concatBytes(parts);
  }
  if (framing === "line" && kind === 0 && rand(2) === 0) {
    for (let i = 0; i < n; i++) if (out[i] === 0x0a) out[i] = 0;
  }
  return out;
}

describe("fuzz: adversarial streams", () => {
  for (const framing of MODES) {
    test(`${framing}: only FrameTooLargeError escapes and the buffer stays bounded`, () => {
      const rand = randOf(xorshift(0xbad + headerSize(framing) * 7 + (framing === "line" ? 1 : 0)));
      const hs = headerSize(framing);
      let thrown = 0;
      for (let iter = 0; iter < 500; iter++) {
        const max = rand(300);
        const stream = adversarialStream(rand, framing);
        const d = new FrameDecoder(framing, max);
        let largestChunk = 0;
        try {
          for (const chunk of randomChunks(rand, stream)) {
            largestChunk = Math.max(largestChunk, chunk.length);
            d.push(chunk);
            expect(d.buffered).toBeLessThanOrEqual(max + largestChunk + hs);
            for (let f = d.next(); f !== undefined; f = d.next()) {
              expect(f.length).toBeLessThanOrEqual(max);
            }
          }
        } catch (e) {
          if (!(e instanceof FrameTooLargeError)) throw e;
          expect(e.code).toBe("ERR_FRAME_TOO_LARGE");
          expect(e.size).toBeGreaterThan(max);
          expect(e.maxPacketSize).toBe(max);
          thrown++;
        }
      }
      expect(thrown).toBeGreaterThan(50);
    });
  }

  test("raw: take(n) beyond maxPacketSize throws, others are bounded", () => {
    const rand = randOf(xorshift(0x5eed));
    for (let iter = 0; iter < 300; iter++) {
      const max = 1 + rand(200);
      const d = new FrameDecoder("raw", max);
      const stream = adversarialStream(rand, "raw");
      try {
        for (const chunk of randomChunks(rand, stream)) {
          d.push(chunk);
          for (;;) {
            const n = rand(max + 20);
            const f = d.take(n);
            if (f === undefined) break;
            if (n > 0) expect(f.length).toBe(n);
          }
        }
      } catch (e) {
        if (!(e instanceof FrameTooLargeError)) throw e;
        expect(e.size).toBeGreaterThan(max);
      }
    }
  });
});

// ------------------------------------------------------------------------- codecs and delimiters

/** A 3-byte big-endian length that counts its own header, answering `-N` (exact sizes). */
const selfCounting3: Codec = {
  frameLength(b) {
    if (b.length < 3) return -3;
    const n = (b[0]! << 16) | (b[1]! << 8) | b[2]!;
    if (n < 3) throw new RangeError("length shorter than its header");
    return b.length >= n ? n : -n;
  },
};

/** Frames ending in "\r\n" found by a codec that only answers 0 (no hint): the slow path. */
const crlfNoHint: Codec = {
  frameLength(b) {
    for (let i = 1; i < b.length; i++) if (b[i] === 0x0a && b[i - 1] === 0x0d) return i + 1;
    return 0;
  },
};

interface CodecMode {
  name: string;
  framing: PacketFraming;
  /** A random valid frame, exactly as it is on the wire and as it must come out. */
  frame(rand: Rand): Uint8Array;
}

/** Random bytes that never contain `avoid` (so the delimiter appears only at the end). */
function bytesWithout(rand: Rand, n: number, avoid: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = rand(256);
    out[i] = b === avoid ? avoid ^ 1 : b;
  }
  return out;
}

const CODEC_MODES: CodecMode[] = [
  {
    name: '{ delimiter: "\\r\\n" }',
    framing: { delimiter: "\r\n" },
    frame: (rand) =>
      concatBytes([bytesWithout(rand, frameSize(rand, 4000), 0x0a), Uint8Array.of(0x0d, 0x0a)]),
  },
  {
    name: "{ delimiter: <00 ff 00> }",
    framing: { delimiter: Uint8Array.of(0, 0xff, 0) },
    frame: (rand) => concatBytes([bytesWithout(rand, frameSize(rand, 4000), 0), Uint8Array.of(0, 0xff, 0)]),
  },
  {
    name: "codec answering -N",
    framing: selfCounting3,
    frame: (rand) => {
      const body = frameSize(rand, 5000);
      const out = new Uint8Array(body + 3);
      const n = body + 3;
      out[0] = n >> 16;
      out[1] = (n >> 8) & 0xff;
      out[2] = n & 0xff;
      for (let i = 3; i < n; i++) out[i] = rand(256);
      return out;
    },
  },
  {
    name: "codec answering 0",
    framing: crlfNoHint,
    frame: (rand) =>
      concatBytes([bytesWithout(rand, frameSize(rand, 2000), 0x0a), Uint8Array.of(0x0d, 0x0a)]),
  },
];

describe("fuzz: codecs and delimiters decode valid streams exactly", () => {
  for (const [m, mode] of CODEC_MODES.entries()) {
    test(mode.name, () => {
      const rand = randOf(xorshift(0xfeed + m * 31));
      for (let iter = 0; iter < 300; iter++) {
        const frames = Array.from({ length: 1 + rand(30) }, () => mode.frame(rand));
        const chunks = randomChunks(rand, concatBytes(frames));
        const d = new FrameDecoder(mode.framing, rand(2) === 0 ? Number.POSITIVE_INFINITY : 70000);
        const got: Uint8Array[] = [];
        const lazy = rand(3) === 0;
        for (const chunk of chunks) {
          d.push(chunk);
          const pulls = lazy ? rand(3) : Number.POSITIVE_INFINITY;
          for (let p = 0; p < pulls; p++) {
            const f = d.next();
            if (f === undefined) break;
            got.push(f);
          }
        }
        for (let f = d.next(); f !== undefined; f = d.next()) got.push(f);
        // Compared once the whole stream went through: frames handed out early must not have changed.
        expect(got.map(hex)).toEqual(frames.map(hex));
        expect(d.buffered).toBe(0);
      }
    });
  }
});

describe("fuzz: codecs and delimiters on adversarial streams", () => {
  for (const [m, mode] of [
    ...CODEC_MODES,
    { name: "RESP", framing: resp, frame: () => new Uint8Array(0) },
  ].entries()) {
    test(`${mode.name}: only FrameTooLargeError or FramingError escape, the buffer stays bounded`, () => {
      const rand = randOf(xorshift(0xdead + m * 17));
      let ended = 0;
      for (let iter = 0; iter < 400; iter++) {
        const max = rand(300);
        const kind = rand(3);
        const n = 1 + rand(3000);
        const stream =
          kind === 0
            ? Uint8Array.from({ length: n }, () => rand(256))
            : kind === 1
              ? new Uint8Array(n).fill(0xff)
              : bytes(`*3\r\n$3\r\nSET\r\n$${rand(100_000)}\r\n${"a".repeat(n)}`);
        const d = new FrameDecoder(mode.framing, max);
        let largestChunk = 0;
        try {
          for (const chunk of randomChunks(rand, stream)) {
            largestChunk = Math.max(largestChunk, chunk.length);
            d.push(chunk);
            expect(d.buffered).toBeLessThanOrEqual(max + largestChunk);
            for (let f = d.next(); f !== undefined; f = d.next()) expect(f.length).toBeLessThanOrEqual(max);
          }
        } catch (e) {
          if (e instanceof FrameTooLargeError) expect(e.size).toBeGreaterThan(max);
          else if (e instanceof FramingError) expect(e.code).toBe("ERR_FRAMING");
          else throw e;
          ended++;
        }
      }
      expect(ended).toBeGreaterThan(50);
    });
  }
});
