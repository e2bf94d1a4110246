/**
 * bench/client/run.ts (`npm run bench:client`): the example Redis client (examples/redis-client.ts,
 * a sockerl connector pool) against Bun's built-in `RedisClient` and `ioredis`, on one redis-server.
 *
 * Usage: bun bench/client/run.ts [--reps N] [--quick] [--pin] [--no-strace] [--write-results]
 *
 * Cells (each client in a fresh Bun process of its own, bench/client/worker.ts; with `--pin`, the
 * worker on CPU 1 and redis-server on CPU 0):
 *   seq      20,000 commands, one at a time (each awaits the previous reply), 1 connection
 *   pipe100  100,000 commands with 100 in flight, 1 connection
 *   pipe100x8 the same over 8 connections (sockerl: connectorCount 8; the others: 8 clients,
 *            used round-robin)
 * Commands are half SET, half GET (16-byte values, 1,000 keys). Each repetition runs every cell
 * once per client, back to back, the order of the clients rotating between repetitions, so drift of
 * a shared machine hits all alike; the ratios sockerl/bun and sockerl/ioredis are taken per
 * repetition, then their median and range reported. The sequential cell also runs the JS floor: the
 * example's RESP code on a bare Bun socket (worker.ts "raw"), what the pool adds is the difference.
 *
 * Then, with `strace` installed, the `sendto` and `write` syscalls per 10,000 commands of each client
 * (`strace -c -f`, 100 in flight, no warm-up, nothing untimed before), on 1 and 8 connections.
 *
 * Timings are reported, never asserted. Only processes started here are stopped, by PID.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REDIS_SERVER, RedisServer } from "../../test/helpers/redis.ts";

const DIR = import.meta.dir;
const ROOT = resolve(DIR, "../..");
const WORKER = join(DIR, "worker.ts");
const CLIENTS = ["sockerl", "bun", "ioredis"] as const;
/**
 * The JS floor, measured in the sequential cell only: the example's RESP code on a bare Bun socket
 * (worker.ts "raw"), what any Redis client written in JS on Bun's sockets costs at least.
 */
const FLOOR = "raw" as const;
type ClientKind = (typeof CLIENTS)[number] | typeof FLOOR;
/** Whether a cell also measures the JS floor (one connection, one command at a time). */
const withFloor = (cell: Cell): boolean => cell.inFlight === 1 && cell.connections === 1;

interface Cell {
  readonly name: string;
  readonly title: string;
  readonly commands: number;
  readonly inFlight: number;
  readonly connections: number;
}

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const repsAt = args.indexOf("--reps");
const reps = repsAt >= 0 ? Number(args[repsAt + 1]) : quick ? 1 : 3;
const scale = quick ? 0.2 : 1;
const CELLS: Cell[] = [
  { name: "seq", title: "20,000 sequential GET/SET", commands: 20_000 * scale, inFlight: 1, connections: 1 },
  {
    name: "pipe100",
    title: "100,000, 100 in flight",
    commands: 100_000 * scale,
    inFlight: 100,
    connections: 1,
  },
  {
    name: "pipe100x8",
    title: "100,000, 100 in flight, 8 conns",
    commands: 100_000 * scale,
    inFlight: 100,
    connections: 8,
  },
];

if (REDIS_SERVER === undefined) {
  console.error("redis-server is not installed (apt-get install -y redis-server): nothing to measure");
  process.exit(0);
}

// Unpinned by default: on a 2-vCPU VM, a client and a server pinned to different CPUs pay a
// cross-CPU wake-up per round trip (sequential GET/SET fell from ~20k to ~2.5k ops/s for every
// client), which hides the clients' own costs. `--pin` measures that layout anyway.
const pin = args.includes("--pin") && Bun.which("taskset") !== null && availableParallelism() >= 2;
if (args.includes("--pin") && !pin) console.warn("taskset or a second CPU is missing: running unpinned");
const serverPrefix = pin ? ["taskset", "-c", "0"] : [];
const clientPrefix = pin ? ["taskset", "-c", "1"] : [];

/** One worker run: ops/s, and the client's CPU µs per command. */
interface Sample {
  readonly ops: number;
  readonly cpu: number;
}

/** Runs one worker; resolves with its ops/s and CPU per command. Bounded to 120 s. */
async function measure(kind: ClientKind, port: number, cell: Cell): Promise<Sample> {
  const proc = Bun.spawn(
    [
      ...clientPrefix,
      process.execPath,
      WORKER,
      kind,
      String(port),
      String(cell.commands),
      String(cell.inFlight),
      String(cell.connections),
    ],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${kind} ${cell.name} exited ${code}:\n${err}`);
  const line = JSON.parse(out.trim().split("\n").pop() ?? "{}") as { opsPerSec: number; cpuUsPerOp: number };
  return { ops: line.opsPerSec, cpu: line.cpuUsPerOp };
}

/** `sendto` and `write` calls of one worker run of 10,000 commands, from `strace -c -f`. */
async function syscalls(kind: ClientKind, port: number, connections: number): Promise<[number, number]> {
  const dir = mkdtempSync(join(tmpdir(), "sockerl-strace-"));
  const file = join(dir, "summary");
  try {
    const proc = Bun.spawn(
      [
        "strace",
        "-c",
        "-f",
        "-e",
        "trace=sendto,write",
        "-o",
        file,
        process.execPath,
        WORKER,
        kind,
        String(port),
        "10000",
        "100",
        String(connections),
        "0",
      ],
      { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, PREFILL: "0" } },
    );
    const timer = setTimeout(() => proc.kill("SIGKILL"), 120_000);
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    if (code !== 0) throw new Error(`strace ${kind} exited ${code}:\n${err}`);
    const summary = readFileSync(file, "utf8");
    const count = (name: string): number => {
      const line = summary.split("\n").find((l) => l.trim().endsWith(` ${name}`));
      // columns: % time, seconds, usecs/call, calls, [errors], syscall
      return line === undefined ? 0 : Number(line.trim().split(/\s+/)[3]);
    };
    return [count("sendto"), count("write")];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * RESULTS.md: this run as "Now", above the earlier runs. The previous "Now" section becomes history,
 * headed "Before" (with the date and setup it was measured with); older "Before" ones, "Earlier".
 */
function writeResults(table: string): void {
  const file = join(DIR, "RESULTS.md");
  let history = "";
  try {
    const old = readFileSync(file, "utf8");
    const at = old.indexOf("\n## ");
    history =
      at < 0
        ? ""
        : old
            .slice(at + 1)
            .replace(/^## Before\b/gm, "## Earlier")
            .replace(/^## Now\b/m, "## Before");
  } catch {
    // no earlier results
  }
  const versions = `redis-server ${redisVersion()}, Bun ${Bun.version}, ioredis ${ioredisVersion()}`;
  const setup = `${availableParallelism()}-vCPU VM, load average ${loadavg()
    .map((n) => n.toFixed(1))
    .join(" / ")} at the end, ${pin ? "pinned (client on CPU 1, redis-server on CPU 0)" : "unpinned"}`;
  const date = new Date().toISOString().slice(0, 10);
  const now = `## Now: ${date}, ${setup}, ${reps} repetitions\n\n${versions}.\n\n${table}\n`;
  const intro =
    "# Redis client benchmark (`npm run bench:client`)\n\nOps/s medians (min–max); ratios per repetition. See bench/client/run.ts for the cells.\n";
  writeFileSync(file, alignTables(`${intro}\n${now}${history === "" ? "" : `\n${history}`}`));
}

/** Pads the columns of every Markdown table, as the formatter (`biome format`) lays them out. */
function alignTables(text: string): string {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; ) {
    if (!lines[i]!.startsWith("|")) {
      i++;
      continue;
    }
    let end = i;
    while (end < lines.length && lines[end]!.startsWith("|")) end++;
    const rows = lines.slice(i, end).map((l) =>
      l
        .slice(1, -1)
        .split("|")
        .map((c) => c.trim()),
    );
    const widths = rows[0]!.map((_, c) =>
      Math.max(3, ...rows.map((r) => (/^-+$/.test(r[c]!) ? 3 : r[c]!.length))),
    );
    for (let r = 0; r < rows.length; r++) {
      const cells = rows[r]!.map((cell, c) =>
        /^-+$/.test(cell) ? "-".repeat(widths[c]!) : cell.padEnd(widths[c]!),
      );
      lines[i + r] = `| ${cells.join(" | ")} |`;
    }
    i = end;
  }
  return lines.join("\n");
}

function redisVersion(): string {
  const out = Bun.spawnSync([REDIS_SERVER as string, "--version"]).stdout.toString();
  return /v=([\d.]+)/.exec(out)?.[1] ?? "?";
}

function ioredisVersion(): string {
  try {
    return (
      JSON.parse(readFileSync(join(ROOT, "node_modules/ioredis/package.json"), "utf8")) as { version: string }
    ).version;
  } catch {
    return "?";
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const k = (n: number): string => `${(n / 1000).toFixed(1)}k`;
const x = (n: number): string => `${n.toFixed(2)}x`;

const redis = await RedisServer.start(undefined, 10_000, serverPrefix);
const results = new Map<string, Record<ClientKind, number[]>>();
const cpus = new Map<string, Record<ClientKind, number[]>>();
for (const cell of CELLS) {
  results.set(cell.name, { sockerl: [], bun: [], ioredis: [], raw: [] });
  cpus.set(cell.name, { sockerl: [], bun: [], ioredis: [], raw: [] });
}
try {
  console.error(`redis-server ${redis.port}, ${reps} repetition(s)${pin ? ", pinned" : ""}`);
  for (let rep = 0; rep < reps; rep++) {
    for (const cell of CELLS) {
      const kinds: ClientKind[] = withFloor(cell) ? [...CLIENTS, FLOOR] : [...CLIENTS];
      const order = kinds.map((_, i) => kinds[(i + rep) % kinds.length] as ClientKind);
      for (const kind of order) {
        const { ops, cpu } = await measure(kind, redis.port, cell);
        results.get(cell.name)![kind].push(ops);
        cpus.get(cell.name)![kind].push(cpu);
        console.error(
          `rep ${rep + 1} ${cell.name.padEnd(10)} ${kind.padEnd(8)} ${k(ops)} ops/s, ${cpu.toFixed(1)} µs CPU/command`,
        );
      }
    }
  }

  const lines: string[] = [];
  lines.push(
    `Redis client benchmark: ${reps} repetition(s), ops/s median (min–max); ratios per repetition, median (min–max).`,
    "",
    "| cell | sockerl pool | Bun RedisClient | ioredis | sockerl / Bun | sockerl / ioredis | JS floor (bare socket) | sockerl / floor |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const cell of CELLS) {
    const r = results.get(cell.name)!;
    const span = (xs: number[], f: (n: number) => string): string =>
      `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
    const ratio = (other: ClientKind): number[] => r.sockerl.map((v, i) => v / (r[other][i] as number));
    const floor = withFloor(cell) ? [span(r.raw, k), span(ratio("raw"), x)] : ["–", "–"];
    lines.push(
      `| ${cell.title} | ${span(r.sockerl, k)} | ${span(r.bun, k)} | ${span(r.ioredis, k)} | ${span(ratio("bun"), x)} | ${span(ratio("ioredis"), x)} | ${floor.join(" | ")} |`,
    );
  }
  lines.push(
    "",
    "Client CPU per command (user + system, every thread of the client's process), µs, median (min–max):",
    "",
    "| cell | sockerl pool | Bun RedisClient | ioredis | JS floor (bare socket) |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const cell of CELLS) {
    const c = cpus.get(cell.name)!;
    const us = (n: number): string => n.toFixed(1);
    const span = (xs: number[]): string =>
      `${us(median(xs))} (${us(Math.min(...xs))}–${us(Math.max(...xs))})`;
    lines.push(
      `| ${cell.title} | ${span(c.sockerl)} | ${span(c.bun)} | ${span(c.ioredis)} | ${withFloor(cell) ? span(c.raw) : "–"} |`,
    );
  }
  if (!args.includes("--no-strace") && Bun.which("strace") !== null) {
    lines.push(
      "",
      "Syscalls per 10,000 commands, 100 in flight (`strace -c -f -e trace=sendto,write`):",
      "",
      "| client | sendto (1 conn) | write (1 conn) | sendto (8 conns) | write (8 conns) |",
      "| --- | --- | --- | --- | --- |",
    );
    for (const kind of CLIENTS) {
      const [s1, w1] = await syscalls(kind, redis.port, 1);
      const [s8, w8] = await syscalls(kind, redis.port, 8);
      lines.push(`| ${kind} | ${s1} | ${w1} | ${s8} | ${w8} |`);
    }
  } else if (!args.includes("--no-strace")) {
    console.warn("strace is not installed (apt-get install -y strace): no syscall counts");
  }
  const table = lines.join("\n");
  console.log(table);
  if (args.includes("--write-results")) writeResults(table);
} finally {
  await redis.stop();
}
