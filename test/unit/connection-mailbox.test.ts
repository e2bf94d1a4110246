/**
 * Invariant: the callbacks of one connection never overlap, even when they are async, and what is
 * sent to a connection is handled in the order it was sent: calls, casts and events in the order
 * they were posted, packets in the order their bytes arrived (one packet per chunk in raw mode).
 * Anything that arrives while a callback is pending waits for it; the socket is not read meanwhile.
 *
 * Unit tier: the real connection process on the testing kit's memory transport, no sockets.
 */

import { expect, test } from "bun:test";
import type { Handler } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";

/** A handler that logs every callback, and whose async callbacks wait for `release()`. */
function logging(): {
  handler: Handler<undefined>;
  log: string[];
  release(): void;
  maxDepth(): number;
} {
  const log: string[] = [];
  let depth = 0;
  let max = 0;
  let gate = Promise.withResolvers<void>();
  const enter = async (entry: string, wait: boolean): Promise<void> => {
    depth++;
    max = Math.max(max, depth);
    log.push(entry);
    if (wait) await gate.promise;
    await Promise.resolve();
    depth--;
  };
  return {
    log,
    maxDepth: () => max,
    release() {
      gate.resolve();
      gate = Promise.withResolvers<void>();
    },
    handler: {
      init: () => undefined,
      handlePacket: async (p) => {
        await enter(`packet:${p.toString()}`, p.toString() === "wait");
        return undefined;
      },
      handleCast: async (m) => {
        await enter(`cast:${String(m)}`, m === "wait");
        return undefined;
      },
      handleEvent: async (e) => {
        await enter(`event:${String(e)}`, false);
        return undefined;
      },
      handleCall: async (r) => {
        await enter(`call:${String(r)}`, false);
        return { reply: log.length };
      },
    },
  };
}

test("calls, casts and events are handled in the order they were posted", async () => {
  await using kit = testKit();
  const { handler, log } = logging();
  const server = await kit.startServer(handler, undefined);
  const conn = (await kit.connect(server)).connection!;
  conn.cast(1);
  conn.notify(2);
  const first = conn.call(3);
  conn.cast(4);
  conn.notify(5);
  const second = conn.call(6);
  expect([await first, await second]).toEqual([3, 6]);
  expect(log).toEqual(["cast:1", "event:2", "call:3", "cast:4", "event:5", "call:6"]);
});

test("packets are handled in arrival order, one per chunk, by an async handler", async () => {
  await using kit = testKit();
  const { handler, log } = logging();
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  await peer.write("abcdef", { splitAt: [1, 3] });
  await peer.write("gh");
  await peer.connection!.call("sync");
  expect(log).toEqual(["packet:a", "packet:bc", "packet:def", "packet:gh", "call:sync"]);
});

test("async callbacks never overlap; what arrives meanwhile waits and the socket is not read", async () => {
  await using kit = testKit();
  const { handler, log, release, maxDepth } = logging();
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("wait");
  expect(log).toEqual(["packet:wait"]);
  await peer.write("next"); // read into the connection's buffer, then it stops reading
  conn.cast("c");
  const reply = conn.call("q");
  void peer.write("later"); // stays with the memory socket: the connection is not reading
  await Bun.sleep(0);
  expect(log).toEqual(["packet:wait"]);
  expect(peer.remoteReading).toBe(false);
  expect(peer.remoteUnread).toBe(5);
  release();
  await reply;
  await conn.call("sync");
  expect(maxDepth()).toBe(1);
  expect(log.filter((e) => e.startsWith("packet:"))).toEqual(["packet:wait", "packet:next", "packet:later"]);
  expect(log.filter((e) => !e.startsWith("packet:"))).toEqual(["cast:c", "call:q", "call:sync"]);
  expect(log.indexOf("packet:next")).toBeLessThan(log.indexOf("packet:later"));
});

test("a cast that waits holds back the packets behind it", async () => {
  await using kit = testKit();
  const { handler, log, release } = logging();
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  conn.cast("wait");
  await peer.write("p");
  await Bun.sleep(0);
  expect(log).toEqual(["cast:wait"]);
  release();
  await conn.call("sync");
  expect(log).toEqual(["cast:wait", "packet:p", "call:sync"]);
});

// Found with the kit: bytes the connection reads while a callback is pending used to be handled
// before mailbox events posted earlier (packet p2 jumped ahead of cast c1 and event e1). The
// connection now keeps one arrival order across the socket and the mailbox.
test("what arrives while a callback is pending is handled in arrival order across packets and casts", async () => {
  await using kit = testKit();
  const { handler, log, release } = logging();
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("wait");
  conn.cast("c1");
  conn.notify("e1");
  await peer.write("p2");
  const reply = conn.call("q");
  release();
  await reply;
  expect(log).toEqual(["packet:wait", "cast:c1", "event:e1", "packet:p2", "call:q"]);
});
