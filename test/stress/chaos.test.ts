/**
 * Invariant: under load, killing things at random never corrupts, loses or leaks anything else. 200 raw
 * clients and a pool of 20 connectors run echo round trips against one server, each checking every
 * echoed byte, while random clients (RST or FIN), server-side connections (normal or abnormal stop) and
 * connectors are killed and replaced. Afterwards every survivor's bytes were intact, the server still
 * serves, no report other than the injected ones was printed, and once the pool and the server stop no
 * connection is left and the process exits by itself.
 *
 * The chaos runs in a child process (test/fixtures/chaos-fixture.ts). The default run lasts ~5 s so CI
 * covers it; `CHAOS=1` runs the long version (`CHAOS_MS`, default 60 s; `CHAOS_SEED` picks the seed).
 */
import { afterEach, expect, test } from "bun:test";
import { type Child, spawnFixture } from "../helpers/child.ts";

const LONG = process.env.CHAOS !== undefined && process.env.CHAOS !== "" && process.env.CHAOS !== "0";
const DURATION = LONG ? Number(process.env.CHAOS_MS ?? 60_000) : 5000;
const SEED = Number(process.env.CHAOS_SEED ?? (LONG ? Date.now() % 1_000_000 : 1));

let child: Child | undefined;
afterEach(() => child?.kill());

test(
  `${Math.round(DURATION / 1000)} s of chaos (seed ${SEED}): 200 clients and a pool of 20 under echo load, random kills; survivors' bytes intact, the server serves on, nothing left after stop`,
  async () => {
    child = spawnFixture("chaos-fixture.ts", [String(DURATION), String(SEED)]);
    const done = JSON.parse(await child.next("DONE", DURATION + 30_000));
    const { code, stderr } = await child.exit(10_000);
    if (LONG || process.env.FULL) console.log(`chaos: ${JSON.stringify(done)}`);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    // Load and faults really happened.
    expect(done.faultsTotal).toBeGreaterThan(DURATION / 50);
    expect(done.faults.clientRst).toBeGreaterThan(0);
    expect(done.faults.clientFin).toBeGreaterThan(0);
    expect(done.faults.serverStopNormal).toBeGreaterThan(0);
    expect(done.faults.serverStopAbnormal).toBeGreaterThan(0);
    expect(done.faults.connectorKilled).toBeGreaterThan(0);
    expect(done.bytesChecked).toBeGreaterThan(10 * 1024 * 1024);
    expect(done.connectorStarts).toBeGreaterThan(20); // killed connectors were restarted by the plan
    // Nothing corrupted, nothing stuck.
    expect(done.mismatches).toBe(0);
    expect(done.unsettled).toBe(0);
    expect(done.connectFailures).toBe(0);
    expect(done.survivors).toBeGreaterThan(150); // a few may be killed after the last replacement
    // The server survived and serves; only the injected abnormal exits were reported.
    expect(done.serverEndedEarly).toBeNull();
    expect(done.served).toBe("still serving");
    expect(done.reportsOtherThanChaos).toEqual([]);
    // Nothing left behind.
    expect(done.serverConnectionsAfterStop).toBe(0);
    expect(done.poolConnectionsAfterStop).toBe(0);
    expect(done.clientsLeftOpen).toBe(0);
    // Memory is flat: not proportional to the gigabytes echoed.
    expect(done.rssAfter - done.rssBefore).toBeLessThan(128 * 1024 * 1024);
  },
  DURATION + 60_000,
);
