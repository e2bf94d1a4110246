/**
 * Invariant: every limit holds over real sockets, and hitting one affects only the connection that hit
 * it. `maxConnections` makes extra connections wait, accepted but unserved (no `init`, their bytes
 * unread), and serves them in arrival order as slots free. `maxPacketSize` bounds every inbound and
 * outbound frame in every framing mode, active and passive (`FrameTooLargeError`), and a passive read
 * `length` (`BadReturnError`). What the server has read but not handled stays bounded (one read plus two
 * chunks of at most 512 KiB) however fast the peer floods and however slow the handler is. What it has queued for a peer
 * that does not read stays bounded by `highWaterMark` plus one reply, even when one chunk carries
 * thousands of requests. A peer that leaves sent bytes unread longer than `sendTimeout` is dropped with
 * `SendTimeoutError`; one that opens a TLS port and never completes a handshake is dropped with
 * `HandshakeTimeoutError`. In each case the server keeps serving.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  BadReturnError,
  type Connection,
  type ExitReason,
  FrameTooLargeError,
  type Handler,
  HandshakeTimeoutError,
  type PacketFraming,
  type ReceiveMode,
  SendTimeoutError,
  type ServerOptions,
  tls,
} from "../../src/index.ts";
import { frame, packetText, pattern, RawClient, sha256 } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { closeTlsHelpers, pem, TestClient } from "../helpers/tls.ts";
import { captureSink } from "../helpers/trace.ts";
import { countingTcp } from "../helpers/transport.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

const KiB = 1024;
const MiB = 1024 * KiB;

/** One frame of `payload` in `framing` (a line gets its "\n"). */
function frameOf(framing: Exclude<PacketFraming, object>, payload: Uint8Array): Buffer {
  if (framing === "raw") return Buffer.from(payload);
  if (framing === "line") return Buffer.concat([payload, Buffer.from("\n")]);
  return frame(framing, payload);
}

// ------------------------------------------------------------------------------- maxConnections

describe("maxConnections", () => {
  test("the N+1th client connects but gets no init and its bytes are not handled until a slot frees; waiting clients are served in arrival order", async () => {
    const sink = captureSink();
    let inits = 0;
    const handled: string[] = [];
    const handler: Handler<number, undefined> = {
      init: () => {
        inits++;
        return { state: inits, send: `hello ${inits};` };
      },
      handlePacket(packet, n) {
        handled.push(`${n}:${packetText(packet)}`);
        return { send: packet };
      },
    };
    const server = await startTestServer(handler, undefined, {
      maxConnections: 2,
      acceptorDebug: ["trace"],
    });
    const accepted = () => sink.lines.filter((l) => l.includes("accepted socket")).length;
    const a = await RawClient.connect(server.port);
    const b = await RawClient.connect(server.port);
    await a.waitForText("hello 1;");
    await b.waitForText("hello 2;");
    const c = await RawClient.connect(server.port);
    c.write("from c;");
    const d = await RawClient.connect(server.port);
    d.write("from d;");
    // Both are accepted at TCP level (the server holds their sockets) …
    await waitFor(() => accepted() === 4, 2000, "four accepted sockets");
    // … and a round trip on a served connection proves the server has had every chance to serve them.
    a.write("ping a;");
    await a.waitForText("ping a;");
    expect(inits).toBe(2);
    expect(c.received).toBe(0);
    expect(d.received).toBe(0);
    expect(handled).toEqual(["1:ping a;"]);
    expect(server.connections().map(([, conn]) => conn.id).length).toBe(2);

    // A slot frees: the first waiting client (c) is served, its early bytes included; d still waits.
    a.end();
    await c.waitForText("hello 3;from c;");
    b.write("ping b;");
    await b.waitForText("ping b;");
    expect(d.received).toBe(0);
    expect(inits).toBe(3);

    // Another slot frees: d is served.
    b.end();
    await d.waitForText("hello 4;from d;");
    expect(handled).toEqual(["1:ping a;", "3:from c;", "2:ping b;", "4:from d;"]);
    expect(server.connections().length).toBe(2);
  });

  test("a waiting client that gives up before a slot frees never gets init and does not take a slot", async () => {
    const sink = captureSink();
    let inits = 0;
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => {
          inits++;
          return { send: `hello ${inits};` };
        },
        handlePacket: (packet) => ({ send: packet }),
      },
      undefined,
      { maxConnections: 1, acceptorDebug: ["trace"] },
    );
    const a = await RawClient.connect(server.port);
    await a.waitForText("hello 1;");
    const quitter = await RawClient.connect(server.port);
    const patient = await RawClient.connect(server.port);
    await waitFor(
      () => sink.lines.filter((l) => l.includes("accepted socket")).length === 3,
      2000,
      "accepts",
    );
    quitter.terminate();
    a.end();
    await patient.waitForText("hello 2;");
    patient.write("echo;");
    await patient.waitForText("echo;");
    expect(inits).toBe(2);
    expect(server.connections().length).toBe(1);
  });
});

// -------------------------------------------------------------------------------- maxPacketSize

const MAX = 100;
const FRAMINGS: Array<1 | 2 | 4 | "line"> = [1, 2, 4, "line"];
const MODES: ReceiveMode[] = ["active", "passive"];

describe.each(MODES)("maxPacketSize, %s mode", (mode) => {
  /** An echo server in `framing`; records exits. */
  async function framedServer(framing: PacketFraming, extra: ServerOptions = {}) {
    const conns: Connection[] = [];
    const terminated: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
        },
        handlePacket(packet) {
          const body = Buffer.from(packet as Uint8Array);
          if (body.toString().startsWith("big")) return { send: Buffer.alloc(MAX + 1, 0x61) };
          // Line mode hands over the "\n"; the echo sends the line as it came.
          return { send: body };
        },
        terminate(reason) {
          terminated.push(reason);
        },
      },
      undefined,
      { packet: framing, maxPacketSize: MAX, mode, plan: ["delete"], ...extra },
    );
    return { server, conns, terminated };
  }

  test.each(FRAMINGS)(
    "packet %p: a frame of exactly maxPacketSize split over two writes arrives whole",
    async (framing) => {
      const { server } = await framedServer(framing);
      const payload = Buffer.alloc(framing === "line" ? MAX - 1 : MAX, 0x41);
      const bytes = frameOf(framing, payload);
      const client = await RawClient.connect(server.port);
      client.write(bytes.subarray(0, 3));
      client.write(bytes.subarray(3));
      await client.waitForBytes(bytes.length);
      expect(client.bytes()).toEqual(bytes);
    },
  );

  test.each(FRAMINGS)(
    "packet %p: one byte more stops that connection with FrameTooLargeError before the frame is buffered; the server keeps serving",
    async (framing) => {
      const { server, conns, terminated } = await framedServer(framing);
      const client = await RawClient.connect(server.port);
      await waitFor(() => conns.length === 1, 2000, "init");
      // Numeric framings: the header alone is enough; line: MAX + 1 bytes without a "\n".
      const oversize = framing === "line" ? Buffer.alloc(MAX + 1, 0x42) : frameOf(framing, Buffer.alloc(0));
      if (framing !== "line") oversize.writeUIntBE(MAX + 1, 0, framing);
      client.write(oversize);
      const reason = await within(conns[0]!.exited, 2000, "the oversize frame to end the connection");
      expect(reason).toBeInstanceOf(FrameTooLargeError);
      expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
      expect((reason as FrameTooLargeError).maxPacketSize).toBe(MAX);
      expect((reason as FrameTooLargeError).size).toBeGreaterThan(MAX);
      expect(terminated).toEqual([reason]);
      await client.closedPromise;

      const other = await RawClient.connect(server.port);
      const ok = frameOf(framing, Buffer.from("still serving"));
      other.write(ok);
      await other.waitForBytes(ok.length);
      expect(other.bytes()).toEqual(ok);
    },
  );

  test.each(FRAMINGS)(
    "packet %p: sending a frame larger than maxPacketSize stops the connection with FrameTooLargeError",
    async (framing) => {
      const { server, conns } = await framedServer(framing);
      const client = await RawClient.connect(server.port);
      client.write(frameOf(framing, Buffer.from("big")));
      await waitFor(() => conns.length === 1, 2000, "init");
      const reason = await within(conns[0]!.exited, 2000, "the oversize send to end the connection");
      expect(reason).toBeInstanceOf(FrameTooLargeError);
      expect((reason as FrameTooLargeError).size).toBe(MAX + 1);
      await client.closedPromise;
      expect(client.received).toBe(0);
    },
  );
});

describe("maxPacketSize, passive raw reads", () => {
  test("a read `length` of exactly maxPacketSize is served; a larger one is a BadReturnError", async () => {
    const conns: Connection[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
          return { mode: "passive", length: MAX };
        },
        handlePacket: (packet) => ({ send: `${packet.length};`, length: MAX + 1 }),
      },
      undefined,
      { maxPacketSize: MAX, plan: ["delete"] },
    );
    const client = await RawClient.connect(server.port);
    client.write(Buffer.alloc(MAX + 50));
    await client.waitForText(`${MAX};`);
    const reason = await within(conns[0]!.exited, 2000, "the bad length to end the connection");
    expect(reason).toBeInstanceOf(BadReturnError);
    expect((reason as BadReturnError).code).toBe("ERR_BAD_RETURN");
    expect((reason as BadReturnError).callback).toBe("handlePacket");
  });
});

// ---------------------------------------------------------------------- inbound buffer is bounded

describe("what the server has read but not handled stays bounded", () => {
  const heldFigures: number[] = [];
  afterAll(() => {
    if (process.env.FULL) console.log(`read-but-unhandled maxima (bytes): ${heldFigures.join(", ")}`);
  });
  const FLOOD = 32 * MiB;
  const CHUNK = 512 * KiB; // Bun's largest read: its receive buffer is 512 KiB
  const cases: Array<{
    name: string;
    options: ServerOptions;
    read: number;
    frame: (bytes: Uint8Array) => Uint8Array;
    /** Framing bytes read per packet. */
    header?: number;
  }> = [
    { name: "passive, length 64 KiB", options: { mode: "passive" }, read: 64 * KiB, frame: (b) => b },
    { name: "passive, length 0 (what has arrived)", options: { mode: "passive" }, read: 0, frame: (b) => b },
    { name: "active raw, async handler", options: {}, read: 0, frame: (b) => b },
    {
      name: "passive, packet 4, 8 KiB frames",
      options: { mode: "passive", packet: 4 },
      read: 0,
      frame: (b) => frameOf(4, b),
      header: 4,
    },
  ];

  test.each(cases)(
    "$name: a client floods 32 MiB at a slow handler; read-but-unhandled bytes stay under one read + two chunks, nothing is lost",
    async ({ options, read, frame, header = 0 }) => {
      const counter = countingTcp("counting-tcp");
      let handled = 0;
      let payloadHandled = 0;
      let maxHeld = 0;
      const hasher = new Bun.CryptoHasher("sha256");
      const done = Promise.withResolvers<void>();
      const server = await startTestServer<undefined, undefined>(
        {
          init: () => (read > 0 ? { length: read } : undefined),
          async handlePacket(packet) {
            const bytes = packet as Uint8Array;
            hasher.update(bytes);
            // Read from the kernel but not handled yet, this packet included.
            maxHeld = Math.max(maxHeld, counter.read() - handled);
            handled += bytes.length + header;
            payloadHandled += bytes.length;
            if (payloadHandled >= FLOOD) done.resolve();
            // The handler's own slowness (under test), not a synchronisation.
            if (payloadHandled % (4 * 64 * KiB) < bytes.length) await new Promise((r) => setTimeout(r, 1));
            return undefined;
          },
        },
        undefined,
        { transport: counter.transport, ...options },
      );
      const payload = pattern(FLOOD, 11);
      const client = await RawClient.connect(server.port, { keep: false });
      // Flood as fast as the kernel takes it (never more than 1 MiB pending in the client).
      const piece = 8 * KiB;
      let at = 0;
      while (at < FLOOD) {
        while (at < FLOOD && client.pendingBytes < MiB) {
          client.write(frame(payload.subarray(at, at + piece)));
          at += piece;
        }
        await client.until(() => client.pendingBytes < MiB || client.closed, 5000, "room to write");
      }
      await within(done.promise, 15_000, "the whole flood to be handled");
      // The connection pauses the socket when a chunk arrives while a callback is pending, so the
      // bound is one read (or one partial frame) plus the chunk being handled plus that chunk.
      const bound = Math.max(read, piece + 4) + 2 * CHUNK;
      heldFigures.push(maxHeld);
      expect(maxHeld).toBeLessThanOrEqual(bound);
      expect(hasher.digest("hex")).toBe(sha256(payload));
    },
    20_000,
  );
});

// ---------------------------------------------------------------------------- highWaterMark

describe("highWaterMark bounds what is queued for a peer that does not read", () => {
  test("5,000 small requests in one chunk, each answered with 64 KiB: the queue stays under highWaterMark + one reply; all answers arrive once the peer reads", async () => {
    const HWM = 1 * MiB;
    const REPLY = 64 * KiB;
    const COUNT = 5000;
    const counter = countingTcp("counting-tcp");
    const started = Promise.withResolvers<Connection>();
    let produced = 0;
    let maxQueued = 0;
    const reply = pattern(REPLY, 5);
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void started.resolve(meta.connection),
        handlePacket() {
          produced += REPLY + 4;
          maxQueued = Math.max(maxQueued, produced - counter.written());
          return { send: reply };
        },
        handleCall: () => ({ reply: "served" }),
      },
      undefined,
      { packet: 4, highWaterMark: HWM, transport: counter.transport },
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false });
    await within(started.promise, 2000, "init");
    const requests = Buffer.concat(Array.from({ length: COUNT }, () => frameOf(4, Buffer.from("x"))));
    client.write(requests);
    await client.waitWritten();
    // The server answers until its queue passes highWaterMark, then handles nothing more.
    await waitFor(() => produced > HWM, 2000, "the queue to pass highWaterMark");
    const handledWhenFull = produced;
    // Calls are still served meanwhile; the buffered requests are not.
    const conn = await started.promise;
    expect(await conn.call("still there?")).toBe("served");
    expect(produced).toBe(handledWhenFull);
    expect(maxQueued).toBeLessThanOrEqual(HWM + REPLY + 4 + 4 * MiB); // + what the kernel buffers took

    client.resume();
    await client.waitForBytes(COUNT * (REPLY + 4), 20_000);
    expect(produced).toBe(COUNT * (REPLY + 4));
    expect(maxQueued - (counter.written() - client.received)).toBeLessThanOrEqual(HWM + REPLY + 4);
  }, 30_000);
});

// ------------------------------------------------------------------------------ sendTimeout

describe("sendTimeout", () => {
  test("a peer that never reads is dropped with SendTimeoutError; terminate gets it; the server keeps serving", async () => {
    const started = Promise.withResolvers<Connection>();
    const terminated: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => {
          started.resolve(meta.connection);
          return { send: pattern(16 * MiB, 2) };
        },
        handlePacket: (packet) => ({ send: packet }),
        terminate(reason) {
          terminated.push(reason);
        },
      },
      undefined,
      { sendTimeout: 200, plan: ["delete"] },
    );
    const client = await RawClient.connect(server.port, { paused: true, keep: false });
    const conn = await within(started.promise, 2000, "init");
    const t0 = performance.now();
    const reason = await within(conn.exited, 3000, "the send timeout");
    const waited = performance.now() - t0;
    expect(reason).toBeInstanceOf(SendTimeoutError);
    expect((reason as SendTimeoutError).code).toBe("ERR_SEND_TIMEOUT");
    expect((reason as SendTimeoutError).queuedBytes).toBeGreaterThan(0);
    expect(waited).toBeGreaterThanOrEqual(150);
    expect(terminated).toEqual([reason]);
    // Dropped means closed now, not after closeTimeout (5 s): the peer is not reading.
    client.resume();
    await within(client.closedPromise, 1000, "the socket to be closed");
    expect(client.received).toBeLessThan(16 * MiB);

    const other = await RawClient.connect(server.port);
    await other.waitForBytes(16 * MiB, 5000);
  });

  test("a peer that reads slowly but steadily is not dropped: every byte arrives", async () => {
    const BIG = pattern(8 * MiB, 9);
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => ({ send: BIG, close: true }),
        handlePacket: () => undefined,
      },
      undefined,
      { sendTimeout: 150 },
    );
    const client = await RawClient.connect(server.port, { keep: false, hash: true });
    // Read in bursts: a pause of ~20 ms after every chunk keeps the server's queue non-empty for far
    // longer than sendTimeout in total, but never stalls it for a whole sendTimeout.
    const socket = client.socket;
    let reading = true;
    const slow = setInterval(() => {
      reading = !reading;
      if (reading) socket.resume();
      else socket.pause();
    }, 20);
    try {
      await client.waitForBytes(BIG.length, 10_000);
    } finally {
      clearInterval(slow);
      socket.resume();
    }
    await client.waitForEnd();
    expect(client.digest()).toBe(sha256(BIG));
  });
});

// --------------------------------------------------------------------------- handshakeTimeout

describe("handshakeTimeout", () => {
  afterEach(closeTlsHelpers);

  test("TLS: a TCP client that connects and sends nothing is dropped with HandshakeTimeoutError; the server keeps serving (default plan)", async () => {
    captureSink();
    const server = await startTestServer<undefined, undefined>(
      { init: () => ({ send: "hi;" }), handlePacket: (packet) => ({ send: packet }) },
      undefined,
      { transport: tls({ cert: pem.serverCert, key: pem.serverKey }), handshakeTimeout: 200 },
    );
    const t0 = performance.now();
    const silent = await RawClient.connect(server.port);
    // The connection is listed while its handshake runs (init has not run).
    await waitFor(() => server.connections().length === 1, 2000, "the handshaking connection");
    const [, conn] = server.connections()[0]!;
    const reason = await within(conn.exited, 2000, "the handshake timeout");
    expect(reason).toBeInstanceOf(HandshakeTimeoutError);
    expect((reason as HandshakeTimeoutError).code).toBe("ERR_HANDSHAKE_TIMEOUT");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    await within(silent.closedPromise, 1000, "the silent client to be dropped");
    expect(silent.received).toBe(0);

    const client = await TestClient.connect(server.port, { ca: pem.ca, serverName: "localhost" });
    await client.waitFor("hi;");
    client.write("ping;");
    await client.waitFor("hi;ping;");
    expect(server.connections().length).toBe(1);
  });
});
