/**
 * Invariant: over real sockets, `packet: 1 | 2 | 4` delivers exactly the payloads the peer framed
 * (header stripped, big-endian length), whatever the TCP chunking (a frame split across many writes,
 * many frames in one write, empty frames), and prefixes every packet the handler sends; `packet:
 * "line"` delivers one line per packet including its "\n" and sends lines as they are; `encoding:
 * "utf8"` delivers strings, and in raw mode a multi-byte character split across two TCP chunks
 * arrives whole (never as U+FFFD). A frame (or line) larger than `maxPacketSize` stops the
 * connection with a FrameTooLargeError (its exit reason), the same error as a too-large frame the
 * handler tries to send; under the default plan that stops the server, under `plan: ["delete"]` the
 * server keeps serving. A server stop does not wait for a backlog of buffered frames.
 *
 * A raw Bun client with its own decoder plays the peer; a counting wrapper around `tcp()` (a
 * user-level custom transport) tells when the server has read bytes, so each write is its own chunk.
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  type Connection,
  type ExitReason,
  FrameTooLargeError,
  type Handler,
  type ServerOptions,
  SockerlError,
} from "../../src/index.ts";
import { frame, RawClient } from "../helpers/client.ts";
import { cleanup, SOCKERL_PLAN, startTestServer } from "../helpers/server.ts";
import { captureSink, type SinkCapture } from "../helpers/trace.ts";
import { countingTcp } from "../helpers/transport.ts";
import { Log, within } from "../helpers/wait.ts";

// ------------------------------------------------------------------------------------------ helpers

/** Trace lines and termination reports (captured instead of going to stderr). */
let sink: SinkCapture;

beforeEach(() => {
  sink = captureSink();
});

afterEach(cleanup);

/** Cuts a byte stream into frames (the client's own decoder). Returns the frames and leftover bytes. */
function unframe(bytes: number, stream: Buffer): { frames: Buffer[]; rest: number } {
  const frames: Buffer[] = [];
  let at = 0;
  while (stream.length - at >= bytes) {
    const len = stream.readUIntBE(at, bytes);
    if (stream.length - at - bytes < len) break;
    frames.push(stream.subarray(at + bytes, at + bytes + len));
    at += bytes + len;
  }
  return { frames, rest: stream.length - at };
}

/** An echo handler that records every packet and the connection. */
function echo(packets: Log<Uint8Array | string>, conns?: Log<Connection>): Handler<undefined, null> {
  return {
    init(_i, meta) {
      conns?.push(meta.connection);
    },
    handlePacket(packet) {
      packets.push(typeof packet === "string" ? packet : Buffer.from(packet));
      return { send: packet };
    },
  };
}

/** An {@link echo} server with `options` over a counting `tcp()`, and a raw client connected to it. */
async function countedEcho(options: ServerOptions) {
  const counter = countingTcp();
  const packets = new Log<Uint8Array | string>();
  const server = await startTestServer(echo(packets), null, { ...options, transport: counter.transport });
  const client = await RawClient.connect(server.port);
  return { counter, packets, server, client };
}

/** `n` bytes of a simple periodic pattern (the payloads are compared whole, not by checksum). */
const pattern = (n: number, seed = 0): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 256;
  return b;
};

// ------------------------------------------------------------------------- length prefixes

describe.each([1, 2, 4] as const)("packet: %d", (bytes) => {
  const big = bytes === 1 ? 255 : bytes === 2 ? 65_535 : 300_000;

  test("a frame split into one-byte writes arrives as one packet; the echo is prefixed", async () => {
    const { counter, packets, client } = await countedEcho({ packet: bytes });
    const wire = frame(bytes, "hello, frames");
    for (let i = 0; i < wire.length; i++) {
      client.write(wire.subarray(i, i + 1));
      await counter.untilRead(i + 1); // each byte its own TCP chunk
      expect(packets.items.length).toBe(i === wire.length - 1 ? 1 : 0);
    }
    expect(Buffer.from(packets.items[0] as Uint8Array).toString()).toBe("hello, frames");
    await client.waitForBytes(wire.length, 3000);
    expect(client.bytes()).toEqual(wire); // exactly header + payload
  });

  test("many frames in one write, including empty and maximal ones, arrive in order", async () => {
    const packets = new Log<Uint8Array | string>();
    const server = await startTestServer(echo(packets), null, { packet: bytes });
    const client = await RawClient.connect(server.port);
    const payloads = [
      Buffer.from("a"),
      Buffer.alloc(0),
      pattern(big, 3),
      ...Array.from({ length: 50 }, (_, i) => pattern(i + 1, i)),
      Buffer.alloc(0),
    ];
    const wire = Buffer.concat(payloads.map((p) => frame(bytes, p)));
    let sent = 0;
    while (sent < wire.length) {
      const n = client.socket.write(wire.subarray(sent));
      sent += Math.max(0, n);
      if (sent < wire.length) await packets.until((l) => l.length > 0); // the first echoes free the buffer
    }
    await packets.until((l) => l.length === payloads.length, 5000, "all frames");
    expect(packets.items.map((p) => Buffer.from(p as Uint8Array)) as Buffer[]).toEqual(payloads);
    await client.waitForBytes(wire.length, 5000);
    const { frames, rest } = unframe(bytes, client.bytes());
    expect(rest).toBe(0);
    expect(frames).toEqual(payloads);
  });

  test("frames straddling chunk boundaries (header split from payload, two frames per chunk)", async () => {
    const { counter, packets, client } = await countedEcho({ packet: bytes });
    const payloads = [pattern(10, 1), pattern(20, 2), pattern(30, 3)];
    const wire = Buffer.concat(payloads.map((p) => frame(bytes, p)));
    // Cut points: after the first header byte, inside the first payload, after the third frame's
    // first header byte (the chunk between holds the end of frame 1, all of frame 2, a header byte).
    const cuts = [1, bytes + 5, bytes + 10 + bytes + 20 + 1, wire.length];
    let at = 0;
    for (const cut of cuts) {
      client.write(wire.subarray(at, cut));
      at = cut;
      await counter.untilRead(at);
    }
    await packets.until((l) => l.length === 3);
    expect(packets.items.map((p) => Buffer.from(p as Uint8Array)) as Buffer[]).toEqual(payloads);
    await client.waitForBytes(wire.length, 3000);
    expect(client.bytes()).toEqual(wire);
  });
});

test.each([
  [1, 256],
  [2, 65_536],
] as const)(
  "packet: %d refuses to send a %d-byte payload (the prefix cannot express it): FrameTooLargeError",
  async (bytes, tooBig) => {
    const conns = new Log<Connection>();
    const server = await startTestServer<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
          return { send: Buffer.alloc(tooBig) };
        },
        handlePacket: () => undefined,
      },
      null,
      { packet: bytes, plan: ["delete"] },
    );
    await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    // init failed: the connection never started; its exit reason is the codec error.
    const reason = await within(conns.items[0]!.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    expect((reason as FrameTooLargeError).size).toBe(tooBig);
    expect((reason as FrameTooLargeError).maxPacketSize).toBe(tooBig - 1);
  },
);

// ---------------------------------------------------------------------------------- lines

describe('packet: "line"', () => {
  test("lines split across writes and many lines per write arrive one per packet, with their \\n", async () => {
    const { counter, packets, client } = await countedEcho({ packet: "line" });
    const writes = ["hel", "lo\nwor", "ld\r\n", "a\nb\n\nc\n", "no newline yet"];
    let total = 0;
    for (const w of writes) {
      client.write(w);
      total += w.length;
      await counter.untilRead(total);
    }
    const lines = ["hello\n", "world\r\n", "a\n", "b\n", "\n", "c\n"];
    await packets.until((l) => l.length === lines.length);
    expect(packets.items.map((p) => Buffer.from(p as Uint8Array).toString())).toEqual(lines);
    // Sends go out as they are (no "\n" added).
    await client.waitForBytes(lines.join("").length, 3000);
    expect(client.bytes().toString()).toBe(lines.join(""));
    client.write("\n");
    await packets.until((l) => l.length === lines.length + 1);
    expect(Buffer.from(packets.items.at(-1) as Uint8Array).toString()).toBe("no newline yet\n");
  });

  test("a line longer than maxPacketSize stops the connection before its \\n arrives", async () => {
    const conns = new Log<Connection>();
    const packets = new Log<Uint8Array | string>();
    const server = await startTestServer(echo(packets, conns), null, {
      packet: "line",
      maxPacketSize: 8,
      plan: ["delete"],
    });
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    client.write("1234567\n"); // 8 bytes with the \n: fits
    await packets.until((l) => l.length === 1);
    client.write("123456789"); // no \n yet, already too long
    const reason = await within(conns.items[0]!.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    expect((reason as FrameTooLargeError).maxPacketSize).toBe(8);
    await within(client.closedPromise, 3000, "the server to close the socket");
  });
});

// ---------------------------------------------------------------------------------- utf8

describe('encoding: "utf8"', () => {
  test("raw: a multi-byte character split across two TCP chunks arrives whole", async () => {
    const { counter, packets, client } = await countedEcho({ encoding: "utf8" });
    const euro = Buffer.from("€"); // e2 82 ac
    client.write(Buffer.concat([Buffer.from("price: "), euro.subarray(0, 2)]));
    await counter.untilRead(9);
    client.write(Buffer.concat([euro.subarray(2), Buffer.from("5 ✓")]));
    await counter.untilRead(9 + 1 + 5);
    await packets.until((l) => (l as string[]).join("") === "price: €5 ✓");
    for (const p of packets.items) expect(typeof p).toBe("string");
    expect((packets.items as string[]).join("")).not.toContain("\uFFFD");
    expect(packets.items).toEqual(["price: ", "€5 ✓"]);
    // The echo (strings sent back) is the original bytes.
    await client.waitForBytes(Buffer.byteLength("price: €5 ✓"), 3000);
    expect(client.bytes().toString()).toBe("price: €5 ✓");
  });

  test("raw: a chunk holding only part of a character gives no empty packet", async () => {
    const { counter, packets, client } = await countedEcho({ encoding: "utf8" });
    const smile = Buffer.from("😀"); // 4 bytes
    for (let i = 0; i < 4; i++) {
      client.write(smile.subarray(i, i + 1));
      await counter.untilRead(i + 1);
    }
    client.write("!");
    await packets.until((l) => (l as string[]).join("") === "😀!");
    expect(packets.items.filter((p) => p === "")).toEqual([]);
  });

  test("framed: packets are strings and string sends are prefixed with their byte length", async () => {
    const packets = new Log<Uint8Array | string>();
    const server = await startTestServer(echo(packets), null, { encoding: "utf8", packet: 2 });
    const client = await RawClient.connect(server.port);
    client.write(Buffer.concat([frame(2, "héllo"), frame(2, "wörld ✓"), frame(2, "")]));
    await packets.until((l) => l.length === 3);
    expect(packets.items).toEqual(["héllo", "wörld ✓", ""]);
    const expected = Buffer.concat([frame(2, "héllo"), frame(2, "wörld ✓"), frame(2, "")]);
    await client.waitForBytes(expected.length, 3000);
    expect(client.bytes()).toEqual(expected);
  });

  test("line: lines are strings, multi-byte characters split across chunks included", async () => {
    const { counter, packets, client } = await countedEcho({ encoding: "utf8", packet: "line" });
    const bytes = Buffer.from("naïve\nçà\n");
    client.write(bytes.subarray(0, 3)); // "na" + first byte of "ï"
    await counter.untilRead(3);
    client.write(bytes.subarray(3));
    await packets.until((l) => l.length === 2);
    expect(packets.items).toEqual(["naïve\n", "çà\n"]);
  });
});

// ------------------------------------------------------------------------ maxPacketSize

describe("maxPacketSize", () => {
  test("a frame header announcing more than maxPacketSize stops the connection with FrameTooLargeError", async () => {
    const conns = new Log<Connection>();
    const packets = new Log<Uint8Array | string>();
    const terminated = new Log<ExitReason>();
    const handler: Handler<undefined, null> = {
      ...echo(packets, conns),
      terminate(reason) {
        terminated.push(reason);
      },
    };
    const server = await startTestServer(handler, null, { packet: 2, maxPacketSize: 10, plan: ["delete"] });
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    client.write(frame(2, "0123456789")); // exactly 10: fine
    await packets.until((l) => l.length === 1);
    client.write(frame(2, "0123456789A").subarray(0, 2)); // just the header of an 11-byte frame
    const reason = await within(conns.items[0]!.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect(reason).toBeInstanceOf(SockerlError);
    const error = reason as FrameTooLargeError;
    expect(error.code).toBe("ERR_FRAME_TOO_LARGE");
    expect(error.size).toBe(11);
    expect(error.maxPacketSize).toBe(10);
    expect(terminated.items).toEqual([reason]);
    await within(client.closedPromise, 3000, "the server to close the socket");

    // plan ["delete"]: the server keeps serving.
    const again = await RawClient.connect(server.port);
    again.write(frame(2, "still here"));
    await again.waitForBytes(12, 3000);
    expect(again.bytes()).toEqual(frame(2, "still here"));
    expect(server.connections().length).toBe(1);
  });

  test("under SockErl's strict plan (explicit) a FrameTooLargeError stops the whole server", async () => {
    const conns = new Log<Connection>();
    const packets = new Log<Uint8Array | string>();
    const server = await startTestServer(echo(packets, conns), null, {
      packet: 4,
      maxPacketSize: 100,
      plan: SOCKERL_PLAN,
    });
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    client.write(Buffer.from([0, 0, 0, 101]));
    const reason = await within(server.exited, 3000, "the server to stop");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    const id = conns.items[0]!.id;
    expect(
      sink.lines.some(
        (r) =>
          r.startsWith(`** Sockerl connector <${id}> terminating`) &&
          r.includes("FrameTooLargeError ERR_FRAME_TOO_LARGE"),
      ),
    ).toBe(true);
  });

  test("sending a frame larger than maxPacketSize stops the connection with FrameTooLargeError", async () => {
    const conns = new Log<Connection>();
    const server = await startTestServer<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
        },
        handlePacket: (packet) => ({ send: [packet, Buffer.alloc(64)] }),
      },
      null,
      { packet: 1, maxPacketSize: 32, plan: ["delete"] },
    );
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    client.write(frame(1, "ok"));
    const reason = await within(conns.items[0]!.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).size).toBe(64);
    expect((reason as FrameTooLargeError).maxPacketSize).toBe(32);
  });
});

// -------------------------------------------------------------------- stopping with a backlog

describe("a backlog of buffered frames", () => {
  test.each(["active", "passive"] as const)(
    "server.stop() (%s) ends a connection after its pending callback, not after the whole backlog",
    async (mode) => {
      const packets = new Log<number>();
      const terminated = new Log<number>();
      const gate = Promise.withResolvers<void>();
      let handled = 0;
      const server = await startTestServer<undefined, null>(
        {
          init: () => undefined,
          async handlePacket() {
            handled++;
            packets.push(handled);
            if (handled === 1) await gate.promise;
          },
          terminate() {
            terminated.push(handled);
          },
        },
        null,
        { packet: 1, mode },
      );
      const client = await RawClient.connect(server.port);
      client.write(Buffer.concat(Array.from({ length: 500 }, () => frame(1, "x")))); // 500 frames
      await packets.until((l) => l.length === 1);
      const stopped = server.stop();
      gate.resolve();
      await within(stopped, 3000, "the stop");
      expect(terminated.items).toEqual([1]);
    },
  );
});
