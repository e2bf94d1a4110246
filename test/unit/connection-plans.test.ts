/**
 * Invariant: a server's restart plan decides per connection exit: `"delete"` forgets the connection
 * and serves on; `"stop"` ends the whole server with the child's reason, every other connection
 * getting `terminate("shutdown")` first; a pool's `{ restart: ms }` reconnects its connector, which
 * runs `init` again.
 *
 * Unit tier: the real server, pool and connection processes on the testing kit's memory transport.
 */

import { expect, test } from "bun:test";
import type { ExitReason, Handler } from "../../src/index.ts";
import { testKit } from "../../src/testing/index.ts";
import { captureSink } from "../helpers/trace.ts";

function crashing(terminated: ExitReason[]): Handler<undefined> {
  return {
    init: () => undefined,
    handlePacket: (p) => (p.toString() === "crash" ? { stop: "crashed" } : { send: p }),
    terminate: (reason) => {
      terminated.push(reason);
    },
  };
}

test('plan "delete": a crashed connection is forgotten, the server serves on', async () => {
  await using kit = testKit();
  const sink = captureSink();
  const terminated: ExitReason[] = [];
  const server = await kit.startServer(crashing(terminated), undefined, { plan: ["delete"] });
  const a = await kit.connect(server);
  const b = await kit.connect(server);
  await a.write("crash");
  expect(await a.connection!.exited).toBe("crashed");
  await b.write("still served");
  expect((await b.read(12)).toString()).toBe("still served");
  expect(server.connections().map(([id]) => id)).toEqual([b.connection!.id]);
  expect(terminated).toEqual(["crashed"]);
  sink.restore();
});

test('plan "stop": the server ends with the reason; the others get terminate("shutdown")', async () => {
  await using kit = testKit();
  const sink = captureSink();
  const terminated: ExitReason[] = [];
  const server = await kit.startServer(crashing(terminated), undefined, { plan: ["stop"] });
  const a = await kit.connect(server);
  const b = await kit.connect(server);
  await a.write("crash");
  expect(await server.exited).toBe("crashed");
  expect(terminated.sort()).toEqual(["crashed", "shutdown"]);
  await b.closed;
  expect(kit.leaks()).toEqual([]);
  sink.restore();
});

test("a pool's restart plan reconnects a dropped connector, and init runs again", async () => {
  await using kit = testKit();
  let inits = 0;
  const upstream = kit.listen();
  const pool = await kit.startPool<undefined>(
    {
      init: () => {
        inits++;
        return { send: `hello ${inits}\n` };
      },
      handlePacket: () => undefined,
    },
    undefined,
    [upstream],
    { plan: [{ restart: 0 }] },
  );
  const first = await upstream.accept();
  expect((await first.readUntil("\n")).toString()).toBe("hello 1\n");
  first.reset();
  const second = await upstream.accept();
  expect((await second.readUntil("\n")).toString()).toBe("hello 2\n");
  expect(pool.connections().length).toBe(1);
});
