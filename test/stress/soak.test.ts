/**
 * Invariant (the reliability soak): every attack a remote peer can mount on a server with default
 * plans — oversized frames, bytes the handler throws on, over-long lines, STARTTLS broken off every
 * way, a peer that never reads a feed, connect floods, silent TLS connects — mixed with well-behaved
 * echo clients whose every byte is checked, stops no server, corrupts no byte, and leaves descriptors and
 * memory flat; the servers (in a child process under `ulimit -n 256`, so the open-file guard is part of
 * it) are idle once the load stops. 5 s by default so CI covers it; `SOAK=1` runs 60 s (`SOAK_MS`).
 */
import { afterEach, expect, test } from "bun:test";
import { type Child, spawnFixture } from "../helpers/child.ts";

const LONG = process.env.SOAK !== undefined && process.env.SOAK !== "" && process.env.SOAK !== "0";
const DURATION = LONG ? Number(process.env.SOAK_MS ?? 60_000) : 5000;

let server: Child | undefined;
let clients: Child | undefined;
afterEach(() => {
  clients?.kill();
  server?.kill();
});

interface Count {
  fds: number;
  rss: number;
  ended: Record<string, string>;
  info: Record<string, { active: number; accepted: number; ended: Record<string, number> }>;
}

test(
  `${Math.round(DURATION / 1000)} s soak: every attack mixed with checked echo clients; 0 server stops, 0 corrupted bytes, fds and RSS flat, idle after`,
  async () => {
    server = spawnFixture("soak-server-fixture.ts", [], { fdLimit: 256 });
    const ports = (await server.next("READY", 10_000)).split(" ");
    const count = async (): Promise<Count> => JSON.parse(await server!.ask("count", "COUNT"));
    const before = await count();
    clients = spawnFixture("soak-client-fixture.ts", [...ports, String(DURATION), "7"]);
    const cpu0 = await server.cpuSeconds();
    const done = JSON.parse(await clients.next("DONE", DURATION + 30_000));
    const cpuLoad = ((await server.cpuSeconds()) - cpu0) / (DURATION / 1000);
    // Let closing sockets finish (peers gone), then check the servers are idle and back to their size.
    await Bun.sleep(1500); // the handshake and close timers of the last attacks run out
    const c1 = await server.cpuSeconds();
    await Bun.sleep(1000); // a measurement window
    const idleCpu = (await server.cpuSeconds()) - c1;
    const after = await count();
    const stopped = JSON.parse(await server.ask("stop", "DONE"));
    const { code } = await server.exit(10_000);
    const summary = {
      attacks: done.attacks,
      roundTrips: done.roundTrips,
      bytesChecked: done.bytesChecked,
      fds: [before.fds, after.fds],
      rssMB: [(before.rss / 1e6).toFixed(1), (after.rss / 1e6).toFixed(1)],
      cpuUnderLoad: cpuLoad.toFixed(2),
      idleCpu: idleCpu.toFixed(3),
      ended: Object.fromEntries(Object.entries(after.info).map(([k, v]) => [k, v.ended])),
      fdReports: stopped.fdReports,
      crashes: stopped.crashes,
    };
    console.log(`soak: ${JSON.stringify(summary)}`);
    // Load and attacks happened.
    expect(done.roundTrips).toBeGreaterThan(100);
    expect(Object.keys(done.attacks).length).toBeGreaterThanOrEqual(8);
    if (done.attacks.fdFlood > 0) expect(stopped.fdReports).toBeGreaterThan(0);
    // Nothing corrupted, no well-behaved client failed, no server stopped.
    expect(done.mismatches).toBe(0);
    expect(done.goodFailures).toBe(0);
    expect(after.ended).toEqual({});
    expect(stopped.serverEnds).toEqual([]);
    // Flat: descriptors back to where they were, memory not proportional to the load.
    expect(after.fds).toBeLessThanOrEqual(before.fds + 8);
    expect(after.rss - before.rss).toBeLessThan(96 * 1024 * 1024);
    for (const info of Object.values(after.info)) expect(info.active).toBe(0);
    // Idle once the load stops (no spin at the open-file limit).
    expect(idleCpu).toBeLessThan(0.2);
    expect(code).toBe(0);
  },
  DURATION + 60_000,
);
