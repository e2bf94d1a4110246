/**
 * Invariant: the public types say what the runtime does, checked by `tsc --noEmit` (these assertions do
 * nothing at run time). `Handler<S, I>` types every callback's state as `S` and the init argument as
 * `I`, so actions carrying a state of another type are compile errors; `startServer` resolves to
 * `Server<S, I> | undefined` (undefined when `listenInit` returns "ignore"); the connection handle,
 * `From`, `Meta`, packets, options and errors have the shapes DESIGN.md documents.
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
  type Server,
  type ServerOptions,
  SockerlError,
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
  test("startServer returns Promise<Server<S, I> | undefined>", () => {
    const handler: Handler<number, string> = { init: () => ({ state: 1 }), handlePacket: () => undefined };
    // Never called: only its inferred type matters (S and I come from the handler).
    const start = () => startServer(handler, "init", 0);
    expectTypeOf<ReturnType<typeof start>>().toEqualTypeOf<Promise<Server<number, string> | undefined>>();
    type Params = Parameters<typeof startServer<number, string>>;
    expectTypeOf<Params[1]>().toEqualTypeOf<string>();
    expectTypeOf<Params[2]>().toEqualTypeOf<number>();
    expectTypeOf<Params[3]>().toEqualTypeOf<ServerOptions | undefined>();
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
    expect([ok, unknown, badPacket, badEncoding]).toHaveLength(4);
  });
});

describe("Connection, From, Meta", () => {
  test("the connection handle has the documented methods", () => {
    expectTypeOf<Connection["id"]>().toEqualTypeOf<number>();
    expectTypeOf<Connection["call"]>().toEqualTypeOf<
      (request: unknown, timeoutMs?: number) => Promise<unknown>
    >();
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
