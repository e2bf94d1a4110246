/**
 * Invariant: an action's fields apply in their fixed order (state, send, reply, timeout, srtimeout,
 * length, mode, transport, then close or stop), an array of actions applies element by element,
 * `undefined` changes nothing, and any other shape stops the connection with BadReturnError; a
 * callback that throws stops it with CallbackError (cause: what it threw). `close` flushes what was
 * sent first and ends "normal"; `terminate` runs exactly once and may still say goodbye with
 * `meta.send`.
 *
 * Unit tier: the real connection process on the testing kit's memory transport, no sockets.
 */

import { expect, test } from "bun:test";
import {
  type Action,
  BadReturnError,
  CallbackError,
  type ExitReason,
  type Handler,
} from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";
import { captureSink } from "../helpers/trace.ts";

test("state, send and reply apply together; the reply sees the new state", async () => {
  await using kit = testKit();
  const server = await kit.startServer<number>(
    {
      init: () => ({ state: 10 }),
      handlePacket: () => undefined,
      handleCall: (n, _from, state) => ({
        state: state + (n as number),
        send: `now ${state + (n as number)}\n`,
        reply: "ok",
      }),
    },
    undefined,
  );
  const peer = await kit.connect(server);
  expect(await peer.connection!.call(5)).toBe("ok");
  expect((await peer.readUntil("\n")).toString()).toBe("now 15\n");
});

test("an array of actions applies in order; undefined elements change nothing", async () => {
  await using kit = testKit();
  const server = await kit.startServer<string>(
    {
      init: () => ({ state: "" }),
      handlePacket: (_p, s): Action<string> => [
        { state: `${s}1`, send: "a" },
        undefined,
        [{ send: "b" }, { state: `${s}12` }],
        { send: ["c", Buffer.from("d")] },
      ],
      handleCall: (_r, _f, s) => ({ reply: s }),
    },
    undefined,
  );
  const peer = await kit.connect(server);
  await peer.write("x");
  expect((await peer.read(4)).toString()).toBe("abcd");
  expect(await peer.connection!.call("state")).toBe("12");
});

test("close flushes what was sent first, then ends normal; terminate runs once and can say goodbye", async () => {
  await using kit = testKit();
  const reasons: ExitReason[] = [];
  const server = await kit.startServer<undefined>(
    {
      init: () => undefined,
      handlePacket: () => ({ send: "last words\n", close: true }),
      terminate: (reason, _s, meta) => {
        reasons.push(reason);
        meta.send("goodbye\n");
      },
    },
    undefined,
  );
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("bye");
  expect((await peer.readToEnd()).toString()).toBe("last words\ngoodbye\n");
  expect(await conn.exited).toBe("normal");
  expect(reasons).toEqual(["normal"]);
  expect((await peer.closed).reset).toBe(false);
});

test("stop ends with the given reason", async () => {
  await using kit = testKit();
  const sink = captureSink();
  const server = await kit.startServer<undefined>(
    { init: () => undefined, handlePacket: () => ({ stop: "protocol_error" }) },
    undefined,
    { plan: ["delete"] },
  );
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("?");
  expect(await conn.exited).toBe("protocol_error");
  expect(sink.reports().length).toBe(1);
  sink.restore();
});

test("a misspelt action field stops the connection with BadReturnError", async () => {
  await using kit = testKit();
  const sink = captureSink();
  const server = await kit.startServer<undefined>(
    {
      init: () => undefined,
      handlePacket: () => ({ sned: "typo" }) as unknown as Action<undefined>,
    },
    undefined,
    { plan: ["delete"] },
  );
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("x");
  const reason = await conn.exited;
  expect(reason).toBeInstanceOf(BadReturnError);
  expect((reason as BadReturnError).code).toBe("ERR_BAD_RETURN");
  sink.restore();
});

test("a callback that throws (or rejects) stops the connection with CallbackError wrapping the error", async () => {
  await using kit = testKit();
  const sink = captureSink();
  const boom = new Error("boom");
  const handler: Handler<undefined> = {
    init: () => undefined,
    handlePacket: async () => {
      throw boom;
    },
  };
  const server = await kit.startServer(handler, undefined, { plan: ["delete"] });
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  await peer.write("x");
  const reason = await conn.exited;
  expect(reason).toBeInstanceOf(CallbackError);
  expect((reason as CallbackError).cause).toBe(boom);
  sink.restore();
});

test("mode and length switch a live connection to passive reads and back", async () => {
  await using kit = testKit();
  const packets: string[] = [];
  const server = await kit.startServer<undefined>(
    {
      init: () => undefined,
      handlePacket: (p) => {
        packets.push(p.toString());
        return undefined;
      },
      handleCast: (m) => (m === "passive" ? { mode: "passive", length: 2 } : { mode: "active" }),
      handleCall: () => ({ reply: packets.slice() }),
    },
    undefined,
  );
  const peer = await kit.connect(server);
  const conn = peer.connection!;
  conn.cast("passive");
  await peer.write("abcde");
  expect(await conn.call("?")).toEqual(["ab", "cd"]);
  conn.cast("active");
  await peer.write("f");
  expect(await conn.call("?")).toEqual(["ab", "cd", "e", "f"]);
});

test("init returning ignore closes quietly: no terminate", async () => {
  await using kit = testKit();
  let terminated = 0;
  const server = await kit.startServer<undefined>(
    {
      init: () => "ignore",
      handlePacket: () => undefined,
      terminate: () => {
        terminated++;
      },
    },
    undefined,
  );
  const peer = await kit.connect(server);
  await peer.closed;
  expect(terminated).toBe(0);
  expect(server.connections()).toEqual([]);
});
