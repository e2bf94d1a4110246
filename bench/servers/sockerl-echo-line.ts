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

async function start(packet: PacketFraming): Promise<boolean> {
  try {
    await startServer(handler, undefined, port, { hostname: "127.0.0.1", packet });
    return true;
  } catch (e) {
    if ((e as { code?: unknown }).code !== "ERR_OPTION") throw e;
    return false;
  }
}

const delimiter = { delimiter: "\r\n" } as unknown as PacketFraming;
if (await start(delimiter)) console.log('ready (packet: { delimiter: "\\r\\n" })');
else if (await start("line")) console.log('ready (packet: "line")');
