/**
 * Invariant: examples/resp-server.ts speaks RESP well enough for Redis's own clients. redis-cli runs
 * single commands; redis-cli reading 10,000 commands from stdin prints every reply, and they match a
 * model of the commands line for line (and match what a real redis-server answers to the same
 * commands, where redis-server is installed, as do the raw reply bytes of the 10,000 commands
 * pipelined in one write); `redis-cli --pipe` pipelines 10,000 commands and counts
 * the same replies and errors as the model, leaving the keyspace the model predicts; redis-benchmark
 * completes PING, SET, GET and INCR (its requests per second are printed, not asserted).
 *
 * The clients are the real programs (apt package redis-tools), started by the test; where they are
 * absent the tests skip with a warning.
 */

import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startRespServer } from "../../examples/resp-server.ts";
import type { Server } from "../../src/index.ts";
import { closeAllClients, RawClient } from "../helpers/client.ts";
import { REDIS_SERVER, RedisServer } from "../helpers/redis.ts";
import { have, run } from "./run.ts";

const HAVE_CLI = have("redis-cli", "redis-tools");
const HAVE_BENCH = have("redis-benchmark", "redis-tools");

let server: Server<unknown, unknown> | undefined;
let redis: RedisServer | undefined;

afterEach(async () => {
  closeAllClients();
  await server?.stop();
  server = undefined;
  await redis?.stop();
  redis = undefined;
});

async function start(): Promise<number> {
  const s = await startRespServer(0, { hostname: "127.0.0.1" });
  server = s as unknown as Server<unknown, unknown>;
  return s.port;
}

const cli = (port: number, ...args: string[]) =>
  run(["redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args]);

// ----------------------------------------------------------------------------------- the workload

/** A command and what redis-cli prints for its reply when stdout is not a terminal (raw mode). */
interface Step {
  args: string[];
  printed: string;
  error: boolean;
}

/** 10,000 deterministic commands over a small keyspace, with the replies a Redis model gives. */
function workload(n: number): { steps: Step[]; store: Map<string, string> } {
  const store = new Map<string, string>();
  const steps: Step[] = [];
  const integer = (v: string | undefined) => v === undefined || /^-?\d+$/.test(v);
  for (let i = 0; i < n; i++) {
    const key = `key:${i % 50}`;
    const ctr = `ctr:${i % 20}`;
    let step: Step;
    switch (i % 8) {
      case 0:
        store.set(key, `val${i}`);
        step = { args: ["SET", key, `val${i}`], printed: "OK", error: false };
        break;
      case 1:
        step = { args: ["GET", key], printed: store.get(key) ?? "", error: false };
        break;
      case 2:
      case 3: {
        // INCR on a key SET holds text (i + 1 is even, as SET's keys are): an error reply.
        const k = i % 8 === 2 ? ctr : `key:${(i + 1) % 50}`;
        const old = store.get(k);
        if (!integer(old)) {
          // redis-cli prints an error reply followed by an empty line in raw mode.
          step = { args: ["INCR", k], printed: "ERR value is not an integer or out of range\n", error: true };
        } else {
          const next = String(Number(old ?? "0") + 1);
          store.set(k, next);
          step = { args: ["INCR", k], printed: next, error: false };
        }
        break;
      }
      case 4:
        step = { args: ["ECHO", `e${i}`], printed: `e${i}`, error: false };
        break;
      case 5:
        step = { args: ["PING"], printed: "PONG", error: false };
        break;
      case 6: {
        const k = `key:${(i * 7) % 50}`;
        const had = store.delete(k);
        step = { args: ["DEL", k, "absent"], printed: had ? "1" : "0", error: false };
        break;
      }
      default:
        step = { args: ["GET", ctr], printed: store.get(ctr) ?? "", error: false };
    }
    steps.push(step);
  }
  return { steps, store };
}

/** One command in RESP, as clients send it. */
function toResp(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
}

const N = 10_000;
const { steps, store: expectedStore } = workload(N);
const expectedErrors = steps.filter((s) => s.error).length;

beforeAll(() => {
  // The workload must exercise errors and null replies, or the checks below prove less than they say.
  expect(expectedErrors).toBeGreaterThan(0);
  expect(steps.some((s) => s.args[0] === "GET" && s.printed === "")).toBe(true);
});

// ----------------------------------------------------------------------------------------- tests

describe.skipIf(!HAVE_CLI)("redis-cli", () => {
  test("PING, ECHO, SET, GET, INCR, DEL and errors, one command per run", async () => {
    const port = await start();
    const ask = async (...args: string[]) => {
      const r = await cli(port, ...args);
      expect(r.exitCode).toBe(0);
      return r.stdout;
    };
    expect(await ask("PING")).toBe("PONG\n");
    expect(await ask("PING", "hello")).toBe("hello\n");
    expect(await ask("ECHO", "with spaces and ünïcode")).toBe("with spaces and ünïcode\n");
    expect(await ask("SET", "counter", "41")).toBe("OK\n");
    expect(await ask("INCR", "counter")).toBe("42\n");
    expect(await ask("GET", "counter")).toBe("42\n");
    expect(await ask("INCR", "fresh")).toBe("1\n");
    expect(await ask("DEL", "counter", "fresh", "never")).toBe("2\n");
    expect(await ask("GET", "counter")).toBe("\n");
    expect(await ask("SET", "text", "abc")).toBe("OK\n");
    expect(await ask("INCR", "text")).toContain("ERR value is not an integer");
    expect(await ask("NOSUCH")).toContain("ERR unknown command");
    // --no-raw: the formatting redis-cli uses on a terminal.
    expect(await ask("--no-raw", "GET", "missing")).toBe("(nil)\n");
    expect(await ask("--no-raw", "INCR", "n")).toBe("(integer) 1\n");
  }, 30_000);

  test("10,000 commands from stdin: every printed reply matches the model", async () => {
    const port = await start();
    const input = `${steps.map((s) => s.args.join(" ")).join("\n")}\n`;
    const r = await run(["redis-cli", "-h", "127.0.0.1", "-p", String(port)], {
      stdin: input,
      timeoutMs: 40_000,
    });
    expect(r.exitCode).toBe(0);
    const expected = `${steps.map((s) => s.printed).join("\n")}\n`;
    // Compare line by line first: a mismatch then names the command instead of dumping 10,000 lines.
    const got = r.stdout.split("\n");
    const want = expected.split("\n");
    for (let i = 0; i < want.length; i++)
      if (got[i] !== want[i]) expect(`line ${i}: ${got[i]}`).toBe(`line ${i}: ${want[i]}`);
    expect(r.stdout).toBe(expected);
  }, 60_000);

  test.skipIf(REDIS_SERVER === undefined)(
    "the same 10,000 commands print the same replies from redis-server itself",
    async () => {
      const port = await start();
      redis = await RedisServer.start();
      const input = `${steps.map((s) => s.args.join(" ")).join("\n")}\n`;
      const [ours, theirs] = await Promise.all([
        run(["redis-cli", "-h", "127.0.0.1", "-p", String(port)], { stdin: input, timeoutMs: 40_000 }),
        run(["redis-cli", "-h", "127.0.0.1", "-p", String(redis.port)], { stdin: input, timeoutMs: 40_000 }),
      ]);
      expect(theirs.exitCode).toBe(0);
      expect(ours.exitCode).toBe(0);
      expect(ours.stdout).toBe(theirs.stdout);
    },
    60_000,
  );

  test.skipIf(REDIS_SERVER === undefined)(
    "10,000 commands pipelined in one write get byte-identical replies from redis-server and from us",
    async () => {
      const port = await start();
      redis = await RedisServer.start();
      const stream = Buffer.from(`${steps.map((s) => toResp(s.args)).join("")}${toResp(["QUIT"])}`);
      const replies = await Promise.all(
        [port, redis.port].map(async (p) => {
          const c = await RawClient.connect(p);
          c.write(stream);
          await c.waitForEnd(20_000); // QUIT: +OK, then the server closes
          return c.bytes();
        }),
      );
      expect(replies[0]!.length).toBeGreaterThan(N * 4);
      expect(replies[0]!.equals(replies[1]!)).toBe(true);
    },
    60_000,
  );

  test("redis-cli --pipe: 10,000 pipelined commands, replies and errors counted, keyspace as modelled", async () => {
    const port = await start();
    const input = steps.map((s) => toResp(s.args)).join("");
    const piped = await run(["redis-cli", "-h", "127.0.0.1", "-p", String(port), "--pipe"], {
      stdin: input,
      timeoutMs: 30_000,
    });
    // --pipe exits with 1 when any reply was an error, and the workload has some on purpose.
    expect(piped.exitCode).toBe(1);
    // --pipe ends with an empty line and an ECHO of its own to find the last reply; neither is counted.
    expect(piped.stdout).toContain(`errors: ${expectedErrors}, replies: ${N}`);
    // Every key the workload touched holds what the model says (missing keys print an empty line).
    const keys = [
      ...Array.from({ length: 50 }, (_, i) => `key:${i}`),
      ...Array.from({ length: 20 }, (_, i) => `ctr:${i}`),
    ];
    const check = await run(["redis-cli", "-h", "127.0.0.1", "-p", String(port)], {
      stdin: `${keys.map((k) => `GET ${k}`).join("\n")}\n`,
    });
    expect(check.stdout).toBe(`${keys.map((k) => expectedStore.get(k) ?? "").join("\n")}\n`);
  }, 60_000);
});

describe.skipIf(!HAVE_BENCH)("redis-benchmark", () => {
  test("-q -n 20000 -t ping,set,get,incr completes every test", async () => {
    const port = await start();
    const r = await run(
      [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-q",
        "-n",
        "20000",
        "-t",
        "ping,set,get,incr",
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.exitCode).toBe(0);
    // -q prints a progress line per second ending in "\r" and a final "NAME: N requests per second".
    const finals = r.stdout
      .split(/[\r\n]+/)
      .map((l) => l.trim())
      .filter((l) => /requests per second/.test(l) && !/rps=/.test(l));
    const names = finals.map((l) => l.slice(0, l.indexOf(":")));
    expect(names).toEqual(["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR"]);
    console.log(`redis-benchmark against examples/resp-server.ts:\n  ${finals.join("\n  ")}`);
  }, 70_000);

  test("-P 16 (16 commands pipelined per connection) completes every test", async () => {
    const port = await start();
    const r = await run(
      [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-q",
        "-n",
        "20000",
        "-P",
        "16",
        "-t",
        "set,get,incr",
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.exitCode).toBe(0);
    const finals = r.stdout
      .split(/[\r\n]+/)
      .map((l) => l.trim())
      .filter((l) => /requests per second/.test(l) && !/rps=/.test(l));
    expect(finals.map((l) => l.slice(0, l.indexOf(":")))).toEqual(["SET", "GET", "INCR"]);
    console.log(`redis-benchmark -P 16 against examples/resp-server.ts:\n  ${finals.join("\n  ")}`);
  }, 70_000);
});
