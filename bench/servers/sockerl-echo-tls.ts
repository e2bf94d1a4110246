// sockerl's echo server over TLS (`transport: tls(...)`): every packet is sent straight back.
// Certificate and key are the test fixtures test/fixtures/server.pem and server-key.pem.
// Usage: bun bench/servers/sockerl-echo-tls.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// The library counterpart of raw-echo-tls.ts.
import { join } from "node:path";
import { startServer, tls } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 9000);
const fixtures = join(import.meta.dir, "..", "..", "test", "fixtures");

const server = await startServer(
  { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
  undefined,
  port,
  {
    hostname: "127.0.0.1",
    transport: tls({ certFile: join(fixtures, "server.pem"), keyFile: join(fixtures, "server-key.pem") }),
  },
);

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${server?.port} (tls)`);
