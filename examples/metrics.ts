/**
 * Metrics for a sockerl server: an echo server, plus an HTTP endpoint (`Bun.serve`, another port)
 * that serves
 *
 * - `GET /metrics`: the server's `info()` counters in the Prometheus text exposition format, for a
 *   Prometheus scrape (or `curl`);
 * - `GET /`: a live page that plots active connections and messages per second over the last minutes
 *   (plain HTML, inline JS, SVG; no external assets);
 * - `GET /api/series`: what the page plots, a ring buffer of samples taken once per second.
 *
 * Run with `bun examples/metrics.ts [httpPort] [echoPort]` (defaults 9464 and 7000), then open
 * http://127.0.0.1:9464/ and talk to the echo port, e.g. `nc 127.0.0.1 7000`.
 *
 * `info()` is always on and costs a few counter increments per event, so scraping it is free for the
 * server: the collector only reads it. Messages per second come from the echo handler's own count
 * (the library counts bytes, not messages: what a message is belongs to the protocol; here, a line).
 *
 * @module
 */
import diagnostics from "node:diagnostics_channel";
import { type Connection, type Handler, type Server, type ServerInfo, startServer } from "../src/index.ts";

/** One metric family of the exposition. */
interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  /** `[what follows the name (a suffix, labels), value]`. */
  samples: Array<[series: string, value: number]>;
}

/** A number as the exposition writes it (`+Inf` for no limit). */
function sampleValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** Upper bounds, in seconds, of the connection lifetime histogram's buckets (then `+Inf`). */
export const LIFETIME_BUCKETS: readonly number[] = [0.01, 0.1, 1, 10, 60, 600];

/**
 * A Prometheus histogram of connection lifetimes (seconds from `init` to the end): what `info()`
 * cannot tell, and what the diagnostics channels can. Fed by {@link observeLifetimes}.
 *
 * @example
 * const lifetimes = new LifetimeHistogram();
 * lifetimes.observe(0.25); // one connection that lived 250 ms
 */
export class LifetimeHistogram {
  /** Observations per bucket (not cumulative); the last one is `+Inf`. */
  readonly buckets: number[] = new Array<number>(LIFETIME_BUCKETS.length + 1).fill(0);
  /** Sum of the observed lifetimes, in seconds. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /** Records one lifetime of `seconds`. */
  observe(seconds: number): void {
    let i = LIFETIME_BUCKETS.findIndex((bound) => seconds <= bound);
    if (i === -1) i = LIFETIME_BUCKETS.length;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/**
 * Feeds `histogram` with the lifetimes of `server`'s connections, from the `sockerl:connection:start`
 * and `sockerl:connection:exit` channels (connections of other servers are left out). Returns the
 * function that unsubscribes.
 *
 * @example
 * const lifetimes = new LifetimeHistogram();
 * const stop = observeLifetimes(server, lifetimes);
 * // later
 * stop();
 */
export function observeLifetimes<S, I>(server: Server<S, I>, histogram: LifetimeHistogram): () => void {
  const started = new WeakMap<Connection, number>();
  const onStart = (message: unknown): void => {
    const m = message as { connection: Connection; server?: unknown };
    if (m.server === server) started.set(m.connection, performance.now());
  };
  const onExit = (message: unknown): void => {
    const { connection } = message as { connection: Connection };
    const at = started.get(connection);
    if (at === undefined) return;
    started.delete(connection);
    histogram.observe((performance.now() - at) / 1000);
  };
  diagnostics.subscribe("sockerl:connection:start", onStart);
  diagnostics.subscribe("sockerl:connection:exit", onExit);
  return () => {
    diagnostics.unsubscribe("sockerl:connection:start", onStart);
    diagnostics.unsubscribe("sockerl:connection:exit", onExit);
  };
}

/** Extra families of the exposition that `info()` does not have. */
export interface MetricsExtra {
  /** Lines the echo handler answered (`echo_messages_total`). */
  messages?: number;
  /** Connection lifetimes (`sockerl_connection_duration_seconds`). */
  lifetimes?: LifetimeHistogram;
}

/**
 * Renders `info` (plus the example's message count and lifetimes, when given) in the Prometheus text exposition
 * format, version 0.0.4: a `# HELP` and a `# TYPE` line per family, then its samples; counters end in
 * `_total`.
 *
 * @example
 * const body = metricsText(server.info(), { messages: 12 });
 * // # HELP sockerl_connections_active Connections being served now.
 * // # TYPE sockerl_connections_active gauge
 * // sockerl_connections_active 3
 */
export function metricsText(info: ServerInfo, extra: MetricsExtra = {}): string {
  const families: Family[] = [
    {
      name: "sockerl_connections_active",
      type: "gauge",
      help: "Connections being served now.",
      samples: [["", info.active]],
    },
    {
      name: "sockerl_connections_waiting",
      type: "gauge",
      help: "Accepted connections waiting for a free slot under maxConnections.",
      samples: [["", info.waiting]],
    },
    {
      name: "sockerl_max_connections",
      type: "gauge",
      help: "The server's maxConnections limit (+Inf when unlimited).",
      samples: [["", info.maxConnections]],
    },
    {
      name: "sockerl_connections_accepted_total",
      type: "counter",
      help: "Connections accepted since the server started.",
      samples: [["", info.accepted]],
    },
    {
      name: "sockerl_connections_ended_total",
      type: "counter",
      help: "Connections ended, by kind: normal (closes and resets included), peer (other peer faults: oversize frame, bad bytes, timeouts), crash (handler error), shutdown.",
      samples: (["normal", "peer", "crash", "shutdown"] as const).map((kind) => [
        `{kind="${kind}"}`,
        info.ended[kind],
      ]),
    },
    {
      name: "sockerl_bytes_received_total",
      type: "counter",
      help: "Bytes read from the server's sockets.",
      samples: [["", info.bytesIn]],
    },
    {
      name: "sockerl_bytes_sent_total",
      type: "counter",
      help: "Bytes written to the server's sockets.",
      samples: [["", info.bytesOut]],
    },
    {
      name: "sockerl_start_time_seconds",
      type: "gauge",
      help: "When the server started, in seconds since the Unix epoch.",
      samples: [["", info.startedAt.getTime() / 1000]],
    },
  ];
  if (extra.messages !== undefined) {
    families.push({
      name: "echo_messages_total",
      type: "counter",
      help: "Lines the example's echo handler answered.",
      samples: [["", extra.messages]],
    });
  }
  const lifetimes = extra.lifetimes;
  if (lifetimes !== undefined) {
    // Buckets are cumulative in the exposition: each counts every lifetime up to its bound.
    let cumulative = 0;
    const samples: Family["samples"] = [];
    for (let i = 0; i <= LIFETIME_BUCKETS.length; i++) {
      cumulative += lifetimes.buckets[i]!;
      const le = i < LIFETIME_BUCKETS.length ? String(LIFETIME_BUCKETS[i]) : "+Inf";
      samples.push([`_bucket{le="${le}"}`, cumulative]);
    }
    samples.push(["_sum", lifetimes.sum], ["_count", lifetimes.count]);
    families.push({
      name: "sockerl_connection_duration_seconds",
      type: "histogram",
      help: "How long connections lived, from init to their end (from the diagnostics channels).",
      samples,
    });
  }
  let out = "";
  for (const f of families) {
    out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
    for (const [labels, value] of f.samples) out += `${f.name}${labels} ${sampleValue(value)}\n`;
  }
  return out;
}

/** One point of the live page's series. */
export interface Sample {
  /** When it was taken (ms since the epoch). */
  t: number;
  active: number;
  waiting: number;
  /** Messages per second over the last interval. */
  msgsPerSec: number;
  /** Bytes received per second over the last interval. */
  bytesInPerSec: number;
  /** Bytes sent per second over the last interval. */
  bytesOutPerSec: number;
}

/**
 * A fixed-size ring of samples: the page's history costs the same memory after a day as after a minute.
 *
 * @example
 * const ring = new SampleRing(300); // 5 minutes at one sample per second
 * ring.push(sample);
 * ring.toArray(); // oldest first
 */
export class SampleRing {
  #items: Sample[];
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Expected \`capacity\` to be a positive integer, got \`${capacity}\``);
    }
    this.#items = new Array<Sample>(capacity);
  }

  /** Adds `sample`, dropping the oldest when full. */
  push(sample: Sample): void {
    this.#items[this.#next] = sample;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** Number of samples held. */
  get size(): number {
    return this.#size;
  }

  /** The samples, oldest first. */
  toArray(): Sample[] {
    const out: Sample[] = [];
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(start + i) % this.capacity]!);
    return out;
  }
}

/** Options of {@link startMetricsExample}. */
export interface MetricsExampleOptions {
  /** Address both servers bind. @default "127.0.0.1" */
  hostname?: string;
  /** Port of the HTTP endpoint (0 = pick one). @default 0 */
  httpPort?: number;
  /** Port of the echo server (0 = pick one). @default 0 */
  echoPort?: number;
  /** ms between two samples of the live page's series. @default 1000 */
  sampleMs?: number;
  /** Samples kept (the page's history). @default 300 (5 minutes at 1 s) */
  history?: number;
  /** The echo server's `maxConnections`. @default Infinity */
  maxConnections?: number;
}

/** What {@link startMetricsExample} runs. */
export interface MetricsExample {
  /** The sockerl echo server. */
  readonly server: Server<undefined, undefined>;
  /** The HTTP endpoint (`/metrics`, `/`, `/api/series`). */
  readonly http: Bun.Server<undefined>;
  /** `http://host:port` of the HTTP endpoint. */
  readonly url: string;
  /** Messages the echo handler answered so far. */
  readonly messages: number;
  /** Lifetimes of the echo server's connections that ended. */
  readonly lifetimes: LifetimeHistogram;
  /** Takes a sample now (the timer does it every `sampleMs`). */
  sample(): void;
  /** Stops the sampler, the HTTP endpoint and the echo server. */
  stop(): Promise<void>;
}

const PAGE = Bun.file(new URL("./metrics-page.html", import.meta.url));

/**
 * Starts the echo server and the HTTP endpoint that reports on it.
 *
 * @example
 * const example = await startMetricsExample({ httpPort: 9464, echoPort: 7000 });
 * console.log(`${example.url}/metrics`);
 * // later
 * await example.stop();
 */
export async function startMetricsExample(options: MetricsExampleOptions = {}): Promise<MetricsExample> {
  const hostname = options.hostname ?? "127.0.0.1";
  const sampleMs = options.sampleMs ?? 1000;
  let messages = 0;

  // Echo every line back (a message is a line); a peer close ends the connection normally.
  const echo: Handler<undefined, undefined> = {
    init: () => undefined,
    handlePacket: (packet) => {
      messages++;
      return { send: packet };
    },
    handleDisconnect: () => undefined,
  };
  const server = await startServer(echo, undefined, options.echoPort ?? 0, {
    hostname,
    packet: "line",
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
  });
  if (server === undefined) throw new Error("the echo server's listenInit ignored the start");
  const lifetimes = new LifetimeHistogram();
  const unobserve = observeLifetimes(server, lifetimes);

  const ring = new SampleRing(options.history ?? 300);
  let last: { t: number; messages: number; bytesIn: number; bytesOut: number } | undefined;
  const sample = (): void => {
    const info = server.info();
    const t = Date.now();
    const now = { t, messages, bytesIn: info.bytesIn, bytesOut: info.bytesOut };
    // Rates over the real elapsed time, not the nominal interval: timers run late on a busy machine.
    const seconds = last === undefined ? 0 : (t - last.t) / 1000;
    const rate = (key: "messages" | "bytesIn" | "bytesOut"): number =>
      last === undefined || seconds <= 0 ? 0 : (now[key] - last[key]) / seconds;
    ring.push({
      t,
      active: info.active,
      waiting: info.waiting,
      msgsPerSec: rate("messages"),
      bytesInPerSec: rate("bytesIn"),
      bytesOutPerSec: rate("bytesOut"),
    });
    last = now;
  };
  sample();
  const timer = setInterval(sample, sampleMs);

  const serveHttp = (): Bun.Server<undefined> =>
    Bun.serve({
      hostname,
      port: options.httpPort ?? 0,
      fetch(request) {
        const { pathname } = new URL(request.url);
        if (request.method !== "GET") return new Response("method not allowed\n", { status: 405 });
        if (pathname === "/metrics") {
          return new Response(metricsText(server.info(), { messages, lifetimes }), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        }
        if (pathname === "/api/series") {
          const info = server.info();
          return Response.json({
            intervalMs: sampleMs,
            capacity: ring.capacity,
            info: {
              ...info,
              maxConnections: jsonNumber(info.maxConnections),
              startedAt: info.startedAt.getTime(),
            },
            messages,
            samples: ring.toArray(),
          });
        }
        if (pathname === "/") {
          return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
        }
        return new Response("not found\n", { status: 404 });
      },
    });

  let http: Bun.Server<undefined>;
  try {
    http = serveHttp();
  } catch (error) {
    // The HTTP port is taken (or refused): do not leave the echo server and the sampler running.
    clearInterval(timer);
    unobserve();
    await server.stop();
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    server,
    http,
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${http.port}`,
    get messages() {
      return messages;
    },
    lifetimes,
    sample,
    stop() {
      stopped ??= (async () => {
        clearInterval(timer);
        unobserve();
        await http.stop(true);
        await server.stop();
      })();
      return stopped;
    },
  };
}

/** JSON has no Infinity: an unlimited `maxConnections` goes out as `null`. */
function jsonNumber(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

if (import.meta.main) {
  const httpPort = Number(process.argv[2] ?? 9464);
  const echoPort = Number(process.argv[3] ?? 7000);
  const example = await startMetricsExample({ httpPort, echoPort });
  console.log(`echo server on 127.0.0.1:${example.server.port}`);
  console.log(`metrics on ${example.url}/metrics, live page on ${example.url}/`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      void example.stop().then(() => process.exit(0));
    });
  }
}
