/**
 * Invariant: the public types say what the runtime does, checked by `tsc --noEmit` (these assertions do
 * nothing at run time). `Handler<S, I, P>` types every callback's state as `S`, the init argument as
 * `I` and the packet as `P`, so actions carrying a state of another type are compile errors; a handler
 * passed to `startServer` as an object literal (or with `satisfies`) also has its actions checked for
 * unknown fields (`sned`), its state inferred from `init`, its packet type from `encoding`; `startServer`
 * resolves to `Server<S, I>`, with `| undefined` only when `listenInit` may return "ignore"; the connection handle,
 * `From`, `Meta`, packets, options and errors have the shapes docs/handlers.md and docs/errors.md document.
 */
import { describe, expect, expectTypeOf, test } from "bun:test";
import {
  type Action,
  type ArgumentError,
  type BadReturnError,
  CallbackError,
  type Connection,
  type ExitReason,
  type From,
  type Handler,
  type ListenInitResult,
  type Meta,
  type OptionError,
  type Outgoing,
  type Packet,
  type Pool,
  type Server,
  type ServerOptions,
  SockerlError,
  startConnector,
  startConnectorPool,
  startServer,
  whereis,
} from "../../src/index.ts";

describe("Handler", () => {
  test("Handler<number> types the state of every callback as number", () => {
    const handler: Handler<number> = {
      init(init, meta) {
        expectTypeOf(init).toEqualTypeOf<unknown>();
        expectTypeOf(meta).toEqualTypeOf<Meta<number>>();
        expectTypeOf(meta.state).toEqualTypeOf<number>();
        return { state: 0 };
      },
      handlePacket(packet, state, meta) {
        expectTypeOf(packet).toEqualTypeOf<Packet>();
        expectTypeOf(state).toEqualTypeOf<number>();
        expectTypeOf(meta.connection).toEqualTypeOf<Connection>();
        return { state: state + 1, send: packet };
      },
      handleCall(request, from, state) {
        expectTypeOf(request).toEqualTypeOf<unknown>();
        expectTypeOf(from).toEqualTypeOf<From>();
        expectTypeOf(state).toEqualTypeOf<number>();
        return { reply: state };
      },
      handleCast: (_message, state) => ({ state: state * 2 }),
      handleEvent: (_event, state) => [{ state }, { send: "x" }],
      handleDisconnect: (state) => (state > 3 ? { stop: "many" } : undefined),
      timeout: async (state) => ({ state, timeout: 1000 }),
      srtimeout: () => undefined,
      terminate(reason, state) {
        expectTypeOf(reason).toEqualTypeOf<ExitReason>();
        expectTypeOf(state).toEqualTypeOf<number>();
      },
      codeChange: (_old, state) => state + 1,
    };
    expect(typeof handler.init).toBe("function");
  });

  test("an action with a state of the wrong type is a compile error", () => {
    const handler: Handler<number> = {
      init: () => ({ state: 0 }),
      // @ts-expect-error state must be a number
      handlePacket: () => ({ state: "not a number" }),
    };
    expect(handler).toBeDefined();
  });

  test("Handler<S, I> types the init argument of init and listenInit", () => {
    const handler: Handler<string[], { prefix: string }> = {
      listenInit(init, listener) {
        expectTypeOf(init).toEqualTypeOf<{ prefix: string }>();
        expectTypeOf(listener.port).toEqualTypeOf<number>();
        return { init: { prefix: `${init.prefix}!` } };
      },
      init: (init) => ({ state: [init.prefix] }),
      handlePacket: () => undefined,
    };
    expectTypeOf(handler.listenInit!).returns.toEqualTypeOf<
      ListenInitResult<{ prefix: string }> | Promise<ListenInitResult<{ prefix: string }>>
    >();
  });

  test("init may return 'ignore'", () => {
    const handler: Handler = { init: () => "ignore", handlePacket: () => undefined };
    expectTypeOf<"ignore">().toMatchTypeOf<ReturnType<Handler["init"]>>();
    // Not caught by the types: `handlePacket: () => "ignore"` type-checks, because a string has a
    // `length` and so matches the all-optional ActionObject (which has a `length` field). The runtime
    // refuses it with BadReturnError (actions.test.ts). A number is caught:
    // @ts-expect-error 42 is not an Action
    const bad: Handler = { init: () => undefined, handlePacket: () => 42 };
    // Callbacks that return nothing (plain or async) are fine.
    const quiet: Handler = { init() {}, async handlePacket() {}, handleDisconnect() {} };
    expect([handler, bad, quiet]).toHaveLength(3);
  });

  test("the default Handler has an undefined state", () => {
    expectTypeOf<Parameters<Handler["handlePacket"]>[1]>().toEqualTypeOf<undefined>();
  });
});

describe("Action", () => {
  test("accepts objects, nested arrays and undefined; fields have their documented types", () => {
    expectTypeOf<undefined>().toMatchTypeOf<Action<number>>();
    expectTypeOf<{ state: 1; send: "x"; close: true }>().toMatchTypeOf<Action<number>>();
    expectTypeOf<[{ send: Uint8Array }, [{ stop: "r" }]]>().toMatchTypeOf<Action<number>>();
    expectTypeOf<{ timeout: "5" }>().not.toMatchTypeOf<Action<number>>();
    expectTypeOf<{ close: "yes" }>().not.toMatchTypeOf<Action<number>>();
    expectTypeOf<{ send: number }>().not.toMatchTypeOf<Action<number>>();
  });

  test("Outgoing is a string, bytes, an ArrayBuffer or an array of them", () => {
    expectTypeOf<string>().toMatchTypeOf<Outgoing>();
    expectTypeOf<Buffer>().toMatchTypeOf<Outgoing>();
    expectTypeOf<DataView>().toMatchTypeOf<Outgoing>();
    expectTypeOf<ArrayBuffer>().toMatchTypeOf<Outgoing>();
    expectTypeOf<(string | Uint8Array)[]>().toMatchTypeOf<Outgoing>();
    expectTypeOf<number>().not.toMatchTypeOf<Outgoing>();
  });

  test("Packet is bytes or a string", () => {
    expectTypeOf<Packet>().toEqualTypeOf<Uint8Array | string>();
  });
});

describe("startServer and Server", () => {
  test("startServer resolves to Server<S, I>, or Server | undefined when listenInit may return 'ignore'", () => {
    // Never called: only the inferred types matter (S and I come from the handler).
    const plain = () => startServer({ init: () => ({ state: 1 }), handlePacket: () => undefined }, "init", 0);
    expectTypeOf<ReturnType<typeof plain>>().toEqualTypeOf<Promise<Server<number, string>>>();
    const keeps = () =>
      startServer(
        {
          listenInit: (init: string) => ({ init: `${init}!` }),
          init: () => undefined,
          handlePacket: () => undefined,
        },
        "init",
        0,
      );
    expectTypeOf<ReturnType<typeof keeps>>().toEqualTypeOf<Promise<Server<undefined, string>>>();
    const ignores = () =>
      startServer(
        {
          listenInit: (): "ignore" | undefined => (Math.random() > 1 ? "ignore" : undefined),
          init: () => undefined,
          handlePacket: () => undefined,
        },
        undefined,
        0,
      );
    expectTypeOf<ReturnType<typeof ignores>>().toEqualTypeOf<
      Promise<Server<undefined, undefined> | undefined>
    >();
    // An annotated handler has an optional listenInit that may ignore: the result may be undefined.
    const handler: Handler<number, string> = { init: () => ({ state: 1 }), handlePacket: () => undefined };
    const annotated = () => startServer(handler, "init", 0);
    expectTypeOf<ReturnType<typeof annotated>>().toEqualTypeOf<Promise<Server<number, string> | undefined>>();
    // A `satisfies` handler keeps its own type: no listenInit, no undefined.
    const satisfying = { init: () => ({ state: 1 }), handlePacket: () => undefined } satisfies Handler<
      number,
      string
    >;
    const checked = () => startServer(satisfying, "init", 0);
    expectTypeOf<ReturnType<typeof checked>>().toEqualTypeOf<Promise<Server<number, string>>>();
    type Params = Parameters<typeof startServer<number, string>>;
    expectTypeOf<Params[1]>().toEqualTypeOf<string>();
    expectTypeOf<Params[2]>().toEqualTypeOf<number>();
  });

  test("an unknown action field is a compile error in an object-literal handler (arrow, method, async, array)", () => {
    const starts = [
      () =>
        startServer(
          {
            init: () => ({ state: 0 }),
            // @ts-expect-error `sned` is not an action field
            handlePacket: (packet, count) => ({ state: count + 1, sned: packet }),
          },
          undefined,
          0,
        ),
      () =>
        startServer(
          {
            init: () => ({ state: 0 }),
            // @ts-expect-error `timout` is not an action field
            handlePacket(_packet, count) {
              return { state: count, timout: 5 };
            },
          },
          undefined,
          0,
        ),
      () =>
        startServer(
          {
            init: () => undefined,
            handlePacket: () => undefined,
            // @ts-expect-error `repl` is not an action field (an element of an action array, async)
            handleCall: async (_request, _from) => [{ send: "x" }, { repl: 1 }],
          },
          undefined,
          0,
        ),
      () =>
        startServer(
          // @ts-expect-error `clsoe` is not an action field
          { init: () => ({ clsoe: true }), handlePacket: () => undefined },
          undefined,
          0,
        ),
    ];
    // The same handlers with the right fields compile, and the state type is inferred from init.
    const ok = () =>
      startServer(
        {
          init: () => ({ state: 0, timeout: 1000 }),
          handlePacket: (packet, count) => ({ state: count + 1, send: packet }),
          handleCall: async (_request, _from, count) => [{ reply: count }, { close: true }],
          timeout: () => ({ stop: "idle" }),
        },
        undefined,
        0,
      );
    expectTypeOf<ReturnType<typeof ok>>().toEqualTypeOf<Promise<Server<number, undefined>>>();
    expect([...starts, ok]).toHaveLength(5);
  });

  test("an unknown action field is a compile error in a `satisfies Handler` handler passed to startServer", () => {
    const typo = {
      init: () => ({ state: 0 }),
      handlePacket: (packet, count) => ({ state: count + 1, sned: packet }),
    } satisfies Handler<number>;
    // @ts-expect-error `sned` is not an action field
    const start = () => startServer(typo, undefined, 0);
    expect(start).toBeDefined();
  });

  test("the handler's packet type follows the encoding option", () => {
    const utf8 = () =>
      startServer(
        {
          init: () => undefined,
          handlePacket: (packet) => {
            expectTypeOf(packet).toEqualTypeOf<string>();
            return { send: packet.toUpperCase() };
          },
        },
        undefined,
        0,
        { encoding: "utf8", packet: "line" },
      );
    const binary = () =>
      startServer(
        {
          init: () => undefined,
          handlePacket: (packet) => {
            expectTypeOf(packet).toEqualTypeOf<Uint8Array>();
            return { send: packet };
          },
        },
        undefined,
        0,
        { hostname: "127.0.0.1" },
      );
    const options: ServerOptions = { encoding: "utf8" };
    const unknownEncoding = () =>
      startServer(
        {
          init: () => undefined,
          handlePacket: (packet) => {
            expectTypeOf(packet).toEqualTypeOf<Packet>();
            return undefined;
          },
        },
        undefined,
        0,
        options,
      );
    // A handler annotated for strings fits a utf8 server.
    const strings: Handler<undefined, unknown, string> = {
      init: () => undefined,
      handlePacket: () => undefined,
    };
    const fine = () => startServer(strings, undefined, 0, { encoding: "utf8" });
    expectTypeOf<Parameters<Handler["handlePacket"]>[0]>().toEqualTypeOf<Packet>();
    expect([utf8, binary, unknownEncoding, fine]).toHaveLength(4);
  });

  test("the server's API has the documented types", () => {
    expectTypeOf<Server["port"]>().toEqualTypeOf<number>();
    expectTypeOf<Server["hostname"]>().toEqualTypeOf<string>();
    expectTypeOf<Server["name"]>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ReturnType<Server["connections"]>>().toEqualTypeOf<
      Array<[id: number, connection: Connection]>
    >();
    expectTypeOf<Server["stop"]>().toEqualTypeOf<(reason?: ExitReason) => Promise<void>>();
    expectTypeOf<Server["exited"]>().toEqualTypeOf<Promise<ExitReason>>();
    expectTypeOf(whereis).returns.toEqualTypeOf<object | undefined>();
  });

  test("ServerOptions rejects unknown keys and ill-typed values at compile time", () => {
    const ok: ServerOptions = { hostname: "127.0.0.1", packet: 4, encoding: "utf8", plan: ["delete"] };
    // @ts-expect-error unknown option
    const unknown: ServerOptions = { bogus: 1 };
    // @ts-expect-error packet 3 is not a framing
    const badPacket: ServerOptions = { packet: 3 };
    // @ts-expect-error encoding is "binary" | "utf8"
    const badEncoding: ServerOptions = { encoding: "latin1" };
    // Passed straight to startServer, an unknown option is a compile error too.
    const start = () =>
      startServer({ init: () => undefined, handlePacket: () => undefined }, undefined, 0, {
        hostname: "x",
        // @ts-expect-error unknown option
        bogus: 1,
      });
    expect([ok, unknown, badPacket, badEncoding, start]).toHaveLength(5);
  });
});

describe("startConnector", () => {
  test("resolves to Connection, or Connection | undefined when init may return 'ignore'", () => {
    const plain = () =>
      startConnector(
        { init: () => ({ state: 0 }), handlePacket: () => undefined },
        undefined,
        "127.0.0.1",
        1,
      );
    expectTypeOf<ReturnType<typeof plain>>().toEqualTypeOf<Promise<Connection>>();
    const ignores = () =>
      startConnector(
        { init: (go: boolean) => (go ? undefined : "ignore"), handlePacket: () => undefined },
        true,
        "127.0.0.1",
        1,
      );
    expectTypeOf<ReturnType<typeof ignores>>().toEqualTypeOf<Promise<Connection | undefined>>();
    const handler: Handler = { init: () => undefined, handlePacket: () => undefined };
    const annotated = () => startConnector(handler, undefined, "127.0.0.1", 1);
    expectTypeOf<ReturnType<typeof annotated>>().toEqualTypeOf<Promise<Connection | undefined>>();
    expect([plain, ignores, annotated]).toHaveLength(3);
  });

  test("checks actions for unknown fields and types packets by encoding", () => {
    const typo = () =>
      startConnector(
        {
          init: () => ({ send: "hello\n" }),
          // @ts-expect-error `stat` is not an action field
          handlePacket: (packet) => ({ stat: packet }),
        },
        undefined,
        "127.0.0.1",
        1,
      );
    const utf8 = () =>
      startConnector(
        {
          init: () => undefined,
          handlePacket: (line) => {
            expectTypeOf(line).toEqualTypeOf<string>();
            return { send: line.trim() };
          },
        },
        undefined,
        "127.0.0.1",
        1,
        { encoding: "utf8", packet: "line" },
      );
    expect([typo, utf8]).toHaveLength(2);
  });
});

describe("startConnectorPool", () => {
  test("infers the state from init, checks actions, types packets by encoding; call<R>() types the reply", () => {
    const pool = () =>
      startConnectorPool(
        {
          init: () => ({ state: [] as string[] }),
          handlePacket: (line, lines) => {
            expectTypeOf(line).toEqualTypeOf<string>();
            return { state: [...lines, line] };
          },
          handleCall: (_request, _from, lines) => ({ reply: lines.length }),
        },
        undefined,
        [["127.0.0.1", 1]],
        { encoding: "utf8", packet: "line" },
      );
    expectTypeOf<ReturnType<typeof pool>>().toEqualTypeOf<Promise<Pool<string[], undefined>>>();
    const count = (p: Pool<string[]>) => p.call<number>("count");
    expectTypeOf<ReturnType<typeof count>>().toEqualTypeOf<Promise<number>>();
    const typo = () =>
      startConnectorPool(
        {
          init: () => undefined,
          // @ts-expect-error `sendd` is not an action field
          handlePacket: (packet) => ({ sendd: packet }),
        },
        undefined,
        [["127.0.0.1", 1]],
      );
    expect([pool, count, typo]).toHaveLength(3);
  });
});

describe("Connection, From, Meta", () => {
  test("the connection handle has the documented methods", () => {
    expectTypeOf<Connection["id"]>().toEqualTypeOf<number>();
    expectTypeOf<Connection["call"]>().toEqualTypeOf<
      <R = unknown>(request: unknown, timeoutMs?: number) => Promise<R>
    >();
    expectTypeOf<ReturnType<Connection["call"]>>().toEqualTypeOf<Promise<unknown>>();
    const typed = (conn: Connection) => conn.call<number>("count");
    expectTypeOf<ReturnType<typeof typed>>().toEqualTypeOf<Promise<number>>();
    expectTypeOf<Connection["cast"]>().toEqualTypeOf<(message: unknown) => void>();
    expectTypeOf<Connection["notify"]>().toEqualTypeOf<(event: unknown) => void>();
    expectTypeOf<Connection["sendSync"]>().toEqualTypeOf<(packet: Outgoing) => Promise<void>>();
    expectTypeOf<Connection["sendAsync"]>().toEqualTypeOf<(packet: Outgoing) => void>();
    expectTypeOf<Connection["stop"]>().toEqualTypeOf<(reason?: ExitReason) => Promise<void>>();
    expectTypeOf<Connection["exited"]>().toEqualTypeOf<Promise<ExitReason>>();
  });

  test("From.reply takes any value and tells whether it was delivered", () => {
    expectTypeOf<From["reply"]>().toEqualTypeOf<(value: unknown) => boolean>();
  });

  test("Meta exposes the documented read-only properties", () => {
    expectTypeOf<Meta<number>["state"]>().toEqualTypeOf<number>();
    expectTypeOf<Meta["remoteAddress"]>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Meta["remotePort"]>().toEqualTypeOf<number | undefined>();
    expectTypeOf<Meta["localPort"]>().toEqualTypeOf<number | undefined>();
    expectTypeOf<Meta["timeout"]>().toEqualTypeOf<number>();
    expectTypeOf<Meta["mode"]>().toEqualTypeOf<"active" | "passive">();
    expectTypeOf<Meta["transport"]>().toEqualTypeOf<string>();
    expectTypeOf<Meta["secure"]>().toEqualTypeOf<boolean>();
    expectTypeOf<Meta["send"]>().toEqualTypeOf<(packet: Outgoing) => void>();
  });
});

describe("errors", () => {
  test("every error extends SockerlError and carries code and reason", () => {
    expectTypeOf<CallbackError>().toMatchTypeOf<SockerlError>();
    expectTypeOf<BadReturnError>().toMatchTypeOf<SockerlError>();
    expectTypeOf<ArgumentError>().toMatchTypeOf<OptionError>();
    expectTypeOf<SockerlError["code"]>().toEqualTypeOf<string>();
    expectTypeOf<SockerlError["reason"]>().toEqualTypeOf<unknown>();
    expectTypeOf<OptionError["option"]>().toEqualTypeOf<string>();
    expectTypeOf<CallbackError["callback"]>().toEqualTypeOf<string>();
    expect(new CallbackError("init", new Error("x"))).toBeInstanceOf(SockerlError);
  });
});
