// sockerl's echo server with `packet: 4` framing: every frame's payload is sent back, framed again.
// Usage: bun bench/servers/sockerl-echo-packet4.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// The library counterpart of raw-echo-packet4.ts (and raw-echo-naive.ts): the library decodes each
// frame, calls handlePacket with its payload, and encodes the reply with its header.
import { startServer } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 9000);

const server = await startServer(
  { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
  undefined,
  port,
  {
    hostname: "127.0.0.1",
    packet: 4,
  },
);

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${server?.port} (packet: 4)`);
