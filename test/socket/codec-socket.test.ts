/**
 * Invariant: over real sockets, `packet: { frameLength, encode? }` delivers each complete frame the
 * codec announces as one `handlePacket`, in active and in passive mode and on connectors, whatever
 * the TCP chunking; `encode` is applied to every send (actions, `meta.send`, `sendSync`,
 * `sendAsync`); a `frameLength` that throws ends only that connection with `FramingError` (a peer
 * fault) and the server serves on; a frame announced over `maxPacketSize` ends it with
 * `FrameTooLargeError`. `packet: { delimiter }` delivers frames with their delimiter, and sends are
 * written as they are. Raw Bun sockets play the peer.
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { resp } from "../../examples/resp.ts";
import {
  type Codec,
  type Connection,
  type ExitReason,
  FrameTooLargeError,
  FramingError,
  type Handler,
  isPeerFault,
  startConnector,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { Log } from "../helpers/wait.ts";

beforeEach(() => {
  captureSink(); // termination reports of the connections the tests end on purpose
});

afterEach(cleanup);

/** A 2-byte big-endian length counting its own header; `encode` prefixes what the handler sends. */
const selfCounting: Codec = {
  frameLength(b) {
    if (b.length < 2) return -2;
    const n = (b[0]! << 8) | b[1]!;
    if (n < 2) throw new RangeError(`length ${n} is shorter than its header`);
    return b.length >= n ? n : -n;
  },
  encode(packet) {
    const body = typeof packet === "string" ? Buffer.from(packet) : Buffer.from(packet as Uint8Array);
    const out = Buffer.allocUnsafe(body.length + 2);
    out.writeUInt16BE(body.length + 2, 0);
    body.copy(out, 2);
    return out;
  },
};

const frameOf = (body: string): Buffer => selfCounting.encode!(body) as Buffer;

/** Cuts a stream of self-counting frames into bodies (the client's own decoder). */
function bodies(stream: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (stream.length - at >= 2) {
    const n = stream.readUInt16BE(at);
    if (stream.length - at < n) break;
    out.push(stream.subarray(at + 2, at + n).toString());
    at += n;
  }
  return out;
}

/** Echoes each frame's body (re-framed by `encode`), recording frames, connections and exit reasons. */
function echo(
  frames: Log<string>,
  conns?: Log<Connection>,
  exits?: Log<ExitReason>,
): Handler<undefined, null> {
  return {
    init(_i, meta) {
      conns?.push(meta.connection);
    },
    handlePacket(packet) {
      const frame = Buffer.from(packet as Uint8Array);
      frames.push(frame.subarray(2).toString());
      return { send: frame.subarray(2) };
    },
    handleCall(request, _from, _s, meta) {
      if (request === "meta.send") meta.send("via meta.send");
      return { reply: "ok" };
    },
    terminate(reason) {
      exits?.push(reason);
    },
  };
}

describe("a server with a codec", () => {
  for (const mode of ["active", "passive"] as const) {
    test(`${mode}: each frame is one packet, however the bytes are cut; replies are encoded`, async () => {
      const frames = new Log<string>();
      const server = await startTestServer(echo(frames), null, { packet: selfCounting, mode });
      const client = await RawClient.connect(server.port);
      const sent = ["", "one", "two", "x".repeat(3000), "three"];
      const stream = Buffer.concat(sent.map(frameOf));
      // Odd cuts: inside a header, inside a body, several frames in one write.
      for (const [a, b] of [
        [0, 1],
        [1, 4],
        [4, 9],
        [9, 1500],
        [1500, stream.length],
      ] as const) {
        client.write(stream.subarray(a, b));
        await client.waitWritten();
      }
      await client.until(() => bodies(client.bytes()).length === sent.length, 3000, "every echo");
      expect(frames.items).toEqual(sent);
      expect(bodies(client.bytes())).toEqual(sent);
    });
  }

  test("encode applies to meta.send, sendSync and sendAsync too", async () => {
    const frames = new Log<string>();
    const conns = new Log<Connection>();
    const server = await startTestServer(echo(frames, conns), null, { packet: selfCounting });
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    await conn.sendSync("via sendSync");
    conn.sendAsync("via sendAsync");
    await conn.call("meta.send");
    await client.until(() => bodies(client.bytes()).length === 3, 2000, "three framed packets");
    expect(bodies(client.bytes())).toEqual(["via sendSync", "via sendAsync", "via meta.send"]);
  });

  test("a frameLength that throws ends that connection with FramingError; the server serves on", async () => {
    const frames = new Log<string>();
    const exits = new Log<ExitReason>();
    const server = await startTestServer(echo(frames, undefined, exits), null, { packet: selfCounting });
    const bad = await RawClient.connect(server.port);
    bad.write(Buffer.concat([frameOf("fine"), Buffer.from([0, 1, 0x41])])); // length 1: the codec throws
    const reason = await exits.nth(0, 2000, "the bad connection to end");
    expect(reason).toBeInstanceOf(FramingError);
    expect((reason as FramingError).code).toBe("ERR_FRAMING");
    expect((reason as FramingError).cause).toBeInstanceOf(RangeError);
    expect(isPeerFault(reason)).toBe(true);
    await bad.waitForEnd();
    expect(bodies(bad.bytes())).toEqual(["fine"]); // the good frame before it was served
    const good = await RawClient.connect(server.port);
    good.write(frameOf("still serving"));
    await good.until(() => bodies(good.bytes()).length === 1, 2000, "the echo");
    expect(bodies(good.bytes())).toEqual(["still serving"]);
  });

  test("a frame announced over maxPacketSize ends the connection before it is buffered", async () => {
    const exits = new Log<ExitReason>();
    const server = await startTestServer(echo(new Log(), undefined, exits), null, {
      packet: selfCounting,
      maxPacketSize: 100,
    });
    const client = await RawClient.connect(server.port);
    client.write(Buffer.from([0x7f, 0xff])); // announces 32767 bytes, sends none of them
    const reason = await exits.nth(0, 2000, "the connection to end");
    expect(reason).toBeInstanceOf(FrameTooLargeError);
    expect((reason as FrameTooLargeError).size).toBe(32767);
  });
});

describe("a server with { delimiter }", () => {
  test("frames keep their delimiter; sends are written as they are", async () => {
    const got = new Log<string>();
    const server = await startTestServer(
      {
        init: () => undefined,
        handlePacket(packet) {
          got.push(packet as string);
          return { send: `[${(packet as string).slice(0, -1)}]` }; // no "\0" added by the library
        },
      },
      null,
      { packet: { delimiter: "\0" }, encoding: "utf8" },
    );
    const client = await RawClient.connect(server.port);
    client.write("CONNECT\naccept-version:1.2\n\n\0SEN");
    await client.waitWritten();
    client.write("D body\0");
    await client.waitForText("[SEND body]");
    expect(got.items).toEqual(["CONNECT\naccept-version:1.2\n\n\0", "SEND body\0"]);
    expect(client.text()).toBe("[CONNECT\naccept-version:1.2\n\n][SEND body]");
  });
});

describe("a connector with a codec", () => {
  test("RESP replies cut anywhere arrive whole; calls are answered from handlePacket", async () => {
    // A fake Redis that answers every command with the same reply, written in 3-byte pieces.
    const reply = "*3\r\n$5\r\nhello\r\n:42\r\n$-1\r\n";
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        async data(socket: Socket) {
          for (let i = 0; i < reply.length; i += 3) {
            socket.write(reply.slice(i, i + 3));
            await Bun.sleep(1);
          }
        },
      },
    });
    defer(() => listener.stop(true));
    const packets = new Log<string>();
    const conn = await startConnector<{ waiting: Array<{ reply(v: unknown): boolean }> }, null>(
      {
        init: () => ({ state: { waiting: [] } }),
        handleCall(request, from, state) {
          state.waiting.push(from);
          return { send: request as string };
        },
        handlePacket(packet, state) {
          const text = Buffer.from(packet as Uint8Array).toString();
          packets.push(text);
          state.waiting.shift()?.reply(text);
          return undefined;
        },
      },
      null,
      "127.0.0.1",
      listener.port,
      { packet: resp },
    );
    if (conn === undefined) throw new Error("init returned ignore");
    trackStop(conn);
    expect(await conn.call("*1\r\n$4\r\nPING\r\n")).toBe(reply);
    expect(await conn.call("*1\r\n$4\r\nPING\r\n")).toBe(reply);
    expect(packets.items).toEqual([reply, reply]);
  });
});
