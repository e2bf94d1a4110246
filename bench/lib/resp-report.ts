/**
 * The table of the RESP cells (redis-benchmark): per server its requests/s and its CPU µs per request,
 * each with the median and range of the per-repetition ratios to the lean raw server; at P=16 also
 * the library against the naive raw server. redis-server is a reference row.
 * @module
 */
import { type Cell, libOf, rawOf, serversOf } from "./cells.ts";
import type { Run } from "./measure.ts";
import type { Recorded } from "./report.ts";
import { mdTable, ratioOf, type Summary, summarize } from "./summary.ts";
import { fmt } from "./util.ts";

const rateOf = (r: Run): number | undefined => r.rate;
const cpuOf = (r: Run): number | undefined => r.cpuPerReq;

/** The RESP table and its notes, or undefined when the run had no RESP cell. */
export function respSection(b: Recorded): { table: string; notes: string[] } | undefined {
  const cells = b.cells.filter((c) => c.mode === "resp");
  if (cells.length === 0) return undefined;
  const rows: string[][] = [
    ["cell", "server", "req/s", "÷ lean raw", "CPU µs/req", "÷ lean raw", "p99 µs", "cpu srv/cli"],
  ];
  const notes: string[] = [];
  const busyClient: string[] = [];
  const summaryOf = (cell: Cell, label: string): Summary =>
    summarize(
      b.runs.filter((r) => r.cell === cell.name && r.server === label),
      b.otherMax,
    );
  const flag = (s: Summary): string => (s.died ? ` (died ${s.died}×)` : "") + (s.failed ? " (failed)" : "");
  for (const cell of cells) {
    const raw = rawOf(cell);
    const lib = libOf(cell);
    let first = true;
    for (const label of serversOf(cell)) {
      const s = summaryOf(cell, label);
      const base = label === raw;
      rows.push([
        first ? `${cell.name}: c=${cell.conns} P=${cell.pipeline}` : "",
        label + (label === cell.ref ? " (reference)" : ""),
        fmt(s.rate) + flag(s),
        base ? "×1" : ratioOf(b, cell, raw, label, rateOf),
        fmt(s.cpuPerReq, 2),
        base ? "×1" : ratioOf(b, cell, raw, label, cpuOf),
        fmt(s.p99),
        `${fmt(s.serverCpu, 2)}/${fmt(s.clientCpu, 2)}`,
      ]);
      first = false;
      if (s.clientCpuMax !== undefined && s.clientCpuMax >= 0.95)
        busyClient.push(`${cell.name} ${label} (${fmt(s.clientCpuMax, 2)})`);
    }
    if (cell.naive !== undefined)
      rows.push([
        "",
        `${lib} ÷ ${cell.naive} (naive raw)`,
        "",
        ratioOf(b, cell, cell.naive, lib, rateOf),
        "",
        ratioOf(b, cell, cell.naive, lib, cpuOf),
        "",
        "",
      ]);
    const reqs = b.runs.find((r) => r.cell === cell.name && r.lg?.requests !== undefined)?.lg?.requests;
    if (reqs !== undefined)
      notes.push(
        `${cell.name}: ${fmt(Number(reqs))} requests per run (-t set,get, -n ${fmt(Number(reqs) / 2)})`,
      );
  }
  if (busyClient.length > 0)
    notes.push(
      `redis-benchmark client_cpu ≥ 0.95 (the client may be the limit; see "RESP cells" in README.md): ${busyClient.join(", ")}`,
    );
  return { table: mdTable(rows, ["l", "l", "r", "r", "r", "r", "r", "r"]), notes };
}
