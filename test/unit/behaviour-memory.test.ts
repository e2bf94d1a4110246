/**
 * Invariant: the shared behaviour table (test/common/behaviour-table.ts) gives the same results on
 * the testing kit's memory transport as on loopback TCP (test/socket/behaviour-loopback.test.ts).
 * Here it runs on memory, timers on the kit's manual clock.
 */

import { afterEach, describe, expect, test } from "bun:test";
import type { Connection, Handler, Server, ServerOptions } from "../../src/index.ts";
import { type TestKit, testKit } from "../../src/testing/index.ts";
import { CASES, type Harness, REPEAT, type TablePeer } from "../common/behaviour-table.ts";

function memoryHarness(kit: TestKit): Harness {
  return {
    name: "memory",
    start: <S>(handler: Handler<S, undefined>, options?: Omit<ServerOptions, "transport">) =>
      kit.startServer(handler, undefined, options),
    async connect<S>(server: Server<S, undefined>): Promise<[TablePeer, Connection]> {
      const peer = await kit.connect(server);
      return [peer, peer.connection!];
    },
    elapse: (ms) => kit.clock.advance(ms),
    close: () => kit.close(),
  };
}

let current: Harness | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

describe("behaviour table on memory", () => {
  for (const c of CASES) {
    for (let i = 0; i < REPEAT; i++) {
      test(REPEAT === 1 ? c.name : `${c.name} #${i + 1}`, async () => {
        current = memoryHarness(testKit());
        expect(await c.run(current)).toEqual(c.expected);
      });
    }
  }
});
