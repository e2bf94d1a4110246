/**
 * Invariant: a connection process stays in JSC's 112-byte cell (12 plain fields; a 13th moves it to
 * 160 bytes, +48 bytes for each of a server's idle connections). A field that only some connections
 * need belongs in `Rare` or `Timers` (made on first use), a boolean in `flags`.
 */
import { expect, test } from "bun:test";
import { ConnectionProcess, Totals } from "../../src/connection/process.ts";
import { connectionSettings } from "../../src/options.ts";
import { tcp } from "../../src/transport/tcp.ts";

function process(): ConnectionProcess {
  return new ConnectionProcess({
    handler: { init: () => undefined, handlePacket: () => undefined },
    init: undefined,
    settings: connectionSettings({}),
    isServer: true,
    totals: new Totals(),
    transport: tcp(),
    owner: undefined,
  });
}

test("a connection process has at most 12 fields (see the module notes of src/connection/process.ts)", () => {
  expect(Object.keys(process()).length).toBeLessThanOrEqual(12);
});

test("and JSC stores it in a 112-byte cell (measured in a heap snapshot)", () => {
  const keep = [process(), process()];
  const snapshot = Bun.generateHeapSnapshot() as unknown as {
    nodes: number[];
    nodeClassNames: string[];
  };
  const sizes = new Set<number>();
  for (let i = 0; i < snapshot.nodes.length; i += 4) {
    if (snapshot.nodeClassNames[snapshot.nodes[i + 2]!] === "ConnectionProcess")
      sizes.add(snapshot.nodes[i + 1]!);
  }
  expect(keep.length).toBe(2);
  expect([...sizes]).toEqual([112]);
});
