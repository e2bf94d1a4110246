import { describe, expect, test } from "bun:test";
import { ArgumentError, FrameTooLargeError } from "../../src/errors.ts";
import {
  encodeFrame,
  FrameDecoder,
  headerSize,
  isPacketFraming,
  type PacketFraming,
} from "../../src/framing/framing.ts";
import { concatBytes, hex } from "../helpers/client.ts";
import { thrown } from "../helpers/errors.ts";

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

/** Payload of `n` bytes with a recognisable pattern (no "\n" unless asked). */
function payload(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 0x20 + ((i * 7 + seed * 13) % 90);
  return out;
}

/** Pulls every complete frame buffered. */
function pullAll(decoder: FrameDecoder, frames: Uint8Array[] = []): Uint8Array[] {
  for (let f = decoder.next(); f !== undefined; f = decoder.next()) frames.push(f);
  return frames;
}

/** Pushes every chunk, pulling all complete frames after each push. */
function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    pullAll(decoder, frames);
  }
  return frames;
}

function expectFrames(actual: Uint8Array[], expected: Uint8Array[]): void {
  expect(actual.map(hex)).toEqual(expected.map(hex));
}

const PREFIXED = [1, 2, 4] as const;

/** Frames that fit every prefix size, including zero-length ones. */
const SAMPLE_FRAMES = [payload(0), payload(1), payload(5, 2), payload(0), payload(200, 3), payload(17, 4)];
const SAMPLE_LINES = ["hello\n", "\n", "with crlf\r\n", "x\n", "\r\n", "a longer line with some text\n"].map(
  bytes,
);

describe("isPacketFraming / headerSize", () => {
  test("accepts the five named framings and no other primitive (codecs: see codec.test.ts)", () => {
    for (const v of ["raw", 1, 2, 4, "line"]) expect(isPacketFraming(v)).toBe(true);
    for (const v of [0, 3, 8, "1", "lines", null, undefined, {}, Number.NaN])
      expect(isPacketFraming(v)).toBe(false);
  });

  test("header sizes", () => {
    expect(headerSize("raw")).toBe(0);
    expect(headerSize("line")).toBe(0);
    expect(headerSize(1)).toBe(1);
    expect(headerSize(2)).toBe(2);
    expect(headerSize(4)).toBe(4);
  });

  test("constructor rejects bad arguments", () => {
    expect(() => new FrameDecoder(3 as PacketFraming, 10)).toThrow(ArgumentError);
    expect(() => new FrameDecoder(4, -1)).toThrow(ArgumentError);
    expect(() => new FrameDecoder(4, Number.NaN)).toThrow(ArgumentError);
    expect(() => new FrameDecoder(4, 1.5)).toThrow(ArgumentError);
    expect(new FrameDecoder(4, Number.POSITIVE_INFINITY).framing).toBe(4);
  });
});

describe("encodeFrame", () => {
  test("prefixes big-endian lengths in one buffer", () => {
    const p = payload(300);
    const e4 = encodeFrame(4, p);
    expect(e4.length).toBe(304);
    expect(Array.from(e4.subarray(0, 4))).toEqual([0, 0, 1, 44]);
    expect(hex(e4.subarray(4))).toBe(hex(p));
    const e2 = encodeFrame(2, p);
    expect(Array.from(e2.subarray(0, 2))).toEqual([1, 44]);
    expect(hex(e2.subarray(2))).toBe(hex(p));
    const e1 = encodeFrame(1, payload(200));
    expect(e1[0]).toBe(200);
    expect(e1.length).toBe(201);
    expect(Array.from(encodeFrame(4, new Uint8Array(0)))).toEqual([0, 0, 0, 0]);
  });

  test("raw and line are unchanged (same object)", () => {
    const p = bytes("abc\n");
    expect(encodeFrame("raw", p)).toBe(p);
    expect(encodeFrame("line", p)).toBe(p);
  });

  test("prefix limits for 1 and 2 byte headers", () => {
    expect(encodeFrame(1, new Uint8Array(255)).length).toBe(256);
    expect(() => encodeFrame(1, new Uint8Array(256))).toThrow(FrameTooLargeError);
    expect(encodeFrame(2, new Uint8Array(65535)).length).toBe(65537);
    const err = thrown(() => encodeFrame(2, new Uint8Array(65536)));
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect((err as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    expect((err as FrameTooLargeError).size).toBe(65536);
    expect((err as FrameTooLargeError).maxPacketSize).toBe(65535);
  });

  test("maxPacketSize is enforced for prefixed and line, not raw", () => {
    expect(encodeFrame(4, new Uint8Array(10), 10).length).toBe(14);
    expect(() => encodeFrame(4, new Uint8Array(11), 10)).toThrow(FrameTooLargeError);
    expect(() => encodeFrame(2, new Uint8Array(11), 10)).toThrow(FrameTooLargeError);
    expect(() => encodeFrame("line", new Uint8Array(11), 10)).toThrow(FrameTooLargeError);
    expect(encodeFrame("raw", new Uint8Array(11), 10).length).toBe(11);
  });
});

describe("round trips", () => {
  for (const n of PREFIXED) {
    test(`packet ${n}`, () => {
      const d = new FrameDecoder(n, Number.POSITIVE_INFINITY);
      expectFrames(
        decodeAll(
          d,
          SAMPLE_FRAMES.map((f) => encodeFrame(n, f)),
        ),
        SAMPLE_FRAMES,
      );
      expect(d.buffered).toBe(0);
    });
  }

  test("packet 2 and 4 with large frames", () => {
    const big = [payload(65535), payload(70000, 9)];
    const d2 = new FrameDecoder(2, Number.POSITIVE_INFINITY);
    expectFrames(decodeAll(d2, [encodeFrame(2, big[0]!)]), [big[0]!]);
    const d4 = new FrameDecoder(4, Number.POSITIVE_INFINITY);
    expectFrames(
      decodeAll(
        d4,
        big.map((f) => encodeFrame(4, f)),
      ),
      big,
    );
  });

  test("line", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    expectFrames(
      decodeAll(
        d,
        SAMPLE_LINES.map((l) => encodeFrame("line", l)),
      ),
      SAMPLE_LINES,
    );
    expect(d.buffered).toBe(0);
  });

  test("raw returns everything buffered", () => {
    const d = new FrameDecoder("raw", Number.POSITIVE_INFINITY);
    expect(d.next()).toBeUndefined();
    const a = bytes("abc");
    d.push(a);
    expect(d.next()).toBe(a); // one chunk: returned as-is
    expect(d.next()).toBeUndefined();
    d.push(bytes("de"));
    d.push(bytes("f"));
    expect(d.buffered).toBe(3);
    expect(hex(d.next()!)).toBe(hex(bytes("def")));
    expect(d.buffered).toBe(0);
    expect(d.next()).toBeUndefined();
  });
});

/** Every mode with its sample frames and the encoded stream of them. */
const STREAMS: { framing: PacketFraming; frames: Uint8Array[] }[] = [
  ...PREFIXED.map((n) => ({ framing: n as PacketFraming, frames: SAMPLE_FRAMES })),
  { framing: "line", frames: SAMPLE_LINES },
];

describe("split streams", () => {
  for (const { framing, frames } of STREAMS) {
    const stream = concatBytes(frames.map((f) => encodeFrame(framing, f)));

    test(`${framing}: two chunks split at every offset`, () => {
      for (let i = 0; i <= stream.length; i++) {
        const d = new FrameDecoder(framing, Number.POSITIVE_INFINITY);
        expectFrames(decodeAll(d, [stream.subarray(0, i), stream.subarray(i)]), frames);
        expect(d.buffered).toBe(0);
      }
    });

    test(`${framing}: one byte at a time`, () => {
      const d = new FrameDecoder(framing, Number.POSITIVE_INFINITY);
      const chunks = Array.from(stream, (b) => Uint8Array.of(b));
      expectFrames(decodeAll(d, chunks), frames);
      expect(d.buffered).toBe(0);
    });

    test(`${framing}: three chunks at every pair of offsets`, () => {
      for (let i = 0; i <= stream.length; i += 3) {
        for (let j = i; j <= stream.length; j += 5) {
          const d = new FrameDecoder(framing, Number.POSITIVE_INFINITY);
          const chunks = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
          expectFrames(decodeAll(d, chunks), frames);
        }
      }
    });

    test(`${framing}: everything pushed before pulling, one byte per chunk`, () => {
      const d = new FrameDecoder(framing, Number.POSITIVE_INFINITY);
      for (const b of stream) d.push(Uint8Array.of(b));
      expect(d.buffered).toBe(stream.length);
      expectFrames(pullAll(d), frames);
      expect(d.buffered).toBe(0);
    });
  }

  test("raw: split at every offset reassembles the stream", () => {
    const stream = payload(50);
    for (let i = 0; i <= stream.length; i++) {
      const d = new FrameDecoder("raw", Number.POSITIVE_INFINITY);
      d.push(stream.subarray(0, i));
      d.push(stream.subarray(i));
      expect(hex(d.next()!)).toBe(hex(stream));
    }
  });
});

describe("frames", () => {
  test("many frames in one chunk", () => {
    for (const n of PREFIXED) {
      const frames = Array.from({ length: 1000 }, (_, i) => payload(i % 50, i));
      const d = new FrameDecoder(n, Number.POSITIVE_INFINITY);
      expectFrames(decodeAll(d, [concatBytes(frames.map((f) => encodeFrame(n, f)))]), frames);
      expect(d.buffered).toBe(0);
    }
    const lines = Array.from({ length: 1000 }, (_, i) => bytes(`line ${i}\n`));
    expectFrames(decodeAll(new FrameDecoder("line", Number.POSITIVE_INFINITY), [concatBytes(lines)]), lines);
  });

  test("zero-length frames", () => {
    for (const n of PREFIXED) {
      const d = new FrameDecoder(n, 0);
      d.push(new Uint8Array(n * 3));
      for (let i = 0; i < 3; i++) expect(d.next()?.length).toBe(0);
      expect(d.next()).toBeUndefined();
      expect(d.buffered).toBe(0);
      // header split across chunks
      for (let b = 0; b < n; b++) d.push(new Uint8Array(1));
      expect(d.next()?.length).toBe(0);
      expect(d.next()).toBeUndefined();
    }
  });

  test("partial frame stays buffered with its header", () => {
    const d = new FrameDecoder(4, Number.POSITIVE_INFINITY);
    const e = encodeFrame(4, payload(10));
    d.push(e.subarray(0, 7));
    expect(d.next()).toBeUndefined();
    expect(d.buffered).toBe(7);
    expect(d.next()).toBeUndefined(); // idempotent
    d.push(e.subarray(7));
    expect(hex(d.next()!)).toBe(hex(payload(10)));
  });

  test("returned frames stay valid after more pushes", () => {
    const d = new FrameDecoder(2, Number.POSITIVE_INFINITY);
    const e = encodeFrame(2, payload(30));
    d.push(e.subarray(0, 10));
    d.push(e.subarray(10));
    const f = d.next()!;
    const before = hex(f);
    for (let i = 0; i < 50; i++) d.push(encodeFrame(2, new Uint8Array(30).fill(i)));
    pullAll(d);
    expect(hex(f)).toBe(before);
  });

  test("a frame within one chunk is a view of it (zero copy)", () => {
    const chunk = concatBytes([encodeFrame(4, payload(100)), encodeFrame(4, payload(20, 2))]);
    const d = new FrameDecoder(4, Number.POSITIVE_INFINITY);
    d.push(chunk);
    const a = d.next()!;
    const b = d.next()!;
    expect(a.buffer).toBe(chunk.buffer);
    expect(a.byteOffset).toBe(chunk.byteOffset + 4);
    expect(b.buffer).toBe(chunk.buffer);
    const l = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    const lines = bytes("one\ntwo\n");
    l.push(lines);
    expect(l.next()!.buffer).toBe(lines.buffer);
    expect(l.next()!.buffer).toBe(lines.buffer);
  });

  test("a frame spanning chunks is assembled into a buffer of its exact size", () => {
    const e = encodeFrame(4, payload(100));
    const d = new FrameDecoder(4, Number.POSITIVE_INFINITY);
    d.push(e.subarray(0, 50));
    d.push(e.subarray(50));
    const f = d.next()!;
    expect(f.length).toBe(100);
    expect(f.buffer).not.toBe(e.buffer);
    expect(hex(f)).toBe(hex(payload(100)));
  });
});

describe("line mode", () => {
  test("keeps \\r\\n and empty lines", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    d.push(bytes("a\r\n\n\r\nb\n"));
    expect(pullAll(d).map((f) => new TextDecoder().decode(f))).toEqual(["a\r\n", "\n", "\r\n", "b\n"]);
  });

  test("a line split across many chunks", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    const line = `${"x".repeat(500)}\n`;
    for (let i = 0; i < line.length - 1; i += 7) {
      d.push(bytes(line.slice(i, Math.min(i + 7, line.length - 1))));
      expect(d.next()).toBeUndefined();
    }
    expect(d.buffered).toBe(500);
    d.push(bytes("\nnext"));
    expect(new TextDecoder().decode(d.next()!)).toBe(line);
    expect(d.next()).toBeUndefined();
    expect(d.buffered).toBe(4);
    expect(new TextDecoder().decode(d.drain())).toBe("next");
  });

  test("scan position survives the chunk list being compacted", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    const head = Array.from({ length: 15 }, (_, i) => `${i.toString(16)}\n`).join("");
    for (const ch of `${head}xy`) d.push(bytes(ch));
    expect(pullAll(d).length).toBe(15); // leaves "xy" scanned, consumed slots before it
    d.push(bytes("z")); // compacts the list
    expect(d.next()).toBeUndefined();
    d.push(bytes("\n"));
    expect(new TextDecoder().decode(d.next()!)).toBe("xyz\n");
    expect(d.buffered).toBe(0);
  });

  test("incomplete line is not returned", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    d.push(bytes("no newline"));
    expect(d.next()).toBeUndefined();
    expect(d.buffered).toBe(10);
  });
});

describe("take / drain", () => {
  test("take(n) exact across chunks", () => {
    const d = new FrameDecoder("raw", Number.POSITIVE_INFINITY);
    const s = payload(20);
    d.push(s.subarray(0, 3));
    expect(d.take(5)).toBeUndefined();
    d.push(s.subarray(3, 8));
    d.push(s.subarray(8));
    expect(hex(d.take(5)!)).toBe(hex(s.subarray(0, 5)));
    expect(hex(d.take(2)!)).toBe(hex(s.subarray(5, 7)));
    const view = d.take(10)!; // lies inside the third chunk
    expect(hex(view)).toBe(hex(s.subarray(7, 17)));
    expect(d.buffered).toBe(3);
    expect(d.take(4)).toBeUndefined();
    expect(hex(d.take(3)!)).toBe(hex(s.subarray(17)));
    expect(d.buffered).toBe(0);
  });

  test("take(0) returns everything buffered", () => {
    const d = new FrameDecoder("raw", Number.POSITIVE_INFINITY);
    expect(d.take(0)).toBeUndefined();
    const a = bytes("abc");
    d.push(a);
    expect(d.take(0)).toBe(a);
    d.push(bytes("ab"));
    d.push(bytes("cd"));
    expect(d.take(1)?.[0]).toBe(0x61);
    expect(new TextDecoder().decode(d.take(0)!)).toBe("bcd");
    expect(d.take(0)).toBeUndefined();
  });

  test("take(n > maxPacketSize) throws", () => {
    const d = new FrameDecoder("raw", 10);
    d.push(new Uint8Array(100));
    expect(d.take(10)?.length).toBe(10);
    expect(() => d.take(11)).toThrow(FrameTooLargeError);
    expect(() => d.take(-1)).toThrow(ArgumentError);
    expect(() => d.take(1.5)).toThrow(ArgumentError);
  });

  test("drain returns everything, headers of unfinished frames included", () => {
    const d = new FrameDecoder(2, Number.POSITIVE_INFINITY);
    expect(d.drain().length).toBe(0);
    const stream = concatBytes([encodeFrame(2, payload(3)), encodeFrame(2, payload(10))]);
    d.push(stream.subarray(0, 6));
    d.push(stream.subarray(6, 9));
    expect(hex(d.next()!)).toBe(hex(payload(3)));
    expect(d.next()).toBeUndefined();
    expect(hex(d.drain())).toBe(hex(stream.subarray(5, 9)));
    expect(d.buffered).toBe(0);
    expect(d.next()).toBeUndefined();
    // usable again afterwards
    d.push(encodeFrame(2, payload(4)));
    expect(hex(d.next()!)).toBe(hex(payload(4)));
  });

  test("drain in line mode resets the scan", () => {
    const d = new FrameDecoder("line", Number.POSITIVE_INFINITY);
    d.push(bytes("abc"));
    expect(d.next()).toBeUndefined();
    expect(new TextDecoder().decode(d.drain())).toBe("abc");
    d.push(bytes("de\n"));
    expect(new TextDecoder().decode(d.next()!)).toBe("de\n");
  });
});

describe("maxPacketSize", () => {
  for (const n of PREFIXED) {
    test(`packet ${n}: header announcing too much throws before the payload arrives`, () => {
      const max = 100;
      const d = new FrameDecoder(n, max);
      d.push(encodeFrame(n, payload(max)));
      expect(d.next()?.length).toBe(max);
      const header = encodeFrame(n, payload(max + 1)).subarray(0, n);
      // header split over chunks, no payload
      for (const b of header) d.push(Uint8Array.of(b));
      const err = thrown(() => d.next());
      expect(err).toBeInstanceOf(FrameTooLargeError);
      expect((err as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
      expect((err as FrameTooLargeError).size).toBe(max + 1);
      expect((err as FrameTooLargeError).maxPacketSize).toBe(max);
    });
  }

  test("packet 4: a 4 GiB header throws at once", () => {
    const d = new FrameDecoder(4, 1 << 20);
    d.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    expect(() => d.next()).toThrow(FrameTooLargeError);
  });

  test("line: too long without a newline throws", () => {
    const d = new FrameDecoder("line", 10);
    d.push(bytes("123456789"));
    expect(d.next()).toBeUndefined();
    d.push(bytes("0123"));
    const err = thrown(() => d.next());
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect((err as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    expect((err as FrameTooLargeError).maxPacketSize).toBe(10);
  });

  test("line: limit counts the newline", () => {
    const ok = new FrameDecoder("line", 10);
    ok.push(bytes("123456789\n"));
    expect(ok.next()?.length).toBe(10);
    const tooLong = new FrameDecoder("line", 10);
    tooLong.push(bytes("1234567890\n"));
    expect(() => tooLong.next()).toThrow(FrameTooLargeError);
  });
});
