/**
 * The cells of the load benchmark and the servers they compare: which workload each cell runs (a
 * loadgen mode, or redis-benchmark for the RESP cells) and against which servers, by label.
 * @module
 */
import { fmt } from "./util.ts";
// ---------------------------------------------------------------- servers

/**
 * The servers, by label: each a file in bench/servers/ that listens on 127.0.0.1:PORT (its last
 * argument) and prints a line starting with "ready". `raw` and `sockerl` can be replaced with
 * `--raw-server` / `--lib-server`.
 */
export const SERVER_FILES: Readonly<Record<string, string>> = {
  raw: "servers/raw-echo.ts",
  sockerl: "servers/sockerl-echo.ts",
  "raw-packet4": "servers/raw-echo-packet4.ts",
  "sockerl-packet4": "servers/sockerl-echo-packet4.ts",
  "raw-naive": "servers/raw-echo-naive.ts",
  "raw-line": "servers/raw-echo-line.ts",
  "raw-packet4-whole": "servers/raw-echo-packet4-whole.ts",
  "raw-line-whole": "servers/raw-echo-line-whole.ts",
  "sockerl-line": "servers/sockerl-echo-line.ts",
  "sockerl-timeout": "servers/sockerl-echo-timeout.ts",
  "raw-tls": "servers/raw-echo-tls.ts",
  "sockerl-tls": "servers/sockerl-echo-tls.ts",
  "raw-resp": "servers/raw-resp.ts",
  "raw-resp-naive": "servers/raw-resp-naive.ts",
  "sockerl-resp": "servers/sockerl-resp.ts",
};

/**
 * The reference server of the RESP cells: the real redis-server, in memory only, on 127.0.0.1. Not a
 * file of bench/servers/; its port comes last (`--port PORT`), and it says "Ready to accept
 * connections" in its log rather than "ready port=N".
 */
export const REDIS_LABEL = "redis-server";
/** Every server label --server accepts. */
export const SERVER_LABELS: readonly string[] = [...Object.keys(SERVER_FILES), REDIS_LABEL];

// ---------------------------------------------------------------- cells

/** What loadgen does in a cell. */
export type Mode = "echo" | "connect" | "idle" | "resp";

/** One cell of the matrix: a loadgen workload and the servers it compares. */
export interface Cell {
  /** name used by --cells */
  readonly name: string;
  readonly mode: Mode;
  readonly conns: number;
  /** payload bytes per message (the frame header or delimiter comes on top) */
  readonly size: number;
  readonly pipeline: number;
  /** connect mode: close with RST (SO_LINGER 0) instead of FIN */
  readonly rst?: boolean;
  /** run by default in the full run only (not with --quick) */
  readonly fullOnly?: boolean;
  /** messages framed by loadgen: 4-byte big-endian length prefix, or payload + "\r\n" */
  readonly framing?: "4" | "crlf";
  /** over TLS (needs loadgen built with OpenSSL) */
  readonly tls?: boolean;
  /** the baseline server (default `raw`) */
  readonly raw?: string;
  /** the library server (default `sockerl`) */
  readonly lib?: string;
  /** a second baseline, a naive raw server, shown in a row of its own under the cell */
  readonly naive?: string;
  /**
   * an upper bound, shown in a row of its own: a raw server that echoes complete frames back whole,
   * doing no per-frame work (no server that hands each frame to application code gets there)
   */
  readonly bound?: string;
  /** a reference server shown next to them (the RESP cells: redis-server) */
  readonly ref?: string;
  /** resp mode: redis-benchmark's -n (requests per test) of a full run, for --dur 5 */
  readonly requests?: number;
  /** resp mode: the same with --quick */
  readonly quickRequests?: number;
}

/** The label of the baseline server of a cell. */
export const rawOf = (c: Cell): string => c.raw ?? "raw";
/** The label of the library server of a cell. */
export const libOf = (c: Cell): string => c.lib ?? "sockerl";
/** Every server a cell measures, baseline first. */
export const serversOf = (c: Cell): string[] => [
  rawOf(c),
  libOf(c),
  ...(c.naive ? [c.naive] : []),
  ...(c.bound ? [c.bound] : []),
  ...(c.ref ? [c.ref] : []),
];

const P4 = { framing: "4", raw: "raw-packet4", lib: "sockerl-packet4" } as const;
const LINE = { framing: "crlf", raw: "raw-line", lib: "sockerl-line" } as const;
const TLS = { tls: true, raw: "raw-tls", lib: "sockerl-tls" } as const;
// redis-benchmark -t set,get with its defaults otherwise (3-byte values, one key)
const RESP = {
  mode: "resp",
  conns: 50,
  size: 3,
  raw: "raw-resp",
  lib: "sockerl-resp",
  ref: REDIS_LABEL,
} as const;

/** Every echo and connect cell, in the order they run (and are reported). */
export const MATRIX: readonly Cell[] = [
  { name: "echo1", mode: "echo", conns: 1, size: 64, pipeline: 1 },
  { name: "echo100", mode: "echo", conns: 100, size: 64, pipeline: 1 },
  { name: "echo100p16", mode: "echo", conns: 100, size: 64, pipeline: 16 },
  { name: "echo16k", mode: "echo", conns: 10, size: 16384, pipeline: 4 },
  { name: "connect-rst", mode: "connect", conns: 50, size: 64, pipeline: 1, rst: true },
  // FIN close: capped near 14k/s by TIME_WAIT of the single 127.0.0.1 pair (see README)
  { name: "connect-fin", mode: "connect", conns: 50, size: 64, pipeline: 1, fullOnly: true },
  { name: "p4-100", mode: "echo", conns: 100, size: 64, pipeline: 1, fullOnly: true, ...P4 },
  {
    name: "p4-100p16",
    mode: "echo",
    conns: 100,
    size: 64,
    pipeline: 16,
    naive: "raw-naive",
    bound: "raw-packet4-whole",
    ...P4,
  },
  { name: "line100", mode: "echo", conns: 100, size: 64, pipeline: 1, fullOnly: true, ...LINE },
  { name: "line100p16", mode: "echo", conns: 100, size: 64, pipeline: 16, bound: "raw-line-whole", ...LINE },
  { name: "timeout100", mode: "echo", conns: 100, size: 64, pipeline: 1, lib: "sockerl-timeout" },
  {
    name: "timeout100p16",
    mode: "echo",
    conns: 100,
    size: 64,
    pipeline: 16,
    fullOnly: true,
    lib: "sockerl-timeout",
  },
  { name: "tls1", mode: "echo", conns: 1, size: 64, pipeline: 1, fullOnly: true, ...TLS },
  { name: "tls100", mode: "echo", conns: 100, size: 64, pipeline: 1, ...TLS },
  { name: "tls1-16k", mode: "echo", conns: 1, size: 16384, pipeline: 1, fullOnly: true, ...TLS },
  { name: "tls100-16k", mode: "echo", conns: 100, size: 16384, pipeline: 1, fullOnly: true, ...TLS },
  { name: "resp1", pipeline: 1, requests: 200_000, quickRequests: 10_000, fullOnly: true, ...RESP },
  {
    name: "resp16",
    pipeline: 16,
    requests: 1_000_000,
    quickRequests: 50_000,
    naive: "raw-resp-naive",
    ...RESP,
  },
];
/** The idle-memory cell's name (its connection count comes from the options). */
export const IDLE_NAME = "idle";

/** The row title of a cell in the table. */
export function cellTitle(c: Cell): string {
  if (c.mode === "idle") return `idle ${fmt(c.conns)} conns: kB/conn`;
  if (c.mode === "resp") return `RESP c=${c.conns} P=${c.pipeline} (redis-benchmark -t set,get): req/s`;
  if (c.mode === "connect") return `connect c=${c.conns} s=${c.size} ${c.rst ? "RST" : "FIN"} close: conns/s`;
  const kind = c.tls ? "TLS echo" : c.framing === "4" ? "packet 4 echo" : c.framing ? "line echo" : "echo";
  const extra = c.lib === "sockerl-timeout" ? ", idle timeout set" : "";
  return `${kind} c=${c.conns} s=${c.size} P=${c.pipeline}${extra}: msgs/s`;
}
