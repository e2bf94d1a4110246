/**
 * Invariant: bad input is refused at the door with a typed error, and never takes anything down. Every
 * public function given a wrong type or an out-of-range value throws (synchronous functions) or
 * rejects (async ones) an `ArgumentError` (`code` "ERR_ARGUMENT") or `OptionError` ("ERR_OPTION") whose
 * `option` names the argument or option; a bad packet given to `sendSync`/`sendAsync` is the caller's
 * error and leaves the connection running. On the wire, random and adversarial byte streams split at
 * random points, in every framing mode, active and passive, never crash the server: valid frames are
 * reassembled exactly, and a stream that breaks the framing ends only its own connection.
 */
import { afterEach, describe, expect, test } from "bun:test";
import * as sockerl from "../../src/index.ts";
import {
  ArgumentError,
  FrameTooLargeError,
  type Handler,
  NoProcError,
  OptionError,
  type PacketFraming,
  type ReceiveMode,
  type Server,
  startConnector,
  startConnectorPool,
  startServer,
  sys,
  tcp,
  tls,
  unix,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer, track, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

// biome-ignore lint/suspicious/noExplicitAny: feeding wrong types on purpose
type Any = any;
const bad = (value: unknown): Any => value;

const handler: Handler<undefined, undefined> = {
  init: () => undefined,
  handlePacket: (packet) => ({ send: packet }),
  handleCall: () => ({ reply: "ok" }),
};

/** Asserts `fn()` throws or rejects with `kind` whose `option` is `option`. */
async function refuses(
  fn: () => unknown,
  kind: typeof ArgumentError | typeof OptionError | typeof NoProcError,
  option?: string,
): Promise<void> {
  let error: unknown;
  try {
    const result = fn();
    if (result instanceof Promise) {
      error = await result.then(
        (value) => {
          if (value !== null && typeof value === "object" && "stop" in value) void (value as Server).stop();
          return new Error(`resolved instead of refusing: ${String(value)}`);
        },
        (e: unknown) => e,
      );
    } else error = new Error("returned instead of throwing");
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(kind);
  if (kind === ArgumentError) expect((error as ArgumentError).code).toBe("ERR_ARGUMENT");
  else if (kind === OptionError) expect((error as OptionError).code).toBe("ERR_OPTION");
  if (option !== undefined) expect((error as OptionError).option).toBe(option);
}

// -------------------------------------------------------------------------------- start functions

describe("startServer", () => {
  const cases: Array<[string, () => unknown, typeof ArgumentError | typeof OptionError, string]> = [
    ["handler null", () => startServer(bad(null), 0, 0), ArgumentError, "handler"],
    [
      "handler without handlePacket",
      () => startServer(bad({ init() {} }), 0, 0),
      ArgumentError,
      "handler.handlePacket",
    ],
    [
      "handler.init not a function",
      () => startServer(bad({ init: 5, handlePacket() {} }), 0, 0),
      ArgumentError,
      "handler.init",
    ],
    [
      "handler.terminate not a function",
      () => startServer(bad({ ...handler, terminate: "x" }), 0, 0),
      ArgumentError,
      "handler.terminate",
    ],
    ["port -1", () => startServer(handler, undefined, -1), ArgumentError, "port"],
    ["port 65536", () => startServer(handler, undefined, 65536), ArgumentError, "port"],
    ["port 1.5", () => startServer(handler, undefined, 1.5), ArgumentError, "port"],
    ["port '80'", () => startServer(handler, undefined, bad("80")), ArgumentError, "port"],
    ["port NaN", () => startServer(handler, undefined, Number.NaN), ArgumentError, "port"],
    ["options 5", () => startServer(handler, undefined, 0, bad(5)), ArgumentError, "options"],
    ["options []", () => startServer(handler, undefined, 0, bad([])), ArgumentError, "options"],
    ["unknown option", () => startServer(handler, undefined, 0, bad({ backlog: 5 })), OptionError, "backlog"],
    ["hostname 5", () => startServer(handler, undefined, 0, bad({ hostname: 5 })), OptionError, "hostname"],
    [
      "acceptorCount 0",
      () => startServer(handler, undefined, 0, { acceptorCount: 0 }),
      OptionError,
      "acceptorCount",
    ],
    [
      "acceptorMode 'nap'",
      () => startServer(handler, undefined, 0, bad({ acceptorMode: "nap" })),
      OptionError,
      "acceptorMode",
    ],
    [
      "maxConnections -1",
      () => startServer(handler, undefined, 0, { maxConnections: -1 }),
      OptionError,
      "maxConnections",
    ],
    [
      "maxConnections 2.5",
      () => startServer(handler, undefined, 0, { maxConnections: 2.5 }),
      OptionError,
      "maxConnections",
    ],
    [
      "maxPacketSize 0",
      () => startServer(handler, undefined, 0, { maxPacketSize: 0 }),
      OptionError,
      "maxPacketSize",
    ],
    [
      "highWaterMark '1MB'",
      () => startServer(handler, undefined, 0, bad({ highWaterMark: "1MB" })),
      OptionError,
      "highWaterMark",
    ],
    [
      "sendTimeout -5",
      () => startServer(handler, undefined, 0, { sendTimeout: -5 }),
      OptionError,
      "sendTimeout",
    ],
    [
      "handshakeTimeout NaN",
      () => startServer(handler, undefined, 0, { handshakeTimeout: Number.NaN }),
      OptionError,
      "handshakeTimeout",
    ],
    [
      "closeTimeout '1s'",
      () => startServer(handler, undefined, 0, bad({ closeTimeout: "1s" })),
      OptionError,
      "closeTimeout",
    ],
    ["packet 3", () => startServer(handler, undefined, 0, bad({ packet: 3 })), OptionError, "packet"],
    ["mode 'once'", () => startServer(handler, undefined, 0, bad({ mode: "once" })), OptionError, "mode"],
    [
      "encoding 'latin1'",
      () => startServer(handler, undefined, 0, bad({ encoding: "latin1" })),
      OptionError,
      "encoding",
    ],
    ["noDelay 1", () => startServer(handler, undefined, 0, bad({ noDelay: 1 })), OptionError, "noDelay"],
    ["keepAlive -1", () => startServer(handler, undefined, 0, { keepAlive: -1 }), OptionError, "keepAlive"],
    ["plan 5", () => startServer(handler, undefined, 0, bad({ plan: 5 })), OptionError, "plan"],
    ["planCount -1", () => startServer(handler, undefined, 0, { planCount: -1 }), OptionError, "planCount"],
    [
      "planCount 'many'",
      () => startServer(handler, undefined, 0, bad({ planCount: "many" })),
      OptionError,
      "planCount",
    ],
    [
      "acceptorDebug 'trace'",
      () => startServer(handler, undefined, 0, bad({ acceptorDebug: "trace" })),
      OptionError,
      "acceptorDebug",
    ],
    [
      "connectorDebug ['loud']",
      () => startServer(handler, undefined, 0, bad({ connectorDebug: ["loud"] })),
      OptionError,
      "connectorDebug",
    ],
    [
      "transport {}",
      () => startServer(handler, undefined, 0, bad({ transport: {} })),
      OptionError,
      "transport",
    ],
    ["name ''", () => startServer(handler, undefined, 0, { name: "" }), OptionError, "name"],
  ];
  test.each(cases)("%s is refused naming it", async (_name, fn, kind, option) => {
    await refuses(fn, kind, option);
  });
});

describe("startConnector", () => {
  const cases: Array<[string, () => unknown, typeof ArgumentError | typeof OptionError, string]> = [
    ["handler undefined", () => startConnector(bad(undefined), 0, "127.0.0.1", 1), ArgumentError, "handler"],
    ["host 5", () => startConnector(handler, undefined, bad(5), 1), ArgumentError, "host"],
    ["host ''", () => startConnector(handler, undefined, "", 1), ArgumentError, "host"],
    ["port 70000", () => startConnector(handler, undefined, "127.0.0.1", 70000), ArgumentError, "port"],
    ["port null", () => startConnector(handler, undefined, "127.0.0.1", bad(null)), ArgumentError, "port"],
    [
      "options 'x'",
      () => startConnector(handler, undefined, "127.0.0.1", 1, bad("x")),
      ArgumentError,
      "options",
    ],
    [
      "unknown option",
      () => startConnector(handler, undefined, "127.0.0.1", 1, bad({ retries: 3 })),
      OptionError,
      "retries",
    ],
    [
      "server-only option",
      () => startConnector(handler, undefined, "127.0.0.1", 1, bad({ acceptorCount: 2 })),
      OptionError,
      "acceptorCount",
    ],
    [
      "connectTimeout -1",
      () => startConnector(handler, undefined, "127.0.0.1", 1, { connectTimeout: -1 }),
      OptionError,
      "connectTimeout",
    ],
    [
      "name 5",
      () => startConnector(handler, undefined, "127.0.0.1", 1, bad({ name: 5 })),
      OptionError,
      "name",
    ],
  ];
  test.each(cases)("%s is refused naming it", async (_name, fn, kind, option) => {
    await refuses(fn, kind, option);
  });
});

describe("startConnectorPool", () => {
  const cases: Array<[string, () => unknown, typeof ArgumentError | typeof OptionError, string]> = [
    ["handler 5", () => startConnectorPool(bad(5), 0, [["127.0.0.1", 1]]), ArgumentError, "handler"],
    ["addresses 'x'", () => startConnectorPool(handler, undefined, bad("x")), ArgumentError, "addresses"],
    [
      "addresses [[host]]",
      () => startConnectorPool(handler, undefined, bad([["127.0.0.1"]])),
      ArgumentError,
      "addresses[0]",
    ],
    ["addresses [5]", () => startConnectorPool(handler, undefined, bad([5])), ArgumentError, "addresses[0]"],
    [
      "an address with a bad port",
      () => startConnectorPool(handler, undefined, bad([["127.0.0.1", "80"]])),
      ArgumentError,
      "port",
    ],
    [
      "an address with a bad host",
      () => startConnectorPool(handler, undefined, bad([[null, 80]])),
      ArgumentError,
      "host",
    ],
    [
      "connectorCount 0",
      () => startConnectorPool(handler, undefined, [["127.0.0.1", 1]], { connectorCount: 0 }),
      OptionError,
      "connectorCount",
    ],
    [
      "watchdog 'yes'",
      () => startConnectorPool(handler, undefined, [["127.0.0.1", 1]], bad({ watchdog: "yes" })),
      OptionError,
      "watchdog",
    ],
    [
      "plan [5]",
      () => startConnectorPool(handler, undefined, [["127.0.0.1", 1]], bad({ plan: [5] })),
      OptionError,
      "plan[0]",
    ],
    [
      "options null",
      () => startConnectorPool(handler, undefined, [["127.0.0.1", 1]], bad(null)),
      ArgumentError,
      "options",
    ],
  ];
  test.each(cases)("%s is refused naming it", async (_name, fn, kind, option) => {
    await refuses(fn, kind, option);
  });
});

// ------------------------------------------------------------------- handles, module functions

/** A server, a connector to it and a pool, for the handle and module-function cases. */
async function fixtures() {
  const server = await startTestServer(handler, undefined);
  const conn = trackStop((await startConnector(handler, undefined, "127.0.0.1", server.port))!);
  const pool = trackStop(await startConnectorPool(handler, undefined, [["127.0.0.1", server.port]]));
  return { server, conn, pool };
}

describe("module functions (api.ts)", () => {
  test("a target that is neither a handle nor a name is an ArgumentError naming the kind; an unknown name is a NoProcError", async () => {
    const { server, conn, pool } = await fixtures();
    const s = sockerl;
    await refuses(() => s.sendSync(bad(5), "x"), ArgumentError, "connection");
    await refuses(() => s.sendAsync(bad({}), "x"), ArgumentError, "connection");
    await refuses(() => s.stopConnector(bad(null)), ArgumentError, "connection");
    await refuses(() => s.stopConnector(bad(server)), ArgumentError, "connection");
    await refuses(() => s.getServerConnections(bad(5)), ArgumentError, "server");
    await refuses(() => s.getServerConnections(bad(pool)), ArgumentError, "server");
    await refuses(() => s.getPoolConnections(bad(server)), ArgumentError, "pool");
    await refuses(() => s.stopServer(bad(conn)), ArgumentError, "server");
    await refuses(() => s.stopPool(bad(undefined)), ArgumentError, "pool");
    await refuses(() => s.sleepAcceptors(bad(1)), ArgumentError, "server");
    await refuses(() => s.wakeupAcceptors(bad(1)), ArgumentError, "server");
    await refuses(() => s.getAcceptorModes(bad(1)), ArgumentError, "server");
    await refuses(() => s.getAcceptors(bad(1)), ArgumentError, "server");
    await refuses(() => s.changeAcceptorModes(bad(1)), ArgumentError, "server");
    await refuses(() => s.addConnector(bad(1), "127.0.0.1", 1), ArgumentError, "pool");
    await refuses(() => s.whereis(bad(1)), ArgumentError, "name");
    await refuses(() => s.sendSync("no such name", "x"), NoProcError);
    await refuses(() => s.getAcceptors("no such name"), NoProcError);
  });

  test("bad packets and addresses are refused naming them, and the connection lives on", async () => {
    const { conn, pool } = await fixtures();
    await refuses(() => sockerl.sendSync(conn, bad(5)), ArgumentError, "packet");
    await refuses(() => sockerl.sendAsync(conn, bad({ text: "x" })), ArgumentError, "packet");
    await refuses(() => sockerl.addConnector(pool, bad(5), 1), ArgumentError, "host");
    await refuses(() => sockerl.addConnector(pool, "127.0.0.1", -1), ArgumentError, "port");
    expect(await conn.call("alive?")).toBe("ok");
  });
});

describe("connection handle", () => {
  test("call with a bad timeout, sendSync/sendAsync with a bad packet: ArgumentError naming it; the connection is unaffected", async () => {
    const { conn } = await fixtures();
    await refuses(() => conn.call("q", -1), ArgumentError, "timeoutMs");
    await refuses(() => conn.call("q", bad("1000")), ArgumentError, "timeoutMs");
    await refuses(() => conn.call("q", Number.NaN), ArgumentError, "timeoutMs");
    await refuses(() => conn.sendSync(bad(42)), ArgumentError, "packet");
    await refuses(() => conn.sendSync(bad([Buffer.from("ok"), 42])), ArgumentError, "packet");
    await refuses(() => conn.sendSync(bad(null)), ArgumentError, "packet");
    await refuses(() => conn.sendAsync(bad(undefined)), ArgumentError, "packet");
    await refuses(() => conn.sendAsync(bad([["nested"]])), ArgumentError, "packet");
    // Every accepted form still works.
    await conn.sendSync([
      "a",
      Buffer.from("b"),
      new Uint8Array([99]),
      new ArrayBuffer(1),
      new Uint16Array(1),
    ]);
    conn.sendAsync("e");
    expect(await conn.call("alive?")).toBe("ok");
    expect(await conn.call("alive?", Number.POSITIVE_INFINITY)).toBe("ok");
  });

  test("cast, notify and stop accept any message or reason (Erlang terms): no type to get wrong", async () => {
    const reasons: unknown[] = [];
    const server = await startTestServer<undefined, undefined>(
      { ...handler, handleCast: () => undefined, handleEvent: () => undefined },
      undefined,
    );
    const conn = (await startConnector(
      {
        ...handler,
        handleCast: () => undefined,
        handleEvent: () => undefined,
        terminate: (reason) => void reasons.push(reason),
      },
      undefined,
      "127.0.0.1",
      server.port,
    ))!;
    for (const value of [undefined, null, 0, Symbol("s"), () => 1, { deep: [1, { x: 2n }] }]) {
      conn.cast(value);
      conn.notify(value);
    }
    expect(await conn.call("alive?")).toBe("ok");
    const reason = { why: ["any", 1] };
    captureSink(); // an abnormal reason prints a report
    await conn.stop(reason);
    expect(reasons).toEqual([reason]);
    // A stopped connection: NoProcError for calls, nothing thrown for cast/notify/stop.
    await refuses(() => conn.call("q"), NoProcError);
    expect(() => conn.cast("late")).not.toThrow();
    expect(await conn.stop()).toBeUndefined();
  });
});

describe("server and pool methods", () => {
  test("stop({ drainMs }) with a bad drainMs is refused naming it, and the server or pool keeps running", async () => {
    const { server, pool } = await fixtures();
    await refuses(() => server.stop({ drainMs: -1 }), ArgumentError, "drainMs");
    await refuses(() => server.stop(bad({ drainMs: "soon" })), ArgumentError, "drainMs");
    await refuses(() => pool.stop({ drainMs: Number.NaN }), ArgumentError, "drainMs");
    const client = await RawClient.connect(server.port);
    client.write("still serving");
    await client.waitForText("still serving");
    expect(pool.connections().length).toBe(1);
  });

  test("pool.addConnector with a bad host or port is refused naming it", async () => {
    const { pool } = await fixtures();
    await refuses(() => pool.addConnector(bad(undefined), 1), ArgumentError, "host");
    await refuses(() => pool.addConnector("127.0.0.1", bad("1")), ArgumentError, "port");
    expect(pool.connections().length).toBe(1);
  });
});

describe("transports", () => {
  test("tcp() refuses options that are not an object, unknown keys and a non-boolean ipv6Only", async () => {
    await refuses(() => tcp(bad(null)), ArgumentError, "options");
    await refuses(() => tcp(bad(5)), ArgumentError, "options");
    await refuses(() => tcp(bad({ backlog: 1 })), OptionError, "backlog");
    await refuses(() => tcp(bad({ ipv6Only: "yes" })), OptionError, "ipv6Only");
    expect(tcp({ ipv6Only: true }).name).toBe("tcp");
  });

  test("tls() refuses bad options naming them", async () => {
    await refuses(() => tls(bad(5)), OptionError);
    await refuses(() => tls(bad({ certificate: "x" })), OptionError, "certificate");
    await refuses(() => tls(bad({ rejectUnauthorized: "no" })), OptionError, "rejectUnauthorized");
    await refuses(() => tls(bad({ alpn: "h2" })), OptionError, "alpn");
    await refuses(() => tls(bad({ cert: 5, key: 5 })), OptionError, "cert");
    await refuses(() => tls(bad({ caFile: "/no/such/file.pem" })), OptionError, "caFile");
  });

  test("unix() refuses a path that is not a non-empty string", async () => {
    await refuses(() => unix(bad(5)), OptionError, "path");
    await refuses(() => unix(""), OptionError, "path");
  });
});

describe("sys", () => {
  test("bad targets and arguments are refused naming them", async () => {
    const { server, conn } = await fixtures();
    await refuses(() => sys.trace(bad(5), true), ArgumentError, "target");
    await refuses(() => sys.trace(conn, bad("on")), ArgumentError, "on");
    await refuses(() => sys.log(server, bad(1)), ArgumentError, "on");
    await refuses(() => sys.statistics(conn, bad("yes")), ArgumentError, "on");
    await refuses(() => sys.getLog(bad(null)), ArgumentError, "target");
    await refuses(() => sys.getState(bad(5)), ArgumentError, "target");
    await refuses(() => sys.getState(bad(server)), ArgumentError, "target");
    await refuses(() => sys.replaceState(conn, bad(5)), ArgumentError, "fn");
    await refuses(() => sys.suspend(bad({})), ArgumentError, "target");
    await refuses(() => sys.resume(bad(server)), ArgumentError, "target");
    await refuses(() => sys.changeCode(conn, bad({})), ArgumentError, "handler.init");
    await refuses(() => sys.setSink(bad("stderr")), ArgumentError, "sink");
    await refuses(() => sys.statistics(bad({ server, acceptor: "one" })), ArgumentError, "acceptor");
    await refuses(() => sys.trace("no such name", true), NoProcError);
    expect(await conn.call("alive?")).toBe("ok");
  });
});

describe("backoff", () => {
  test("bad options are refused naming them", async () => {
    await refuses(() => sockerl.backoff(bad({ initialMs: -1 })), OptionError, "backoff.initialMs");
    await refuses(() => sockerl.backoff(bad({ factor: 0.5 })), OptionError, "backoff.factor");
    await refuses(() => sockerl.backoff(bad({ jitter: 2 })), OptionError, "backoff.jitter");
    await refuses(() => sockerl.backoff(bad({ initalMs: 100 })), OptionError, "backoff.initalMs");
  });
});

describe("scaling out: cluster and the PROXY protocol", () => {
  test("bad arguments are refused naming them", async () => {
    await refuses(() => sockerl.cluster(bad({ workers: 0 }), () => undefined), OptionError, "workers");
    await refuses(() => sockerl.cluster({}, bad("main")), ArgumentError, "main");
    await refuses(() => sockerl.encodeProxyHeader(bad({ version: 3 })), ArgumentError, "version");
    await refuses(() => sockerl.parseProxyHeader(bad("PROXY")), ArgumentError, "bytes");
    await refuses(() => sockerl.proxyOptions(bad({ timeoutMs: -1 })), OptionError, "proxyProtocol.timeoutMs");
    await refuses(
      () => sockerl.proxyTransport(bad({}), sockerl.proxyOptions(true)!, () => {}),
      ArgumentError,
      "inner",
    );
    await refuses(() => sockerl.proxyTransport(sockerl.tcp(), bad({}), () => {}), ArgumentError, "options");
    await refuses(
      () => sockerl.proxyTransport(sockerl.tcp(), sockerl.proxyOptions(true)!, bad(1)),
      ArgumentError,
      "onReject",
    );
    await refuses(() => sockerl.proxyConnectTransport(sockerl.tcp(), bad("PROXY")), ArgumentError, "header");
  });
});

describe("coverage of the public surface", () => {
  test("every function exported by src/index.ts is exercised above", () => {
    const covered = new Set([
      "startServer",
      "startConnector",
      "startConnectorPool",
      "sendSync",
      "sendAsync",
      "stopConnector",
      "getServerConnections",
      "getPoolConnections",
      "stopServer",
      "stopPool",
      "sleepAcceptors",
      "wakeupAcceptors",
      "getAcceptorModes",
      "getAcceptors",
      "changeAcceptorModes",
      "addConnector",
      "whereis",
      "tcp",
      "tls",
      "unix",
      "backoff",
      "cluster",
      "encodeProxyHeader",
      "parseProxyHeader",
      "proxyOptions",
      "proxyTransport",
      "proxyConnectTransport",
      // Take no argument a caller could get wrong: any value is an answer.
      "runningServers",
      "isPeerFault",
      "workerId",
      "proxyHeaderOf",
    ]);
    const functions = Object.entries(sockerl)
      .filter(
        ([, value]) =>
          typeof value === "function" && !/^class\b/.test(Function.prototype.toString.call(value)),
      )
      .map(([name]) => name);
    expect(functions.filter((name) => !covered.has(name))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------- socket-level fuzz

/** mulberry32: a small seeded PRNG, so a failure can be replayed (the seed is in the test name). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FUZZ_MAX = 4096;
const FULL = process.env.FULL !== undefined && process.env.FULL !== "" && process.env.FULL !== "0";
const SEEDS = FULL ? Array.from({ length: 20 }, (_, i) => 1000 + i) : [1, 2];

function randomBytes(rand: () => number, n: number, avoid?: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let b = Math.floor(rand() * 256);
    if (b === avoid) b = (b + 1) & 0xff;
    bytes[i] = b;
  }
  return bytes;
}

function encode(framing: Exclude<PacketFraming, object>, payload: Uint8Array): Uint8Array {
  if (framing === "raw") return payload;
  if (framing === "line") return Buffer.concat([payload, Buffer.from("\n")]);
  const head = Buffer.alloc(framing);
  head.writeUIntBE(payload.length, 0, framing);
  return Buffer.concat([head, payload]);
}

/** Writes `stream` in pieces cut at random points, letting the event loop turn between some. */
async function writeSplit(client: RawClient, stream: Uint8Array, rand: () => number): Promise<void> {
  let at = 0;
  while (at < stream.length) {
    const n = 1 + Math.floor(rand() * Math.min(stream.length - at, rand() < 0.5 ? 8 : 2048));
    client.write(stream.subarray(at, at + n));
    at += n;
    if (rand() < 0.2) await new Promise((resolve) => setImmediate(resolve));
  }
}

const FRAMINGS: Exclude<PacketFraming, object>[] = ["raw", 1, 2, 4, "line"];
const MODES: ReceiveMode[] = ["active", "passive"];

describe.each(MODES)("socket-level fuzz, %s mode", (mode) => {
  async function fuzzServer(framing: Exclude<PacketFraming, object>) {
    let packets = 0;
    const exits: unknown[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          packets++;
          return { send: packet };
        },
        terminate: (reason) => void exits.push(reason),
      },
      undefined,
      { packet: framing, mode, maxPacketSize: FUZZ_MAX, plan: ["delete"] },
    );
    return { server, packets: () => packets, exits };
  }

  test.each(FRAMINGS.flatMap((f) => SEEDS.map((seed) => [f, seed] as const)))(
    "packet %p, seed %p: 200 valid random frames split at random points are reassembled exactly",
    async (framing, seed) => {
      const rand = prng(seed);
      const { server, packets } = await fuzzServer(framing);
      const limit = framing === 1 ? 255 : framing === "line" ? FUZZ_MAX - 1 : FUZZ_MAX;
      const frames: Uint8Array[] = [];
      for (let i = 0; i < 200; i++) {
        const size = rand() < 0.1 ? (rand() < 0.5 ? 0 : limit) : Math.floor(rand() * Math.min(limit, 600));
        frames.push(encode(framing, randomBytes(rand, size, framing === "line" ? 0x0a : undefined)));
      }
      const stream = Buffer.concat(frames);
      const client = await RawClient.connect(server.port);
      await writeSplit(client, stream, rand);
      await client.waitForBytes(stream.length, 5000);
      expect(Buffer.compare(client.bytes(), stream)).toBe(0);
      // Framed: one packet per frame (an empty frame included). Raw: as the chunks came.
      if (framing !== "raw") expect(packets()).toBe(frames.length);
      expect(server.connections().length).toBe(1);
    },
  );

  test.each(FRAMINGS.flatMap((f) => SEEDS.map((seed) => [f, seed] as const)))(
    "packet %p, seed %p: random garbage ends at most its own connection (FrameTooLargeError or a normal disconnect); the server serves on",
    async (framing, seed) => {
      const rand = prng(seed * 7919);
      const { server, exits } = await fuzzServer(framing);
      const victims: RawClient[] = [];
      for (let i = 0; i < 5; i++) {
        const client = await RawClient.connect(server.port, { keep: false });
        await writeSplit(client, randomBytes(rand, 1 + Math.floor(rand() * 64 * 1024)), rand);
        victims.push(client);
      }
      for (const client of victims) client.shutdown();
      await Promise.all(
        victims.map((c) => within(c.closedPromise, 5000, "the server to end the garbage connection")),
      );
      await waitFor(() => exits.length === victims.length, 5000, "every garbage connection to end");
      for (const reason of exits) {
        if (reason !== "normal") {
          expect(reason).toBeInstanceOf(FrameTooLargeError);
          expect((reason as FrameTooLargeError).code).toBe("ERR_FRAME_TOO_LARGE");
        }
      }
      const client = await RawClient.connect(server.port);
      const ok = encode(framing, Buffer.from("still serving"));
      client.write(ok);
      await client.waitForBytes(ok.length);
      expect(Buffer.compare(client.bytes(), Buffer.from(ok))).toBe(0);
    },
  );

  test.each(FRAMINGS.filter((f) => f !== "raw"))(
    "packet %p: adversarial streams (largest header, 20,000 empty frames, a frame cut off by a FIN) never crash the server",
    async (framing) => {
      const { server, exits, packets } = await fuzzServer(framing);
      // The largest length the header can announce: refused before anything is buffered (with a
      // 1-byte header, 255 is within maxPacketSize: the frame waits, and the FIN ends it normally).
      const huge = await RawClient.connect(server.port);
      huge.write(
        framing === "line" ? Buffer.alloc(FUZZ_MAX + 1, 0x61) : Buffer.alloc(framing as number, 0xff),
      );
      if (framing === 1) huge.shutdown();
      await within(huge.closedPromise, 2000, "the huge header to end its connection");
      // Thousands of empty frames in one write: each is a packet (echoed), in order, none lost.
      const empties = await RawClient.connect(server.port);
      const empty = encode(framing, new Uint8Array(0));
      const burst = Buffer.concat(Array.from({ length: 20_000 }, () => empty));
      empties.write(burst);
      await empties.waitForBytes(burst.length, 5000);
      expect(packets()).toBe(20_000);
      // A frame cut off by the peer's FIN: a normal disconnect, the partial frame is dropped.
      const cut = await RawClient.connect(server.port);
      cut.write(encode(framing, Buffer.alloc(100, 0x62)).subarray(0, 50));
      cut.shutdown();
      await within(cut.closedPromise, 2000, "the cut frame's connection to end");
      await waitFor(() => exits.length === 2, 2000, "both bad connections to end");
      if (framing === 1) expect(exits[0]).toBe("normal");
      else expect(exits[0]).toBeInstanceOf(FrameTooLargeError);
      expect(exits[1]).toBe("normal");
      expect(server.connections().length).toBe(1);
      track(server);
    },
  );
});
