// The library's RESP server of the RESP cells: examples/resp-server.ts as it is (its handler, the
// `packet: resp` codec of examples/resp.ts, library defaults), started by the example's own
// startRespServer. Only the port argument and the "ready port=N" line are the bench's.
// Usage: bun bench/servers/sockerl-resp.ts PORT   (prints "ready port=N" once listening on 127.0.0.1)
import { startRespServer } from "../../examples/resp-server.ts";

const port = Number(process.argv[2] ?? 6379);
const server = await startRespServer(port, { hostname: "127.0.0.1" });

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${server.port} (examples/resp-server.ts)`);
