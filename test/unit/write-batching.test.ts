/**
 * Invariant: on a socket that copies what it is given (Bun's), the replies to the frames of one chunk
 * leave in one write, whatever the framing (length prefixes, delimiters, codecs) and whether the
 * replies are bytes or text; a chunk of one frame whose reply is the frame itself is written as it is,
 * with no copy; a frame cut at the chunk's end is answered when its rest arrives.
 *
 * Unit tier: the real connection process on the benchmarks' in-memory transport (marked as copying
 * writes, so the production write path runs), every write recorded.
 */

import { afterEach, expect, test } from "bun:test";
import { type MemoryConnection, memoryConnection } from "../../bench/memory-socket.ts";
import type { Codec, Handler, PacketFraming } from "../../src/index.ts";
import * as sockerl from "../../src/index.ts";

/** One write as the socket saw it: a copy of its bytes, and the object it was given. */
interface Written {
  bytes: string;
  source: Uint8Array | string;
}

let open: MemoryConnection | undefined;
afterEach(async () => {
  await open?.stop();
  open = undefined;
});

/**
 * A connection of a server with `handler` and `packet`, every write recorded (copied) in `writes`
 * from then on (the helper feeds one probe frame first, to see the connection answer synchronously).
 */
async function connection(handler: Handler<undefined>, packet: PacketFraming) {
  const writes: Written[] = [];
  const probe = typeof packet === "number" ? new Uint8Array(packet) : Buffer.from("\r\n");
  const c = await memoryConnection(sockerl, handler, { packet }, probe, false);
  open = c;
  c.socket.write = (bytes, offset = 0, length) => {
    const view =
      typeof bytes === "string"
        ? Buffer.from(bytes)
        : Buffer.from(bytes.buffer, bytes.byteOffset + offset, length ?? bytes.length - offset);
    writes.push({ bytes: view.toString("latin1"), source: bytes });
    return view.length;
  };
  return { feed: c.feed, writes };
}

const echo: Handler<undefined> = { init: () => undefined, handlePacket: (p) => ({ send: p }) };

/** `payloads` with a 4-byte length prefix each, in one buffer. */
function prefixed(...payloads: string[]): Buffer {
  return Buffer.concat(
    payloads.map((s) => {
      const b = Buffer.alloc(4 + s.length);
      b.writeUInt32BE(s.length, 0);
      b.write(s, 4, "latin1");
      return b;
    }),
  );
}

test("{ delimiter }: the replies to a chunk's lines leave in one write", async () => {
  const { feed, writes } = await connection(echo, { delimiter: "\r\n" });
  feed(Buffer.from("a\r\nbb\r\nccc\r\n"));
  expect(writes.map((w) => w.bytes)).toEqual(["a\r\nbb\r\nccc\r\n"]);
});

test("line: a chunk of one line echoed is written as it is, uncopied", async () => {
  const { feed, writes } = await connection(echo, "line");
  const chunk = Buffer.from("solo\n");
  feed(chunk);
  expect(writes.length).toBe(1);
  expect(writes[0]!.source).toBe(chunk);
});

test("packet: 4: the replies to a chunk's frames leave in one write, prefixes included", async () => {
  const { feed, writes } = await connection(echo, 4);
  feed(prefixed("a", "", "bcd"));
  expect(writes.map((w) => w.bytes)).toEqual([prefixed("a", "", "bcd").toString("latin1")]);
});

test("a codec with text replies: one write per chunk, the replies in order", async () => {
  const lines: Codec = { frameLength: (b) => b.indexOf(0x0a) + 1 };
  let n = 0;
  const handler: Handler<undefined> = { init: () => undefined, handlePacket: () => ({ send: `r${++n};` }) };
  const { feed, writes } = await connection(handler, lines);
  n = 0; // (the probe was a packet)
  feed(Buffer.from("x\ny\nz\n"));
  expect(writes.map((w) => w.bytes)).toEqual(["r1;r2;r3;"]);
});

test("frames left unanswered do not split the write of the others", async () => {
  let n = 0;
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (p) => (++n % 2 === 1 ? undefined : { send: p }),
  };
  const { feed, writes } = await connection(handler, { delimiter: "\r\n" });
  n = 0; // (the probe was a packet)
  feed(Buffer.from("1\r\n2\r\n3\r\n4\r\n"));
  expect(writes.map((w) => w.bytes)).toEqual(["2\r\n4\r\n"]);
});

test("a line cut at the chunk's end is answered when its rest arrives", async () => {
  const { feed, writes } = await connection(echo, { delimiter: "\r\n" });
  feed(Buffer.from("a\r\nb"));
  expect(writes.map((w) => w.bytes)).toEqual(["a\r\n"]);
  feed(Buffer.from("c\r\nd\r\n"));
  expect(writes.map((w) => w.bytes)).toEqual(["a\r\n", "bc\r\nd\r\n"]);
});
