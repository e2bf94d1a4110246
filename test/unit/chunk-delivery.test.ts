/**
 * Invariant: a chunk holding several frames is delivered exactly as if its frames had arrived one by
 * one: every framing (length prefixes, lines, delimiters, codecs) cuts the same frames; a callback
 * that goes async, a self-posted event, a switch to passive mode or a stop in the middle of a chunk
 * leaves the rest of the chunk to be handled in order (or not at all, after a stop); a frame cut at
 * the chunk's end is completed by the next one; a bad frame in the middle ends the connection with
 * the decoder's typed error, after the frames before it were handled.
 *
 * (A connection that is idle and has nothing buffered cuts a chunk's frames without a decoder;
 * these tests pin that path to the decoder's behaviour. The STARTTLS case, bytes behind the command
 * in the same chunk, is in test/tls/starttls.test.ts.)
 *
 * Unit tier: the real connection process on the testing kit's memory transport, no sockets.
 */

import { expect, test } from "bun:test";
import { BadReturnError, CallbackError, FrameTooLargeError, FramingError } from "../../src/errors.ts";
import type { ExitReason, Handler, PacketFraming } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";

const enc = new TextEncoder();

/** `payloads` framed with a 4-byte length prefix, in one buffer. */
function prefixed(payloads: string[]): Uint8Array {
  const parts = payloads.map((s) => enc.encode(s));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    new DataView(out.buffer).setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** A codec: one byte of length, then that many bytes (the header is part of the frame). */
const byteCodec = {
  frameLength: (b: Uint8Array): number =>
    b.length === 0 ? 0 : b.length >= 1 + b[0]! ? 1 + b[0]! : -(1 + b[0]!),
};

/** A handler recording packets (as text) and the exit reason; `onPacket` may return an action. */
function recorder(onPacket: (text: string, n: number) => unknown = () => undefined) {
  const packets: string[] = [];
  const exit: { reason: ExitReason | "running" } = { reason: "running" };
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (p) => {
      const text = typeof p === "string" ? p : Buffer.from(p).toString("latin1");
      packets.push(text);
      return onPacket(text, packets.length) as undefined;
    },
    handleCast: (m) => {
      packets.push(`cast:${String(m)}`);
      return undefined;
    },
    handleCall: () => ({ reply: packets.slice() }),
    terminate: (reason) => {
      exit.reason = reason;
    },
  };
  return { handler, packets, exit };
}

const CASES: { name: string; framing: PacketFraming; chunk: Uint8Array; frames: string[] }[] = [
  { name: "packet: 4", framing: 4, chunk: prefixed(["a", "", "bcd", "e"]), frames: ["a", "", "bcd", "e"] },
  {
    name: "packet: 2",
    framing: 2,
    chunk: Uint8Array.of(0, 1, 0x61, 0, 0, 0, 1, 0x62),
    frames: ["a", "", "b"],
  },
  { name: "packet: 1", framing: 1, chunk: Uint8Array.of(1, 0x61, 0, 2, 0x62, 0x63), frames: ["a", "", "bc"] },
  {
    name: "line",
    framing: "line",
    chunk: enc.encode("a\nbc\r\n\nd\n"),
    frames: ["a\n", "bc\r\n", "\n", "d\n"],
  },
  {
    name: "{ delimiter }",
    framing: { delimiter: "\r\n" },
    chunk: enc.encode("a\r\n\rb\r\n\r\nc\r\n"),
    frames: ["a\r\n", "\rb\r\n", "\r\n", "c\r\n"],
  },
  {
    name: "a codec",
    framing: byteCodec,
    chunk: Uint8Array.of(1, 0x61, 0, 2, 0x62, 0x63),
    frames: ["\x01a", "\x00", "\x02bc"],
  },
];

for (const { name, framing, chunk, frames } of CASES) {
  test(`${name}: the frames of one chunk are the frames the decoder cuts, in order`, async () => {
    await using kit = testKit();
    const { handler } = recorder();
    const server = await kit.startServer(handler, undefined, { packet: framing });
    const peer = await kit.connect(server);
    await peer.write(chunk);
    expect(await peer.connection!.call("?")).toEqual(frames);
  });

  test(`${name}: a frame cut at the chunk's end is completed by the next chunk`, async () => {
    await using kit = testKit();
    const { handler } = recorder();
    const server = await kit.startServer(handler, undefined, { packet: framing });
    const peer = await kit.connect(server);
    const cut = chunk.length - 1;
    await peer.write(chunk.subarray(0, cut));
    expect(await peer.connection!.call("?")).toEqual(frames.slice(0, -1));
    await peer.write(chunk.subarray(cut));
    expect(await peer.connection!.call("?")).toEqual(frames);
  });
}

test("a callback that goes async mid-chunk: the rest of the chunk waits for it, then follows in order", async () => {
  await using kit = testKit();
  let release = (): void => undefined;
  let depth = 0;
  let overlap = false;
  const { handler, packets } = recorder((text) => {
    if (++depth > 1) overlap = true;
    if (text !== "b") {
      depth--;
      return undefined;
    }
    return new Promise<undefined>((resolve) => {
      release = () => {
        depth--;
        resolve(undefined);
      };
    });
  });
  const server = await kit.startServer(handler, undefined, { packet: 4 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["a", "b", "c", "d"]));
  await Bun.sleep(1); // the handler has seen "b" and is pending
  expect(packets).toEqual(["a", "b"]);
  release();
  expect(await peer.connection!.call("?")).toEqual(["a", "b", "c", "d"]);
  expect(overlap).toBe(false);
});

test("an event the handler posts to itself mid-chunk comes after the chunk's frames (arrival order)", async () => {
  await using kit = testKit();
  const { handler } = recorder((text, n) => {
    if (n === 1) self?.cast(`after ${text}`);
    return undefined;
  });
  let self: { cast(m: unknown): void } | undefined;
  const server = await kit.startServer(
    {
      ...handler,
      init: (_i, meta) => {
        self = meta.connection;
        return undefined;
      },
    },
    undefined,
    { packet: "line" },
  );
  const peer = await kit.connect(server);
  await peer.write("a\nb\nc\n");
  expect(await peer.connection!.call("?")).toEqual(["a\n", "b\n", "c\n", "cast:after a\n"]);
});

test("switching to passive mode mid-chunk: the chunk's remaining frames are still delivered, in order", async () => {
  await using kit = testKit();
  const { handler } = recorder((_t, n) => (n === 1 ? { mode: "passive" } : undefined));
  const server = await kit.startServer(handler, undefined, { packet: 4 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["a", "b", "c"]));
  expect(await peer.connection!.call("?")).toEqual(["a", "b", "c"]);
});

test("a stop mid-chunk: the frames after it are not handled", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder((_t, n) => (n === 2 ? { stop: "enough" } : undefined));
  const server = await kit.startServer(handler, undefined, { packet: { delimiter: ";" } });
  const peer = await kit.connect(server);
  await peer.write("a;b;c;d;");
  await peer.readToEnd({ timeoutMs: 1000 });
  expect(packets).toEqual(["a;", "b;"]);
  expect(exit.reason).toBe("enough");
});

test("a frame too large in the middle of a chunk: the frames before it are handled, then FrameTooLargeError", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder();
  const server = await kit.startServer(handler, undefined, { packet: 4, maxPacketSize: 8 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["ok", "x".repeat(9), "never"]));
  await peer.readToEnd({ timeoutMs: 1000 });
  expect(packets).toEqual(["ok"]);
  expect(exit.reason).toBeInstanceOf(FrameTooLargeError);
  expect((exit.reason as FrameTooLargeError).size).toBe(9);
});

test.each([
  ["packet: 2", 2, Uint8Array.of(0, 1, 0x61, 0x01, 0x00, 0x62)],
  ["packet: 1", 1, Uint8Array.of(1, 0x61, 200, 0x62)],
] as const)(
  "%s: a header announcing more than maxPacketSize mid-chunk ends the connection with FrameTooLargeError",
  async (_, framing, bytes) => {
    await using kit = testKit();
    const { handler, packets, exit } = recorder();
    const server = await kit.startServer(handler, undefined, { packet: framing, maxPacketSize: 100 });
    const peer = await kit.connect(server);
    await peer.write(bytes);
    await peer.readToEnd({ timeoutMs: 1000 });
    expect(packets).toEqual(["a"]);
    expect(exit.reason).toBeInstanceOf(FrameTooLargeError);
    expect((exit.reason as FrameTooLargeError).size).toBe(framing === 2 ? 256 : 200);
  },
);

test("a handler that throws mid-chunk: the frames after it are not handled, the reason is a CallbackError", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder((text) => {
    if (text === "b") throw new Error("boom");
    return undefined;
  });
  const server = await kit.startServer(handler, undefined, { packet: 4 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["a", "b", "c"]));
  await peer.readToEnd({ timeoutMs: 1000 });
  expect(packets).toEqual(["a", "b"]);
  expect(exit.reason).toBeInstanceOf(CallbackError);
  expect(((exit.reason as CallbackError).cause as Error).message).toBe("boom");
});

test("plain sends, an action of another shape and a bad action in one chunk: each frame as if alone", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder((text, n) => {
    if (n === 2) return { send: `2${text}`, state: undefined }; // not a plain { send }: applied in full
    if (n === 4) return { send: "x", sned: 1 }; // a typo: BadReturnError, not a silent send
    return { send: `${n}${text}` };
  });
  const server = await kit.startServer(handler, undefined, { packet: 4 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["a", "b", "c", "d", "e"]));
  const out = await peer.readToEnd({ timeoutMs: 1000 });
  expect(out).toEqual(Buffer.from(prefixed(["1a", "2b", "3c"])));
  expect(packets).toEqual(["a", "b", "c", "d"]);
  expect(exit.reason).toBeInstanceOf(BadReturnError);
});

test("an idle timeout set mid-chunk: the frames after it still reset it", async () => {
  await using kit = testKit();
  let timeouts = 0;
  const { handler } = recorder((_t, n) => (n === 1 ? { timeout: 100 } : undefined));
  const server = await kit.startServer(
    {
      ...handler,
      timeout: () => {
        timeouts++;
        return undefined;
      },
    },
    undefined,
    { packet: 4 },
  );
  const peer = await kit.connect(server);
  await peer.write(prefixed(["a", "b"]));
  await kit.clock.advance(60);
  await peer.write(prefixed(["c"]));
  await kit.clock.advance(60);
  expect(timeouts).toBe(0);
  await kit.clock.advance(50);
  expect(timeouts).toBe(1);
});

test("a line longer than maxPacketSize inside one chunk ends the connection with FrameTooLargeError", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder();
  const server = await kit.startServer(handler, undefined, { packet: "line", maxPacketSize: 4 });
  const peer = await kit.connect(server);
  await peer.write("ok\ntoo long\n");
  await peer.readToEnd({ timeoutMs: 1000 });
  expect(packets).toEqual(["ok\n"]);
  expect(exit.reason).toBeInstanceOf(FrameTooLargeError);
});

test("a codec answer past what it was shown, mid-chunk, ends the connection with FramingError", async () => {
  await using kit = testKit();
  const { handler, packets, exit } = recorder();
  const liar = { frameLength: (b: Uint8Array): number => (b[0] === 0x21 ? b.length + 5 : 1) };
  const server = await kit.startServer(handler, undefined, { packet: liar });
  const peer = await kit.connect(server);
  await peer.write("ab!c");
  await peer.readToEnd({ timeoutMs: 1000 });
  expect(packets).toEqual(["a", "b"]);
  expect(exit.reason).toBeInstanceOf(FramingError);
});

test('encoding: "utf8" with framing: each frame of a chunk is decoded text', async () => {
  await using kit = testKit();
  const { handler } = recorder();
  const server = await kit.startServer(handler, undefined, { packet: "line", encoding: "utf8" });
  const peer = await kit.connect(server);
  await peer.write("é\nü\n");
  expect(await peer.connection!.call("?")).toEqual(["é\n", "ü\n"]);
});

// What a callback posts to its own connection while the chunk's last frame is handled is served at once
// (the run loop's end-of-turn work runs after a chunk delivered whole).

test("a chunk of one frame: a sendAsync the handler makes to its own connection is written", async () => {
  await using kit = testKit();
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (_p, _s, meta) => {
      meta.connection.sendAsync("pong\n");
      return undefined;
    },
  };
  const server = await kit.startServer(handler, undefined, { packet: "line" });
  const peer = await kit.connect(server);
  await peer.write("ping\n");
  expect((await peer.readUntil("\n", { timeoutMs: 1000 })).toString()).toBe("pong\n");
});

test("a chunk of one frame: a stop the handler asks of its own connection ends it", async () => {
  await using kit = testKit();
  const { promise: ended, resolve } = Promise.withResolvers<unknown>();
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (_p, _s, meta) => {
      void meta.connection.stop("asked");
      return undefined;
    },
    terminate: (reason) => resolve(reason),
  };
  const server = await kit.startServer(handler, undefined, { packet: 4 });
  const peer = await kit.connect(server);
  await peer.write(prefixed(["x"]));
  expect(await Promise.race([ended, Bun.sleep(1000).then(() => "still running")])).toBe("asked");
});

test.each([
  ["line framing, the last frame of a chunk", "line", "x\n"],
  ["raw mode, a packet", "raw", "x"],
] as const)("%s switches to passive with an srtimeout: the timeout fires", async (_, framing, bytes) => {
  await using kit = testKit();
  let timeouts = 0;
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: () => ({ mode: "passive", srtimeout: 50 }),
    srtimeout: () => {
      timeouts++;
      return undefined;
    },
  };
  const server = await kit.startServer(handler, undefined, { packet: framing });
  const peer = await kit.connect(server);
  await peer.write(bytes);
  await kit.clock.advance(50);
  expect(timeouts).toBe(1);
});
