// sockerl's echo server with an idle timeout set in init (`timeout: 60_000`): every packet is sent
// straight back, and each connection has a live idle timer (it never fires during a run).
// Usage: bun bench/servers/sockerl-echo-timeout.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Compared with raw-echo.ts: what an idle timeout costs per event on top of sockerl-echo.ts.
import { startServer } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 9000);

const server = await startServer(
  {
    init: () => ({ state: undefined, timeout: 60_000 }),
    handlePacket: (packet) => ({ send: packet }),
    timeout: () => ({ stop: "idle" }),
  },
  undefined,
  port,
  { hostname: "127.0.0.1" },
);

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${server?.port} (timeout: 60_000)`);
