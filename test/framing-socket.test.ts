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
  type Server,
  SockerlError,
  startServer,
  sys,
  type TraceSink,
  type Transport,
  type TransportEvents,
  tcp,
} from "../src/index.ts";

const HOST = "127.0.0.1";

// ------------------------------------------------------------------------------------------ helpers

const cleanups: (() => unknown)[] = [];
/** Trace lines and termination reports (captured instead of going to stderr). */
let reports: string[] = [];
let previousSink: TraceSink | undefined;

beforeEach(() => {
  reports = [];
  previousSink = sys.setSink((line) => reports.push(line));
});

afterEach(async () => {
  const list = cleanups.splice(0).reverse();
  for (const fn of list) {
    try {
      await fn();
    } catch {
      // best effort
    }
  }
  sys.setSink(previousSink);
});

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An append-only list whose growth can be awaited. */
class Log<T> {
  readonly items: T[] = [];
  #waiters: { pred: (items: T[]) => boolean; resolve: () => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(this.items)) return true;
      w.resolve();
      return false;
    });
  }

  until(pred: (items: T[]) => boolean, ms = 3000, what = "log condition"): Promise<void> {
    if (pred(this.items)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ pred, resolve });
    return within(promise, ms, what);
  }
}

/** A raw Bun client recording what it receives. */
class Client {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  readonly closed = Promise.withResolvers<void>();
  #waiters: { n: number; resolve: () => void }[] = [];
  socket!: Bun.Socket<undefined>;

  static async open(port: number): Promise<Client> {
    const client = new Client();
    client.socket = await Bun.connect({
      hostname: HOST,
      port,
      allowHalfOpen: true,
      socket: {
        data(_s, chunk) {
          client.chunks.push(Buffer.from(chunk));
          client.bytes += chunk.length;
          client.#waiters = client.#waiters.filter((w) => {
            if (client.bytes < w.n) return true;
            w.resolve();
            return false;
          });
        },
        close() {
          client.closed.resolve();
        },
        error() {},
      },
    });
    cleanups.push(() => client.socket.terminate());
    return client;
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  until(n: number, ms = 3000): Promise<void> {
    if (this.bytes >= n) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ n, resolve });
    return within(promise, ms, `${n} bytes (have ${this.bytes})`);
  }

  write(data: string | Uint8Array): void {
    const len = typeof data === "string" ? Buffer.byteLength(data) : data.length;
    const n = this.socket.write(data);
    if (n !== len) throw new Error(`short write ${n}/${len}`);
  }
}

function countingTcp(): {
  transport: Transport;
  read: () => number;
  untilRead: (n: number) => Promise<void>;
} {
  const inner = tcp();
  let read = 0;
  let waiters: { n: number; resolve: () => void }[] = [];
  const transport: Transport = {
    name: "tcp",
    secure: false,
    listen(request) {
      const events: TransportEvents = {
        ...request.events,
        data(socket, chunk) {
          read += chunk.length;
          request.events.data(socket, chunk);
          waiters = waiters.filter((w) => {
            if (read < w.n) return true;
            w.resolve();
            return false;
          });
        },
      };
      return inner.listen({ ...request, events });
    },
    connect(request) {
      return inner.connect(request);
    },
  };
  return {
    transport,
    read: () => read,
    untilRead(n) {
      if (read >= n) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ n, resolve });
      return within(promise, 3000, `the server to read ${n} bytes (read ${read})`);
    },
  };
}

async function serve<S, I>(
  handler: Handler<S, I>,
  init: I,
  options: Record<string, unknown> = {},
): Promise<Server<S, I>> {
  const server = await startServer(handler, init, 0, { hostname: HOST, ...options });
  if (server === undefined) throw new Error("server ignored");
  cleanups.push(() => server.stop());
  return server;
}

/** Big-endian length prefix + payload, written independently of the library's codec. */
function frame(bytes: number, payload: Uint8Array | string): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
  const header = Buffer.alloc(bytes);
  header.writeUIntBE(body.length, 0, bytes);
  return Buffer.concat([header, body]);
}

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

const pattern = (n: number, seed = 0): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 256;
  return b;
};

// ------------------------------------------------------------------------- length prefixes

describe.each([1, 2, 4] as const)("packet: %d", (bytes) => {
  const big = bytes === 1 ? 255 : bytes === 2 ? 65_535 : 300_000;

  test("a frame split into one-byte writes arrives as one packet; the echo is prefixed", async () => {
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { packet: bytes, transport: counter.transport });
    const client = await Client.open(server.port);
    const wire = frame(bytes, "hello, frames");
    for (let i = 0; i < wire.length; i++) {
      client.write(wire.subarray(i, i + 1));
      await counter.untilRead(i + 1); // each byte its own TCP chunk
      expect(packets.items.length).toBe(i === wire.length - 1 ? 1 : 0);
    }
    expect(Buffer.from(packets.items[0] as Uint8Array).toString()).toBe("hello, frames");
    await client.until(wire.length);
    expect(client.received()).toEqual(wire); // exactly header + payload
  });

  test("many frames in one write, including empty and maximal ones, arrive in order", async () => {
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { packet: bytes });
    const client = await Client.open(server.port);
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
    await client.until(wire.length, 5000);
    const { frames, rest } = unframe(bytes, client.received());
    expect(rest).toBe(0);
    expect(frames).toEqual(payloads);
  });

  test("frames straddling chunk boundaries (header split from payload, two frames per chunk)", async () => {
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { packet: bytes, transport: counter.transport });
    const client = await Client.open(server.port);
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
    await client.until(wire.length);
    expect(client.received()).toEqual(wire);
  });
});

test.each([
  [1, 256],
  [2, 65_536],
] as const)(
  "packet: %d refuses to send a %d-byte payload (the prefix cannot express it): FrameTooLargeError",
  async (bytes, tooBig) => {
    const conns = new Log<Connection>();
    const server = await serve<undefined, null>(
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
    await Client.open(server.port);
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
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { packet: "line", transport: counter.transport });
    const client = await Client.open(server.port);
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
    await client.until(lines.join("").length);
    expect(client.received().toString()).toBe(lines.join(""));
    client.write("\n");
    await packets.until((l) => l.length === lines.length + 1);
    expect(Buffer.from(packets.items.at(-1) as Uint8Array).toString()).toBe("no newline yet\n");
  });

  test("a line longer than maxPacketSize stops the connection before its \\n arrives", async () => {
    const conns = new Log<Connection>();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets, conns), null, {
      packet: "line",
      maxPacketSize: 8,
      plan: ["delete"],
    });
    const client = await Client.open(server.port);
    await conns.until((l) => l.length === 1);
    client.write("1234567\n"); // 8 bytes with the \n: fits
    await packets.until((l) => l.length === 1);
    client.write("123456789"); // no \n yet, already too long
    const reason = await within(conns.items[0]!.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    expect((reason as FrameTooLargeError).maxPacketSize).toBe(8);
    await within(client.closed.promise, 3000, "the server to close the socket");
  });
});

// ---------------------------------------------------------------------------------- utf8

describe('encoding: "utf8"', () => {
  test("raw: a multi-byte character split across two TCP chunks arrives whole", async () => {
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { encoding: "utf8", transport: counter.transport });
    const client = await Client.open(server.port);
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
    await client.until(Buffer.byteLength("price: €5 ✓"));
    expect(client.received().toString()).toBe("price: €5 ✓");
  });

  test("raw: a chunk holding only part of a character gives no empty packet", async () => {
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, { encoding: "utf8", transport: counter.transport });
    const client = await Client.open(server.port);
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
    const server = await serve(echo(packets), null, { encoding: "utf8", packet: 2 });
    const client = await Client.open(server.port);
    client.write(Buffer.concat([frame(2, "héllo"), frame(2, "wörld ✓"), frame(2, "")]));
    await packets.until((l) => l.length === 3);
    expect(packets.items).toEqual(["héllo", "wörld ✓", ""]);
    const expected = Buffer.concat([frame(2, "héllo"), frame(2, "wörld ✓"), frame(2, "")]);
    await client.until(expected.length);
    expect(client.received()).toEqual(expected);
  });

  test("line: lines are strings, multi-byte characters split across chunks included", async () => {
    const counter = countingTcp();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets), null, {
      encoding: "utf8",
      packet: "line",
      transport: counter.transport,
    });
    const client = await Client.open(server.port);
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
    const server = await serve(handler, null, { packet: 2, maxPacketSize: 10, plan: ["delete"] });
    const client = await Client.open(server.port);
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
    await within(client.closed.promise, 3000, "the server to close the socket");

    // plan ["delete"]: the server keeps serving.
    const again = await Client.open(server.port);
    again.write(frame(2, "still here"));
    await again.until(12);
    expect(again.received()).toEqual(frame(2, "still here"));
    expect(server.connections().length).toBe(1);
  });

  test("under the default plan a FrameTooLargeError stops the whole server", async () => {
    const conns = new Log<Connection>();
    const packets = new Log<Uint8Array | string>();
    const server = await serve(echo(packets, conns), null, { packet: 4, maxPacketSize: 100 });
    const client = await Client.open(server.port);
    await conns.until((l) => l.length === 1);
    client.write(Buffer.from([0, 0, 0, 101]));
    const reason = await within(server.exited, 3000, "the server to stop");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
    const id = conns.items[0]!.id;
    expect(
      reports.some(
        (r) =>
          r.startsWith(`** Sockerl connector <${id}> terminating`) &&
          r.includes("FrameTooLargeError ERR_FRAME_TOO_LARGE"),
      ),
    ).toBe(true);
  });

  test("sending a frame larger than maxPacketSize stops the connection with FrameTooLargeError", async () => {
    const conns = new Log<Connection>();
    const server = await serve<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
        },
        handlePacket: (packet) => ({ send: [packet, Buffer.alloc(64)] }),
      },
      null,
      { packet: 1, maxPacketSize: 32, plan: ["delete"] },
    );
    const client = await Client.open(server.port);
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
      const server = await serve<undefined, null>(
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
      const client = await Client.open(server.port);
      client.write(Buffer.concat(Array.from({ length: 500 }, () => frame(1, "x")))); // 500 frames
      await packets.until((l) => l.length === 1);
      const stopped = server.stop();
      gate.resolve();
      await within(stopped, 3000, "the stop");
      expect(terminated.items).toEqual([1]);
    },
  );
});
