/**
 * Invariant: a pool whose peer black-holes SYNs holds at most one descriptor per connect in flight,
 * and the process exits right after `pool.stop()`. A connector's connect that times out is closed at
 * once (the dial is cancellable), so 20 connectors reconnecting every 250 ms against a silent address
 * do not pile up half-open sockets, and nothing is left to keep the event loop alive. Run in a child
 * process (test/fixtures/blackhole-fixture.ts), since the point is whether that process can exit.
 */
import { afterEach, expect, test } from "bun:test";
import { BLACK_HOLE_AVAILABLE } from "../helpers/blackhole.ts";
import { type Child, spawnFixture } from "../helpers/child.ts";

let child: Child | undefined;
afterEach(() => {
  child?.kill();
  child = undefined;
});

if (!BLACK_HOLE_AVAILABLE) console.warn("bun:ffi cannot load libc.so.6: skipping the black-holed pool test");

test.skipIf(!BLACK_HOLE_AVAILABLE)(
  "20 connectors against a black-holed address: fds bounded by the connects in flight; the process exits right after pool.stop()",
  async () => {
    child = spawnFixture("blackhole-fixture.ts", ["2", "20", "200"]);
    await child.next("READY", 5000, 0);
    const stopped = Number(await child.next("STOPPED", 8000, 0));
    const stoppedAt = performance.now();
    const { code, stderr } = await child.exit(5000);
    const lingered = performance.now() - stoppedAt;
    const samples = child.lines
      .filter((l) => l.startsWith("FDS "))
      .map((l) => l.slice(4).split(" ").map(Number) as [number, number]);
    expect(samples.length).toBeGreaterThanOrEqual(5);
    const [firstFds] = samples[0]!;
    const maxFds = Math.max(...samples.map(([fds]) => fds));
    const maxSynSent = Math.max(...samples.map(([, syn]) => syn));
    // Before the fix: +280 fds and 320 sockets in SYN-SENT after 4 s; the process lived ~135 s more.
    expect(maxSynSent).toBeLessThanOrEqual(20);
    expect(maxFds - firstFds).toBeLessThanOrEqual(25);
    expect(stopped).toBeLessThan(1000);
    expect(lingered).toBeLessThan(2000);
    expect(code).toBe(0);
    expect(stderr).toBe("");
  },
  20_000,
);
