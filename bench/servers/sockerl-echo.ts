// sockerl's echo server for the benchmark: every packet is sent straight back.
// Usage: bun bench/servers/sockerl-echo.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// The library counterpart of raw-echo.ts. It uses the defaults a user gets
// (active mode, raw packets, default highWaterMark), so the benchmark measures
// what an ordinary sockerl server costs over the bare Bun.listen one.
import { startServer } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 9000);

const server = await startServer(
  { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
  undefined,
  port,
  {
    hostname: "127.0.0.1",
  },
);

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${server?.port}`);
