/**
 * Command-line options of the load benchmark (`bun bench/run.ts --help`).
 * @module
 */
import { join } from "node:path";
import { parseArgs as parseArgv } from "node:util";
import { IDLE_NAME, MATRIX, SERVER_LABELS } from "./cells.ts";
import { BENCH } from "./process.ts";
import { die } from "./util.ts";

/** Everything a run is configured with (defaults depend on --quick). */
export interface Options {
  quick: boolean;
  reps: number;
  dur: number;
  warm: number;
  cells: string[] | null;
  idle: boolean;
  idleConns: number;
  idleHold: number;
  idleSettle: number;
  writeResults: boolean | null;
  rawServer: string;
  libServer: string;
  libServerGiven: boolean;
  /** --server LABEL=CMD: any server of the matrix replaced */
  serverOverrides: Record<string, string>;
  quietWait: number;
  quietSecs: number;
  quietMax: number;
  otherMax: number;
  tries: number;
  patience: number;
  setupTimeout: number;
  readyTimeout: number;
  serverCpu: number;
  clientCpu: number;
  out: string | null;
  report: string | null;
}

const quickCells = MATRIX.filter((c) => !c.fullOnly).map((c) => c.name);

/** The --help text. */
export const HELP = `usage: bun bench/run.ts [options]
  --quick              a smoke test of about a minute: 1 rep, 1 s (+0.3 s warm-up) per cell, the
                       cells ${quickCells.join(", ")}
                       and the idle cell with 1,000 connections; RESULTS.md left alone
  --reps N             repetitions per cell and server (default 3; medians are reported)
  --dur S              measured seconds per run (default 5); the RESP cells (redis-benchmark, which
                       counts requests) scale their requests with it: -n 200,000 (resp1) and
                       1,000,000 (resp16) per test at 5 s
  --warm S             warm-up seconds per run (default 1); RESP cells: an unmeasured run of
                       warm/dur of the requests first
  --cells a,b          cells to run: ${[...MATRIX.map((c) => c.name), IDLE_NAME].join(", ")}
  --no-idle            skip the idle-memory cell
  --idle-conns N       idle connections held (default 10000)
  --write-results      rewrite bench/RESULTS.md (default: on for the full run only, i.e. without
  --no-write-results   --quick, --cells, --no-idle, --lib-server, --raw-server, --server)
  --lib-server CMD     library server (default bench/servers/sockerl-echo.ts); a .ts/.js file runs
  --raw-server CMD     with this Bun, anything else as a command; PORT is appended (they replace the
                       servers of the plain echo, connect and idle cells)
  --server LABEL=CMD   replace any server by label (repeatable), e.g.
                       --server "sockerl-tls=bench/.build/tls-echo test/fixtures/server.pem
                       test/fixtures/server-key.pem" (labels: ${SERVER_LABELS.join(", ")})
  --quiet-wait S       max wait for quiet CPUs before each measurement (default 15; quick 1; 0 = none)
  --tries N            measurements per run when other processes disturbed it (default 3; quick 1)
  --patience S         total extra time for waiting and measuring again (default 240; quick 5); once
                       spent, the run goes straight on and says so
  --server-cpu N       CPU for the servers (default 0)
  --client-cpu N       CPU for loadgen (default 1)
  --out DIR            keep raw results and server logs here (default: a new temporary folder)
  --report DIR         measure nothing: print the table of an earlier run from DIR/run.json
                       (with --write-results, also rewrite bench/RESULTS.md from it)`;

function num(flag: string, v: string | undefined, min: number, integer: boolean): number {
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n)))
    die(`${flag} expects ${integer ? "an integer" : "a number"} >= ${min}, got ${v ?? "nothing"}`);
  return n;
}

/**
 * Parse the command line (node:util parseArgs, strict: an unknown option exits with the help).
 *
 * @example
 * const o = parseArgs(["--quick", "--cells", "echo1,idle"]);
 */
export function parseArgs(argv: string[]): Options {
  const str = { type: "string" } as const;
  const bool = { type: "boolean" } as const;
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgv({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: bool,
        reps: str,
        dur: str,
        warm: str,
        cells: str,
        "no-idle": bool,
        "idle-conns": str,
        "write-results": bool,
        "no-write-results": bool,
        "lib-server": str,
        "raw-server": str,
        server: { type: "string", multiple: true },
        "quiet-wait": str,
        tries: str,
        patience: str,
        "server-cpu": str,
        "client-cpu": str,
        out: str,
        report: str,
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    die(`${(e as Error).message}\n${HELP}`);
  }
  if (values.help === true) {
    console.log(HELP);
    process.exit(0);
  }
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const serverOverrides: Record<string, string> = {};
  for (const spec of (values.server as string[] | undefined) ?? []) {
    const eq = spec.indexOf("=");
    const label = spec.slice(0, eq);
    if (eq <= 0 || spec.slice(eq + 1).trim() === "") die(`--server expects LABEL=CMD, got ${spec}`);
    if (!SERVER_LABELS.includes(label))
      die(`--server: no server ${label}; labels: ${SERVER_LABELS.join(", ")}`);
    serverOverrides[label] = spec.slice(eq + 1);
  }
  const quick = values.quick === true;
  const o: Options = {
    quick,
    reps: quick ? 1 : 3,
    dur: quick ? 1 : 5,
    warm: quick ? 0.3 : 1,
    cells: null,
    idle: values["no-idle"] !== true,
    idleConns: quick ? 1000 : 10000,
    idleHold: quick ? 1.5 : 4,
    idleSettle: quick ? 0.5 : 1,
    writeResults: values["write-results"] === true ? true : null,
    rawServer: s("raw-server") ?? join(BENCH, "servers", "raw-echo.ts"),
    libServer: s("lib-server") ?? join(BENCH, "servers", "sockerl-echo.ts"),
    libServerGiven:
      s("raw-server") !== undefined ||
      s("lib-server") !== undefined ||
      Object.keys(serverOverrides).length > 0,
    serverOverrides,
    quietWait: quick ? 1 : 15,
    quietSecs: quick ? 0.5 : 1.5,
    quietMax: 0.1,
    otherMax: 0.15,
    tries: quick ? 1 : 3,
    patience: quick ? 5 : 240,
    setupTimeout: quick ? 10 : 30,
    readyTimeout: 30,
    serverCpu: 0,
    clientCpu: 1,
    out: s("out") ?? null,
    report: s("report") ?? null,
  };
  if (s("reps") !== undefined) o.reps = num("--reps", s("reps"), 1, true);
  if (s("dur") !== undefined) o.dur = num("--dur", s("dur"), 0.1, false);
  if (s("warm") !== undefined) o.warm = num("--warm", s("warm"), 0, false);
  if (s("cells") !== undefined)
    o.cells = s("cells")!
      .split(",")
      .filter((c) => c !== "");
  if (s("idle-conns") !== undefined) o.idleConns = num("--idle-conns", s("idle-conns"), 1, true);
  if (s("quiet-wait") !== undefined) o.quietWait = num("--quiet-wait", s("quiet-wait"), 0, false);
  if (s("tries") !== undefined) o.tries = num("--tries", s("tries"), 1, true);
  if (s("patience") !== undefined) o.patience = num("--patience", s("patience"), 0, false);
  if (s("server-cpu") !== undefined) o.serverCpu = num("--server-cpu", s("server-cpu"), 0, true);
  if (s("client-cpu") !== undefined) o.clientCpu = num("--client-cpu", s("client-cpu"), 0, true);
  for (const flag of ["lib-server", "raw-server"] as const)
    if (s(flag) === "") die(`--${flag} expects a command`);
  const known = new Set([...MATRIX.map((c) => c.name), IDLE_NAME]);
  for (const c of o.cells ?? []) if (!known.has(c)) die(`unknown cell ${c}; cells: ${[...known].join(", ")}`);
  if (values["no-write-results"] === true) o.writeResults = false;
  else if (o.writeResults === null)
    o.writeResults = !o.quick && o.cells === null && o.idle && !o.libServerGiven && o.report === null;
  return o;
}
