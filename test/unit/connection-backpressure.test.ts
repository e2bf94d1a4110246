/**
 * Invariant: `send` never loses data. When the peer stops reading, the transport takes what fits in
 * the peer's window and the rest queues in the connection (`queuedBytes`); once the queue is above
 * `highWaterMark` the connection stops reading its own socket, and when the peer reads again the
 * queue drains in order, reading resumes, and `handleDrain` is called once the queue is back under
 * `highWaterMark`. A send past `maxQueuedBytes` ends the connection with SendOverflowError.
 *
 * Unit tier: the real connection process on the testing kit's memory transport; the peer's window is
 * small so the queue grows without megabytes.
 */

import { expect, test } from "bun:test";
import { SendOverflowError } from "../../src/errors.ts";
import type { Handler } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";
import { captureSink } from "../helpers/trace.ts";

const CHUNK = 4096;

/** Sends `n` chunks of CHUNK bytes (byte value = chunk index) per cast; counts packets and drains. */
function producer(): { handler: Handler<undefined>; packets: string[]; drains: number[] } {
  const packets: string[] = [];
  const drains: number[] = [];
  let next = 0;
  return {
    packets,
    drains,
    handler: {
      init: () => undefined,
      handlePacket: (p) => {
        packets.push(p.toString());
        return undefined;
      },
      handleCast: (n) => {
        const send: Buffer[] = [];
        for (let i = 0; i < (n as number); i++) send.push(Buffer.alloc(CHUNK, next++ % 256));
        return { send };
      },
      handleDrain: (_s, meta) => {
        drains.push(meta.queuedBytes);
        return undefined;
      },
      handleCall: (_r, _f, _s, meta) => ({ reply: meta.queuedBytes }),
    },
  };
}

test("peer stops reading → queue grows past highWaterMark → reading pauses; peer reads → all arrives in order, reading resumes, handleDrain once", async () => {
  await using kit = testKit();
  const { handler, packets, drains } = producer();
  const server = await kit.startServer(handler, undefined, { highWaterMark: 16 * 1024 });
  const peer = await kit.connect(server, { window: 8 * 1024 });
  const conn = peer.connection!;
  peer.pauseReading();

  conn.cast(3); // 12 KiB: 8 KiB fit in the window, 4 KiB queue (under highWaterMark)
  await Bun.sleep(0); // the turn's writes are corked, then written at once
  expect(await conn.call("queued")).toBe(4096);
  expect(peer.remoteReading).toBe(true);

  conn.cast(4); // +16 KiB: 20 KiB queued, above highWaterMark
  await Bun.sleep(0);
  expect(await conn.call("queued")).toBe(20 * 1024);
  expect(peer.remoteReading).toBe(false);
  void peer.write("held back");
  await Bun.sleep(0);
  expect(packets).toEqual([]); // not read while above highWaterMark

  peer.resumeReading();
  const all = await peer.read(7 * CHUNK);
  for (let i = 0; i < 7; i++) expect(all[i * CHUNK]).toBe(i);
  expect(await conn.call("queued")).toBe(0);
  expect(peer.remoteReading).toBe(true);
  expect(packets).toEqual(["held back"]);
  expect(drains.length).toBe(1);
  expect(drains[0]!).toBeLessThan(16 * 1024);
});

test("a send past maxQueuedBytes ends the connection with SendOverflowError", async () => {
  await using kit = testKit();
  const sink = captureSink();
  const { handler } = producer();
  const server = await kit.startServer(handler, undefined, {
    highWaterMark: 8 * 1024,
    maxQueuedBytes: 32 * 1024,
    plan: ["delete"],
  });
  const peer = await kit.connect(server, { window: 4096 });
  const conn = peer.connection!;
  peer.pauseReading();
  conn.cast(10); // 40 KiB: 4 KiB taken, 36 KiB would queue
  const reason = await conn.exited;
  expect(reason).toBeInstanceOf(SendOverflowError);
  expect((reason as SendOverflowError).code).toBe("ERR_SEND_OVERFLOW");
  sink.restore();
});
