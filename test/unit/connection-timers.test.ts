/**
 * Invariant: the connection's timers run on the library's clock, so on the testing kit's manual clock
 * they fire exactly when due and never otherwise: the idle `timeout` fires after `timeout` ms without
 * events, is re-armed by every event, and fires again every period until changed; a call nobody
 * answers rejects with CallTimeoutError after its timeout; a peer that leaves sent bytes unread for
 * `sendTimeout` ms is dropped with SendTimeoutError; a closing connection whose peer never sends
 * FIN is reset after `closeTimeout`. A 30 s idle timeout is tested in well under a second.
 *
 * Unit tier: the real connection process on the memory transport with the kit's manual clock.
 */

import { expect, test } from "bun:test";
import { CallTimeoutError, SendTimeoutError } from "../../src/errors.ts";
import type { Handler } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";
import { captureSink } from "../helpers/trace.ts";

/** Counts idle timeouts (sends one line each); a packet may change the timeout ("set <ms>"). */
const idle: Handler<number> = {
  init: () => ({ state: 0, timeout: 30_000 }),
  handlePacket: (p, _n) => {
    const text = p.toString();
    return text.startsWith("set ") ? { timeout: Number(text.slice(4)) } : undefined;
  },
  timeout: (n) => ({ state: n + 1, send: `idle ${n + 1}\n` }),
  handleCall: (_r, _f, n) => ({ reply: n }),
};

test("a 30 s idle timeout fires at 30 s, not before, and the test takes microseconds", async () => {
  await using kit = testKit();
  const server = await kit.startServer(idle, undefined);
  const peer = await kit.connect(server);
  const started = performance.now();
  await kit.clock.advance(29_999);
  expect(peer.buffered).toBe(0);
  await kit.clock.advance(1);
  expect((await peer.readUntil("\n")).toString()).toBe("idle 1\n");
  const elapsedMs = performance.now() - started;
  expect(elapsedMs).toBeLessThan(250); // 30 s of library time in a few hundred µs here
  expect(kit.clock.now()).toBe(30_000);
});

test("every event re-arms the idle timeout; it fires again every period", async () => {
  await using kit = testKit();
  const server = await kit.startServer(idle, undefined);
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await kit.clock.advance(20_000);
  await peer.write("activity"); // re-arms: next fire at 50 s
  await kit.clock.advance(29_999);
  expect(await conn.call("count")).toBe(0); // a call is an event too: re-arms to 80 s
  await kit.clock.advance(30_000);
  expect((await peer.readUntil("\n")).toString()).toBe("idle 1\n");
  await kit.clock.advance(30_000);
  expect((await peer.readUntil("\n")).toString()).toBe("idle 2\n");
});

test("timeout: Infinity turns the idle timeout off", async () => {
  await using kit = testKit();
  const server = await kit.startServer(idle, undefined);
  const peer = await kit.connect(server);
  await peer.write("set Infinity");
  await kit.clock.advance(10 * 60_000);
  expect(peer.buffered).toBe(0);
  expect(kit.clock.pending).toBe(0);
});

test("a call nobody answers rejects with CallTimeoutError after its timeout on the clock", async () => {
  await using kit = testKit();
  const server = await kit.startServer<undefined>(
    { init: () => undefined, handlePacket: () => undefined, handleCall: () => undefined },
    undefined,
  );
  const conn = (await kit.connect(server)).connection!;
  const settled: unknown[] = [];
  const call = conn.call("never answered").catch((e: unknown) => {
    settled.push(e);
  });
  await kit.clock.advance(4_999);
  expect(settled).toEqual([]);
  await kit.clock.advance(1);
  await call;
  expect(settled[0]).toBeInstanceOf(CallTimeoutError);
});

test("calls of one millisecond share a timeout: the answered ones settle, only the unanswered time out", async () => {
  await using kit = testKit();
  // Answers every call except those asking for "silence"; the calls all go out in one turn.
  const server = await kit.startServer<undefined>(
    {
      init: () => undefined,
      handlePacket: () => undefined,
      handleCall: (request) => (request === "silence" ? undefined : { reply: request }),
    },
    undefined,
  );
  const conn = (await kit.connect(server)).connection!;
  const outcomes = new Map<number, unknown>();
  const calls = Array.from({ length: 200 }, (_, i) =>
    conn.call(i % 70 === 3 ? "silence" : i).then(
      (value) => outcomes.set(i, value),
      (error: unknown) => outcomes.set(i, error),
    ),
  );
  await kit.clock.advance(0);
  // 197 answered (the bucket keeps only what is pending: more than 64 settled ones were compacted)
  expect(outcomes.size).toBe(197);
  await kit.clock.advance(5_000);
  await Promise.all(calls);
  for (const i of [3, 73, 143]) expect(outcomes.get(i)).toBeInstanceOf(CallTimeoutError);
  expect([...outcomes.values()].filter((v) => v instanceof CallTimeoutError).length).toBe(3);
  expect(kit.clock.pending).toBe(0);
});

test("a peer that leaves bytes unread for sendTimeout ms is dropped with SendTimeoutError", async () => {
  await using kit = testKit();
  const sink = captureSink();
  const server = await kit.startServer<undefined>(
    { init: () => ({ send: Buffer.alloc(64 * 1024) }), handlePacket: () => undefined },
    undefined,
    { sendTimeout: 10_000, plan: ["delete"] },
  );
  const peer = await kit.connect(server, { window: 1024 });
  peer.pauseReading();
  const conn = peer.connection!;
  await kit.clock.advance(9_999);
  expect(server.connections().length).toBe(1);
  await kit.clock.advance(1);
  const reason = await conn.exited;
  expect(reason).toBeInstanceOf(SendTimeoutError);
  sink.restore();
});

test("a closing connection whose peer never answers FIN is reset after closeTimeout", async () => {
  await using kit = testKit();
  const server = await kit.startServer<undefined>(
    { init: () => undefined, handlePacket: () => ({ send: "bye\n", close: true }) },
    undefined,
    { closeTimeout: 2_000 },
  );
  const peer = await kit.connect(server, { autoClose: false });
  await peer.write("quit");
  expect((await peer.readUntil("bye\n")).toString()).toBe("bye\n");
  await kit.clock.advance(1_999);
  expect(peer.isClosed).toBe(false); // half-closed: the library waits for our FIN
  expect(peer.ended).toBe(true);
  await kit.clock.advance(1);
  expect((await peer.closed).reset).toBe(true);
});
