/**
 * What the load benchmark's tables share: the medians of a server's runs in a cell, the median of the
 * per-repetition ratios of two servers, and markdown tables in biome's format.
 * @module
 */
import type { Cell } from "./cells.ts";
import type { Run } from "./measure.ts";
import type { Recorded } from "./report.ts";
import { fmt, median } from "./util.ts";

/** The medians of one server's runs in one cell. */
export interface Summary {
  rate?: number;
  p99?: number;
  clientCpu?: number;
  clientCpuMax?: number;
  serverCpu?: number;
  /** RESP cells: server CPU µs per request */
  cpuPerReq?: number;
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
export const usable = (r: Run): boolean => r.failed === undefined && !r.died;
/** ...and nobody else used the two CPUs meanwhile (always true for the idle cell). */
export const clean = (r: Run, otherMax: number): boolean => usable(r) && (r.otherCpu ?? 0) <= otherMax;

/** Medians over the undisturbed runs, or over all usable runs when every one was disturbed. */
export function summarize(runs: Run[], otherMax: number): Summary {
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
    cpuPerReq: med((r) => r.cpuPerReq),
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
export function mdTable(rows: string[][], align: ("l" | "r")[]): string {
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

/**
 * The ratio column of one pair of servers in one cell: the median of the per-repetition ratios
 * (`lib`/`base`, of `metric`: rates by default or, for the idle cell, kB per connection), their range, and how many
 * repetitions were undisturbed pairs.
 */
export function ratioOf(
  b: Recorded,
  cell: Cell,
  base: string,
  lib: string,
  metric: (r: Run) => number | undefined = (r) => (cell.mode === "idle" ? r.kbPerConn : r.rate),
): string {
  const runsOf = (label: string): Run[] => b.runs.filter((r) => r.cell === cell.name && r.server === label);
  // In each repetition the servers ran back to back, so drift of the machine between repetitions
  // cancels out. Pairs where someone else used the CPUs are left out while undisturbed pairs exist.
  const all: { x: number; clean: boolean }[] = [];
  for (let rep = 1; rep <= b.reps; rep++) {
    const a = runsOf(base).find((r) => r.rep === rep && usable(r));
    const l = runsOf(lib).find((r) => r.rep === rep && usable(r));
    if (a === undefined || l === undefined) continue;
    const [x, y] = [metric(a), metric(l)];
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
