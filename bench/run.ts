/**
 * bench/run.ts - loopback load benchmark: sockerl's servers against the leanest raw `Bun.listen`
 * servers doing the same work, driven by the same C load generator in the same run.
 *
 * Usage: bun bench/run.ts [--quick] [--reps N] [--dur S] [--warm S] [--cells a,b] [--no-idle] ...
 *        (`npm run bench` = full run, `npm run bench:quick` = `--quick`; `--help` lists every
 *        option; bench/README.md describes every cell)
 *
 * How a run goes:
 *   1. bench/loadgen.c is built with `gcc -O2` (with OpenSSL when available) into bench/.build/.
 *   2. Every server the chosen cells need starts (pinned to CPU 0, fd limit raised); loadgen runs on CPU 1.
 *   3. For each repetition, each cell runs once per server it compares, back to back (the order
 *      reversed in even repetitions), so drift of a shared machine hits them alike and the ratio
 *      library/raw is meaningful. Before each measurement the runner waits (bounded) for the two
 *      CPUs to be quiet, and measures again (bounded) when someone else used the CPUs.
 *      The RESP cells do the same with redis-benchmark in place of loadgen, and the real
 *      redis-server as a reference server (skipped where redis-benchmark is not installed).
 *   4. Idle cell: a fresh server per repetition; VmRSS of its process tree before and while
 *      loadgen holds N idle connections (after one echo each); kB per connection.
 *   5. Medians over repetitions, a markdown table on stdout, bench/RESULTS.md rewritten (full run).
 *
 * The parts: lib/args.ts (options), lib/process.ts (processes, /proc, loadgen build), lib/cells.ts
 * (cells and their servers), lib/measure.ts (servers, quiet-machine detection, runs), lib/idle.ts
 * (idle cell), lib/resp.ts (RESP cells, redis-benchmark), lib/report.ts and lib/resp-report.ts
 * (tables, RESULTS.md).
 *
 * Every step is bounded in time; only processes started here are stopped, by PID (SIGTERM, then
 * SIGKILL). Traffic goes to 127.0.0.1 only. Exit status: 0 unless something crashed (a server did
 * not start or died, loadgen failed); timings are reported, never asserted.
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "./lib/args.ts";
import { type Cell, IDLE_NAME, MATRIX, REDIS_LABEL, serversOf } from "./lib/cells.ts";
import { idleCell as runIdle } from "./lib/idle.ts";
import { Bench, type ServerSpec } from "./lib/measure.ts";
import { ROOT, stopAll, stopOnSignals } from "./lib/process.ts";
import { type Recorded, render } from "./lib/report.ts";
import { REDIS_BENCHMARK } from "./lib/resp.ts";
import { cmdOut, die, log, now } from "./lib/util.ts";

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.report !== null) {
    const file = join(o.report, "run.json");
    if (!existsSync(file)) die(`no ${file}`);
    render(JSON.parse(readFileSync(file, "utf8")) as Recorded, o.writeResults === true);
    return 0;
  }
  stopOnSignals();
  let cells = MATRIX.filter((c) => (o.cells ? o.cells.includes(c.name) : !(o.quick && c.fullOnly)));
  const wantIdle = o.idle && (o.cells ? o.cells.includes(IDLE_NAME) : true);
  const idleCell: Cell = { name: IDLE_NAME, mode: "idle", conns: o.idleConns, size: 64, pipeline: 1 };
  const b = new Bench(o);
  const skipped: string[] = [];
  if (!b.loadgen.tls && cells.some((c) => c.tls)) {
    const tlsCells = cells.filter((c) => c.tls).map((c) => c.name);
    skipped.push(
      `skipped ${tlsCells.join(", ")}: loadgen was built without OpenSSL (install libssl-dev, then delete bench/.build/loadgen)`,
    );
    log(skipped.at(-1)!);
    cells = cells.filter((c) => !c.tls);
  }
  const resp = cells.filter((c) => c.mode === "resp").map((c) => c.name);
  if (resp.length > 0 && REDIS_BENCHMARK === null) {
    skipped.push(`skipped ${resp.join(", ")}: redis-benchmark not installed (apt-get install redis-tools)`);
    log(skipped.at(-1)!);
    cells = cells.filter((c) => c.mode !== "resp");
  } else if (resp.length > 0 && !b.specs.has(REDIS_LABEL)) {
    skipped.push(`${resp.join(", ")}: no redis-server reference row (apt-get install redis-server)`);
    log(skipped.at(-1)!);
    cells = cells.map((c) => (c.ref === REDIS_LABEL ? { ...c, ref: undefined } : c));
  }
  const t0 = now();
  const date = cmdOut(["date", "-u"], new Date().toUTCString());
  const nproc = cmdOut(["nproc"], String(availableParallelism()));
  const cpuModel = (
    readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU"
  ).trim();
  const kernel = cmdOut(["uname", "-r"], "?");
  // paths of the repository relative to it, others (redis-server's) as they are; an empty argument as ""
  const arg = (a: string): string =>
    a === process.execPath
      ? "bun"
      : a === ""
        ? '""'
        : a.startsWith("/") && !a.startsWith(ROOT)
          ? a
          : relative(ROOT, a) || a;
  const show = (s: ServerSpec): string => s.argv.map(arg).join(" ");
  const used = [...new Set([...cells.flatMap(serversOf), ...(wantIdle ? serversOf(idleCell) : [])])];
  log(
    `${o.quick ? "quick" : "full"} run: ${o.reps} rep(s) × ${o.dur} s (+${o.warm} s warm-up); ` +
      `cells ${[...cells.map((c) => c.name), ...(wantIdle ? [`idle(${o.idleConns})`] : [])].join(", ")}; ` +
      `servers ${used.map((l) => `${l}=${show(b.spec(l))}`).join(", ")}; logs in ${b.outDir}`,
  );
  try {
    if (cells.length > 0) await b.matrix(cells);
    if (wantIdle) await runIdle(b, idleCell);
  } finally {
    await stopAll();
  }
  if (wantIdle) cells = [...cells, idleCell];
  const pin =
    b.serverCpu === null ? "unpinned" : `server pinned to CPU ${b.serverCpu}, loadgen to CPU ${b.clientCpu}`;
  const rec: Recorded = {
    date,
    bun: Bun.version,
    kernel,
    nproc,
    cpuModel,
    pin,
    reps: o.reps,
    dur: o.dur,
    warm: o.warm,
    otherMax: o.otherMax,
    patience: o.patience,
    servers: used.map((l) => ({ label: l, cmd: show(b.spec(l)), ready: b.readyLines.get(l) })),
    cells,
    runs: b.runs,
    disturbed: b.disturbed,
    patienceOut: b.patienceOut,
    seconds: Math.round(now() - t0),
    outDir: b.outDir,
    skipped,
  };
  writeFileSync(join(b.outDir, "run.json"), JSON.stringify(rec, null, 1));
  render(rec, o.writeResults === true);
  return b.crashed ? 1 : 0;
}

process.exit(await main());
