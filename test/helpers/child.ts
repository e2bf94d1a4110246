/**
 * Hazardous tests (fd exhaustion, leaks, chaos) run their server in a child process: a
 * `test/fixtures/*-fixture.ts` started with `Bun.spawn`, talking over stdin/stdout lines. A crash, a
 * hang or a busy loop there cannot take the test runner down, and the test asserts the child's exit code
 * and stderr.
 *
 * @module
 */
import type { Subprocess } from "bun";
import { WaitTimeoutError } from "./wait.ts";

/** A running fixture: send commands as lines, await the lines it prints. */
export class Child {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  /** Every stdout line so far. */
  readonly lines: string[] = [];
  #waiters: { prefix: string; from: number; resolve: (line: string) => void }[] = [];
  readonly #stderr: Promise<string>;

  constructor(proc: Subprocess<"pipe", "pipe", "pipe">) {
    this.proc = proc;
    void this.#read();
    this.#stderr = new Response(proc.stderr).text();
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of this.proc.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      let nl = partial.indexOf("\n");
      while (nl >= 0) {
        this.lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf("\n");
      }
      this.#check();
    }
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      for (let i = w.from; i < this.lines.length; i++) {
        const line = this.lines[i]!;
        if (line.startsWith(w.prefix)) {
          w.resolve(line.slice(w.prefix.length).trim());
          return false;
        }
      }
      return true;
    });
  }

  /** Resolves with the rest of the first line (printed from now on) that starts with `prefix`. */
  next(prefix: string, timeoutMs = 5000, from = this.lines.length): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new WaitTimeoutError(
            `child: timed out after ${timeoutMs} ms waiting for a line "${prefix}…" (got ${JSON.stringify(this.lines.slice(-5))})`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        prefix,
        from,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.#waiters.push(waiter);
      this.#check();
    });
  }

  /** Sends one command line; resolves with the reply line that starts with `reply`. */
  ask(command: string, reply: string, timeoutMs = 5000): Promise<string> {
    const from = this.lines.length;
    this.proc.stdin.write(`${command}\n`);
    this.proc.stdin.flush();
    return this.next(reply, timeoutMs, from);
  }

  /** Resolves once the child has exited (killing it after `timeoutMs`) with its exit code and stderr. */
  async exit(timeoutMs = 10_000): Promise<{ code: number | null; stderr: string }> {
    const timer = setTimeout(() => this.proc.kill(9), timeoutMs);
    const code = await this.proc.exited;
    clearTimeout(timer);
    return { code, stderr: await this.#stderr };
  }

  /** Kills the child if it still runs (for `afterEach`). */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(9);
  }

  /** User + system CPU time of the child so far, in seconds (Linux `/proc/<pid>/stat`). */
  async cpuSeconds(): Promise<number> {
    const stat = await Bun.file(`/proc/${this.proc.pid}/stat`).text();
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of stat(5) (utime, stime), counted from after the command name.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  }

  /** Resident set size of the child, in bytes (Linux `/proc/<pid>/statm`). */
  async rss(): Promise<number> {
    const statm = await Bun.file(`/proc/${this.proc.pid}/statm`).text();
    return Number(statm.split(" ")[1]) * PAGE_SIZE;
  }
}

const CLOCK_TICKS = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;
const PAGE_SIZE = Number(Bun.spawnSync(["getconf", "PAGESIZE"]).stdout.toString().trim()) || 4096;

/** Starts `bun <fixture> ...args`; `fdLimit` runs it under `ulimit -n` (through bash). */
export function spawnFixture(
  fixture: string,
  args: string[] = [],
  options: { fdLimit?: number; env?: Record<string, string> } = {},
): Child {
  const path = new URL(`../fixtures/${fixture}`, import.meta.url).pathname;
  const bun = process.execPath;
  const cmd =
    options.fdLimit === undefined
      ? [bun, path, ...args]
      : ["bash", "-c", `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, bun, path, ...args];
  const proc = Bun.spawn(cmd, {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  return new Child(proc);
}
