/**
 * Invariant: what a callback returns is an Action (docs/handlers.md#actions), applied in a fixed order whatever the
 * order of its keys: `state`, `send`, `reply`, `timeout`, then `close: true` (exit "normal") or
 * `stop: reason` (exit with that reason); `undefined` and `{}` change nothing. An array of actions is
 * applied element by element, in order, and stops at the first element that ends the connection.
 * `send` takes a packet (string, bytes, ArrayBuffer, any view) or an array of them, written in order
 * (framed one by one with `packet: N`). Anything else (`"ok"`, `42`, `{ foo: 1 }`, `{ timeout: -1 }`, …)
 * ends the connection with a `BadReturnError` naming the callback and the value, which is what
 * `conn.exited` resolves with and what `terminate` gets; the server (with `plan: ["delete"]`) lives on.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  type Action,
  BadReturnError,
  type Connection,
  type ExitReason,
  type Handler,
} from "../../src/index.ts";
import { frame4, packetText, RawClient, unframe4 } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

interface Harness {
  readonly client: RawClient;
  readonly conn: Connection;
  /** Reasons `terminate` was called with, and the state it saw. */
  readonly terminated: Array<{ reason: ExitReason; state: unknown }>;
  /** Resolves once handlePacket has returned `n` times (its action is applied by then). */
  handled(n: number): Promise<void>;
}

/**
 * Starts a server whose handlePacket returns `act(packetText, state)` and whose handleCall returns
 * `call(request, state)`; connects one client. State starts at `initial`.
 */
async function harness<S>(
  initial: S,
  act: (packet: string, state: S) => Action<S>,
  options: { packet?: 4; call?: (request: unknown, state: S) => Action<S> } = {},
): Promise<Harness> {
  const terminated: Array<{ reason: ExitReason; state: unknown }> = [];
  let packets = 0;
  const started = Promise.withResolvers<Connection>();
  const handler: Handler<S, undefined> = {
    init(_i, meta) {
      started.resolve(meta.connection);
      return { state: initial };
    },
    handlePacket(packet, state) {
      packets++;
      return act(packetText(packet), state);
    },
    handleCall: (request, _from, state) =>
      options.call ? options.call(request, state) : { reply: state as unknown },
    terminate(reason, state) {
      terminated.push({ reason, state });
    },
  };
  const server = await startTestServer(handler, undefined, {
    plan: ["delete"],
    ...(options.packet ? { packet: options.packet } : {}),
  });
  const client = await RawClient.connect(server.port);
  const conn = await within(started.promise, 2000, "init");
  const handled = (n: number): Promise<void> => waitFor(() => packets >= n, 2000, `${n} packets handled`);
  return { client, conn, terminated, handled };
}

describe("state", () => {
  test("{ state } replaces the state; undefined and {} keep it", async () => {
    const { client, conn, handled } = await harness<number>(1, (p, n) => {
      if (p === "inc") return { state: n + 1 };
      if (p === "empty") return {};
      return undefined;
    });
    client.write("inc");
    await handled(1);
    expect(await conn.call("get")).toBe(2);
    client.write("nothing");
    await handled(2);
    expect(await conn.call("get")).toBe(2);
    client.write("empty");
    await handled(3);
    expect(await conn.call("get")).toBe(2);
  });

  test("a state field set to undefined makes the state undefined", async () => {
    const { client, conn, handled } = await harness<number | undefined>(5, () => ({ state: undefined }));
    client.write("x");
    await handled(1);
    expect(await conn.call("get")).toBeUndefined();
  });
});

describe("send", () => {
  test("sends a string, a Buffer, a Uint8Array, an ArrayBuffer and a DataView", async () => {
    const { client } = await harness<undefined>(undefined, (p) => {
      switch (p) {
        case "string":
          return { send: "héllo|" };
        case "buffer":
          return { send: Buffer.from("buf|") };
        case "u8":
          return { send: new Uint8Array([0x75, 0x38, 0x7c]) };
        case "ab":
          return { send: new Uint8Array([0x61, 0x62, 0x7c]).buffer };
        default:
          return { send: new DataView(new Uint8Array([0, 0x64, 0x76, 0x7c, 0]).buffer, 1, 3) };
      }
    });
    for (const what of ["string", "buffer", "u8", "ab", "dv"]) {
      const before = client.received;
      client.write(what);
      await client.until(() => client.received > before, 2000, what);
    }
    expect(client.text()).toBe("héllo|buf|u8|ab|dv|");
  });

  test("an array of packets is written in order", async () => {
    const { client } = await harness<undefined>(undefined, () => ({
      send: ["one,", Buffer.from("two,"), new Uint8Array([0x33]).buffer, "\n"],
    }));
    client.write("go");
    await client.waitForText("\n");
    expect(client.text()).toBe("one,two,3\n");
  });

  test("with packet: 4 each packet of an array is its own frame", async () => {
    const { client } = await harness<undefined>(undefined, (p) => ({ send: [`a:${p}`, "", "bc"] }), {
      packet: 4,
    });
    client.write(frame4("x"));
    await client.waitForBytes(4 + 3 + 4 + 4 + 2);
    expect(unframe4(client.bytes()).map(String)).toEqual(["a:x", "", "bc"]);
  });

  test("an empty array sends nothing and keeps going", async () => {
    const { client, conn, handled } = await harness<number>(0, (_p, n) => ({ state: n + 1, send: [] }));
    client.write("x");
    await handled(1);
    expect(await conn.call("get")).toBe(1);
    expect(client.received).toBe(0);
  });
});

describe("reply and timeout", () => {
  test("reply answers the call; state in the same action is already applied", async () => {
    const { conn } = await harness<number>(1, () => undefined, {
      call: (request, n) => ({ reply: `${String(request)}:${n}`, state: n + 10 }),
    });
    expect(await conn.call("a")).toBe("a:1");
    expect(await conn.call("b")).toBe("b:11");
  });

  test("reply outside handleCall is a BadReturnError", async () => {
    captureSink();
    const { client, conn } = await harness<undefined>(undefined, () => ({ reply: 1 }));
    client.write("x");
    const reason = await within(conn.exited, 2000, "exit");
    expect(reason).toBeInstanceOf(BadReturnError);
    expect((reason as BadReturnError).callback).toBe("handlePacket");
  });

  test("timeout set from handlePacket arms the idle timer (meta.timeout shows it)", async () => {
    const fired = Promise.withResolvers<number>();
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void started.resolve(meta.connection),
        handlePacket: () => ({ timeout: 15 }),
        handleCall: (_r, _f, _s, meta) => ({ reply: meta.timeout }),
        timeout: (_s, meta) => {
          fired.resolve(meta.timeout);
          return { timeout: Number.POSITIVE_INFINITY };
        },
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await started.promise;
    expect(await conn.call("t")).toBe(Number.POSITIVE_INFINITY);
    client.write("arm");
    expect(await within(fired.promise, 1000, "timeout")).toBe(15);
    expect(await conn.call("t")).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("close and stop", () => {
  test("close: true ends with 'normal' after the sends of the same action, whatever the key order", async () => {
    const { client, conn, terminated } = await harness<number>(0, () => ({
      close: true,
      send: "last words",
      state: 42,
    }));
    client.write("bye");
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
    await client.waitForEnd();
    expect(client.text()).toBe("last words");
    expect(terminated).toEqual([{ reason: "normal", state: 42 }]);
  });

  test("close: false is no close", async () => {
    const { client, conn, handled } = await harness<number>(0, (_p, n) => ({ close: false, state: n + 1 }));
    client.write("x");
    await handled(1);
    expect(await conn.call("get")).toBe(1);
  });

  test("stop: reason ends with that reason after state and send were applied", async () => {
    captureSink();
    const reason = { why: "enough" };
    const { client, conn, terminated } = await harness<string>("s0", () => ({
      stop: reason,
      send: "sent first",
      state: "s1",
    }));
    client.write("x");
    expect(await within(conn.exited, 2000, "exit")).toBe(reason);
    await client.waitForEnd();
    expect(client.text()).toBe("sent first");
    expect(terminated).toEqual([{ reason, state: "s1" }]);
  });

  test("stop wins over close in one action", async () => {
    captureSink();
    const { client, conn } = await harness<undefined>(undefined, () => ({ close: true, stop: "stopped" }));
    client.write("x");
    expect(await within(conn.exited, 2000, "exit")).toBe("stopped");
  });

  test("stop: 'normal' is a normal exit (no crash report)", async () => {
    const sink = captureSink();
    const { client, conn } = await harness<undefined>(undefined, () => ({ stop: "normal" }));
    client.write("x");
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
    expect(sink.reports()).toEqual([]);
  });
});

describe("arrays of actions", () => {
  test("are applied in order: sends in sequence, the last state wins", async () => {
    const { client, conn } = await harness<string[]>([], (_p, log) => [
      { send: "a", state: [...log, "1"] },
      undefined,
      { send: ["b", "c"] },
      [{ state: [...log, "1", "2"] }, { send: "d" }],
      {},
      { state: [...log, "1", "2", "3"], send: "e" },
    ]);
    client.write("x");
    await client.waitForText("abcde");
    expect(await conn.call("get")).toEqual(["1", "2", "3"]);
    expect(client.text()).toBe("abcde");
  });

  test("stop at the first element that ends the connection: later elements are not applied", async () => {
    const { client, conn, terminated } = await harness<number>(0, () => [
      { send: "before|", state: 1 },
      { close: true },
      { send: "after", state: 2 },
    ]);
    client.write("x");
    expect(await within(conn.exited, 2000, "exit")).toBe("normal");
    await client.waitForEnd();
    expect(client.text()).toBe("before|");
    expect(terminated).toEqual([{ reason: "normal", state: 1 }]);
  });

  test("each element of an array applies its own fields in the fixed order", async () => {
    const { client, conn } = await harness<number>(0, () => [
      { stop: "done", send: "x", state: 9 },
      { send: "never" },
    ]);
    captureSink();
    client.write("go");
    expect(await within(conn.exited, 2000, "exit")).toBe("done");
    await client.waitForEnd();
    expect(client.text()).toBe("x");
  });
});

describe("bad returns", () => {
  const bad: [string, unknown][] = [
    ['"ok"', "ok"],
    ["42", 42],
    ["null", null],
    ["true", true],
    ["{ foo: 1 }", { foo: 1 }],
    ["{ state: 1, foo: 1 }", { state: 1, foo: 1 }],
    ["{ timeout: -1 }", { timeout: -1 }],
    ['{ timeout: "5" }', { timeout: "5" }],
    ["{ timeout: NaN }", { timeout: Number.NaN }],
    ['{ close: "yes" }', { close: "yes" }],
    ["{ send: 5 }", { send: 5 }],
    ['{ send: ["a", {}] }', { send: ["a", {}] }],
    ['[{ state: 1 }, "ok"]', [{ state: 1 }, "ok"]],
  ];

  test.each(bad)(
    "handlePacket returning %s ends the connection with BadReturnError; terminate gets it; the server lives on",
    async (_label, value) => {
      const sink = captureSink();
      const { client, conn, terminated } = await harness<number>(0, (p, n) =>
        p === "bad" ? (value as Action<number>) : { state: n + 1 },
      );
      client.write("bad");
      const reason = await within(conn.exited, 2000, "exit");
      expect(reason).toBeInstanceOf(BadReturnError);
      const error = reason as BadReturnError;
      expect(error.code).toBe("ERR_BAD_RETURN");
      expect(error.reason).toBe("callback_bad_return_value");
      expect(error.callback).toBe("handlePacket");
      expect(terminated).toHaveLength(1);
      expect(terminated[0]!.reason).toBe(reason);
      expect(sink.reports().join("\n")).toContain("BadReturnError");
      await client.waitForEnd();
    },
  );

  test("the same shapes are refused from every callback (handleCall, handleCast, handleEvent, init)", async () => {
    const sink = captureSink();
    for (const where of ["handleCall", "handleCast", "handleEvent", "init"] as const) {
      const started = Promise.withResolvers<Connection>();
      const server = await startTestServer<undefined, undefined>(
        {
          init(_i, meta) {
            started.resolve(meta.connection);
            return (where === "init" ? { foo: 1 } : undefined) as Action<undefined>;
          },
          handlePacket: () => undefined,
          handleCall: () => "ok" as unknown as Action<undefined>,
          handleCast: () => 42 as unknown as Action<undefined>,
          handleEvent: () => ({ timeout: -1 }),
        },
        undefined,
        { plan: ["delete"] },
      );
      await RawClient.connect(server.port);
      const conn = await started.promise;
      let call: Promise<unknown> | undefined;
      if (where === "handleCall") call = conn.call("x").catch((e: unknown) => e);
      if (where === "handleCast") conn.cast("x");
      if (where === "handleEvent") conn.notify("x");
      const reason = await within(conn.exited, 2000, `${where} exit`);
      expect(reason).toBeInstanceOf(BadReturnError);
      expect((reason as BadReturnError).callback).toBe(where);
      if (call !== undefined) expect((await call) as Error).toHaveProperty("code", "ERR_NOPROC");
      await server.stop();
    }
    sink.restore();
  });

  test("with plan delete, a bad return leaves the server serving other connections", async () => {
    captureSink();
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket: (p) => (packetText(p) === "bad" ? ("ok" as unknown as Action<undefined>) : { send: p }),
      },
      undefined,
      { plan: ["delete"] },
    );
    const a = await RawClient.connect(server.port);
    const b = await RawClient.connect(server.port);
    a.write("bad");
    await a.waitForEnd();
    b.write("still here");
    await b.waitForText("still here");
    const c = await RawClient.connect(server.port);
    c.write("new");
    await c.waitForText("new");
  });
});
