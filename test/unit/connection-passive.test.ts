/**
 * Invariant: in passive mode a connection reads only when it is ready: exactly `length` bytes per
 * `handlePacket` (0 = whatever has arrived), in stream order whatever the chunking; unread bytes stay
 * with the socket (it is paused, so the peer's bytes sit in the transport); `srtimeout()` fires when
 * no data came within `srtimeout` ms, and data in time cancels it. Calls are served while waiting.
 *
 * Unit tier: the real connection process on the testing kit's memory transport; the receive timeout
 * runs on the kit's manual clock.
 */

import { expect, test } from "bun:test";
import type { Handler } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";

function passive(length: number, srtimeout = Number.POSITIVE_INFINITY) {
  const reads: string[] = [];
  let timeouts = 0;
  const handler: Handler<undefined> = {
    init: () => ({ mode: "passive", length, srtimeout }),
    handlePacket: (p) => {
      reads.push(p.toString());
      return undefined;
    },
    srtimeout: () => {
      timeouts++;
      return { send: "timeout\n" };
    },
    handleCall: () => ({ reply: { reads: reads.slice(), timeouts } }),
  };
  return { handler, reads };
}

test("exact-length reads in stream order, whatever the chunking (seeded random splits)", async () => {
  await using kit = testKit();
  const { handler } = passive(4);
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  await peer.write("aaaabbbbccccdd", { seed: 3, maxChunk: 3 });
  expect(await peer.connection!.call("?")).toEqual({ reads: ["aaaa", "bbbb", "cccc"], timeouts: 0 });
  await peer.write("dd");
  expect(await peer.connection!.call("?")).toEqual({ reads: ["aaaa", "bbbb", "cccc", "dddd"], timeouts: 0 });
});

test("length 0 reads whatever has arrived", async () => {
  await using kit = testKit();
  const { handler } = passive(0);
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  await peer.write("hello");
  const { reads } = (await peer.connection!.call("?")) as { reads: string[] };
  expect(reads.join("")).toBe("hello");
});

test("srtimeout fires after exactly srtimeout ms of silence, on the manual clock", async () => {
  await using kit = testKit();
  const { handler } = passive(4, 1000);
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  await kit.clock.advance(999);
  expect(peer.buffered).toBe(0);
  await kit.clock.advance(1);
  expect((await peer.readUntil("\n")).toString()).toBe("timeout\n");
  expect(await peer.connection!.call("?")).toEqual({ reads: [], timeouts: 1 });
});

test("data in time cancels the receive timeout; a partial read does not", async () => {
  await using kit = testKit();
  const { handler } = passive(4, 1000);
  const server = await kit.startServer(handler, undefined);
  const peer = await kit.connect(server);
  await kit.clock.advance(900);
  await peer.write("full");
  await kit.clock.advance(900);
  expect(await peer.connection!.call("?")).toEqual({ reads: ["full"], timeouts: 0 });
  await peer.write("pa"); // half a read: still waiting for 4 bytes
  await kit.clock.advance(1000);
  expect((await peer.readUntil("\n")).toString()).toBe("timeout\n");
});

test("a passive connection does not read ahead: the peer's extra bytes wait in the transport", async () => {
  await using kit = testKit();
  let release = Promise.withResolvers<void>();
  const reads: string[] = [];
  const server = await kit.startServer<undefined>(
    {
      init: () => ({ mode: "passive", length: 2 }),
      handlePacket: async (p) => {
        reads.push(p.toString());
        await release.promise;
        return undefined;
      },
    },
    undefined,
  );
  const peer = await kit.connect(server);
  await peer.write("ab");
  await peer.write("cd"); // read while the callback is pending (one read, as from a kernel buffer), then paused
  void peer.write("efgh");
  await Bun.sleep(0);
  expect(reads).toEqual(["ab"]);
  expect(peer.remoteReading).toBe(false);
  expect(peer.remoteUnread).toBe(4);
  release.resolve();
  release = Promise.withResolvers<void>();
  release.resolve();
  await Bun.sleep(0);
  await Bun.sleep(0);
  expect(reads.join("")).toBe("abcdefgh");
});
