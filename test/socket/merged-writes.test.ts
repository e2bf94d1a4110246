/**
 * Invariant: the replies to pipelined frames, merged into one write (auto-cork; over TCP through one
 * shared buffer the kernel copies from), reach the peer intact and in order when the kernel takes only
 * part of a write: the rest is copied into the connection's queue before the buffer serves the next
 * merge. A client that stops reading makes every merged write short; when it reads again, every reply
 * must be the frame it answers, byte for byte. The same holds for `{ delimiter }` framing, and for
 * many connections whose merges take turns with the one buffer: a peer that stops reading holds the
 * rest of a short merged write in its queue while another peer's merges reuse the buffer; over TLS too.
 */

import { afterEach, expect, test } from "bun:test";
import { type Handler, tls } from "../../src/index.ts";
import { frame4, RawClient, unframe4 } from "../helpers/client.ts";
import { cleanup, defer, startTestServer } from "../helpers/server.ts";
import { pem } from "../helpers/tls.ts";
import { within } from "../helpers/wait.ts";

afterEach(cleanup);

/** Payload `i` of a run: its index, then bytes that differ per index and position. */
function payload(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32BE(i, 0);
  for (let k = 4; k < size; k++) b[k] = (i * 31 + k * 7) & 0xff;
  return b;
}

const echo: Handler<undefined> = { init: () => undefined, handlePacket: (packet) => ({ send: packet }) };

/** Writes `count` frames, `perWrite` to one write (one chunk, so one merge of as many replies). */
function pipeline(client: RawClient, count: number, perWrite: number, encode: (i: number) => Buffer): void {
  for (let i = 0; i < count; i += perWrite) {
    const parts: Buffer[] = [];
    for (let j = i; j < Math.min(count, i + perWrite); j++) parts.push(encode(j));
    client.write(Buffer.concat(parts));
  }
}

test("packet: 4 — replies merged into short writes arrive whole and in order once the peer reads", async () => {
  const server = await startTestServer(echo, undefined, { packet: 4 });
  const client = await RawClient.connect(server.port, { paused: true });
  const count = 3000;
  const size = 1000;
  // ~3 MB of replies to a client that does not read: the kernel's buffers fill, writes come up short.
  pipeline(client, count, 16, (i) => frame4(payload(i, size)));
  await Bun.sleep(50);
  client.resume();
  await client.waitForBytes(count * (4 + size), 10_000);
  const frames = unframe4(client.bytes());
  expect(frames.length).toBe(count);
  for (let i = 0; i < count; i++) {
    if (!frames[i]!.equals(payload(i, size))) throw new Error(`reply ${i} differs from its frame`);
  }
}, 15_000);

test("{ delimiter } — merged line replies survive short writes", async () => {
  const server = await startTestServer(echo, undefined, { packet: { delimiter: "\r\n" } });
  const client = await RawClient.connect(server.port, { paused: true });
  const count = 2000;
  const line = (i: number): Buffer => Buffer.from(`${i}:${"x".repeat(900 + (i % 50))}\r\n`);
  pipeline(client, count, 16, line);
  await Bun.sleep(50);
  client.resume();
  const expected = Buffer.concat(Array.from({ length: count }, (_, i) => line(i)));
  await client.waitForBytes(expected.length, 10_000);
  expect(client.bytes().equals(expected)).toBe(true);
}, 15_000);

test("many connections take turns with the merge buffer: each peer gets its own replies", async () => {
  const server = await startTestServer(echo, undefined, { packet: 4 });
  const clients = await Promise.all(
    Array.from({ length: 8 }, () => RawClient.connect(server.port, { paused: true })),
  );
  const count = 600;
  const size = 700;
  clients.forEach((client, c) => {
    pipeline(client, count, 12, (i) => frame4(payload(c * 10_000 + i, size)));
  });
  await Bun.sleep(50);
  for (const client of clients) client.resume();
  await Promise.all(clients.map((client) => client.waitForBytes(count * (4 + size), 10_000)));
  clients.forEach((client, c) => {
    const frames = unframe4(client.bytes());
    expect(frames.length).toBe(count);
    for (let i = 0; i < count; i++) {
      if (!frames[i]!.equals(payload(c * 10_000 + i, size)))
        throw new Error(`client ${c}: reply ${i} differs`);
    }
  });
}, 15_000);

test.each([
  ["two 20 KB frames (one merged write)", 2],
  ["one 20 KB frame (its header and payload in one write)", 1],
] as const)(
  "the rest of a short write from the shared buffer stays the connection's own while another connection reuses it: %s",
  async (_, parts) => {
    const part = (i: number, k: number): Buffer => payload(i * parts + k, 20_000);
    const handler: Handler<undefined> = {
      init: () => undefined,
      handlePacket: (packet) => {
        const i = Buffer.from(packet as Uint8Array).readUInt32BE(0);
        return { send: parts === 2 ? [part(i, 0), part(i, 1)] : part(i, 0) };
      },
    };
    const server = await startTestServer(handler, undefined, { packet: 4 });
    const stalled = await RawClient.connect(server.port, { paused: true });
    const reader = await RawClient.connect(server.port);
    const request = (i: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i, 0);
      return frame4(b);
    };
    const count = 400 / parts; // 8 MB to a peer that does not read: its writes come up short, the rest waits
    for (let i = 0; i < count; i++) {
      stalled.write(request(i)); // one request per chunk: one write each
      reader.write(request(i)); // the reading peer's writes go through the shared buffer meanwhile
      await Bun.sleep(0);
    }
    const total = count * parts * 20_004;
    await reader.waitForBytes(total, 10_000);
    stalled.resume();
    await stalled.waitForBytes(total, 10_000);
    for (const client of [reader, stalled]) {
      const frames = unframe4(client.bytes());
      expect(frames.length).toBe(count * parts);
      for (let i = 0; i < count * parts; i++) {
        if (!frames[i]!.equals(payload(i, 20_000))) throw new Error(`frame ${i} differs`);
      }
    }
  },
  20_000,
);

/** A Bun TLS client that collects what it reads; `paused` leaves it not reading until `resume()`. */
async function tlsClient(port: number, paused: boolean) {
  const chunks: Buffer[] = [];
  let length = 0;
  const { promise: handshake, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    tls: { ca: pem.ca, serverName: "localhost" },
    socket: {
      handshake: () => resolve(),
      data(_s, chunk) {
        chunks.push(Buffer.from(chunk));
        length += chunk.length;
      },
    },
  });
  defer(() => socket.terminate());
  // Bun's TLS connect resolves before the handshake, and what is written before it may be lost.
  await within(handshake, 5000, "the TLS handshake");
  if (paused) socket.pause();
  return { socket, length: () => length, bytes: () => Buffer.concat(chunks) };
}

test("over TLS: the rest of a short write stays the stalled connection's own while another reuses the buffer", async () => {
  const part = (i: number, k: number): Buffer => payload(i * 2 + k, 20_000);
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (packet) => {
      const i = Buffer.from(packet as Uint8Array).readUInt32BE(0);
      return { send: [part(i, 0), part(i, 1)] };
    },
  };
  const server = await startTestServer(handler, undefined, {
    packet: 4,
    transport: tls({ cert: pem.serverCert, key: pem.serverKey }),
  });
  const stalled = await tlsClient(server.port, true);
  const reader = await tlsClient(server.port, false);
  const count = 200;
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(i, 0);
    stalled.socket.write(frame4(b));
    reader.socket.write(frame4(b));
    await Bun.sleep(0);
  }
  const total = count * 2 * 20_004;
  const arrived = async (c: { length: () => number }): Promise<void> => {
    while (c.length() < total) await Bun.sleep(5);
  };
  await within(arrived(reader), 10_000);
  stalled.socket.resume();
  await within(arrived(stalled), 10_000);
  for (const client of [reader, stalled]) {
    const frames = unframe4(client.bytes());
    expect(frames.length).toBe(count * 2);
    for (let i = 0; i < count * 2; i++) {
      if (!frames[i]!.equals(payload(i, 20_000))) throw new Error(`frame ${i} differs`);
    }
  }
}, 20_000);

test.each([
  ["packet: 2", 2],
  ["{ delimiter }", 0],
] as const)(
  "%s — text and bytes corked together are encoded in place, byte for byte (multi-byte characters, lone surrogates)",
  async (_, hs) => {
    const texts = ["héllo €", "😀 ok", "lone \ud800 surrogate", "plain"];
    const reply = (i: number): (string | Buffer)[] => [
      `${texts[i % texts.length]} #${i}`,
      Buffer.from(`<bytes ${i}>`),
      `${i}✓`,
    ];
    const handler: Handler<undefined> = {
      init: () => undefined,
      handlePacket: (packet) => {
        const i = Number(
          Buffer.from(packet as Uint8Array)
            .toString()
            .trim(),
        );
        return { send: hs === 0 ? reply(i).map((r) => (typeof r === "string" ? `${r}\r\n` : r)) : reply(i) };
      },
    };
    const server = await startTestServer(handler, undefined, {
      packet: hs === 0 ? { delimiter: "\r\n" } : 2,
    });
    const client = await RawClient.connect(server.port);
    const count = 64;
    const request = (i: number): Buffer => {
      const body = Buffer.from(`${i}`);
      if (hs === 0) return Buffer.concat([body, Buffer.from("\r\n")]);
      const header = Buffer.alloc(2);
      header.writeUInt16BE(body.length, 0);
      return Buffer.concat([header, body]);
    };
    // all requests in one write: one chunk, every reply corked into one merged write
    client.write(Buffer.concat(Array.from({ length: count }, (_, i) => request(i))));
    const expected = Buffer.concat(
      Array.from({ length: count }, (_, i) =>
        Buffer.concat(
          reply(i).map((r) => {
            const bytes = typeof r === "string" ? Buffer.from(hs === 0 ? `${r}\r\n` : r) : r;
            if (hs === 0) return bytes;
            const header = Buffer.alloc(2);
            header.writeUInt16BE(bytes.length, 0);
            return Buffer.concat([header, bytes]);
          }),
        ),
      ),
    );
    await client.waitForBytes(expected.length, 5000);
    expect(client.bytes().equals(expected)).toBe(true);
  },
);

// ---------------------------------------------------------------- the stage's bounds
// Replies are copied straight into the stage buffer (behind a length prefix from a chunk's first reply,
// otherwise from its second): each bound the general path checks must still hold there.

test.each([
  ["fourth", ["a", "b", "c", "!", "d"]],
  ["first", ["!", "a"]],
] as const)(
  "packet: 1 — a reply too big for its 1-byte prefix, %s in a chunk, ends the connection with FrameTooLargeError",
  async (_, requests) => {
    const { promise: ended, resolve } = Promise.withResolvers<unknown>();
    const handler: Handler<undefined> = {
      init: () => undefined,
      handlePacket: (packet) => ({ send: (packet as Uint8Array)[0] === 0x21 ? Buffer.alloc(300) : packet }),
      terminate: (reason) => resolve(reason),
    };
    const server = await startTestServer(handler, undefined, { packet: 1 });
    const client = await RawClient.connect(server.port);
    const frame1 = (s: string): Buffer => Buffer.concat([Buffer.of(s.length), Buffer.from(s)]);
    client.write(Buffer.concat(requests.map(frame1)));
    const reason = await within(ended, 5000, "the connection's end");
    expect((reason as Error).name).toBe("FrameTooLargeError");
    expect((reason as { size: number }).size).toBe(300);
  },
);

test("a highWaterMark smaller than a chunk's replies: every reply still arrives, in order", async () => {
  const server = await startTestServer(echo, undefined, { packet: 4, highWaterMark: 300 });
  const client = await RawClient.connect(server.port);
  const count = 64;
  pipeline(client, count, 16, (i) => frame4(payload(i, 64)));
  await client.waitForBytes(count * 68, 5000);
  const frames = unframe4(client.bytes());
  expect(frames.length).toBe(count);
  for (let i = 0; i < count; i++) expect(frames[i]!.equals(payload(i, 64))).toBe(true);
});

test("text replies with multi-byte characters, many per chunk: the prefix counts UTF-8 bytes", async () => {
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (packet) => ({ send: `é${Buffer.from(packet as Uint8Array).toString()}→` }),
  };
  const server = await startTestServer(handler, undefined, { packet: 2 });
  const client = await RawClient.connect(server.port);
  const frame2 = (s: string): Buffer => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.of(b.length >> 8, b.length & 0xff), b]);
  };
  const words = Array.from({ length: 12 }, (_, i) => `w${i}`);
  client.write(Buffer.concat(words.map(frame2)));
  const expected = Buffer.concat(words.map((w) => frame2(`é${w}→`)));
  await client.waitForBytes(expected.length, 5000);
  expect(client.bytes().equals(expected)).toBe(true);
});

test("text replies whose UTF-8 bytes pass the stage's size are never cut (the bound counts bytes, not characters)", async () => {
  const reply = (i: number): string => `${i}:${"€".repeat(5000)}`; // ~15 KB of UTF-8 for 5,000 characters
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: (packet) => ({ send: reply(Buffer.from(packet as Uint8Array).readUInt32BE(0)) }),
  };
  const server = await startTestServer(handler, undefined, { packet: 4 });
  const client = await RawClient.connect(server.port);
  const count = 12; // ~180 KB of replies to one chunk: more than the stage holds
  pipeline(client, count, count, (i) => frame4(payload(i, 4)));
  const expected = Array.from({ length: count }, (_, i) => Buffer.from(reply(i)));
  await client.waitForBytes(
    expected.reduce((n, b) => n + 4 + b.length, 0),
    5000,
  );
  const frames = unframe4(client.bytes());
  expect(frames.length).toBe(count);
  for (let i = 0; i < count; i++) expect(frames[i]!.equals(expected[i]!)).toBe(true);
});
