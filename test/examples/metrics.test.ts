/**
 * Invariant: the metrics example (examples/metrics.ts) reports on its echo server what `server.info()`
 * counts, exactly: a Prometheus scrape of `/metrics`, parsed here by a parser written from the text
 * exposition format (not by the example's own code), gives the connections accepted, active and ended
 * by kind and the bytes each way that raw clients produced (connect, echo, close, reset). Its live page
 * renders: a real headless browser (Debian's `chromium`) loads it, the page draws one point per sample
 * of `/api/series` on its charts, and the test takes a screenshot (written to a temporary directory,
 * so a test run leaves the tree clean; with `UPDATE_SCREENSHOTS=1` the load runs for 45 seconds at the
 * real one-second sampling and the screenshot replaces docs/images/metrics-page.png). Skipped, visibly, where `chromium` is not installed.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LIFETIME_BUCKETS,
  LifetimeHistogram,
  type MetricsExample,
  metricsText,
  SampleRing,
  startMetricsExample,
} from "../../examples/metrics.ts";
import type { ServerInfo } from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer } from "../helpers/server.ts";
import { waitFor, within } from "../helpers/wait.ts";

const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS !== undefined;
const CHROMIUM = Bun.which("chromium") ?? Bun.which("chromium-browser") ?? undefined;

if (CHROMIUM === undefined) {
  console.warn(
    "chromium is not installed: skipping the metrics page browser test (apt-get install -y chromium)",
  );
}

afterEach(cleanup);

// ---------------------------------------------------------------- a Prometheus text parser

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface ParsedFamily {
  name: string;
  type: string | undefined;
  help: string | undefined;
  samples: ParsedSample[];
}

/** Reads a sample value: a float, or `+Inf` / `-Inf` / `NaN`. */
function parseValue(text: string, line: string): number {
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value in ${line}`);
  return Number(text);
}

/**
 * Parses the Prometheus text exposition format (0.0.4): `# HELP name text`, `# TYPE name type`, and
 * `name{label="value",...} value [timestamp]` lines, with `\\`, `\"` and `\n` escapes in label values.
 * Throws on anything else, on a sample whose family has no TYPE line before it, on a second TYPE for
 * one family and on a repeated series.
 */
function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  const seen = new Set<string>();
  const family = (name: string): ParsedFamily => {
    let f = families.get(name);
    if (f === undefined) {
      f = { name, type: undefined, help: undefined, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a line feed");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) {
      const f = family(meta[2]!);
      if (meta[1] === "HELP") f.help = meta[3]!;
      else {
        if (f.type !== undefined) throw new Error(`second TYPE for ${f.name}`);
        if (f.samples.length > 0) throw new Error(`TYPE after samples for ${f.name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3]!)) {
          throw new Error(`bad type in ${line}`);
        }
        f.type = meta[3]!;
      }
      continue;
    }
    if (line.startsWith("#")) continue; // a comment
    const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (head === null) throw new Error(`bad line: ${line}`);
    const name = head[1]!;
    let at = name.length;
    const labels: Record<string, string> = {};
    if (line[at] === "{") {
      at++;
      while (line[at] !== "}") {
        const key = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(at));
        if (key === null) throw new Error(`bad label in ${line}`);
        at += key[0].length;
        let value = "";
        for (;;) {
          const c = line[at++];
          if (c === undefined) throw new Error(`unterminated label value in ${line}`);
          if (c === '"') break;
          if (c === "\\") {
            const e = line[at++];
            value += e === "n" ? "\n" : e === "\\" ? "\\" : e === '"' ? '"' : `\\${e}`;
          } else value += c;
        }
        labels[key[1]!] = value;
        if (line[at] === ",") at++;
        else if (line[at] !== "}") throw new Error(`bad label list in ${line}`);
      }
      at++;
    }
    const rest = line.slice(at);
    const fields = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (fields === null) throw new Error(`bad sample in ${line}`);
    // A sample belongs to the family of its name, or of its name without a histogram/summary suffix.
    const owner = families.get(name) ?? families.get(name.replace(/_(sum|count|bucket)$/, ""));
    if (owner?.type === undefined) throw new Error(`sample without a TYPE line: ${line}`);
    const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(series)) throw new Error(`repeated series: ${line}`);
    seen.add(series);
    owner.samples.push({ name, labels, value: parseValue(fields[1]!, line) });
  }
  return families;
}

/** The value of the one sample of `name` whose labels are `labels` (throws when absent). */
function value(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels)) return s.value;
    }
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
}

const SNAPSHOT: ServerInfo = {
  port: 7000,
  hostname: "127.0.0.1",
  transport: "tcp",
  active: 3,
  waiting: 2,
  maxConnections: Number.POSITIVE_INFINITY,
  accepted: 17,
  ended: { normal: 9, peer: 2, crash: 1, shutdown: 0 },
  bytesIn: 123456789,
  bytesOut: 98765,
  startedAt: new Date(1_700_000_000_500),
};

describe("the exposition", () => {
  test("the parser reads labels with escapes, +Inf, timestamps, and rejects samples without TYPE", () => {
    const parsed = parseExposition(
      '# HELP a_total An a.\n# TYPE a_total counter\na_total{x="q\\"u\\\\o\\nte",y="2"} 5 1700000000\n# TYPE b gauge\nb +Inf\n',
    );
    expect(parsed.get("a_total")?.samples).toEqual([
      { name: "a_total", labels: { x: 'q"u\\o\nte', y: "2" }, value: 5 },
    ]);
    expect(parsed.get("a_total")?.help).toBe("An a.");
    expect(value(parsed, "b")).toBe(Number.POSITIVE_INFINITY);
    expect(() => parseExposition("c 1\n")).toThrow("without a TYPE");
    expect(() => parseExposition("# TYPE c gauge\nc 1\nc 2\n")).toThrow("repeated series");
    expect(() => parseExposition("# TYPE c gauge\nc one\n")).toThrow("bad");
  });

  test("renders every info() field as a typed, documented family with the exact value", () => {
    const families = parseExposition(metricsText(SNAPSHOT, { messages: 42 }));
    const expected: Array<[string, string, Record<string, string>, number]> = [
      ["sockerl_connections_active", "gauge", {}, 3],
      ["sockerl_connections_waiting", "gauge", {}, 2],
      ["sockerl_max_connections", "gauge", {}, Number.POSITIVE_INFINITY],
      ["sockerl_connections_accepted_total", "counter", {}, 17],
      ["sockerl_connections_ended_total", "counter", { kind: "normal" }, 9],
      ["sockerl_connections_ended_total", "counter", { kind: "peer" }, 2],
      ["sockerl_connections_ended_total", "counter", { kind: "crash" }, 1],
      ["sockerl_connections_ended_total", "counter", { kind: "shutdown" }, 0],
      ["sockerl_bytes_received_total", "counter", {}, 123456789],
      ["sockerl_bytes_sent_total", "counter", {}, 98765],
      ["sockerl_start_time_seconds", "gauge", {}, 1_700_000_000.5],
      ["echo_messages_total", "counter", {}, 42],
    ];
    for (const [name, type, labels, v] of expected) {
      expect(families.get(name)?.type).toBe(type);
      expect(families.get(name)?.help?.length ?? 0).toBeGreaterThan(10);
      expect(value(families, name, labels)).toBe(v);
    }
    expect([...families.keys()].sort()).toEqual([...new Set(expected.map(([n]) => n))].sort());
    // Prometheus' naming rule: counters, and only counters, end in _total.
    for (const f of families.values()) expect(f.name.endsWith("_total")).toBe(f.type === "counter");
    // A finite limit is a plain number.
    const limited = parseExposition(metricsText({ ...SNAPSHOT, maxConnections: 64 }));
    expect(value(limited, "sockerl_max_connections")).toBe(64);
    expect(limited.has("echo_messages_total")).toBe(false);
  });

  test("the lifetime histogram: cumulative buckets ending in +Inf, then _sum and _count", () => {
    const lifetimes = new LifetimeHistogram();
    for (const seconds of [0.005, 0.01, 0.5, 0.5, 42, 3600]) lifetimes.observe(seconds);
    const families = parseExposition(metricsText(SNAPSHOT, { lifetimes }));
    const h = families.get("sockerl_connection_duration_seconds")!;
    expect(h.type).toBe("histogram");
    const rows = h.samples.map((x) => [
      x.name.replace("sockerl_connection_duration_seconds", ""),
      x.labels,
      x.value,
    ]);
    expect(rows).toEqual([
      ["_bucket", { le: "0.01" }, 2], // 0.01 is within its bucket (le: less or equal)
      ["_bucket", { le: "0.1" }, 2],
      ["_bucket", { le: "1" }, 4],
      ["_bucket", { le: "10" }, 4],
      ["_bucket", { le: "60" }, 5],
      ["_bucket", { le: "600" }, 5],
      ["_bucket", { le: "+Inf" }, 6],
      ["_sum", {}, 0.005 + 0.01 + 0.5 + 0.5 + 42 + 3600],
      ["_count", {}, 6],
    ]);
    expect(lifetimes.buckets.length).toBe(LIFETIME_BUCKETS.length + 1);
  });

  test("the sample ring keeps the newest samples, oldest first", () => {
    const ring = new SampleRing(3);
    const s = (t: number) => ({
      t,
      active: t,
      waiting: 0,
      msgsPerSec: 0,
      bytesInPerSec: 0,
      bytesOutPerSec: 0,
    });
    expect(ring.toArray()).toEqual([]);
    ring.push(s(1));
    ring.push(s(2));
    expect(ring.toArray().map((x) => x.t)).toEqual([1, 2]);
    for (let t = 3; t <= 7; t++) ring.push(s(t));
    expect(ring.toArray().map((x) => x.t)).toEqual([5, 6, 7]);
    expect(ring.size).toBe(3);
    expect(() => new SampleRing(0)).toThrow(RangeError);
  });
});

/** Starts the example on loopback, port 0 for both servers, stopped in cleanup. */
async function startExample(sampleMs = 1000): Promise<MetricsExample> {
  const example = await startMetricsExample({ sampleMs });
  defer(() => example.stop());
  return example;
}

describe("the scrape", () => {
  test("counts what raw clients did: connects, echoes, a close, a reset", async () => {
    const began = performance.now();
    const example = await startExample();
    const info = (): ServerInfo => example.server.info();
    let sent = 0;
    const echo = async (client: RawClient, text: string): Promise<void> => {
      sent += Buffer.byteLength(text);
      await client.roundTrip(text);
    };
    const closing = await RawClient.connect(example.server.port);
    await echo(closing, "hello\n");
    const resetting = await RawClient.connect(example.server.port);
    await echo(resetting, "about to reset\n");
    const staying = [
      await RawClient.connect(example.server.port),
      await RawClient.connect(example.server.port),
    ];
    for (const c of staying) await echo(c, "héllo, still here\n");
    closing.end();
    resetting.terminate();
    await waitFor(
      () => info().ended.normal + info().ended.peer === 2,
      2000,
      "the close and the reset to end",
    );

    const response = await fetch(`${example.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const m = parseExposition(await response.text());
    expect(value(m, "sockerl_connections_accepted_total")).toBe(4);
    expect(value(m, "sockerl_connections_active")).toBe(2);
    expect(value(m, "sockerl_connections_waiting")).toBe(0);
    expect(value(m, "sockerl_max_connections")).toBe(Number.POSITIVE_INFINITY);
    // A peer that closes or resets is a disconnect: both end "normal".
    expect(value(m, "sockerl_connections_ended_total", { kind: "normal" })).toBe(2);
    expect(value(m, "sockerl_connections_ended_total", { kind: "peer" })).toBe(0);
    expect(value(m, "sockerl_connections_ended_total", { kind: "crash" })).toBe(0);
    expect(value(m, "sockerl_connections_ended_total", { kind: "shutdown" })).toBe(0);
    expect(value(m, "sockerl_bytes_received_total")).toBe(sent);
    expect(value(m, "sockerl_bytes_sent_total")).toBe(sent);
    expect(value(m, "echo_messages_total")).toBe(example.messages);
    // The lifetimes of the two connections that ended, from the diagnostics channels.
    expect(value(m, "sockerl_connection_duration_seconds_count")).toBe(2);
    expect(value(m, "sockerl_connection_duration_seconds_bucket", { le: "+Inf" })).toBe(2);
    const elapsed = (performance.now() - began) / 1000;
    expect(value(m, "sockerl_connection_duration_seconds_sum")).toBeGreaterThan(0);
    expect(value(m, "sockerl_connection_duration_seconds_sum")).toBeLessThan(2 * elapsed);
    expect(value(m, "sockerl_start_time_seconds") * 1000).toBe(info().startedAt.getTime());
  }, 10_000);

  test("answers 404 off its routes and 405 to anything but GET", async () => {
    const example = await startExample();
    expect((await fetch(`${example.url}/nope`)).status).toBe(404);
    expect((await fetch(`${example.url}/metrics`, { method: "POST" })).status).toBe(405);
    const series = (await (await fetch(`${example.url}/api/series`)).json()) as {
      intervalMs: number;
      samples: unknown[];
    };
    expect(series.intervalMs).toBe(1000);
    expect(series.samples.length).toBeGreaterThanOrEqual(1);
  });
});

/** Width and height of a PNG, from its IHDR chunk; throws on anything that is not a PNG. */
function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const b = Buffer.from(bytes);
  if (
    b.length < 24 ||
    b.toString("hex", 0, 8) !== "89504e470d0a1a0a" ||
    b.toString("latin1", 12, 16) !== "IHDR"
  ) {
    throw new Error("not a PNG");
  }
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe("the live page", () => {
  test.skipIf(CHROMIUM === undefined)(
    "a headless chromium renders a point per sample on both charts; the test takes a screenshot",
    async () => {
      // The screenshot for the docs is taken over 45 s at the real one-second sampling, so it
      // shows what a person sees; the check alone runs the same shape in two seconds.
      const plan = UPDATE_SCREENSHOTS
        ? { sampleMs: 1000, joins: 12, joinEveryMs: 2000, settleMs: 10_000, leaves: 5, leaveEveryMs: 2000 }
        : { sampleMs: 200, joins: 6, joinEveryMs: 250, settleMs: 0, leaves: 1, leaveEveryMs: 400 };
      const example = await startExample(plan.sampleMs);
      // Load that changes over time, so the charts have a shape: clients join one by one, each
      // writing a few lines every 20 ms, more at some moments than at others; then some leave.
      const clients: RawClient[] = [];
      let tick = 0;
      const period = (12 * plan.sampleMs) / 200;
      const load = setInterval(() => {
        tick++;
        const burst = 1 + Math.round(3 * (1 + Math.sin(tick / period)));
        for (const c of clients) for (let i = 0; i < burst; i++) c.write(`tick ${tick}\n`);
      }, 20);
      defer(() => clearInterval(load));
      for (let i = 0; i < plan.joins; i++) {
        clients.push(await RawClient.connect(example.server.port));
        await Bun.sleep(plan.joinEveryMs);
      }
      await Bun.sleep(plan.settleMs);
      for (let i = 0; i < plan.leaves; i++) {
        clients.shift()?.end();
        await Bun.sleep(plan.leaveEveryMs);
      }

      const dir = await mkdtemp(join(tmpdir(), "sockerl-metrics-"));
      defer(() => rm(dir, { recursive: true, force: true }));
      const shot = UPDATE_SCREENSHOTS
        ? join(import.meta.dir, "../../docs/images/metrics-page.png")
        : join(dir, "metrics-page.png");
      // Spawned, not spawnSync: the page is served by this very process.
      const browser = Bun.spawn(
        [
          CHROMIUM!,
          "--headless=new",
          "--no-sandbox",
          "--disable-gpu",
          "--hide-scrollbars",
          `--user-data-dir=${join(dir, "profile")}`,
          `--screenshot=${shot}`,
          "--dump-dom",
          "--window-size=1000,600",
          "--virtual-time-budget=5000",
          `${example.url}/`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const killer = setTimeout(() => browser.kill(), 30_000);
      const [dom, stderr, code] = await Promise.all([
        new Response(browser.stdout).text(),
        new Response(browser.stderr).text(),
        browser.exited,
      ]).finally(() => clearTimeout(killer));
      expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });

      // The page drew what /api/series held: one point per sample on each line.
      const samples = Number(/<body[^>]*data-samples="(\d+)"/.exec(dom)?.[1] ?? 0);
      expect(samples).toBeGreaterThanOrEqual(10);
      const points = (id: string): number =>
        Number(new RegExp(`<svg id="${id}"[^>]*data-points="(\\d+)"`).exec(dom)?.[1] ?? -1);
      expect(points("chart-active")).toBe(2 * samples); // active and waiting
      expect(points("chart-msgs")).toBe(samples);
      // The active line has a shape: clients joined, then some left (y is inverted in SVG).
      const activeLine = /<svg id="chart-active".*?<polyline[^>]*points="([^"]+)"/s.exec(dom)?.[1] ?? "";
      const ys = activeLine.split(" ").map((p) => Number(p.split(",")[1]));
      expect(new Set(ys).size).toBeGreaterThan(3);
      expect(dom).toContain("live ·");

      expect(pngSize(await readFile(shot))).toEqual({ width: 1000, height: 600 });
      for (const c of clients) c.end();
      await within(example.stop(), 3000, "the example to stop");
    },
    UPDATE_SCREENSHOTS ? 120_000 : 45_000,
  );
});
