/**
 * Reporting of the load benchmark: medians, per-repetition ratios, the markdown table and notes,
 * and bench/RESULTS.md.
 * @module
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Cell, cellTitle, IDLE_NAME, libOf, rawOf, serversOf } from "./cells.ts";
import type { Run } from "./measure.ts";
import { BENCH } from "./process.ts";
import { respSection } from "./resp-report.ts";
import { mdTable, ratioOf, type Summary, summarize } from "./summary.ts";
import { fmt, log } from "./util.ts";

/** Everything a run recorded: enough to print its table again later (`--report DIR`). */
export interface Recorded {
  date: string;
  bun: string;
  kernel: string;
  nproc: string;
  cpuModel: string;
  pin: string;
  reps: number;
  dur: number;
  warm: number;
  otherMax: number;
  patience: number;
  servers: { label: string; cmd: string; ready?: string }[];
  cells: Cell[];
  runs: Run[];
  disturbed: number;
  patienceOut: boolean;
  seconds: number;
  outDir: string;
  /** cells left out, and why */
  skipped?: string[];
}

/** The table (one row per cell and pair of servers), its notes, and the table of every run. */
export function report(b: Recorded): { table: string; notes: string[]; runsTable: string } {
  const rows: string[][] = [
    [
      "cell",
      "raw",
      "sockerl",
      "sockerl/raw",
      "p99 µs raw",
      "p99 µs sockerl",
      "cpu raw srv/cli",
      "cpu sockerl srv/cli",
    ],
  ];
  const notes: string[] = [];
  const busyClient: string[] = [];
  const flag = (s: Summary): string =>
    (s.errors ? ` (${fmt(s.errors)} err)` : "") +
    (s.died ? ` (died ${s.died}×)` : "") +
    (s.failed ? " (failed)" : "");
  const summaryOf = (cell: Cell, label: string): Summary =>
    summarize(
      b.runs.filter((r) => r.cell === cell.name && r.server === label),
      b.otherMax,
    );
  // the RESP cells have a table of their own (resp-report.ts)
  for (const cell of b.cells.filter((c) => c.mode !== "resp")) {
    const raw = rawOf(cell);
    const lib = libOf(cell);
    const sl = summaryOf(cell, lib);
    // the plain cells compare raw with sockerl; the others name their pair of servers
    const pairs: [string, string][] = [
      [raw, `${raw === "raw" && lib === "sockerl" ? "" : ` [${raw} / ${lib}]`}`],
    ];
    if (cell.naive !== undefined)
      pairs.push([cell.naive, ` [${cell.naive} / ${lib}]: naive raw, one write() per request`]);
    if (cell.bound !== undefined)
      pairs.push([
        cell.bound,
        ` [${cell.bound} / ${lib}]: bound, complete frames echoed whole, no per-frame work`,
      ]);
    for (const [base, suffix] of pairs) {
      const sr = summaryOf(cell, base);
      const ratio = ratioOf(b, cell, base, lib);
      const title = base === raw ? `${cellTitle(cell)}${suffix}` : `↳ same${suffix}`;
      if (cell.mode === "idle") {
        const mb = (s: Summary): string =>
          `${fmt((s.rss0 ?? Number.NaN) / 1024, 1)} → ${fmt((s.rss1 ?? Number.NaN) / 1024, 1)} MB`;
        rows.push([
          title,
          fmt(sr.kbPerConn, 2) + flag(sr),
          fmt(sl.kbPerConn, 2) + flag(sl),
          ratio,
          `RSS ${mb(sr)}`,
          `RSS ${mb(sl)}`,
          "–",
          "–",
        ]);
        for (const [label, s] of [
          [base, sr],
          [lib, sl],
        ] as const)
          if (s.held !== undefined && s.held < cell.conns)
            notes.push(`idle: ${label} held only ${fmt(s.held)} connections`);
      } else {
        const cpu = (s: Summary): string => `${fmt(s.serverCpu, 2)}/${fmt(s.clientCpu, 2)}`;
        rows.push([
          title,
          fmt(sr.rate) + flag(sr),
          fmt(sl.rate) + flag(sl),
          ratio,
          fmt(sr.p99),
          fmt(sl.p99),
          cpu(sr),
          cpu(sl),
        ]);
      }
    }
    if (cell.mode !== "idle")
      for (const label of serversOf(cell)) {
        const s = summaryOf(cell, label);
        if (s.clientCpuMax !== undefined && s.clientCpuMax >= 0.95)
          busyClient.push(`${cell.name} ${label} (${fmt(s.clientCpuMax, 2)})`);
      }
  }
  if (busyClient.length > 0)
    notes.push(
      `loadgen client_cpu ≥ 0.95 (it may be near its limit; see "Load generator headroom" in README.md): ${busyClient.join(", ")}`,
    );
  for (const s of b.skipped ?? []) notes.push(s);
  for (const r of b.runs)
    if (r.failed !== undefined || r.died)
      notes.push(
        `rep ${r.rep} ${r.cell} ${r.server}: ${[r.failed, r.died ? "the server died during the run" : undefined].filter(Boolean).join("; ")}`,
      );
  for (const r of b.runs)
    if (r.warn !== undefined && r.failed === undefined)
      notes.push(`rep ${r.rep} ${r.cell} ${r.server}: loadgen: ${r.warn}`);
  if (b.disturbed > 0)
    notes.push(`${b.disturbed} measurement(s) disturbed by other processes were measured again`);
  const still = b.runs.filter((r) => (r.otherCpu ?? 0) > b.otherMax);
  if (still.length > 0)
    notes.push(
      `kept although disturbed (other_cpu > ${b.otherMax}): ` +
        still.map((r) => `rep ${r.rep} ${r.cell} ${r.server} (${fmt(r.otherCpu, 2)})`).join(", "),
    );
  if (b.patienceOut) notes.push(`the machine was busy: the --patience budget (${b.patience} s) ran out`);

  const runRows: string[][] = [
    [
      "rep",
      "cell",
      "server",
      "rate /s",
      "p50 µs",
      "p99 µs",
      "MB/s",
      "err",
      "client_cpu",
      "server_cpu",
      "other_cpu",
      "tries",
    ],
  ];
  for (const r of b.runs) {
    if (r.cell === IDLE_NAME) continue;
    const lg = r.lg ?? {};
    runRows.push([
      String(r.rep),
      r.cell,
      r.server,
      r.failed !== undefined ? "failed" : fmt(r.rate),
      fmt(Number(lg.p50_us)),
      fmt(r.p99),
      fmt(Number(lg.mb_per_s), 1),
      fmt(r.errors),
      fmt(r.clientCpu, 2),
      fmt(r.serverCpu, 2),
      fmt(r.otherCpu, 2),
      String(r.tries),
    ]);
  }
  for (const r of b.runs) {
    if (r.cell !== IDLE_NAME) continue;
    runRows.push([
      String(r.rep),
      `idle held ${fmt(r.held)}`,
      r.server,
      r.failed !== undefined ? "failed" : `${fmt(r.kbPerConn, 2)} kB/conn`,
      `RSS ${fmt((r.rss0 ?? Number.NaN) / 1024, 1)} MB`,
      `${fmt((r.rss1 ?? Number.NaN) / 1024, 1)} MB`,
      `hwm ${fmt((r.hwm1 ?? Number.NaN) / 1024, 1)}`,
      fmt(r.errors),
      "–",
      "–",
      "–",
      String(r.tries),
    ]);
  }
  return {
    table: mdTable(rows, ["l", "r", "r", "r", "r", "r", "r", "r"]),
    notes,
    runsTable: mdTable(runRows, ["r", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r"]),
  };
}

/** What RESULTS.md says above the loadgen table. */
const LOADGEN_INTRO = [
  "Rates in msgs/s or conns/s (higher is better), medians over the repetitions. The ratio column is the",
  "median of the per-repetition ratios library/raw (both servers ran back to back in each repetition),",
  "with their range in brackets; `[2/3]` means a repetition disturbed by other processes was left out.",
  "A cell that does not compare `raw` with `sockerl` names its pair in brackets (baseline / library).",
  "For the idle cell it is kB per connection (lower is better). `cpu srv/cli` = CPU used by the server /",
  "by loadgen during the run (1.00 = one full core). See README.md for how to read it.",
];

/** The RESP section of RESULTS.md. */
function respMd(resp: { table: string; notes: string[] }): string[] {
  return [
    "## RESP under redis-benchmark",
    "",
    "`redis-benchmark -c 50 -P 1|16 -t set,get` (pinned to the client CPU) against the lean raw RESP server,",
    "the library's (examples/resp-server.ts), at P=16 the naive raw one (one `write()` per reply), and the",
    "real redis-server as a reference. `req/s`: all requests over the time of the two tests; `CPU µs/req`:",
    "the server's CPU (utime + stime from /proc) over the run, per request (lower is better). Each `÷ lean",
    "raw` is the median of the per-repetition ratios server/lean raw, with their range; the `÷` row is the",
    "library against the naive raw server. `cpu srv/cli` = CPU of the server / of redis-benchmark.",
    "",
    resp.table,
    "",
    ...(resp.notes.length ? [...resp.notes.map((n) => `- ${n}`), ""] : []),
  ];
}

/** Print the table and notes; with `write`, rewrite bench/RESULTS.md. */
export function render(rec: Recorded, write: boolean): void {
  const { table, notes, runsTable } = report(rec);
  const resp = respSection(rec);
  // a run of RESP cells only has no loadgen table
  const loadgenTable = rec.cells.some((c) => c.mode !== "resp");
  const setup =
    `Bun ${rec.bun}, Linux ${rec.kernel}, ${rec.nproc} CPUs (${rec.cpuModel}), ${rec.pin}; ` +
    `${rec.reps} rep(s) × ${rec.dur} s (+${rec.warm} s warm-up) per cell and server, medians`;
  if (loadgenTable) console.log(`\n${table}\n`);
  if (resp !== undefined) console.log(`\nRESP under redis-benchmark:\n\n${resp.table}\n`);
  for (const n of [...(resp?.notes ?? []), ...notes]) console.log(`note: ${n}`);
  // the options some servers report when ready (which line framing the library accepted, ...)
  const said = rec.servers.filter((x) => x.ready !== undefined && x.ready !== "ready");
  if (said.length > 0)
    console.log(`servers: ${said.map((x) => `${x.label} ${x.ready!.replace(/^ready ?/, "")}`).join(", ")}`);
  console.log(`${setup}; ${rec.seconds} s in all; details in ${rec.outDir}`);
  if (!write) return;
  const md = [
    "# Benchmark results",
    "",
    "Written by `bun bench/run.ts` (see [README.md](README.md)); rerun it to refresh this file.",
    "",
    `- Date: ${rec.date.replace(/\s+/g, " ")}`, // `date` pads single-digit days; the formatter does not
    `- Bun ${rec.bun}, Linux ${rec.kernel}, nproc ${rec.nproc} (${rec.cpuModel})`,
    `- ${rec.pin}; ${rec.reps} repetitions × ${rec.dur} s (+${rec.warm} s warm-up) per cell and server, ` +
      "interleaved cell by cell",
    `- Servers: ${rec.servers.map((s) => `${s.label} = \`${s.cmd}\`${s.ready && s.ready !== "ready" ? ` (${s.ready})` : ""}`).join(", ")}`,
    "",
    ...(loadgenTable ? [...LOADGEN_INTRO, "", table, ""] : []),
    ...(notes.length ? [...notes.map((n) => `- ${n}`), ""] : []),
    ...(resp === undefined ? [] : respMd(resp)),
    "## Every run",
    "",
    runsTable,
    "",
  ].join("\n");
  writeFileSync(join(BENCH, "RESULTS.md"), md);
  log("wrote bench/RESULTS.md");
}
