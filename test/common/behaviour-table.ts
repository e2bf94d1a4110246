/**
 * One table of handler behaviours, run on two harnesses: the testing kit's memory transport
 * (test/unit/behaviour-memory.test.ts) and real loopback TCP (test/socket/behaviour-loopback.test.ts).
 * Each case returns a plain value; both files assert the same expected value, so a difference
 * between memory and the kernel (ordering, framing splits, close and flush, disconnects, timeouts)
 * fails one of them.
 *
 * Cases never depend on how TCP happens to coalesce chunks, and they wait for outcomes (reads,
 * exits) instead of time: on memory `elapse(ms)` advances the kit's clock, on loopback time passes by
 * itself and `elapse` returns at once.
 *
 * `TABLE_REPEAT=n` runs every case n times (for the memory-vs-loopback speed table in docs/testing.md).
 */
import type { Connection, ExitReason, Handler, Server, ServerOptions } from "../../src/index.ts";
import type { WriteOptions } from "../../src/testing/index.ts";

/** The client side a case drives: the kit's Peer, or a Bun.connect socket with the same surface. */
export interface TablePeer {
  write(data: string | Uint8Array, options?: WriteOptions): Promise<void>;
  read(length: number): Promise<Buffer>;
  readUntil(needle: string): Promise<Buffer>;
  readToEnd(): Promise<Buffer>;
  end(): void;
  reset(): void;
  readonly closed: Promise<{ readonly reset: boolean }>;
}

/** What a case needs of a harness. */
export interface Harness {
  readonly name: string;
  start<S>(
    handler: Handler<S, undefined>,
    options?: Omit<ServerOptions, "transport">,
  ): Promise<Server<S, undefined>>;
  /** Connects a client and returns it with the server's connection for it. */
  connect<S>(server: Server<S, undefined>): Promise<[TablePeer, Connection]>;
  /** Lets `ms` of library time pass (memory: the manual clock; loopback: nothing, time passes). */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** One behaviour: `run` returns a value that must equal `expected` on every harness. */
export interface BehaviourCase {
  readonly name: string;
  run(h: Harness): Promise<unknown>;
  readonly expected: unknown;
}

/** Big-endian 4-byte length prefix + payload. */
function frame4(payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.byteLength);
  return Buffer.concat([header, body]);
}

function reasonName(reason: ExitReason): string {
  return reason instanceof Error ? reason.name : String(reason);
}

export const CASES: readonly BehaviourCase[] = [
  {
    name: "ordering: pipelined lines answered in order by an async handler; casts before a call",
    async run(h) {
      const server = await h.start<string[]>(
        {
          init: () => ({ state: [] }),
          handlePacket: async (line, seen) => {
            await Promise.resolve(); // async: the next packet must wait for this one
            const text = line.toString().trim();
            return { state: [...seen, text], send: `${text.toUpperCase()}\n` };
          },
          handleCast: (message, seen) => ({ state: [...seen, `cast:${String(message)}`] }),
          handleCall: (_request, _from, seen) => ({ reply: seen }),
        },
        { packet: "line" },
      );
      const [peer, conn] = await h.connect(server);
      await peer.write("a\nb\nc\n");
      const replies = (await peer.read(6)).toString();
      conn.cast("x");
      conn.cast("y");
      const seen = await conn.call("seen");
      return { replies, seen };
    },
    expected: { replies: "A\nB\nC\n", seen: ["a", "b", "c", "cast:x", "cast:y"] },
  },
  {
    name: "framing: 4-byte frames cut inside headers and payloads arrive whole",
    async run(h) {
      const server = await h.start<undefined>(
        { init: () => undefined, handlePacket: (p) => ({ send: `${p.toString()}!` }) },
        { packet: 4 },
      );
      const [peer] = await h.connect(server);
      const bytes = Buffer.concat([frame4("hello"), frame4(""), frame4("world, again")]);
      await peer.write(bytes, { splitAt: [1, 3, 6, 9, 13, 15] });
      const out: string[] = [];
      for (let i = 0; i < 3; i++) {
        const header = await peer.read(4);
        out.push((await peer.read(header.readUInt32BE(0))).toString());
      }
      return out;
    },
    expected: ["hello!", "!", "world, again!"],
  },
  {
    name: "framing: lines split at every byte",
    async run(h) {
      const lines: string[] = [];
      const server = await h.start<undefined>(
        {
          init: () => undefined,
          handlePacket: (p) => {
            lines.push(p.toString());
            return lines.length === 2 ? { send: "done\n" } : undefined;
          },
        },
        { packet: "line" },
      );
      const [peer] = await h.connect(server);
      await peer.write("one\r\ntwo\n", { chunkSize: 1 });
      await peer.readUntil("done\n");
      return lines;
    },
    expected: ["one\r\n", "two\n"],
  },
  {
    name: "passive: exact-length reads",
    async run(h) {
      const reads: string[] = [];
      const server = await h.start<undefined>(
        {
          init: () => ({ mode: "passive", length: 3 }),
          handlePacket: (p) => {
            reads.push(p.toString());
            return reads.length === 2 ? { send: "ok" } : undefined;
          },
        },
        {},
      );
      const [peer] = await h.connect(server);
      await peer.write("abcdefgh", { splitAt: [1, 5] });
      await peer.read(2);
      return reads;
    },
    expected: ["abc", "def"],
  },
  {
    name: "close flushes: 256 KiB sent then close arrives whole, then a clean FIN",
    async run(h) {
      const big = Buffer.alloc(256 * 1024, 0x62);
      const server = await h.start<undefined>(
        { init: () => undefined, handlePacket: () => ({ send: big, close: true }) },
        {},
      );
      const [peer, conn] = await h.connect(server);
      await peer.write("go");
      const all = await peer.readToEnd();
      return {
        bytes: all.byteLength,
        intact: all.equals(big),
        exit: await conn.exited,
        reset: (await peer.closed).reset,
      };
    },
    expected: { bytes: 256 * 1024, intact: true, exit: "normal", reset: false },
  },
  {
    name: "disconnect: the peer's FIN runs handleDisconnect, its goodbye arrives, terminate once",
    async run(h) {
      const terminated: string[] = [];
      const server = await h.start<undefined>(
        {
          init: () => undefined,
          handlePacket: () => undefined,
          handleDisconnect: () => ({ send: "bye\n" }),
          terminate: (reason) => {
            terminated.push(reasonName(reason));
          },
        },
        {},
      );
      const [peer, conn] = await h.connect(server);
      await peer.write("hi");
      peer.end();
      const rest = (await peer.readToEnd()).toString();
      return { rest, exit: await conn.exited, terminated };
    },
    expected: { rest: "bye\n", exit: "normal", terminated: ["normal"] },
  },
  {
    name: "reset: the peer's RST is a disconnect ending normally",
    async run(h) {
      const calls: string[] = [];
      const server = await h.start<undefined>(
        {
          init: () => ({ send: "ready\n" }),
          handlePacket: () => undefined,
          handleDisconnect: () => {
            calls.push("disconnect");
            return undefined;
          },
        },
        {},
      );
      const [peer, conn] = await h.connect(server);
      await peer.readUntil("ready\n");
      peer.reset();
      return { exit: await conn.exited, calls };
    },
    expected: { exit: "normal", calls: ["disconnect"] },
  },
  {
    name: "idle timeout: timeout() fires, says so and closes",
    async run(h) {
      const server = await h.start<number>(
        {
          init: () => ({ state: 0, timeout: 40 }),
          handlePacket: (_p, n) => ({ state: n + 1 }),
          timeout: (n) => ({ send: `idle after ${n}\n`, close: true }),
        },
        {},
      );
      const [peer, conn] = await h.connect(server);
      await peer.write("x");
      await h.elapse(40);
      const text = (await peer.readToEnd()).toString();
      return { text, exit: await conn.exited };
    },
    expected: { text: "idle after 1\n", exit: "normal" },
  },
  {
    name: "passive receive timeout: srtimeout() fires when no data comes",
    async run(h) {
      const server = await h.start<undefined>(
        {
          init: () => ({ mode: "passive", length: 4, srtimeout: 40 }),
          handlePacket: () => undefined,
          srtimeout: () => ({ send: "too slow\n", close: true }),
        },
        {},
      );
      const [peer, conn] = await h.connect(server);
      await peer.write("ab");
      await h.elapse(40);
      const text = (await peer.readToEnd()).toString();
      return { text, exit: await conn.exited };
    },
    expected: { text: "too slow\n", exit: "normal" },
  },
];

/** How many times each case runs (`TABLE_REPEAT`, default 1). */
export const REPEAT = Math.max(1, Number.parseInt(process.env.TABLE_REPEAT ?? "1", 10) || 1);
