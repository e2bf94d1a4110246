/**
 * The idle-memory cell of the load benchmark: kB of server RSS per idle connection, a fresh server
 * per repetition.
 * @module
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { type Cell, serversOf } from "./cells.ts";
import { type Bench, describeRun, type Run, type Server } from "./measure.ts";
import { alive, memKb, pump, ROOT, started, stopProc, wrap } from "./process.ts";
import { log, sleep } from "./util.ts";

/**
 * The idle-memory cell: for each repetition and server (order reversed in even repetitions), a
 * fresh server, loadgen holding `cell.conns` idle connections, and the server's VmRSS before and
 * with them.
 */
export async function idleCell(b: Bench, cell: Cell): Promise<void> {
  for (let rep = 1; rep <= b.o.reps; rep++) {
    const order = serversOf(cell);
    if (rep % 2 === 0) order.reverse();
    for (const label of order) {
      const spec = b.spec(label);
      const run: Run = { server: spec.label, cell: cell.name, rep, tries: 1, restarted: false };
      b.runs.push(run);
      const srv = await b.startServer(spec);
      if (srv === undefined) {
        run.failed = "server did not start";
        b.crashed = true;
        continue;
      }
      await idleOnce(b, srv, cell, run);
      if (!alive(srv.proc)) {
        run.died = true;
        b.crashed = true;
      }
      await stopProc(srv.proc);
      log(`rep ${rep}/${b.o.reps} ${describeRun(run, cell)}`);
    }
  }
}

async function idleOnce(b: Bench, srv: Server, cell: Cell, run: Run): Promise<void> {
  await sleep(b.o.idleSettle);
  await b.waitQuiet();
  const rss0 = memKb(srv.pid, "VmRSS");
  const args = ["-m", "idle", "-p", String(srv.port), "-c", String(cell.conns), "-s", String(cell.size)];
  args.push("-t", String(b.o.idleHold), "-T", String(b.o.setupTimeout));
  const proc = Bun.spawn(wrap(b.clientCpu, [b.loadgen.bin, ...args], b.nofile), {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  started.add(proc);
  const first = Promise.withResolvers<string | undefined>();
  let out = "";
  let err = "";
  const pumped = Promise.all([
    pump(proc.stdout, (s) => {
      out += s;
      if (out.includes("\n")) first.resolve(out.slice(0, out.indexOf("\n")));
    }),
    pump(proc.stderr, (s) => (err += s)),
  ]);
  void proc.exited.then(() => first.resolve(undefined));
  const timer = setTimeout(() => first.resolve(undefined), (b.o.setupTimeout + 10) * 1000);
  const line = await first.promise;
  clearTimeout(timer);
  if (line !== undefined) {
    await sleep(b.o.idleSettle); // let the server settle with every connection open
    run.rss1 = memKb(srv.pid, "VmRSS");
    run.hwm1 = memKb(srv.pid, "VmHWM");
  }
  // loadgen exits by itself after holding; bound the wait anyway
  const exited = await Promise.race([
    proc.exited.then(() => true),
    sleep(b.o.idleHold + 10).then(() => false),
  ]);
  if (!exited) await stopProc(proc);
  await Promise.race([pumped, sleep(1)]);
  started.delete(proc);
  if (err.trim() !== "") appendFileSync(join(b.outDir, "loadgen.err"), err);
  let json: Record<string, number | string> | undefined;
  try {
    json = line?.startsWith("{") ? JSON.parse(line) : undefined;
  } catch {}
  if (json === undefined || run.rss1 === undefined) {
    run.failed = `idle loadgen gave no result (exit ${proc.exitCode ?? proc.signalCode}) ${err.trim()}`;
    b.crashed = true;
    return;
  }
  run.lg = json;
  if (err.trim() !== "") run.warn = err.trim().split("\n").slice(-2).join(" / ");
  run.held = Number(json.held);
  run.errors = Number(json.errors);
  run.rss0 = rss0;
  run.kbPerConn = run.held > 0 ? (run.rss1 - rss0) / run.held : undefined;
}
