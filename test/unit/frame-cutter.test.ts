/**
 * Invariant: `FrameCutter.end` finds a frame only when it lies whole in the chunk from the offset
 * given (the packet's start in `start`), answers -1 for anything incomplete (the decoder then takes
 * over), and throws the decoder's errors for a frame known from the chunk alone to be bad.
 */
import { expect, test } from "bun:test";
import { FrameTooLargeError, FramingError } from "../../src/errors.ts";
import { FrameCutter } from "../../src/framing/frame-cutter.ts";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test("length prefixes: the frame's end and its payload's start; -1 for half a header or a short payload", () => {
  const cutter = new FrameCutter(4, 1024);
  const chunk = Uint8Array.of(0, 0, 0, 2, 0x68, 0x69, 0, 0);
  expect(cutter.end(chunk, 0)).toBe(6);
  expect(cutter.start).toBe(4);
  expect(cutter.end(chunk, 6)).toBe(-1);
  expect(new FrameCutter(2, 1024).end(Uint8Array.of(0, 3, 1, 2), 0)).toBe(-1);
  const one = new FrameCutter(1, 1024);
  expect(one.end(Uint8Array.of(0, 1, 9), 0)).toBe(1);
  expect(one.end(Uint8Array.of(0, 1, 9), 1)).toBe(3);
  expect(one.start).toBe(2);
});

test("length prefixes: a header announcing more than the maximum throws at once", () => {
  expect(() => new FrameCutter(2, 10).end(Uint8Array.of(0, 11), 0)).toThrow(FrameTooLargeError);
});

test("delimiters: the frame includes its delimiter; one whose start lies before the offset is not matched", () => {
  const cutter = new FrameCutter({ delimiter: "\r\n" }, 1024);
  const chunk = bytes("ab\r\ncd\r");
  expect(cutter.end(chunk, 0)).toBe(4);
  expect(cutter.start).toBe(0);
  expect(cutter.end(chunk, 4)).toBe(-1);
  // "\n" at 3 with "\r" at 2: from offset 3 that "\r" is not part of the frame
  expect(cutter.end(bytes("ab\r\nx\r\n"), 3)).toBe(7);
  // a "\n" without its "\r" is a byte of the frame, not its end
  expect(cutter.end(bytes("a\nb\r\n"), 0)).toBe(5);
  // longer delimiters: every byte compared
  const three = new FrameCutter({ delimiter: "END" }, 1024);
  expect(three.end(bytes("xxNDyEND"), 0)).toBe(8);
  expect(three.end(bytes("xxNDyEN"), 0)).toBe(-1);
  expect(new FrameCutter("line", 1024).end(bytes("\n"), 0)).toBe(1);
  expect(() => new FrameCutter("line", 3).end(bytes("abcd\n"), 0)).toThrow(FrameTooLargeError);
});

test("codecs: a positive answer within the chunk is a frame; 0 and -N are -1; a length past the chunk throws", () => {
  const codec = {
    frameLength: (b: Uint8Array) => (b[0] === 0x3f ? 0 : b[0] === 0x2d ? -9 : b[0] === 0x21 ? 99 : 1),
  };
  const cutter = new FrameCutter(codec, 1024);
  expect(cutter.end(bytes("a?"), 0)).toBe(1);
  expect(cutter.end(bytes("a?"), 1)).toBe(-1);
  expect(cutter.end(bytes("-"), 0)).toBe(-1);
  expect(() => cutter.end(bytes("!"), 0)).toThrow(FramingError);
  expect(() => new FrameCutter({ frameLength: () => 2 }, 1).end(bytes("ab"), 0)).toThrow(FrameTooLargeError);
});

test("raw framing has no frames", () => {
  expect(new FrameCutter("raw", 1024).end(bytes("abc"), 0)).toBe(-1);
});
