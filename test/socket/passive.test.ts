/**
 * Invariant: in passive mode a connection hands `handlePacket` exactly `length` bytes per call
 * (`length: 0` = whatever has arrived), in stream order, never losing or duplicating a byte, whatever
 * the TCP chunking and however often the mode changes between active and passive at run time. While
 * it waits for data it still serves calls, casts, `timeout` and `srtimeout` (nothing blocks, unlike
 * SockErl), and it keeps serving them while a backlog of buffered bytes is being consumed (one
 * mailbox event between reads, as SockErl's loop does). A slow (async) handler is real flow control:
 * unread bytes stay in the kernel, the peer's writes stall, and the bytes the server has read but not
 * handled stay bounded. A peer that closes or resets while the connection waits, or while a callback
 * is pending, is noticed: `handleDisconnect` runs and the connection ends with "normal".
 *
 * Everything runs on real loopback sockets; a counting wrapper around `tcp()` (a user-level custom
 * transport) tells when the server has read bytes from the kernel.
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  BadReturnError,
  type Connection,
  type ExitReason,
  type Handler,
  type Server,
  type ServerOptions,
} from "../../src/index.ts";
import { packetText, RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { countingTcp } from "../helpers/transport.ts";
import { Log, within } from "../helpers/wait.ts";

// ------------------------------------------------------------------------------------------ helpers

// Trace lines and termination reports are captured instead of going to stderr.
beforeEach(() => {
  captureSink();
});

afterEach(cleanup);

/** Starts a server in passive mode (unless `options` say otherwise), tracked for cleanup. */
function serve<S, I>(handler: Handler<S, I>, init: I, options: ServerOptions = {}): Promise<Server<S, I>> {
  return startTestServer(handler, init, { mode: "passive", ...options });
}

// ------------------------------------------------------------------------ the README's server

/** SockErl README's "Blocking server (passive)": reverse echo with a buffer in the state. */
function reverseEcho(events: Log<string>, conns: Log<Connection>): Handler<Buffer, null> {
  return {
    init(_init, meta) {
      conns.push(meta.connection);
      return { state: Buffer.alloc(0), timeout: 20, srtimeout: 20, length: 1 };
    },
    handlePacket(pkt, buff) {
      const bytes = Buffer.from(pkt as Uint8Array);
      events.push(`packet:${bytes.toString()}`);
      return { send: Buffer.from(bytes).reverse(), state: Buffer.concat([buff, bytes]) };
    },
    handleCall(request, _from, buff, meta) {
      if (request === "print_buffer") return { reply: buff.toString() };
      if (request === "meta") return { reply: { length: meta.length, mode: meta.mode } };
      return undefined;
    },
    handleCast(message, buff) {
      if (message === "clean") return { state: Buffer.alloc(0) };
      if (typeof message === "object" && message !== null && "length" in message) {
        return { state: buff, length: (message as { length: number }).length };
      }
      return undefined;
    },
    handleDisconnect() {
      events.push("disconnect");
    },
    timeout() {
      events.push("timeout");
    },
    srtimeout() {
      events.push("srtimeout");
    },
  };
}

describe("the SockErl README reverse-echo server (passive)", () => {
  test("length 1 reads one byte per handlePacket; length 0 reads whatever arrived, whole", async () => {
    const events = new Log<string>();
    const conns = new Log<Connection>();
    const server = await serve(reverseEcho(events, conns), null);
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1, 3000, "init");
    const conn = conns.items[0]!;

    client.write("12");
    await client.waitForBytes(2, 3000);
    const packets = () => events.items.filter((e) => e.startsWith("packet:"));
    expect(packets()).toEqual(["packet:1", "packet:2"]);
    expect(client.text()).toBe("12"); // each 1-byte piece reversed is itself

    // length 2: the pieces are reversed.
    conn.cast({ length: 2 });
    expect(await conn.call("meta")).toEqual({ length: 2, mode: "passive" });
    client.write("1234");
    await client.waitForBytes(6, 3000);
    expect(client.text()).toBe("122143");

    // length 0: whatever has arrived, in one piece.
    conn.cast({ length: 0 });
    expect(await conn.call("meta")).toEqual({ length: 0, mode: "passive" });
    client.write("12");
    await client.waitForBytes(8, 3000);
    expect(packets()).toEqual(["packet:1", "packet:2", "packet:12", "packet:34", "packet:12"]);
    expect(client.text()).toBe("12214321");

    // The buffer in the state, print_buffer and clean, as in the README.
    expect(await conn.call("print_buffer")).toBe("12123412");
    conn.cast("clean");
    expect(await conn.call("print_buffer")).toBe("");
  });

  test("srtimeout fires (again and again) while no data comes, and so does timeout", async () => {
    const events = new Log<string>();
    const conns = new Log<Connection>();
    const server = await serve(reverseEcho(events, conns), null);
    await RawClient.connect(server.port);
    await events.until(
      (l) => l.filter((e) => e === "srtimeout").length >= 3 && l.filter((e) => e === "timeout").length >= 2,
      3000,
      "three srtimeouts and two timeouts",
    );
    expect(events.items.some((e) => e.startsWith("packet:"))).toBe(false);
  });

  test("a call is answered while the connection waits for the rest of a read", async () => {
    const events = new Log<string>();
    const conns = new Log<Connection>();
    const counter = countingTcp();
    const server = await serve(reverseEcho(events, conns), null, { transport: counter.transport });
    const client = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0]!;
    conn.cast({ length: 5 });
    expect(await conn.call("meta")).toEqual({ length: 5, mode: "passive" });

    client.write("ab");
    await counter.untilRead(2);
    // The call goes through while 2 of the 5 bytes are buffered and the connection waits for 3 more.
    expect(await within(conn.call("print_buffer", 2000), 2500, "the call")).toBe("");
    expect(events.items.some((e) => e.startsWith("packet:"))).toBe(false);
    client.write("cde");
    await client.waitForBytes(5, 3000);
    expect(client.text()).toBe("edcba");
    expect(await conn.call("print_buffer")).toBe("abcde");
  });
});

// --------------------------------------------------------------------------- exact lengths

describe("exact-length reads", () => {
  /** A server reading exactly 5 bytes per `handlePacket` (recorded in `packets`), over a counting transport. */
  async function fiveByteReader() {
    const counter = countingTcp();
    const packets = new Log<string>();
    const server = await serve<undefined, null>(
      {
        init: () => ({ length: 5 }),
        handlePacket(pkt) {
          packets.push(packetText(pkt));
        },
      },
      null,
      { transport: counter.transport },
    );
    return { counter, packets, server };
  }

  test("length 5 with the peer writing 1 byte at a time (each read by the server first)", async () => {
    const { counter, packets, server } = await fiveByteReader();
    const client = await RawClient.connect(server.port);
    const message = "abcdefghijklmno"; // three reads of 5
    for (let i = 0; i < message.length; i++) {
      client.write(message[i]!);
      await counter.untilRead(i + 1); // a separate TCP chunk each time
      expect(packets.items.length).toBe(Math.floor((i + 1) / 5));
    }
    expect(packets.items).toEqual(["abcde", "fghij", "klmno"]);
  });

  test("many reads' worth arriving in one chunk are cut into exact pieces, in order", async () => {
    const { counter, packets, server } = await fiveByteReader();
    const client = await RawClient.connect(server.port);
    const all = `${"0123456789".repeat(5)}abc`; // 10 reads of 5, and 3 bytes left over
    client.write(all);
    await packets.until((l) => l.length === 10);
    await counter.untilRead(all.length);
    expect(packets.items).toEqual(all.slice(0, 50).match(/.{5}/g)!);
    client.write("de");
    await packets.until((l) => l.length === 11);
    expect(packets.items[10]).toBe("abcde");
  });

  test("an async handler gets exact pieces too (bytes read while it is pending are kept)", async () => {
    const packets = new Log<string>();
    const server = await serve<undefined, null>(
      {
        init: () => ({ length: 4 }),
        async handlePacket(pkt) {
          await Promise.resolve();
          packets.push(packetText(pkt));
        },
      },
      null,
    );
    const client = await RawClient.connect(server.port);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const piece = `${i}`.padStart(3, "0");
      sent.push(piece);
      client.write(piece);
    }
    const all = sent.join("");
    await packets.until((l) => l.length === all.length / 4);
    expect(packets.items.join("")).toBe(all);
    expect(packets.items.every((p) => p.length === 4)).toBe(true);
  });

  test("a `length` above maxPacketSize is a bad return (BadReturnError)", async () => {
    const conns = new Log<Connection>();
    const server = await serve<undefined, null>(
      {
        init: (_i, meta) => {
          conns.push(meta.connection);
          return { length: 100 };
        },
        handlePacket: () => undefined,
      },
      null,
      { maxPacketSize: 10, plan: ["delete"] },
    );
    await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    const reason = await within(conn.exited, 3000, "exit");
    expect(reason).toBeInstanceOf(BadReturnError);
    expect((reason as BadReturnError).code).toBe("ERR_BAD_RETURN");
  });
});

// ---------------------------------------------------------------------- switching modes

describe("switching mode at run time", () => {
  test("active → passive → active through packet actions loses and duplicates nothing", async () => {
    const counter = countingTcp();
    const packets = new Log<string>();
    const modes: string[] = [];
    const server = await serve<number, null>(
      {
        init: () => ({ state: 0 }),
        handlePacket(pkt, n, meta) {
          const s = packetText(pkt);
          packets.push(s);
          modes.push(meta.mode);
          if (meta.mode === "active" && s.endsWith("P")) return { state: 0, mode: "passive", length: 4 };
          if (meta.mode === "passive" && n === 1) return { state: 0, mode: "active" };
          return { state: n + 1 };
        },
      },
      null,
      { mode: "active", transport: counter.transport },
    );
    const client = await RawClient.connect(server.port);
    let sent = "";
    const send = async (s: string) => {
      sent += s;
      client.write(s);
      await counter.untilRead(Buffer.byteLength(sent));
    };
    await send("hello P"); // active: one packet, then passive length 4
    await send("abcdefghij"); // passive: "abcd", "efgh", then active: "ij" as one packet
    await packets.until((l) => l.join("") === sent);
    await send("world P"); // active again, then passive again
    await send("1234"); // one passive read
    await send("5678xyz"); // "5678" (back to active), then "xyz"
    await packets.until((l) => l.join("") === sent);
    expect(packets.items).toEqual(["hello P", "abcd", "efgh", "ij", "world P", "1234", "5678", "xyz"]);
    expect(modes).toEqual([
      "active",
      "passive",
      "passive",
      "active",
      "active",
      "passive",
      "passive",
      "active",
    ]);
  });

  test("mode changes from casts, with bytes buffered in between, keep the stream intact", async () => {
    const packets = new Log<string>();
    const conns = new Log<Connection>();
    const gate = Promise.withResolvers<void>();
    const server = await serve<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
          return { length: 3 };
        },
        async handlePacket(pkt) {
          packets.push(packetText(pkt));
          if (packets.items.length === 1) await gate.promise; // bytes pile up behind this one
        },
        handleCast(mode) {
          return mode === "passive" ? { mode: "passive", length: 2 } : { mode: "active" };
        },
        handleCall: () => ({ reply: "ok" }),
      },
      null,
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    client.write("abc");
    await packets.until((l) => l.length === 1);
    client.write("defghij"); // arrives while the first callback is pending
    conn.cast("active");
    gate.resolve();
    await packets.until((l) => l.join("") === "abcdefghij");
    conn.cast("passive");
    expect(await conn.call("sync")).toBe("ok");
    client.write("klmnop");
    await packets.until((l) => l.join("") === "abcdefghijklmnop");
    // After "abc", the pending bytes may be one passive read (delivered before the cast) or not, but
    // the stream is intact and the last three reads are passive pieces of exactly 2.
    expect(packets.items.slice(-3)).toEqual(["kl", "mn", "op"]);
  });
});

// ---------------------------------------------------------------------- flow control

describe("passive mode is real flow control", () => {
  test("a slow async handler stalls the peer's writes; bytes read but unhandled stay bounded; nothing is lost", async () => {
    const TOTAL = 50 * 1024 * 1024;
    const READ = 1024;
    const counter = countingTcp();
    let handled = 0;
    let maxUnhandled = 0;
    let corrupt = -1;
    let fast = false;
    const slowReads = new Log<number>();
    const done = Promise.withResolvers<void>();
    const conns = new Log<Connection>();
    const server = await serve<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
          return { length: READ };
        },
        async handlePacket(pkt) {
          const bytes = pkt as Uint8Array;
          for (let i = 0; i < bytes.length; i++) {
            if (bytes[i] !== (handled + i) % 251 && corrupt < 0) corrupt = handled + i;
          }
          handled += bytes.length;
          maxUnhandled = Math.max(maxUnhandled, counter.read() - handled);
          if (handled === TOTAL) done.resolve();
          if (fast) return undefined;
          slowReads.push(handled);
          // The handler's own slowness (the thing under test), not a synchronisation.
          await new Promise((resolve) => setTimeout(resolve, 1));
          return undefined;
        },
        handleCast() {
          fast = true;
          return { length: 0 };
        },
      },
      null,
      { transport: counter.transport },
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);

    const data = Buffer.allocUnsafe(TOTAL);
    for (let i = 0; i < TOTAL; i++) data[i] = i % 251;
    let written = 0;
    let shortWrites = 0; // write() took less than offered (0 or a part): the kernel is full
    let waitingForDrain = false;
    const writer = (async () => {
      while (written < TOTAL) {
        const offered = Math.min(TOTAL, written + 1024 * 1024) - written;
        const n = client.socket.write(data.subarray(written, written + offered));
        if (n > 0) written += n;
        if (n < offered && written < TOTAL) {
          shortWrites++;
          waitingForDrain = true;
          await client.drained();
          waitingForDrain = false;
        }
      }
    })();

    // Let the slow handler work for a while after the peer stalled.
    await slowReads.until((l) => l.length >= 300 && shortWrites > 0, 10_000, "300 slow reads after a stall");
    const handledNow = handled;
    expect(shortWrites).toBeGreaterThan(0);
    expect(waitingForDrain).toBe(true); // the writer is blocked on drain
    expect(written).toBeLessThan(TOTAL / 2); // the kernel holds a few MB, not 50
    // The server holds at most a couple of Bun read chunks (512 KiB each) it has not handled.
    expect(counter.read() - handledNow).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(maxUnhandled).toBeLessThanOrEqual(2 * 1024 * 1024);

    // Speed up: every byte arrives, once, in order.
    conn.cast("fast");
    await within(writer, 15_000, "the writer");
    await within(done.promise, 15_000, "all bytes handled");
    expect(corrupt).toBe(-1);
    expect(handled).toBe(TOTAL);
    expect(counter.read()).toBe(TOTAL);
    expect(maxUnhandled).toBeLessThanOrEqual(2 * 1024 * 1024);
  }, 30_000);

  test("a call is answered promptly while a slow handler works through a buffered backlog", async () => {
    const counter = countingTcp();
    let handled = 0;
    const reads = new Log<number>();
    const conns = new Log<Connection>();
    const server = await serve<undefined, null>(
      {
        init(_i, meta) {
          conns.push(meta.connection);
          return { length: 1024 };
        },
        async handlePacket(pkt) {
          handled += pkt.length;
          reads.push(handled);
          await new Promise((resolve) => setTimeout(resolve, 1)); // a slow handler
        },
        handleCall: () => ({ reply: handled }),
        handleCast: () => undefined,
      },
      null,
      { transport: counter.transport },
    );
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    const TOTAL = 256 * 1024;
    expect(client.socket.write(Buffer.alloc(TOTAL))).toBe(TOTAL); // 256 reads' worth
    await reads.until((l) => l.length >= 1);
    const buffered = counter.read() - handled;
    expect(buffered).toBeGreaterThanOrEqual(4 * 1024); // a backlog the slow handler works through
    // SockErl serves one message between reads; so must we: the reply comes after at most one more
    // read, not after the whole backlog.
    const handledAtCall = handled;
    const reply = (await within(conn.call("handled", 3000), 3500, "the call")) as number;
    expect(reply - handledAtCall).toBeLessThanOrEqual(1024);
    await reads.until((l) => l.at(-1) === TOTAL, 5000, "the backlog");
  });
});

// ---------------------------------------------------------------------- the peer goes away

describe("a peer that goes away is noticed", () => {
  /**
   * A server reading 10 bytes at a time whose handler records its callbacks in `events` (and, given a
   * `gate`, holds each `handlePacket` until it opens), with a client connected and its `init` done.
   */
  async function disconnectProbe(gate?: Promise<void>, options: ServerOptions = {}) {
    const events = new Log<string>();
    const conns = new Log<Connection>();
    const handler: Handler<undefined, null> = {
      init(_i, meta) {
        conns.push(meta.connection);
        return { length: 10 };
      },
      async handlePacket(pkt) {
        events.push(`packet:${packetText(pkt)}`);
        if (gate !== undefined) {
          events.push("pending");
          await gate;
        }
      },
      handleDisconnect() {
        events.push("disconnect");
      },
      terminate(reason: ExitReason) {
        events.push(`terminate:${String(reason)}`);
      },
    };
    const server = await serve(handler, null, options);
    const client = await RawClient.connect(server.port);
    const conn = await conns.nth(0);
    return { events, conns, server, client, conn };
  }

  test("closed while waiting for the rest of a read: handleDisconnect, then exit normal", async () => {
    const { events, client, conn } = await disconnectProbe();
    client.write("abc"); // 3 of 10
    client.socket.end();
    expect(await within(conn.exited, 3000, "exit")).toBe("normal");
    expect(events.items).toEqual(["disconnect", "terminate:normal"]);
  });

  test("closed while a callback is pending (no more data): noticed once it settles", async () => {
    const gate = Promise.withResolvers<void>();
    const { events, client, conn } = await disconnectProbe(gate.promise);
    client.write("0123456789");
    await events.until((l) => l.includes("pending"));
    client.socket.end();
    await within(client.closedPromise, 3000, "client close");
    gate.resolve();
    expect(await within(conn.exited, 3000, "exit")).toBe("normal");
    expect(events.items).toEqual(["packet:0123456789", "pending", "disconnect", "terminate:normal"]);
  });

  test("closed while a callback is pending and more data arrived (socket paused): data, then disconnect", async () => {
    const gate = Promise.withResolvers<void>();
    const counter = countingTcp();
    const { events, client, conn } = await disconnectProbe(gate.promise, { transport: counter.transport });
    client.write("0123456789");
    await events.until((l) => l.includes("pending"));
    client.write("abcdefghij"); // read while pending, then the socket pauses
    await counter.untilRead(20);
    client.socket.end();
    await within(client.closedPromise, 3000, "client close");
    gate.resolve();
    expect(await within(conn.exited, 3000, "exit")).toBe("normal");
    expect(events.items).toEqual([
      "packet:0123456789",
      "pending",
      "packet:abcdefghij",
      "pending",
      "disconnect",
      "terminate:normal",
    ]);
  });

  test("reset while a callback is pending: a disconnect too, not a crash", async () => {
    const gate = Promise.withResolvers<void>();
    const { events, conns, server, client, conn } = await disconnectProbe(gate.promise);
    client.write("0123456789");
    await events.until((l) => l.includes("pending"));
    client.socket.terminate();
    gate.resolve();
    expect(await within(conn.exited, 3000, "exit")).toBe("normal");
    expect(events.items).toEqual(["packet:0123456789", "pending", "disconnect", "terminate:normal"]);
    // The server is still up.
    await RawClient.connect(server.port);
    await conns.until((l) => l.length === 2);
  });
});
