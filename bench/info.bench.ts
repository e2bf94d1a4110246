/**
 * What observing a server costs the observer: `server.info()` (a snapshot of always-on counters),
 * the metrics example's `metricsText(info)` (the Prometheus text of one snapshot), and a whole
 * `GET /metrics` scrape over loopback HTTP, on a real echo server holding 100 connections. The
 * counters themselves cost the server's hot path a few additions per read and write; that cost is
 * in the per-packet micro-benchmark (bench/hot-path.bench.ts) and the load benchmark (bench/run.ts).
 *
 * Run: `bun bench/info.bench.ts [--filter <regex>]` (a few seconds).
 */
import { bench, do_not_optimize, group, run } from "mitata";
import { metricsText, startMetricsExample } from "../examples/metrics.ts";

const example = await startMetricsExample();
const clients: Array<{ end(): void }> = [];
for (let i = 0; i < 100; i++) {
  clients.push(
    await Bun.connect({ hostname: "127.0.0.1", port: example.server.port, socket: { data() {} } }),
  );
}
while (example.server.info().active < clients.length) await Bun.sleep(5);

group("observing a server with 100 connections", () => {
  bench("server.info()", () => do_not_optimize(example.server.info()));
  bench("metricsText(server.info())", () => do_not_optimize(metricsText(example.server.info())));
  bench("GET /metrics over loopback HTTP", async () => {
    do_not_optimize(await (await fetch(`${example.url}/metrics`)).text());
  });
});

const at = process.argv.indexOf("--filter");
const pattern = at === -1 ? undefined : process.argv[at + 1];
await run(pattern === undefined ? {} : { filter: new RegExp(pattern) });
for (const c of clients) c.end();
await example.stop();
