/**
 * Invariant: the example Redis client (examples/redis-client.ts) returns, for every command, the reply
 * a real redis-server gave to that command: replies are matched to callers in order however the bytes
 * of pipelined replies are split across chunks, a Redis error reply rejects that call only (with a
 * `RedisError` carrying the error's kind), and bytes that are not RESP fail the waiting callers with a
 * protocol error. The parser is checked on its own with every split point of a reply stream; the
 * client against a redis-server the test starts on a free loopback port (skipped, visibly, where
 * redis-server is not installed).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  encodeCommand,
  RedisClient,
  RedisError,
  type RedisReply,
  RespParser,
} from "../../examples/redis-client.ts";
import { REDIS_SERVER, RedisServer } from "../helpers/redis.ts";
import { captureSink, restoreSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

if (REDIS_SERVER === undefined) {
  console.warn(
    "redis-server is not installed: skipping the Redis client tests (apt-get install -y redis-server)",
  );
}

/** Feeds `stream` to a fresh parser in the given pieces and returns every reply. */
function parseInPieces(pieces: Uint8Array[]): RedisReply[] {
  const parser = new RespParser();
  const replies: RedisReply[] = [];
  for (const piece of pieces) parser.feed(piece, (r) => replies.push(r));
  expect(parser.pendingBytes).toBe(0);
  return replies;
}

describe("RESP", () => {
  test("encodes commands as arrays of bulk strings, counting bytes, not characters", () => {
    const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
    expect(text(encodeCommand(["SET", "k", "vé"]))).toBe("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n");
    expect(text(encodeCommand(["INCRBY", "n", 42]))).toBe("*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n42\r\n");
    const binary = encodeCommand(["SET", "b", new Uint8Array([0, 13, 10, 255])]);
    expect(Buffer.from(binary)).toEqual(
      Buffer.concat([
        Buffer.from("*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$4\r\n"),
        Buffer.from([0, 13, 10, 255, 13, 10]),
      ]),
    );
  });

  /** What encodeCommand must give (as Latin-1 text, one character per byte): lengths in UTF-8 bytes. */
  const reference = (args: Array<string | number>): string =>
    Buffer.from(
      `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("")}`,
    ).toString("latin1");
  const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

  test("encodes any text, whatever its characters and length, and numbers as their text", () => {
    const texts = [
      "",
      "k",
      "é".repeat(4), // 8 bytes: fewer length digits than the 12 reserved for 4 characters
      "€".repeat(3),
      "😀x",
      "\ud800", // a lone surrogate: sent as U+FFFD
      "x".repeat(9),
      "x".repeat(10),
      "ä".repeat(5000), // too big for the slab
      "y".repeat(100_000),
    ];
    for (const text of texts) {
      expect(latin1(encodeCommand(["SET", text, text]))).toBe(reference(["SET", text, text]));
    }
    expect(latin1(encodeCommand(["INCRBY", "n", -1.5, 0, 1e21]))).toBe(
      reference(["INCRBY", "n", -1.5, 0, 1e21]),
    );
    expect(latin1(encodeCommand([]))).toBe("*0\r\n");
  });

  test("commands encoded earlier keep their bytes while later ones fill new slabs", () => {
    const args = (i: number): string[] => ["SET", `key:${i}`, `v${"é".repeat(i % 7)}`];
    const encoded = Array.from({ length: 20_000 }, (_, i) => encodeCommand(args(i)));
    encoded.forEach((bytes, i) => {
      expect(latin1(bytes)).toBe(reference(args(i)));
    });
  });

  test("a big bulk string arriving in many chunks is joined once, whole", () => {
    const value = "0123456789".repeat(100_000);
    const reply = Buffer.from(`$${value.length}\r\n${value}\r\n+OK\r\n`);
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < reply.length; at += 65_536) pieces.push(reply.subarray(at, at + 65_536));
    const parser = new RespParser();
    const replies: RedisReply[] = [];
    for (const [i, piece] of pieces.entries()) {
      parser.feed(piece, (r) => replies.push(r));
      if (i < pieces.length - 1) expect(parser.pendingBytes).toBe((i + 1) * 65_536);
    }
    expect(replies).toEqual([value, "OK"]);
    expect(parser.pendingBytes).toBe(0);
  });

  const stream = Buffer.from(
    "+OK\r\n:-12\r\n$5\r\nhe\r\no\r\n$-1\r\n*3\r\n$1\r\na\r\n*1\r\n:7\r\n-ERR inner\r\n*-1\r\n$0\r\n\r\n-WRONGTYPE Operation against a key\r\n",
  );
  const expected = ["OK", -12, "he\r\no", null, ["a", [7], "ERR inner"], null, "", "WRONGTYPE"];
  const simplify = (r: RedisReply): unknown =>
    r instanceof RedisError
      ? r.kind === "ERR"
        ? r.message
        : r.kind
      : Array.isArray(r)
        ? r.map(simplify)
        : r;

  test("parses every reply type from one chunk", () => {
    expect(parseInPieces([stream]).map(simplify)).toEqual(expected);
  });

  test("parses the same replies when the stream is split at any byte, or byte by byte", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(parseInPieces([stream.subarray(0, cut), stream.subarray(cut)]).map(simplify)).toEqual(expected);
    }
    const bytes = [...stream].map((b) => new Uint8Array([b]));
    expect(parseInPieces(bytes).map(simplify)).toEqual(expected);
  });

  test("throws a protocol RedisError on bytes that are not RESP", () => {
    const parser = new RespParser();
    let error: unknown;
    try {
      parser.feed(Buffer.from("HTTP/1.1 400\r\n"), () => undefined);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RedisError);
    expect((error as RedisError).code).toBe("ERR_REDIS_PROTOCOL");
  });
});

describe.skipIf(REDIS_SERVER === undefined)("RedisClient against a real redis-server", () => {
  let redis: RedisServer;
  let client: RedisClient;

  beforeAll(async () => {
    redis = await RedisServer.start();
    client = await RedisClient.connect(redis.port, { connections: 2 });
  });

  afterAll(async () => {
    await client?.close();
    await redis?.stop();
  });

  test("SET then GET returns the value; a missing key is null; INCR an integer", async () => {
    expect(await client.call("SET", "greeting", "héllo wörld")).toBe("OK");
    expect(await client.call("GET", "greeting")).toBe("héllo wörld");
    expect(await client.call("GET", "no-such-key")).toBeNull();
    expect(await client.call("DEL", "hits")).toBeNumber();
    expect(await client.call("INCR", "hits")).toBe(1);
    expect(await client.call("INCRBY", "hits", 41)).toBe(42);
  });

  test("arrays come back as arrays, nested in order", async () => {
    await client.call("DEL", "list");
    await client.call("RPUSH", "list", "a", "b", "c");
    expect(await client.call("LRANGE", "list", 0, -1)).toEqual(["a", "b", "c"]);
    expect(await client.call("MGET", "list-missing", "greeting")).toEqual([null, "héllo wörld"]);
  });

  test("an error reply rejects that call only, with its kind", async () => {
    await client.call("SET", "str", "x");
    const [bad, good] = await Promise.allSettled([
      client.call("LPUSH", "str", "y"),
      client.call("GET", "str"),
    ]);
    expect(bad.status).toBe("rejected");
    const error = (bad as PromiseRejectedResult).reason as RedisError;
    expect(error).toBeInstanceOf(RedisError);
    expect(error.code).toBe("ERR_REDIS");
    expect(error.kind).toBe("WRONGTYPE");
    expect(good).toEqual({ status: "fulfilled", value: "x" });
  });

  test("2,000 pipelined calls made in one tick each get their own reply", async () => {
    const calls: Promise<RedisReply>[] = [];
    for (let i = 0; i < 1000; i++) calls.push(client.call("SET", `k${i}`, `v${i}`));
    for (let i = 0; i < 1000; i++) calls.push(client.call("GET", `k${i}`));
    const replies = await within(Promise.all(calls), 5000, "pipelined replies");
    expect(replies.slice(0, 1000).every((r) => r === "OK")).toBe(true);
    expect(replies.slice(1000)).toEqual(Array.from({ length: 1000 }, (_, i) => `v${i}`));
  });

  test("a 3 MiB value, binary safe, arrives whole across many chunks", async () => {
    const value = "0123456789abcdef\r\n".repeat((3 * 1024 * 1024) / 18);
    expect(await client.call("SET", "big", value)).toBe("OK");
    const [before, big, after] = await Promise.all([
      client.call("ECHO", "before"),
      client.call("GET", "big"),
      client.call("ECHO", "after"),
    ]);
    expect(before).toBe("before");
    expect((big as string).length).toBe(value.length);
    expect(big === value).toBe(true);
    expect(after).toBe("after");
  });
});

describe.skipIf(REDIS_SERVER === undefined)("RedisClient when the server goes away", () => {
  let redis: RedisServer | undefined;
  let client: RedisClient | undefined;

  afterAll(async () => {
    await client?.close();
    await redis?.stop();
  });

  test("a command sent while redis-server is down completes once it is back", async () => {
    redis = await RedisServer.start();
    client = await RedisClient.connect(redis.port, { connections: 2, timeoutMs: 8000 });
    expect(await client.call("SET", "k", "before")).toBe("OK");
    await redis.stop();
    await waitFor(() => client!.pool.info().live === 0, 3000, "the connections to drop");
    const pending = client.call("ECHO", "while down");
    expect(client.pool.info().waiting).toBe(1);
    await redis.start();
    expect(await within(pending, 6000, "the waiting command")).toBe("while down");
    expect(await client.call("GET", "k")).toBeNull(); // a fresh server: nothing was saved
  });
});

describe("RedisClient against a server that does not speak RESP", () => {
  test("the waiting callers reject with a protocol RedisError", async () => {
    const sink = captureSink(); // the connector's termination report
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("HTTP/1.1 400 Bad Request\r\n\r\n");
        },
      },
    });
    const client = await RedisClient.connect(listener.port, { pool: { plan: ["delete"] } });
    try {
      const error = await client.call("PING").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisError);
      expect((error as RedisError).code).toBe("ERR_REDIS_PROTOCOL");
      await waitFor(() => sink.reports().length === 1, 1000, "the termination report");
    } finally {
      await client.close();
      listener.stop(true);
      restoreSink();
    }
  });
});
