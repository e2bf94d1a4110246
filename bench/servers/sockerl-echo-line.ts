// sockerl's line echo server: every line (with its terminator) is sent back.
// Usage: bun bench/servers/sockerl-echo-line.ts PORT   (prints "ready ..." once listening on 127.0.0.1)
//
// The library counterpart of raw-echo-line.ts. It uses `packet: { delimiter: "\r\n" }` where this
// version of the library accepts it, else `packet: "line"` (loadgen's lines end in "\r\n", so both
// cut the same lines); the ready line says which, and the runner reports it.

import type { PacketFraming } from "../../src/index.ts";
import { startServer } from "../../src/index.ts";

const port = Number(process.argv[2] ?? 9000);
const handler = {
  init: () => undefined,
  handlePacket: (packet: unknown) => ({ send: packet as Uint8Array }),
};

/** The bound port, or undefined when this library rejects the option. */
async function start(packet: PacketFraming): Promise<number | undefined> {
  try {
    return (await startServer(handler, undefined, port, { hostname: "127.0.0.1", packet }))?.port;
  } catch (e) {
    if ((e as { code?: unknown }).code !== "ERR_OPTION") throw e;
    return undefined;
  }
}

const delimiter = { delimiter: "\r\n" } as unknown as PacketFraming;
// the bound port: PORT 0 picks a free one (the tests use that)
const bound = await start(delimiter);
if (bound !== undefined) console.log(`ready port=${bound} (packet: { delimiter: "\\r\\n" })`);
else console.log(`ready port=${await start("line")} (packet: "line")`);
