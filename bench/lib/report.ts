/**
 * Reporting of the load benchmark: medians, per-repetition ratios, the markdown table and notes,
 * and bench/RESULTS.md.
 * @module
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Cell, cellTitle, IDLE_NAME, libOf, type Run, rawOf } from "./measure.ts";
import { BENCH } from "./process.ts";
import { fmt, log, median } from "./util.ts";

interface Summary {
  rate?: number;
  p99?: number;
  clientCpu?: number;
  clientCpuMax?: number;
  serverCpu?: number;
  errors: number;
  died: number;
  failed: number;
  kbPerConn?: number;
  rss0?: number;
  rss1?: number;
  hwm1?: number;
  held?: number;
}

/** A measurement at all: loadgen gave a result and the server lived through it. */
const usable = (r: Run): boolean => r.failed === undefined && !r.died;
/** ...and nobody else used the two CPUs meanwhile (always true for the idle cell). */
const clean = (r: Run, otherMax: number): boolean => usable(r) && (r.otherCpu ?? 0) <= otherMax;

/** Medians over the undisturbed runs, or over all usable runs when every one was disturbed. */
function summarize(runs: Run[], otherMax: number): Summary {
  const cleanRuns = runs.filter((r) => clean(r, otherMax));
  const ok = cleanRuns.length > 0 ? cleanRuns : runs.filter(usable);
  const med = (f: (r: Run) => number | undefined): number | undefined =>
    median(ok.map(f).filter((x): x is number => x !== undefined));
  const cc = ok.map((r) => r.clientCpu).filter((x): x is number => x !== undefined);
  return {
    rate: med((r) => r.rate),
    p99: med((r) => r.p99),
    clientCpu: med((r) => r.clientCpu),
    clientCpuMax: cc.length ? Math.max(...cc) : undefined,
    serverCpu: med((r) => r.serverCpu),
    errors: runs.reduce((a, r) => a + (r.errors ?? 0), 0),
    died: runs.filter((r) => r.died).length,
    failed: runs.filter((r) => r.failed !== undefined).length,
    kbPerConn: med((r) => r.kbPerConn),
    rss0: med((r) => r.rss0),
    rss1: med((r) => r.rss1),
    hwm1: med((r) => r.hwm1),
    held: med((r) => r.held),
  };
}

/** A markdown table, padded, with the separator row in biome's format. */
function mdTable(rows: string[][], align: ("l" | "r")[]): string {
  const w = align.map((_, i) => Math.max(3, ...rows.map((r) => [...(r[i] ?? "")].length)));
  const pad = (s: string, i: number): string => {
    const n = w[i]! - [...s].length;
    return align[i] === "r" ? " ".repeat(n) + s : s + " ".repeat(n);
  };
  const line = (r: string[]): string => `| ${r.map((s, i) => pad(s, i)).join(" | ")} |`;
  // the separator row in biome's markdown format, so a generated RESULTS.md passes `biome check`
  const sep = `| ${align.map((a, i) => (a === "r" ? `${"-".repeat(w[i]! - 1)}:` : "-".repeat(w[i]!))).join(" | ")} |`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}

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

/**
 * The ratio column of one pair of servers in one cell: the median of the per-repetition ratios
 * (`lib`/`base`, on rates or, for the idle cell, kB per connection), their range, and how many
 * repetitions were undisturbed pairs.
 */
function ratioOf(b: Recorded, cell: Cell, base: string, lib: string): string {
  const runsOf = (label: string): Run[] => b.runs.filter((r) => r.cell === cell.name && r.server === label);
  // In each repetition the servers ran back to back, so drift of the machine between repetitions
  // cancels out. Pairs where someone else used the CPUs are left out while undisturbed pairs exist.
  const all: { x: number; clean: boolean }[] = [];
  for (let rep = 1; rep <= b.reps; rep++) {
    const a = runsOf(base).find((r) => r.rep === rep && usable(r));
    const l = runsOf(lib).find((r) => r.rep === rep && usable(r));
    if (a === undefined || l === undefined) continue;
    const [x, y] = cell.mode === "idle" ? [a.kbPerConn, l.kbPerConn] : [a.rate, l.rate];
    if (x !== undefined && y !== undefined && x > 0)
      all.push({ x: y / x, clean: clean(a, b.otherMax) && clean(l, b.otherMax) });
  }
  const pairs = all.some((p) => p.clean) ? all.filter((p) => p.clean) : all;
  const rs = pairs.map((p) => p.x);
  let ratio = rs.length > 0 ? `×${fmt(median(rs), 2)}` : "–";
  if (rs.length > 1) ratio += ` (${fmt(Math.min(...rs), 2)}–${fmt(Math.max(...rs), 2)})`;
  if (rs.length > 0 && rs.length < b.reps) ratio += ` [${rs.length}/${b.reps}]`;
  return ratio;
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
  for (const cell of b.cells) {
    const raw = rawOf(cell);
    const lib = libOf(cell);
    const sl = summaryOf(cell, lib);
    // the plain cells compare raw with sockerl; the others name their pair of servers
    const pairs: [string, string][] = [
      [raw, `${raw === "raw" && lib === "sockerl" ? "" : ` [${raw} / ${lib}]`}`],
    ];
    if (cell.naive !== undefined)
      pairs.push([cell.naive, ` [${cell.naive} / ${lib}]: naive raw, one write() per request`]);
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
      for (const label of [raw, lib, ...(cell.naive ? [cell.naive] : [])]) {
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

/** Print the table and notes; with `write`, rewrite bench/RESULTS.md. */
export function render(rec: Recorded, write: boolean): void {
  const { table, notes, runsTable } = report(rec);
  const setup =
    `Bun ${rec.bun}, Linux ${rec.kernel}, ${rec.nproc} CPUs (${rec.cpuModel}), ${rec.pin}; ` +
    `${rec.reps} rep(s) × ${rec.dur} s (+${rec.warm} s warm-up) per cell and server, medians`;
  console.log(`\n${table}\n`);
  for (const n of notes) console.log(`note: ${n}`);
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
    "Rates in msgs/s or conns/s (higher is better), medians over the repetitions. The ratio column is the",
    "median of the per-repetition ratios library/raw (both servers ran back to back in each repetition),",
    "with their range in brackets; `[2/3]` means a repetition disturbed by other processes was left out.",
    "A cell that does not compare `raw` with `sockerl` names its pair in brackets (baseline / library).",
    "For the idle cell it is kB per connection (lower is better). `cpu srv/cli` = CPU used by the server /",
    "by loadgen during the run (1.00 = one full core). See README.md for how to read it.",
    "",
    table,
    "",
    ...(notes.length ? [...notes.map((n) => `- ${n}`), ""] : []),
    "## Every run",
    "",
    runsTable,
    "",
  ].join("\n");
  writeFileSync(join(BENCH, "RESULTS.md"), md);
  log("wrote bench/RESULTS.md");
}
