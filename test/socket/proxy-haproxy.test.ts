/**
 * Interop with a real HAProxy (Debian's `haproxy`, `mode tcp`): whatever HAProxy sends in front of
 * a connection, the PROXY transport reads, and the server sees the client's own address and port.
 * Covered: `send-proxy` (v1), `send-proxy-v2` with CRC32C and UNIQUE_ID TLVs, TLS passed through
 * to a TLS server (the handshake runs after the header), TLS terminated at HAProxy with the SSL TLV
 * (`send-proxy-v2-ssl-cn`), and HAProxy's health checks (`option tcp-check`, which carry a header
 * too: LOCAL in v2) answered so HAProxy marks the servers up. The config is written to a temp dir
 * and HAProxy listens on free loopback ports. Skipped, visibly, when haproxy is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProxyHeaderError } from "../../src/errors.ts";
import { tcp, tls } from "../../src/index.ts";
import { encodeProxyHeader } from "../../src/proxy/header.ts";
import { proxyOptions } from "../../src/proxy/options.ts";
import { proxyConnectTransport, proxyTransport } from "../../src/proxy/transport.ts";
import type { TransportEvents } from "../../src/transport/transport.ts";
import { pem } from "../helpers/tls.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  closeProxyKit,
  EchoServer,
  NetClient,
  type SeenByLibrary,
  startProxyProtocolServer,
} from "./proxy-kit.ts";

const HAPROXY = Bun.which("haproxy") ?? (Bun.file("/usr/sbin/haproxy").size > 0 ? "/usr/sbin/haproxy" : null);
if (HAPROXY === null)
  console.warn("proxy-haproxy.test.ts: haproxy is not installed; the interop tests are skipped");

/** A port nothing listens on right now (bound, then released). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

let dir = "";
let proc: Bun.Subprocess | undefined;
const rejects: ProxyHeaderError[] = [];
let plainV1: EchoServer;
let plainV2: EchoServer;
let tlsV2: EchoServer;
let terminated: EchoServer;
let chained: EchoServer;
/** Library servers with the `proxyProtocol` option (undefined when this build has no such option). */
let wiredPlain: { port: number; seen: SeenByLibrary[] } | undefined;
let wiredTls: { port: number; seen: SeenByLibrary[] } | undefined;
const front = { v1: 0, v2: 0, tls: 0, term: 0, chain: 0, wiredPlain: 0, wiredTls: 0 };

/** The CSV of HAProxy's `show stat` over its admin socket. */
async function showStat(): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let out = "";
  await Bun.connect({
    unix: join(dir, "admin.sock"),
    socket: {
      open(sock) {
        sock.write("show stat\n");
      },
      data(_sock, chunk) {
        out += Buffer.from(chunk).toString();
      },
      close() {
        resolve(out);
      },
    },
  });
  return promise;
}

describe.skipIf(HAPROXY === null)("HAProxy (mode tcp) in front of proxyTransport", () => {
  beforeAll(async () => {
    const opts = proxyOptions(true)!;
    const onReject = (e: ProxyHeaderError) => rejects.push(e);
    plainV1 = new EchoServer(proxyTransport(tcp(), opts, onReject));
    plainV2 = new EchoServer(proxyTransport(tcp(), opts, onReject));
    tlsV2 = new EchoServer(proxyTransport(tls({ cert: pem.serverCert, key: pem.serverKey }), opts, onReject));
    terminated = new EchoServer(proxyTransport(tcp(), opts, onReject));
    chained = new EchoServer(proxyTransport(tcp(), opts, onReject));
    wiredPlain = await startProxyProtocolServer(true);
    wiredTls = await startProxyProtocolServer(true, tls({ cert: pem.serverCert, key: pem.serverKey }));
    if (wiredPlain === undefined)
      console.warn("proxy-haproxy.test.ts: startServer has no proxyProtocol option yet");
    front.v1 = freePort();
    front.v2 = freePort();
    front.tls = freePort();
    front.term = freePort();
    front.chain = freePort();
    front.wiredPlain = freePort();
    front.wiredTls = freePort();
    dir = mkdtempSync(join(tmpdir(), "sockerl-haproxy-"));
    writeFileSync(join(dir, "site.pem"), `${pem.serverCert}\n${pem.serverKey}`);
    // The health check speaks the echo protocol: send a line, expect it echoed.
    const check = [
      "  option tcp-check",
      "  tcp-check connect default", // default: the server line's send-proxy applies to the check too
      "  tcp-check send PING\\r\\n",
      "  tcp-check expect string echo:PING",
    ].join("\n");
    const config = `
global
  maxconn 200
  stats socket ${join(dir, "admin.sock")} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend v1
  bind 127.0.0.1:${front.v1}
  default_backend v1
backend v1
${check}
  server s1 127.0.0.1:${plainV1.port} send-proxy check inter 100ms rise 1 fall 2

frontend v2
  bind 127.0.0.1:${front.v2}
  unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt
  default_backend v2
backend v2
${check}
  server s2 127.0.0.1:${plainV2.port} send-proxy-v2 proxy-v2-options crc32c,unique-id check inter 100ms rise 1 fall 2

frontend tls_passthrough
  bind 127.0.0.1:${front.tls}
  default_backend tls_passthrough
backend tls_passthrough
  server s3 127.0.0.1:${tlsV2.port} send-proxy-v2

frontend tls_terminated
  bind 127.0.0.1:${front.term} ssl crt ${join(dir, "site.pem")}
  default_backend tls_terminated
backend tls_terminated
  server s4 127.0.0.1:${terminated.port} send-proxy-v2-ssl-cn

# A chain: our connector sends a header to HAProxy (accept-proxy), which relays it in v2.
frontend chain
  bind 127.0.0.1:${front.chain} accept-proxy
  default_backend chain
backend chain
  server s7 127.0.0.1:${chained.port} send-proxy-v2
${
  wiredPlain === undefined || wiredTls === undefined
    ? ""
    : `
frontend wired_plain
  bind 127.0.0.1:${front.wiredPlain}
  default_backend wired_plain
backend wired_plain
  server s5 127.0.0.1:${wiredPlain.port} send-proxy-v2

frontend wired_tls
  bind 127.0.0.1:${front.wiredTls}
  default_backend wired_tls
backend wired_tls
  server s6 127.0.0.1:${wiredTls.port} send-proxy
`
}`;
    writeFileSync(join(dir, "haproxy.cfg"), config);
    proc = Bun.spawn([HAPROXY!, "-db", "-f", join(dir, "haproxy.cfg")], { stdout: "pipe", stderr: "pipe" });
    const deadline = Date.now() + 5000;
    // Ready when the stats socket lists every frontend OPEN. (Not by connecting to the frontends:
    // a probe would reach the servers behind as a header and a FIN, which a TLS server counts as a
    // connection that never sent its ClientHello.)
    const frontends = ["v1", "v2", "tls_passthrough", "tls_terminated", "chain"];
    if (wiredPlain !== undefined) frontends.push("wired_plain", "wired_tls");
    for (;;) {
      const stat = await showStat().catch(() => "");
      const lines = stat.split("\n");
      if (frontends.every((f) => lines.find((l) => l.startsWith(`${f},FRONTEND,`))?.includes(",OPEN,")))
        break;
      if (Date.now() > deadline || proc.exitCode !== null) {
        const err = await new Response(proc.stderr as ReadableStream).text();
        throw new Error(`haproxy did not start: ${err}`);
      }
      await Bun.sleep(20);
    }
  });

  afterAll(async () => {
    proc?.kill("SIGTERM");
    await proc?.exited;
    closeProxyKit();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  test("send-proxy (v1): the server sees the client's address and port; bytes flow both ways", async () => {
    const client = new NetClient(front.v1);
    await client.connected;
    client.write("hello v1");
    await client.waitText("echo:hello v1", 3000);
    const a = plainV1.accepted.find((x) => x.header?.command === "PROXY" && x.received.includes("hello v1"));
    expect(a?.header).toMatchObject({
      version: 1,
      family: "INET",
      sourceAddress: "127.0.0.1",
      sourcePort: client.socket.localPort,
      destinationAddress: "127.0.0.1",
      destinationPort: front.v1,
    });
  });

  test("send-proxy-v2 with CRC32C and UNIQUE_ID TLVs", async () => {
    const client = new NetClient(front.v2);
    await client.connected;
    client.write("hello v2");
    await client.waitText("echo:hello v2", 3000);
    const a = plainV2.accepted.find((x) => x.header?.command === "PROXY" && x.received.includes("hello v2"));
    expect(a?.header).toMatchObject({
      version: 2,
      family: "INET",
      sourceAddress: "127.0.0.1",
      sourcePort: client.socket.localPort,
      destinationPort: front.v2,
    });
    const types = a!.header!.tlvs.map(([t]) => t);
    expect(types).toContain(0x03); // CRC32C, checked by the parser
    expect(types).toContain(0x05);
    // unique-id-format %{+X}o %ci:%cp_…: hex, so the client's port appears as "7F000001:<port in hex>_".
    const port = client.socket.localPort!.toString(16).toUpperCase();
    expect(Buffer.from(a!.header!.uniqueId!).toString()).toContain(`7F000001:${port}_`);
  });

  test("TLS passed through: header, then the handshake with our certificate, then encrypted echo", async () => {
    const { promise, resolve } = Promise.withResolvers<string>();
    let got = "";
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: front.tls,
      tls: { ca: pem.ca, serverName: "localhost" },
      socket: {
        handshake(s, ok) {
          if (ok) s.write("over tls");
        },
        data(_s, chunk) {
          got += Buffer.from(chunk).toString();
          if (got.includes("echo:over tls")) resolve(got);
        },
      },
    });
    try {
      expect(await Promise.race([promise, Bun.sleep(3000).then(() => "timeout")])).toContain("echo:over tls");
      const a = tlsV2.accepted.at(-1);
      expect(a?.handshake).toBe(true);
      expect(a?.header).toMatchObject({
        version: 2,
        sourceAddress: "127.0.0.1",
        sourcePort: socket.localPort,
      });
    } finally {
      socket.end();
    }
  });

  test("TLS terminated at HAProxy: the SSL TLV says so (send-proxy-v2-ssl-cn)", async () => {
    const { promise, resolve } = Promise.withResolvers<void>();
    let got = "";
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: front.term,
      tls: { ca: pem.ca, serverName: "localhost" },
      socket: {
        handshake(s, ok) {
          if (ok) s.write("terminated");
        },
        data(_s, chunk) {
          got += Buffer.from(chunk).toString();
          if (got.includes("echo:terminated")) resolve();
        },
      },
    });
    try {
      await Promise.race([promise, Bun.sleep(3000)]);
      expect(got).toContain("echo:terminated");
      const ssl = terminated.accepted.at(-1)?.header?.ssl;
      expect(ssl?.client ?? 0).toBeGreaterThan(0); // PP2_CLIENT_SSL
      expect(ssl?.version).toMatch(/^TLSv1\.[23]$/);
    } finally {
      socket.end();
    }
  });

  test("proxyConnectTransport → HAProxy (accept-proxy) → send-proxy-v2: the original client survives the chain", async () => {
    const header = encodeProxyHeader({
      version: 1,
      sourceAddress: "192.0.2.9",
      sourcePort: 1234,
      destinationAddress: "198.51.100.20",
      destinationPort: 443,
    });
    let got = "";
    const { promise, resolve } = Promise.withResolvers<void>();
    const events: TransportEvents = {
      open(s) {
        s.write("chained");
      },
      data(_s, chunk) {
        got += Buffer.from(chunk).toString();
        if (got.includes("echo:chained")) resolve();
      },
      drain() {},
      end() {},
      close() {},
      error() {},
      handshake() {},
    };
    const socket = await proxyConnectTransport(tcp(), header).connect({
      hostname: "127.0.0.1",
      port: front.chain,
      events,
      data: undefined,
    });
    try {
      await Promise.race([promise, Bun.sleep(3000)]);
      expect(got).toContain("echo:chained");
      const a = chained.accepted.find((x) => x.received.includes("chained"));
      expect(a?.header).toMatchObject({
        version: 2,
        sourceAddress: "192.0.2.9",
        sourcePort: 1234,
        destinationAddress: "198.51.100.20",
        destinationPort: 443,
      });
    } finally {
      socket.terminate();
    }
  });

  test("startServer({ proxyProtocol: true }) behind HAProxy: meta has the client's address and port (plain v2, TLS v1)", async () => {
    if (wiredPlain === undefined || wiredTls === undefined) {
      console.warn("skipped: startServer has no proxyProtocol option in this build");
      return;
    }
    const client = new NetClient(front.wiredPlain);
    await client.connected;
    client.write("wired");
    await client.waitText("wired", 3000);
    expect(wiredPlain.seen.at(-1)).toMatchObject({
      remoteAddress: "127.0.0.1",
      remotePort: client.socket.localPort,
    });
    expect(wiredPlain.seen.at(-1)!.proxy).toMatchObject({ version: 2, command: "PROXY" });

    const { promise, resolve } = Promise.withResolvers<void>();
    let got = "";
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: front.wiredTls,
      tls: { ca: pem.ca, serverName: "localhost" },
      socket: {
        handshake(s, ok) {
          if (ok) s.write("tls wired");
        },
        data(_s, chunk) {
          got += Buffer.from(chunk).toString();
          if (got.includes("tls wired")) resolve();
        },
      },
    });
    try {
      await Promise.race([promise, Bun.sleep(3000)]);
      expect(got).toContain("tls wired");
      expect(wiredTls.seen.at(-1)).toMatchObject({
        remoteAddress: "127.0.0.1",
        remotePort: socket.localPort,
      });
      expect(wiredTls.seen.at(-1)!.proxy).toMatchObject({ version: 1 });
    } finally {
      socket.end();
    }
  });

  test("health checks carry a header (v2: LOCAL) and are answered: both checked servers are UP", async () => {
    await waitFor(() => plainV2.accepted.some((x) => x.header?.command === "LOCAL"), 3000, "a LOCAL check");
    expect(plainV1.accepted.some((x) => x.received.includes("PING"))).toBe(true);
    let stat = "";
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      stat = await showStat();
      const up = stat
        .split("\n")
        .filter((l) => /^(v1,s1|v2,s2),/.test(l) && /,UP,/.test(l) && l.includes("L7OK"));
      if (up.length === 2) break;
      await Bun.sleep(50);
    }
    const lines = stat.split("\n").filter((l) => /^(v1,s1|v2,s2),/.test(l));
    expect(lines.length).toBe(2);
    for (const line of lines) {
      expect(line).toContain(",UP,");
      expect(line).toContain("L7OK");
    }
    expect(rejects).toEqual([]);
  });
});
