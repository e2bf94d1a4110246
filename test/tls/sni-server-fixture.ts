/**
 * An `sni` TLS echo server in a process of its own, so that a test can read the CPU time the server
 * alone spent on a crafted ClientHello (the client's writes are in the test process). Prints
 * `READY <port>`, then answers stdin commands:
 * - `cpu` → `CPU <user + system µs of this process so far>`;
 * - `pending` → `PENDING <sockets the listener holds, still sending their ClientHello>`;
 * - `stop` → stops the server, prints `DONE`, and exits.
 *
 * @module
 */
import { startServer, sys, type Transport, type TransportListener, tls } from "../../src/index.ts";
import { pem } from "../helpers/tls.ts";

sys.setSink(() => {}); // failed handshakes print abnormal-exit reports: not wanted on stdout

let listener: TransportListener | undefined;
const inner = tls({
  cert: pem.serverCert,
  key: pem.serverKey,
  sni: { "alt.example": { cert: pem.altCert, key: pem.altKey } },
});
// The same transport, keeping a handle on its listener to report pendingSockets.
const transport: Transport = {
  name: inner.name,
  secure: inner.secure,
  listen(request) {
    listener = inner.listen(request);
    return listener;
  },
  connect: (request) => inner.connect(request),
  upgrade: (socket, request) => inner.upgrade!(socket, request),
  handshakeError: (socket, success, error, isServer) =>
    inner.handshakeError!(socket, success, error, isServer),
};
const server = await startServer(
  { init: () => undefined, handlePacket: (packet) => ({ send: packet }) },
  undefined,
  0,
  {
    hostname: "127.0.0.1",
    transport,
  },
);

console.log(`READY ${server.port}`);
for await (const line of console) {
  if (line === "cpu") {
    const { user, system } = process.cpuUsage();
    console.log(`CPU ${user + system}`);
  } else if (line === "pending") {
    console.log(`PENDING ${listener?.pendingSockets ?? "none"}`);
  } else if (line === "stop") {
    await server.stop();
    console.log("DONE");
    break;
  }
}
process.exit(0);
