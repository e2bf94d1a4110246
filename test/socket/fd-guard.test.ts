/**
 * Invariant: the open-file guard counts every descriptor a server holds, not only its listed
 * connections: sockets it closed that wait for the peer's FIN (up to `closeTimeout`), and sockets a
 * listener holds before handing them over (an `sni` listener reading ClientHellos). So under a low
 * `ulimit -n`, peers that never send FIN, or never speak, cannot take the last descriptors: the server
 * resets what it cannot hold instead of letting Bun spin on accept (a busy loop at EMFILE), prints one
 * report per episode, and serves again once descriptors are free. Each server runs in a child process
 * (`ulimit -n 64`).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Child, spawnFixture } from "../helpers/child.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, defer } from "../helpers/server.ts";

afterEach(cleanup);

/** CPU used by the child over ~1 s, in cores. */
async function cpuOverOneSecond(child: Child): Promise<number> {
  const c0 = await child.cpuSeconds();
  const t0 = performance.now();
  await Bun.sleep(1000); // a measurement window, not a synchronisation
  return ((await child.cpuSeconds()) - c0) / ((performance.now() - t0) / 1000);
}

async function knock(port: number, n: number): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  for (let i = 0; i < n; i++) {
    const client = await RawClient.connect(port).catch(() => undefined);
    if (client !== undefined) clients.push(client);
  }
  return clients;
}

async function openDescriptors(child: Child): Promise<number> {
  const [, fds] = (await child.ask("count", "COUNT")).split(" ").map(Number) as [number, number];
  return fds;
}

describe("the open-file guard counts every socket the server holds", () => {
  for (const [mode, what] of [
    ["closer", "closed sockets waiting for a FIN that never comes"],
    ["sni", "silent peers on an sni listener (ClientHello never sent)"],
  ] as const) {
    test(`${what}: no spin, descriptors under the limit, one report, served again after`, async () => {
      const child = spawnFixture("emfile-fixture.ts", [mode], { fdLimit: 64 });
      defer(() => child.kill());
      const [port, limit] = (await child.next("READY", 5000)).split(" ").map(Number) as [number, number];
      expect(limit).toBe(64);
      // Twice as many peers as descriptors; none of them ever closes its side.
      const peers = await knock(port, 128);
      await Promise.all(peers.map((c) => c.until(() => c.received > 0 || c.closed || true, 100, "settle")));
      expect(await openDescriptors(child)).toBeLessThan(64);
      // More knocking at the limit: the child stays idle (no busy loop on accept).
      const more = await knock(port, 20);
      const cpu = await cpuOverOneSecond(child);
      console.log(`fd guard (${mode}): ${peers.length + more.length} peers, CPU ${cpu.toFixed(3)} cores`);
      expect(cpu).toBeLessThan(0.25);
      // The peers leave: descriptors come back and a new client is served.
      for (const c of [...peers, ...more]) c.terminate();
      const deadline = performance.now() + 5000;
      while ((await openDescriptors(child)) > 20) {
        if (performance.now() > deadline) throw new Error("descriptors did not come back");
        await Bun.sleep(20);
      }
      if (mode === "closer") {
        const fresh = await RawClient.connect(port);
        await fresh.waitForText("bye\n", 3000);
      }
      const done = JSON.parse(await child.ask("stop", "DONE"));
      const reports = done.sink.filter((l: string) => l.includes("near the open file limit (64)"));
      expect(reports.length).toBe(1);
      const { code } = await child.exit(5000);
      expect(code).toBe(0);
    }, 20_000);
  }
});
