/**
 * A real `redis-server` for tests and benchmarks: started on a free loopback port with persistence
 * off, awaited until it accepts connections, stopped (and restartable on the same port) by the caller.
 * Where the program is absent, {@link REDIS_SERVER} is `undefined` and tests skip visibly.
 *
 * @module
 */
import type { Subprocess } from "bun";

/** Path of `redis-server`, or `undefined` when it is not installed. */
export const REDIS_SERVER: string | undefined = Bun.which("redis-server") ?? undefined;

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** A running redis-server; `stop()` then `start()` brings it back on the same port, empty. */
export class RedisServer {
  readonly port: number;
  #proc: Subprocess<"ignore", "pipe", "pipe"> | undefined;

  /** Words put before the command (`["taskset", "-c", "0"]` in the benchmark). */
  readonly #prefix: readonly string[];

  private constructor(port: number, prefix: readonly string[]) {
    this.port = port;
    this.#prefix = prefix;
  }

  /** Starts a redis-server on a free port (or `port`) and resolves once it accepts connections. */
  static async start(
    port = freePort(),
    timeoutMs = 5000,
    prefix: readonly string[] = [],
  ): Promise<RedisServer> {
    const server = new RedisServer(port, prefix);
    await server.start(timeoutMs);
    return server;
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  /** (Re)starts the process on this port; resolves once its log says it is ready. */
  async start(timeoutMs = 5000): Promise<void> {
    if (REDIS_SERVER === undefined) throw new Error("redis-server is not installed");
    if (this.#proc !== undefined) return;
    const proc = Bun.spawn(
      [
        ...this.#prefix,
        REDIS_SERVER,
        "--bind",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    this.#proc = proc;
    const decoder = new TextDecoder();
    let log = "";
    const ready = (async () => {
      for await (const chunk of proc.stdout) {
        log += decoder.decode(chunk, { stream: true });
        if (log.includes("Ready to accept connections")) return true;
      }
      return false;
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const ok = await Promise.race([ready, timedOut]);
    clearTimeout(timer);
    if (!ok) {
      await this.stop();
      throw new Error(`redis-server on port ${this.port} did not get ready in ${timeoutMs} ms:\n${log}`);
    }
    // Keep draining its log so a full pipe never blocks it.
    void (async () => {
      try {
        for await (const _ of proc.stdout) {
          // discard
        }
      } catch {
        // the process ended
      }
    })();
  }

  /** Kills the process (SIGKILL: connections reset, nothing saved) and waits for it to exit. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined) return;
    this.#proc = undefined;
    proc.kill("SIGKILL");
    await proc.exited;
  }

  /** The process id (for `strace -p`), or `undefined` when stopped. */
  get pid(): number | undefined {
    return this.#proc?.pid;
  }
}
