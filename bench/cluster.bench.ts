/**
 * cluster() on this machine: echo msgs/s and connect rate with 1 and 2 workers, driven by the C load
 * generator (bench/loadgen.c, built by bench/run.ts or here), with the server CPU summed over the
 * worker processes (from /proc) and given per message.
 *
 * Layouts (the machine has 2 cores, so no layout gives the server 2 cores AND the client its own):
 * - `1w cpu0`: one worker pinned to CPU 0, loadgen pinned to CPU 1 (as bench/run.ts does);
 * - `2w cpu0`: two workers both pinned to CPU 0: what a second process costs on the same core;
 * - `2w cpu0-1`: two workers free on both CPUs, loadgen pinned to CPU 1: the workers get CPU 0
 *   and whatever loadgen leaves of CPU 1. This is the only layout where 2 workers can beat 1, and
 *   on 2 cores it is bounded by the client sharing a core.
 *
 * Cells: `echo100` (100 connections, 64 B ping-pong) and `connect-rst` (50 slots: connect, 64 B
 * echo, RST). `--dur S` (default 4) + 1 s warm-up per cell, `--reps N` (default 1), interleaved.
 * Run: `bun bench/cluster.bench.ts [--dur 4] [--reps 1]` (about 3 × 2 × (dur + 3) s per rep).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const argv = process.argv.slice(2);
const value = (name: string, fallback: number) => {
  const at = argv.indexOf(name);
  return at === -1 ? fallback : Number(argv[at + 1]);
};
const dur = value("--dur", 4);
const reps = value("--reps", 1);
const root = join(import.meta.dir, "..");
const loadgen = join(import.meta.dir, ".build", "loadgen");
if (!existsSync(loadgen)) {
  const cc = Bun.spawnSync(["gcc", "-O2", "-o", loadgen, join(import.meta.dir, "loadgen.c")]);
  if (cc.exitCode !== 0) throw new Error(`cannot build loadgen: ${cc.stderr}`);
}
const taskset = Bun.which("taskset") !== null;
const pin = (cpus: string, cmd: string[]) => (taskset ? ["taskset", "-c", cpus, ...cmd] : cmd);

function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime, in 1/100 s
  } catch {
    return 0;
  }
}

/** A port nothing listens on now (bound and released: every worker must bind the same number). */
function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

interface Layout {
  name: string;
  workers: number;
  cpus: string;
}
const LAYOUTS: Layout[] = [
  { name: "1w cpu0", workers: 1, cpus: "0" },
  { name: "2w cpu0", workers: 2, cpus: "0" },
  { name: "2w cpu0-1", workers: 2, cpus: "0-1" },
];
const CELLS = {
  echo100: ["-m", "echo", "-c", "100", "-s", "64", "-P", "1"],
  "connect-rst": ["-m", "connect", "-c", "50", "-s", "64", "-L"],
};

async function startCluster(layout: Layout, port: number) {
  const proc = Bun.spawn(pin(layout.cpus, [process.execPath, join(root, "test/fixtures/cluster-app.ts")]), {
    env: {
      ...process.env,
      CLUSTER_PORT: String(port),
      CLUSTER_WORKERS: String(layout.workers),
      CLUSTER_GREET: "0",
    },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value: chunk, done } = await reader.read();
    if (done) throw new Error("cluster-app exited before ready");
    text += new TextDecoder().decode(chunk);
  }
  const ready = JSON.parse(text.slice(0, text.indexOf("\n"))) as { workers: Array<[number, number]> };
  return { proc, pids: [proc.pid, ...ready.workers.map(([, pid]) => pid)] };
}

const rows: string[] = [];
for (let rep = 0; rep < reps; rep++) {
  for (const layout of rep % 2 === 0 ? LAYOUTS : LAYOUTS.slice().reverse()) {
    const port = freePort();
    const { proc, pids } = await startCluster(layout, port);
    for (const [cell, args] of Object.entries(CELLS)) {
      const t0 = pids.map(ticks);
      const started = performance.now();
      const run = Bun.spawnSync(
        pin("1", [loadgen, "-p", String(port), ...args, "-d", String(dur), "-w", "1"]),
        {
          timeout: (dur + 40) * 1000,
        },
      );
      const wall = (performance.now() - started) / 1000;
      const cpu = pids.map((pid, i) => (ticks(pid) - t0[i]!) / 100).reduce((a, b) => a + b, 0);
      const out = JSON.parse(run.stdout.toString().trim()) as {
        msgs_per_s: number;
        conns_per_s?: number;
        client_cpu: number;
        errors: number;
      };
      // The server CPU is over the whole loadgen run (setup, warm-up and the window): per message,
      // divide by the rate times that wall time, a close upper bound.
      const perMsgUs = ((cpu / wall) * 1e6) / out.msgs_per_s;
      const row = `| ${layout.name.padEnd(9)} | ${cell.padEnd(11)} | ${String(Math.round(out.msgs_per_s)).padStart(8)} | ${(cpu / wall).toFixed(2)} | ${perMsgUs.toFixed(2)} | ${out.client_cpu.toFixed(2)} | ${out.errors} |`;
      rows.push(row);
      console.log(row);
    }
    proc.stdin.write("stop 0\n");
    proc.stdin.flush();
    await Promise.race([proc.exited, Bun.sleep(5000)]);
    if (proc.exitCode === null) proc.kill("SIGKILL");
  }
}
console.log("\n| layout    | cell        | rate/s   | server cores | µs CPU/msg | loadgen cpu | errors |");
console.log("| --------- | ----------- | -------- | ---- | ---- | ---- | --- |");
for (const row of rows) console.log(row);
