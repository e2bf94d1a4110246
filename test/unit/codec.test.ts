/**
 * Invariant: with `{ delimiter }` or a codec `{ frameLength }`, the FrameDecoder delivers exactly the
 * frames of the stream, whatever the chunking (every split point, byte by byte, many frames per
 * chunk); a frame inside one chunk is a view of it (no copy); a frame spanning chunks is assembled
 * without copying the frames after it when the codec says how much it needs (`-N`), and the codec is
 * not called again before that; a delimiter split across chunks is found; `maxPacketSize` bounds a
 * frame (FrameTooLargeError, before buffering when the size is announced); a codec that throws or
 * answers a non-length ends with FramingError (`ERR_FRAMING`, the thrown value as `cause`). Bytes
 * alone: no sockets.
 */

import { describe, expect, test } from "bun:test";
import { parseCommand, resp } from "../../examples/resp.ts";
import { ArgumentError, FrameTooLargeError, FramingError, OptionError } from "../../src/errors.ts";
import {
  type Codec,
  encodeFrame,
  FrameDecoder,
  headerSize,
  isPacketFraming,
  type PacketFraming,
} from "../../src/framing/framing.ts";
import { connectionSettings } from "../../src/options.ts";
import { concatBytes, hex } from "../helpers/client.ts";
import { thrown } from "../helpers/errors.ts";

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

/** Pushes every chunk, pulling all complete frames after each push. */
function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) frames.push(f);
  }
  return frames;
}

/** Splits `stream` at `cuts` (sorted offsets). */
function cutAt(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, stream.length]) {
    out.push(stream.subarray(at, c));
    at = c;
  }
  return out;
}

/** Every way of cutting `stream` in two, and in three around each frame boundary. */
function splits(stream: Uint8Array): Uint8Array[][] {
  const ways: Uint8Array[][] = [];
  for (let a = 0; a <= stream.length; a++) ways.push(cutAt(stream, [a]));
  for (let a = 1; a < stream.length; a += 3)
    for (let b = a + 1; b < stream.length; b += 5) ways.push(cutAt(stream, [a, b]));
  ways.push(Array.from(stream, (_, i) => stream.subarray(i, i + 1))); // byte by byte
  return ways;
}

/** A 2-byte big-endian length that counts its own header (the header stays in the packet). */
function selfCounting(calls?: { n: number; sizes: number[] }): Codec {
  return {
    frameLength(b) {
      if (calls) {
        calls.n++;
        calls.sizes.push(b.length);
      }
      if (b.length < 2) return -2;
      const n = (b[0]! << 8) | b[1]!;
      if (n < 2) throw new RangeError(`length ${n} is shorter than its header`);
      return b.length >= n ? n : -n;
    },
  };
}

function selfFrame(body: string | Uint8Array): Uint8Array {
  const b = typeof body === "string" ? bytes(body) : body;
  const out = new Uint8Array(b.length + 2);
  out[0] = (b.length + 2) >> 8;
  out[1] = (b.length + 2) & 0xff;
  out.set(b, 2);
  return out;
}

/** A codec that only ever answers 0 until its frame is complete: "abc;" frames, no hint. */
const semicolonNoHint: Codec = {
  frameLength(b) {
    const i = b.indexOf(0x3b);
    return i === -1 ? 0 : i + 1;
  },
};

// ---------------------------------------------------------------------------------------- guards

describe("framing guards", () => {
  test("isPacketFraming accepts codecs and non-empty delimiters, rejects the rest", () => {
    expect(isPacketFraming({ delimiter: "\r\n" })).toBe(true);
    expect(isPacketFraming({ delimiter: Uint8Array.of(0) })).toBe(true);
    expect(isPacketFraming(resp)).toBe(true);
    expect(isPacketFraming({ frameLength: () => 0, encode: (p: unknown) => p })).toBe(true);
    for (const bad of [
      { delimiter: "" },
      { delimiter: new Uint8Array(0) },
      { delimiter: 10 },
      { frameLength: 1 },
      { frameLength: () => 0, encode: "no" },
      {},
      [],
      () => 0,
    ])
      expect(isPacketFraming(bad)).toBe(false);
    expect(headerSize(resp)).toBe(0);
    expect(headerSize({ delimiter: "\0" })).toBe(0);
  });

  test("the decoder rejects an empty delimiter with ArgumentError", () => {
    expect(() => new FrameDecoder({ delimiter: "" }, 10)).toThrow(ArgumentError);
    expect(() => new FrameDecoder({ delimiter: new Uint8Array(0) }, 10)).toThrow(ArgumentError);
  });

  test("the packet option takes codecs and delimiters, and names `packet` for bad ones", () => {
    expect(connectionSettings({ packet: { delimiter: "\r\n" } }).framing).toEqual({ delimiter: "\r\n" });
    expect(connectionSettings({ packet: resp }).framing).toBe(resp);
    for (const bad of [
      { delimiter: "" },
      { frameLength: "x" },
      { frameLength: () => 0, encode: 1 },
      { foo: 1 },
    ]) {
      const error = thrown(() => connectionSettings({ packet: bad }));
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).message).toContain("`packet`");
    }
  });

  test("encodeFrame passes codec and delimiter packets through; delimiter checks maxPacketSize", () => {
    const p = bytes("hello\r\n");
    expect(encodeFrame(resp, p, 3)).toBe(p); // a codec's frames are the codec's to judge
    expect(encodeFrame({ delimiter: "\r\n" }, p, 7)).toBe(p); // no terminator added
    expect(thrown(() => encodeFrame({ delimiter: "\r\n" }, p, 6))).toBeInstanceOf(FrameTooLargeError);
  });
});

// ------------------------------------------------------------------------------------- delimiter

describe("{ delimiter }", () => {
  const CASES: Array<{ delimiter: string | Uint8Array; frames: string[] }> = [
    { delimiter: "\r\n", frames: ["EHLO a\r\n", "\r\n", "lone \r and \n inside\r\n", "x\r\n", "\r\r\n"] },
    { delimiter: "\0", frames: ["CONNECT\n\n\0", "\0", "SEND body\0"] },
    // Self-overlapping delimiters: the first complete occurrence ends the frame.
    { delimiter: "\r\n\r\n", frames: ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\n", "a\r\n\r\r\n\r\n"] },
    { delimiter: "aab", frames: ["aaab", "xaab", "aab", "abaab"] },
    { delimiter: Uint8Array.of(0xff, 0x00), frames: ["\xff\xff\x00", "a\x00\xff\x00"] },
  ];

  for (const { delimiter, frames } of CASES) {
    const name = JSON.stringify(typeof delimiter === "string" ? delimiter : Array.from(delimiter));
    test(`${name}: every split point gives the same frames`, () => {
      const stream = concatBytes(frames.map((f) => Buffer.from(f, "latin1")));
      for (const chunks of splits(stream)) {
        const got = decodeAll(new FrameDecoder({ delimiter }, Number.POSITIVE_INFINITY), chunks);
        expect(got.map(text)).toEqual(frames);
      }
    });
  }

  test("many frames in one chunk are views of it, in order", () => {
    const chunk = bytes("a\r\nbb\r\nccc\r\npartial");
    const d = new FrameDecoder({ delimiter: "\r\n" }, 100);
    const got = decodeAll(d, [chunk]);
    expect(got.map(text)).toEqual(["a\r\n", "bb\r\n", "ccc\r\n"]);
    for (const f of got) expect(f.buffer).toBe(chunk.buffer);
    expect(d.buffered).toBe(7);
    expect(text(d.drain())).toBe("partial");
  });

  test("a delimiter split across chunks is found, and the frame assembled once", () => {
    const d = new FrameDecoder({ delimiter: "\r\n" }, 100);
    expect(decodeAll(d, [bytes("QUIT\r")])).toEqual([]);
    const got = decodeAll(d, [bytes("\nNEXT")]);
    expect(got.map(text)).toEqual(["QUIT\r\n"]);
    // Three-way split of a 4-byte delimiter.
    const e = new FrameDecoder({ delimiter: "\r\n\r\n" }, 100);
    expect(decodeAll(e, [bytes("head\r"), bytes("\n\r"), bytes("\nbody")]).map(text)).toEqual([
      "head\r\n\r\n",
    ]);
  });

  test("a delimiter starting before the frame boundary does not count", () => {
    // "ab" ends the first frame; the second frame's "b" must not pair with the first frame's "a".
    const d = new FrameDecoder({ delimiter: "ab" }, 100);
    expect(decodeAll(d, [bytes("xab"), bytes("b"), bytes("ab")]).map(text)).toEqual(["xab", "bab"]);
  });

  test("maxPacketSize bounds the whole frame, delimiter included", () => {
    const ok = new FrameDecoder({ delimiter: "\r\n" }, 5);
    expect(decodeAll(ok, [bytes("abc\r\n")]).map(text)).toEqual(["abc\r\n"]);
    const tooLong = thrown(() => decodeAll(new FrameDecoder({ delimiter: "\r\n" }, 5), [bytes("abcd\r\n")]));
    expect(tooLong).toBeInstanceOf(FrameTooLargeError);
    expect((tooLong as FrameTooLargeError).size).toBe(6);
    // No delimiter within maxPacketSize bytes: thrown before more is buffered.
    const d = new FrameDecoder({ delimiter: "\r\n" }, 5);
    expect(decodeAll(d, [bytes("abcd")])).toEqual([]);
    const noEnd = thrown(() => decodeAll(d, [bytes("e")]));
    expect(noEnd).toBeInstanceOf(FrameTooLargeError);
    expect((noEnd as FrameTooLargeError).size).toBe(6);
  });

  test("a delimiter array given by the caller is copied", () => {
    const delim = Uint8Array.of(0x3b);
    const d = new FrameDecoder({ delimiter: delim }, 100);
    delim[0] = 0x2c;
    expect(decodeAll(d, [bytes("a,b;")]).map(text)).toEqual(["a,b;"]);
  });
});

// ----------------------------------------------------------------------------------------- codec

describe("codec { frameLength }", () => {
  const BODIES = ["", "a", "hello", "x".repeat(300), "\0\r\n", "last"];
  const stream = concatBytes(BODIES.map(selfFrame));

  test("every split point gives the same frames, header included", () => {
    for (const chunks of splits(stream)) {
      const got = decodeAll(new FrameDecoder(selfCounting(), Number.POSITIVE_INFINITY), chunks);
      expect(got.map(hex)).toEqual(BODIES.map((b) => hex(selfFrame(b))));
    }
  });

  test("a codec answering only 0 gets the same frames at every split point", () => {
    const frames = ["abc;", ";", "a much longer frame;", "z;"];
    const s = bytes(frames.join(""));
    for (const chunks of splits(s)) {
      expect(decodeAll(new FrameDecoder(semicolonNoHint, 1000), chunks).map(text)).toEqual(frames);
    }
  });

  test("frames in one chunk are views of it; many frames per chunk", () => {
    const d = new FrameDecoder(selfCounting(), 1000);
    const got = decodeAll(d, [stream]);
    expect(got.length).toBe(BODIES.length);
    for (const f of got) expect(f.buffer).toBe(stream.buffer);
  });

  test("-N: not called again before N bytes, and the next chunk's frames stay views", () => {
    const calls = { n: 0, sizes: [] as number[] };
    const d = new FrameDecoder(selfCounting(calls), 10_000);
    const big = selfFrame("y".repeat(1000)); // 1002 bytes
    const small = selfFrame("next");
    decodeAll(d, [big.subarray(0, 10)]);
    expect(calls.n).toBe(1); // answered -1002
    for (let at = 10; at < 1000; at += 10) expect(decodeAll(d, [big.subarray(at, at + 10)])).toEqual([]);
    expect(calls.n).toBe(1); // 99 pushes, no call: fewer than 1002 bytes
    const tail = concatBytes([big.subarray(1000), small]);
    const got = decodeAll(d, [tail]);
    expect(got.map(hex)).toEqual([hex(big), hex(small)]);
    expect(calls.sizes[1]).toBe(1002); // the assembly took exactly the frame, not the chunk after it
    expect(got[1]!.buffer).toBe(tail.buffer); // so the next frame is a view of its chunk
  });

  test("frames handed out stay intact while the assembly buffer grows in place", () => {
    // Answers "at least one more byte": the assembly buffer doubles, so later bytes are appended in
    // place behind frames already handed out; those must not change.
    const lowerBound: Codec = {
      frameLength(b) {
        const i = b.indexOf(0x3b);
        return i === -1 ? -(b.length + 1) : i + 1;
      },
    };
    const want = Array.from({ length: 200 }, (_, i) => `${"k".repeat(i % 37)}${i};`);
    const s = bytes(want.join(""));
    const chunks: Uint8Array[] = [];
    for (let at = 0, n = 1; at < s.length; at += n, n = (n * 7) % 23 || 1)
      chunks.push(s.subarray(at, at + n));
    const frames = decodeAll(new FrameDecoder(lowerBound, 100_000), chunks);
    expect(frames.map(text)).toEqual(want); // compared after the whole stream went through
  });

  test("a frameLength that throws ends with FramingError, the thrown value as cause", () => {
    const d = new FrameDecoder(selfCounting(), 1000);
    d.push(Uint8Array.of(0, 1, 9)); // length 1 < header: the codec throws RangeError
    const error = thrown(() => d.next());
    expect(error).toBeInstanceOf(FramingError);
    expect((error as FramingError).code).toBe("ERR_FRAMING");
    expect((error as FramingError).cause).toBeInstanceOf(RangeError);
    expect((error as Error).message).toContain("shorter than its header");
  });

  test("answers that are not lengths are FramingErrors", () => {
    for (const answer of [Number.NaN, 1.5, 99, -2, -3, Number.POSITIVE_INFINITY, "3" as unknown as number]) {
      const d = new FrameDecoder({ frameLength: () => answer }, 1000);
      d.push(bytes("abc"));
      expect(thrown(() => d.next())).toBeInstanceOf(FramingError);
    }
  });

  test("maxPacketSize: an announced size over it throws before the bytes are buffered", () => {
    const d = new FrameDecoder(selfCounting(), 100);
    d.push(Uint8Array.of(0x10, 0x00)); // announces 4096 bytes
    const error = thrown(() => d.next());
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect((error as FrameTooLargeError).size).toBe(4096);
    expect((error as FrameTooLargeError).maxPacketSize).toBe(100);
  });

  test("maxPacketSize: a complete frame over it, or max bytes without a frame, throws", () => {
    const over = new FrameDecoder(selfCounting(), 5);
    over.push(selfFrame("abcd")); // 6 bytes, all there
    expect(thrown(() => over.next())).toBeInstanceOf(FrameTooLargeError);
    const exact = new FrameDecoder(selfCounting(), 6);
    expect(decodeAll(exact, [selfFrame("abcd")]).length).toBe(1);
    const noHint = new FrameDecoder(semicolonNoHint, 8);
    expect(decodeAll(noHint, [bytes("abcdefg")])).toEqual([]);
    const error = thrown(() => decodeAll(noHint, [bytes("h")]));
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect((error as FrameTooLargeError).size).toBe(9);
  });

  test("drain hands back everything buffered, and decoding resumes after it", () => {
    const d = new FrameDecoder(selfCounting(), 1000);
    const f = selfFrame("hello");
    decodeAll(d, [f.subarray(0, 3), f.subarray(3, 5)]);
    expect(hex(d.drain())).toBe(hex(f.subarray(0, 5)));
    expect(d.buffered).toBe(0);
    expect(decodeAll(d, [selfFrame("ok")]).map(hex)).toEqual([hex(selfFrame("ok"))]);
  });
});

// ------------------------------------------------------------------------------------ RESP codec

describe("the RESP codec of examples/resp.ts", () => {
  const commands = [
    ["SET", "key", "value with \r\n inside"],
    ["GET", "key"],
    ["PING"],
    ["ECHO", ""],
    ["DEL", "a", "b", "c"],
  ];
  const toResp = (args: string[]) =>
    `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`;
  const stream = bytes(`${commands.map(toResp).join("")}PING inline\r\n`);

  test("every split point gives one frame per command, parsed into its arguments", () => {
    for (const chunks of splits(stream)) {
      const got = decodeAll(new FrameDecoder(resp, 1 << 20), chunks).map((f) => parseCommand(f).map(text));
      expect(got).toEqual([...commands, ["PING", "inline"]]);
    }
  });

  test("replies are frames too (null bulk, integers, errors, nested arrays)", () => {
    const replies = [
      "+OK\r\n",
      "$-1\r\n",
      ":42\r\n",
      "-ERR no\r\n",
      "*2\r\n*1\r\n:1\r\n$3\r\nabc\r\n",
      "*-1\r\n",
    ];
    const got = decodeAll(new FrameDecoder(resp, 1000), [bytes(replies.join(""))]).map(text);
    expect(got).toEqual(replies);
  });

  test("a huge array of tiny elements in small chunks is scanned a bounded number of times", () => {
    const n = 100_000;
    const s = bytes(`*${n}\r\n${"$0\r\n\r\n".repeat(n)}`);
    let calls = 0;
    let scanned = 0;
    const counting: Codec = {
      frameLength(b) {
        calls++;
        scanned += b.length;
        return resp.frameLength(b);
      },
    };
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < s.length; at += 1460) chunks.push(s.subarray(at, at + 1460));
    const got = decodeAll(new FrameDecoder(counting, 1 << 24), chunks);
    expect(got.length).toBe(1);
    expect(got[0]!.length).toBe(s.length);
    // The lower bounds (3 bytes per missing element) keep it far from one rescan per chunk (412).
    expect(calls).toBeLessThan(60);
    expect(scanned).toBeLessThan(30 * s.length); // O(n log n): each bound halves what is missing
  });

  test("garbage is a FramingError whose cause is the codec's protocol error", () => {
    for (const bad of ["*x\r\n", "$3\r\nabcd\r\n", "*1\r\n!\r\n", "$2\nab\r\n", "*1\r\n".repeat(100)]) {
      const d = new FrameDecoder(resp, 1000);
      d.push(bytes(bad));
      const error = thrown(() => d.next());
      expect(error).toBeInstanceOf(FramingError);
      expect(((error as FramingError).cause as Error).name).toBe("RespProtocolError");
    }
  });
});

test("PacketFraming includes codecs (type level)", () => {
  const framings: PacketFraming[] = ["raw", 1, 2, 4, "line", { delimiter: "\n" }, resp];
  expect(framings.length).toBe(7);
});
