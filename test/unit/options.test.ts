/**
 * Invariant: every start option is validated when the server starts, before anything is bound. An
 * unknown option or an ill-typed value rejects `startServer` with an OptionError (`code` ERR_OPTION)
 * that names the option, the rule and the value, in the form
 * ``Expected `acceptorCount` to be a positive integer, got `"foo"` (string)``; a bad handler or port
 * argument is an ArgumentError (`code` ERR_ARGUMENT). Valid options take effect: `encoding: "utf8"`
 * delivers packets as strings (multi-byte characters split across reads included), and `meta.options`
 * shows the options the server was started with.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  ArgumentError,
  type Handler,
  OptionError,
  type Packet,
  type ServerOptions,
  startServer,
  tcp,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer, track } from "../helpers/server.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

const handler: Handler<undefined, undefined> = {
  init: () => undefined,
  handlePacket: () => undefined,
};

/** Starts a server with `options` and returns what it rejected with (fails if it started). */
async function startError(options: unknown, h: unknown = handler, ...portArg: unknown[]): Promise<unknown> {
  const port = portArg.length === 0 ? 0 : portArg[0];
  try {
    const server = await startServer(h as Handler<undefined, undefined>, undefined, port as number, {
      hostname: "127.0.0.1",
      ...(options as ServerOptions),
    });
    if (server !== undefined) track(server);
  } catch (error) {
    return error;
  }
  throw new Error(`startServer accepted ${Bun.inspect(options)}`);
}

describe("unknown options", () => {
  test.each(["bogus", "acceptor_count", "timeout", "port"])(
    "%s is refused with an OptionError naming it",
    async (key) => {
      const error = await startError({ [key]: 1 });
      expect(error).toBeInstanceOf(OptionError);
      const e = error as OptionError;
      expect(e.code).toBe("ERR_OPTION");
      expect(e.option).toBe(key);
      expect(e.value).toBe(1);
      expect(e.message).toContain(`\`${key}\``);
    },
  );

  test("options that are not an object are refused", async () => {
    for (const bad of [null, 5, "x", []]) {
      const error = await startServer(handler, undefined, 0, bad as unknown as ServerOptions).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).option).toBe("options");
    }
  });
});

describe("ill-typed options", () => {
  const cases: [option: string, value: unknown][] = [
    ["acceptorCount", "foo"],
    ["acceptorCount", 0],
    ["acceptorCount", 1.5],
    ["acceptorCount", -1],
    ["mode", "x"],
    ["packet", 3],
    ["packet", "lines"],
    ["encoding", "latin1"],
    ["maxPacketSize", -1],
    ["maxPacketSize", 0],
    ["maxPacketSize", "1"],
    ["highWaterMark", "1"],
    ["highWaterMark", -5],
    ["hostname", 5],
    ["hostname", ""],
    ["name", 5],
    ["plan", "x"],
    ["plan", ["bogus"]],
    ["planCount", -1],
    ["planCount", 1.5],
    ["connectorDebug", ["bogus"]],
    ["connectorDebug", "trace"],
    ["acceptorDebug", ["bogus"]],
    ["acceptorMode", "zzz"],
    ["transport", {}],
    ["transport", "tcp"],
    ["noDelay", "yes"],
    ["keepAlive", -1],
    ["maxConnections", 0],
    ["sendTimeout", -1],
    ["handshakeTimeout", "1s"],
    ["closeTimeout", Number.NaN],
  ];

  test.each(cases)(
    "%s = %p is refused with an OptionError naming the option, the rule and the value",
    async (option, value) => {
      const error = await startError({ [option]: value });
      expect(error).toBeInstanceOf(OptionError);
      const e = error as OptionError;
      expect(e.code).toBe("ERR_OPTION");
      expect(e.option.startsWith(option)).toBe(true); // "plan" or "plan[0]"
      expect(e.rule.length).toBeGreaterThan(0);
      expect(e.message).toStartWith(`Expected \`${e.option}\` to be ${e.rule}, got `);
    },
  );

  test("the message names the option, the rule and the value with its type", async () => {
    const error = (await startError({ acceptorCount: "foo" })) as OptionError;
    expect(error.message).toBe('Expected `acceptorCount` to be a positive integer, got `"foo"` (string)');
    expect(error.value).toBe("foo");
    expect(error.rule).toBe("a positive integer");
    const other = (await startError({ highWaterMark: "1" })) as OptionError;
    expect(other.message).toEndWith('got `"1"` (string)');
    const array = (await startError({ connectorDebug: ["bogus"] })) as OptionError;
    expect(array.message).toEndWith('got `["bogus"]` (array)');
  });

  test("a bad option is refused before anything is bound or registered", async () => {
    const error = await startError({ name: "options-test-unbound", packet: 3 });
    expect(error).toBeInstanceOf(OptionError);
    // The name is still free.
    const server = await startTestServer(handler, undefined, { name: "options-test-unbound" });
    expect(server.name).toBe("options-test-unbound");
  });
});

describe("valid options", () => {
  test("every documented option with a valid value is accepted", async () => {
    const server = await startTestServer(handler, undefined, {
      name: "options-test-all",
      acceptorCount: 2,
      acceptorMode: "accept",
      acceptorDebug: [],
      connectorDebug: [],
      plan: ["delete"],
      planCount: 3,
      transport: tcp(),
      mode: "active",
      packet: "line",
      encoding: "binary",
      maxPacketSize: 1024,
      highWaterMark: Number.POSITIVE_INFINITY,
      noDelay: false,
      keepAlive: 1000,
      maxConnections: 10,
      sendTimeout: Number.POSITIVE_INFINITY,
      handshakeTimeout: 1000,
      closeTimeout: 100,
    });
    expect(server.port).toBeGreaterThan(0);
    expect(server.acceptors()).toEqual([
      [1, "accept"],
      [2, "accept"],
    ]);
  });

  test("meta.options shows the options the server was started with", async () => {
    const seen = Promise.withResolvers<Readonly<Record<string, unknown>>>();
    const server = await startTestServer<undefined, undefined>(
      { init: (_i, meta) => void seen.resolve(meta.options), handlePacket: () => undefined },
      undefined,
      { packet: 2, highWaterMark: 4096 },
    );
    await RawClient.connect(server.port);
    const options = await within(seen.promise, 2000, "init");
    expect(options).toMatchObject({ hostname: "127.0.0.1", packet: 2, highWaterMark: 4096 });
  });

  test('encoding: "utf8" delivers strings, even when a character is split across reads', async () => {
    const got: Packet[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          got.push(packet);
          return { send: "." };
        },
      },
      undefined,
      { encoding: "utf8" },
    );
    const client = await RawClient.connect(server.port);
    const bytes = Buffer.from("héllo €uro");
    const cut = bytes.indexOf(0xe2) + 1; // inside the 3-byte "€"
    client.write(bytes.subarray(0, cut));
    await client.waitForBytes(1);
    client.write(bytes.subarray(cut));
    await client.waitForBytes(2);
    expect(got.every((p) => typeof p === "string")).toBe(true);
    expect(got.join("")).toBe("héllo €uro");
  });

  test('encoding: "utf8" with packet: "line" delivers each line as a string', async () => {
    const got: Packet[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          got.push(packet);
          return undefined;
        },
        handleCall: () => ({ reply: got.length }),
      },
      undefined,
      { encoding: "utf8", packet: "line" },
    );
    const client = await RawClient.connect(server.port);
    client.write("ünïcödé\nsecond line\nthi");
    client.write("rd\n");
    await waitFor(() => got.length === 3, 2000, "three lines");
    expect(got).toEqual(["ünïcödé\n", "second line\n", "third\n"]);
  });
});

describe("arguments", () => {
  const noop = (): undefined => undefined;
  const badHandlers: [string, unknown][] = [
    ["null", null],
    ["a string", "handler"],
    ["an object without init", { handlePacket: noop }],
    ["an object without handlePacket", { init: noop }],
    ["init that is not a function", { init: 1, handlePacket: noop }],
    ["handleCall that is not a function", { init: noop, handlePacket: noop, handleCall: 5 }],
    ["terminate that is not a function", { init: noop, handlePacket: noop, terminate: "x" }],
  ];
  test.each(badHandlers)("a handler that is %s is refused with ArgumentError", async (_label, bad) => {
    const error = await startError({}, bad);
    expect(error).toBeInstanceOf(ArgumentError);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as ArgumentError).code).toBe("ERR_ARGUMENT");
    expect((error as ArgumentError).option).toStartWith("handler");
  });

  test.each([
    ["-1", -1],
    ["65536", 65536],
    ["1.5", 1.5],
    ['"8080"', "8080"],
    ["undefined", undefined],
    ["NaN", Number.NaN],
  ])("port %s is refused with ArgumentError", async (_label, port) => {
    const error = await startError({}, handler, port);
    expect(error).toBeInstanceOf(ArgumentError);
    expect((error as ArgumentError).code).toBe("ERR_ARGUMENT");
    expect((error as ArgumentError).option).toBe("port");
    expect((error as ArgumentError).message).toStartWith(
      "Expected `port` to be an integer from 0 to 65535, got ",
    );
  });
});
