/**
 * proxyTransport on real loopback sockets: a connection is handed to the library only after a
 * complete, valid PROXY header from a trusted address, with the header recorded (proxyHeaderOf)
 * before `open`, and the bytes behind the header delivered as the first data; on TLS, the handshake
 * runs after the header. A bad, late, missing, disallowed or untrusted header resets the socket and
 * reaches onReject as a ProxyHeaderError; the library never sees it and the listener serves on.
 * proxyConnectTransport sends a header first, over TCP and TLS.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyHeaderError } from "../../src/errors.ts";
import { type Handler, startConnector, startServer, tcp, tls, unix } from "../../src/index.ts";
import { encodeProxyHeader, proxyHeaderOf } from "../../src/proxy/header.ts";
import { type ProxyOptions, proxyOptions } from "../../src/proxy/options.ts";
import { proxyConnectTransport, proxyTransport } from "../../src/proxy/transport.ts";
import type { TransportEvents, TransportSocket } from "../../src/transport/transport.ts";
import { cleanup, track, trackStop } from "../helpers/server.ts";
import { pem } from "../helpers/tls.ts";
import { waitFor, within } from "../helpers/wait.ts";
import { closeProxyKit, EchoServer, NetClient, onClose } from "./proxy-kit.ts";

afterEach(async () => {
  closeProxyKit();
  await cleanup();
});

const V1 = "PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n";
const v2 = (extra: Partial<Parameters<typeof encodeProxyHeader>[0]> = {}) =>
  encodeProxyHeader({
    version: 2,
    sourceAddress: "2001:db8::7",
    sourcePort: 40001,
    destinationAddress: "2001:db8::1",
    destinationPort: 8443,
    ...extra,
  });

function setup(options: ProxyOptions | undefined = proxyOptions(true)) {
  const rejects: ProxyHeaderError[] = [];
  const server = new EchoServer(proxyTransport(tcp(), options!, (e) => rejects.push(e)));
  return { server, rejects };
}

describe("plain TCP", () => {
  test("v1: header recorded before open, bytes after it delivered, echo both ways", async () => {
    const { server, rejects } = setup();
    const client = new NetClient(server.port);
    client.write(`${V1}hello`);
    await client.waitText("echo:hello");
    const [a] = server.accepted;
    expect(a?.header).toMatchObject({ version: 1, sourceAddress: "203.0.113.7", sourcePort: 40000 });
    expect(proxyHeaderOf(a!.socket)).toBe(a!.header!);
    expect(a?.received).toBe("hello");
    client.write("again");
    await client.waitText("echo:again");
    expect(rejects).toEqual([]);
  });

  test("v2 split across reads (a byte at a time), then no data: open still fires", async () => {
    const { server } = setup();
    const client = new NetClient(server.port);
    await client.connected;
    const header = v2();
    for (let i = 0; i < header.length; i++) {
      client.write(header.subarray(i, i + 1));
      if (i % 8 === 0) await Bun.sleep(1); // let the reads land separately
    }
    await waitFor(() => server.accepted.length === 1, 2000, "open");
    expect(server.accepted[0]!.header).toMatchObject({
      version: 2,
      family: "INET6",
      sourceAddress: "2001:db8::7",
      sourcePort: 40001,
    });
    expect(server.listener).toMatchObject({ pendingSockets: 0 });
    client.write("late data");
    await client.waitText("echo:late data");
  });

  test("a 60 KiB v2 header (one big TLV) dribbled in 1 KiB writes arrives whole", async () => {
    const { server } = setup();
    const big = new Uint8Array(60_000).map((_, i) => i & 0xff);
    const header = v2({ tlvs: [[0xe0, big]] });
    const client = new NetClient(server.port);
    await client.connected;
    for (let i = 0; i < header.length; i += 1000) {
      client.write(header.subarray(i, i + 1000));
      if (i % 10_000 === 0) await Bun.sleep(1);
    }
    client.write("after");
    await client.waitText("echo:after");
    const tlv = server.accepted[0]!.header!.tlvs[0]!;
    expect(tlv[0]).toBe(0xe0);
    expect(Buffer.from(tlv[1]).equals(Buffer.from(big))).toBe(true);
  });

  test("v2 LOCAL (a health check) is accepted, with command LOCAL and no addresses", async () => {
    const { server } = setup();
    const client = new NetClient(server.port);
    client.write(Buffer.concat([encodeProxyHeader({ version: 2, command: "LOCAL" }), Buffer.from("ping")]));
    await client.waitText("echo:ping");
    expect(server.accepted[0]!.header).toEqual({ version: 2, command: "LOCAL", family: "UNSPEC", tlvs: [] });
  });

  test("an untrusted source is reset at once, before it sends anything", async () => {
    const { server, rejects } = setup(proxyOptions({ trusted: ["127.0.0.1/32"] }));
    const client = new NetClient(server.port, "127.0.0.2");
    await client.waitClosed();
    expect(rejects.length).toBe(1);
    expect(rejects[0]).toBeInstanceOf(ProxyHeaderError);
    expect(rejects[0]!.code).toBe("ERR_PROXY_HEADER");
    expect(rejects[0]!.remoteAddress).toBe("127.0.0.2");
    expect(rejects[0]!.message).toMatch(/not trusted/);
    expect(server.accepted).toEqual([]);
    // The listener serves on: a trusted client gets through.
    const ok = new NetClient(server.port);
    ok.write(`${V1}x`);
    await ok.waitText("echo:x");
  });

  test("a late header: reset after timeoutMs", async () => {
    const { server, rejects } = setup(proxyOptions({ timeoutMs: 100 }));
    const client = new NetClient(server.port);
    client.write("PROXY TCP4 1.2.3.4"); // incomplete, then silence
    const started = performance.now();
    await client.waitClosed(2000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(80);
    expect(rejects[0]!.message).toMatch(/no complete header within 100 ms/);
    expect(client.error).toBe("ECONNRESET");
    expect(server.accepted).toEqual([]);
  });

  test.each([
    ["garbage", "GET / HTTP/1.1\r\n\r\n", /not a PROXY protocol header/],
    ["a bad v1 line", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", /above 65535/],
    ["an overlong v1 line", `PROXY UNKNOWN ${"x".repeat(200)}`, /107/],
  ])("%s is reset and reported", async (_name, bytes, pattern) => {
    const { server, rejects } = setup();
    const client = new NetClient(server.port);
    client.write(bytes);
    await client.waitClosed();
    expect(rejects.length).toBe(1);
    expect(rejects[0]!.message).toMatch(pattern);
    expect(server.accepted).toEqual([]);
  });

  test("a version not in `versions` is rejected", async () => {
    const { server, rejects } = setup(proxyOptions({ versions: [2] }));
    const client = new NetClient(server.port);
    client.write(V1);
    await client.waitClosed();
    expect(rejects[0]!.message).toMatch(/version 1 is not accepted/);
  });

  test("a FIN or close before the header completes is a rejection", async () => {
    const { server, rejects } = setup();
    const client = new NetClient(server.port);
    client.write("PROXY ");
    await waitFor(() => server.listener.pendingSockets === 1, 2000, "pending");
    client.socket.end();
    await waitFor(() => rejects.length === 1, 2000, "reject");
    expect(rejects[0]!.message).toMatch(/before the header was complete/);
    expect(server.listener.pendingSockets).toBe(0);
  });

  test.each([false, true])(
    "stop(%p) resets sockets still in the header stage, without reporting them",
    async (closeActive) => {
      const { server, rejects } = setup();
      const client = new NetClient(server.port);
      client.write("PROXY TCP4 ");
      await waitFor(() => server.listener.pendingSockets === 1, 2000, "pending");
      server.listener.stop(closeActive);
      await client.waitClosed();
      expect(server.listener.pendingSockets).toBe(0);
      expect(rejects).toEqual([]);
    },
  );
});

describe("other plain transports listen with their own options", () => {
  test("unix(path): the header is read on a Unix socket (a local balancer), which is trusted", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "sockerl-proxy-")), "s.sock");
    onClose(() => rmSync(path, { force: true }));
    const rejects: ProxyHeaderError[] = [];
    const server = new EchoServer(proxyTransport(unix(path), proxyOptions(true)!, (e) => rejects.push(e)));
    const { promise, resolve } = Promise.withResolvers<string>();
    let got = "";
    const socket = await Bun.connect({
      unix: path,
      socket: {
        open(s) {
          s.write(`${V1}over unix`);
        },
        data(_s, chunk) {
          got += Buffer.from(chunk).toString();
          if (got.includes("echo:over unix")) resolve(got);
        },
      },
    });
    onClose(() => socket.terminate());
    await within(promise, 2000, "echo over the unix socket");
    expect(server.accepted[0]?.header).toMatchObject({ version: 1, sourceAddress: "203.0.113.7" });
    expect(rejects).toEqual([]);
  });

  test("tcp({ ipv6Only }) on ::1: an IPv6 client gets through (trusted ::1/128)", async () => {
    const rejects: ProxyHeaderError[] = [];
    const transport = proxyTransport(tcp({ ipv6Only: true }), proxyOptions(true)!, (e) => rejects.push(e));
    const events: TransportEvents = {
      open(s) {
        s.data = "open";
      },
      data(s, chunk) {
        s.write(chunk);
      },
      drain() {},
      end() {},
      close() {},
      error() {},
      handshake() {},
    };
    const listener = transport.listen({
      hostname: "::1",
      port: 0,
      reusePort: false,
      events,
      data: undefined,
    });
    onClose(() => listener.stop(true));
    const { promise, resolve } = Promise.withResolvers<string>();
    const socket = await Bun.connect({
      hostname: "::1",
      port: listener.port,
      socket: {
        open(s) {
          s.write(Buffer.concat([v2(), Buffer.from("six")]));
        },
        data(_s, chunk) {
          resolve(Buffer.from(chunk).toString());
        },
      },
    });
    onClose(() => socket.terminate());
    expect(await within(promise, 2000, "echo over ::1")).toBe("six");
    expect(rejects).toEqual([]);
  });
});

describe("TLS", () => {
  const serverTls = () => tls({ cert: pem.serverCert, key: pem.serverKey });
  const clientTls = () => tls({ ca: pem.ca, serverName: "localhost" });

  /** A TLS client through proxyConnectTransport, with its own event table. */
  async function tlsClient(port: number, header: Uint8Array) {
    const state = { handshake: undefined as boolean | undefined, received: "", closed: false };
    const events: TransportEvents = {
      open() {},
      data(_s, chunk) {
        state.received += Buffer.from(chunk).toString();
      },
      drain() {},
      end() {},
      close() {
        state.closed = true;
      },
      error() {},
      handshake(_s, ok) {
        state.handshake = ok;
      },
    };
    const socket: TransportSocket = await proxyConnectTransport(clientTls(), header).connect({
      hostname: "127.0.0.1",
      port,
      events,
      data: undefined,
    });
    onClose(() => socket.terminate());
    return { socket, state };
  }

  test("header, then the TLS handshake, then encrypted echo; the header is on the TLS socket", async () => {
    const rejects: ProxyHeaderError[] = [];
    const server = new EchoServer(proxyTransport(serverTls(), proxyOptions(true)!, (e) => rejects.push(e)));
    const { socket, state } = await tlsClient(server.port, v2({ tlvs: [[0x01, Buffer.from("h2")]] }));
    await waitFor(() => state.handshake === true, 3000, "client handshake");
    socket.write("secret");
    await waitFor(() => state.received.includes("echo:secret"), 3000, "echo");
    const [a] = server.accepted;
    expect(a?.handshake).toBe(true);
    expect(a?.header).toMatchObject({ version: 2, sourceAddress: "2001:db8::7", alpn: "h2" });
    expect(proxyHeaderOf(a!.socket)).toBe(a!.header!);
    expect(a?.received).toBe("secret");
    expect(rejects).toEqual([]);
  });

  test.each([
    ["alt.example", "alt.example"],
    ["localhost", "localhost"],
  ])("tls({ sni }) behind a header: the client asking for %s gets its certificate", async (serverName) => {
    const rejects: ProxyHeaderError[] = [];
    const sniTls = tls({
      cert: pem.serverCert,
      key: pem.serverKey,
      sni: { "alt.example": { cert: pem.altCert, key: pem.altKey } },
    });
    const server = new EchoServer(proxyTransport(sniTls, proxyOptions(true)!, (e) => rejects.push(e)));
    const state = { handshake: undefined as boolean | undefined, received: "" };
    const events: TransportEvents = {
      open() {},
      data(_s, chunk) {
        state.received += Buffer.from(chunk).toString();
      },
      drain() {},
      end() {},
      close() {},
      error() {},
      handshake(_s, ok) {
        state.handshake = ok;
      },
    };
    // serverName is verified against the certificate: the handshake only succeeds with the right one.
    const socket = await proxyConnectTransport(tls({ ca: pem.ca, serverName }), v2()).connect({
      hostname: "127.0.0.1",
      port: server.port,
      events,
      data: undefined,
    });
    onClose(() => socket.terminate());
    await waitFor(() => state.handshake !== undefined, 3000, "client handshake");
    expect(state.handshake).toBe(true);
    socket.write("sni");
    await waitFor(() => state.received.includes("echo:sni"), 3000, "echo");
    expect(server.accepted[0]?.header).toMatchObject({ version: 2, sourceAddress: "2001:db8::7" });
    expect(rejects).toEqual([]);
  });

  test("a TLS server: a header, then no ClientHello, is reset after max(timeoutMs, sniTimeout)", async () => {
    const rejects: ProxyHeaderError[] = [];
    const quick = tls({ cert: pem.serverCert, key: pem.serverKey, sniTimeout: 150 });
    const server = new EchoServer(
      proxyTransport(quick, proxyOptions({ timeoutMs: 100 })!, (e) => rejects.push(e)),
    );
    const client = new NetClient(server.port);
    client.write(v2());
    const started = performance.now();
    await client.waitClosed(2000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(120);
    expect(rejects[0]!.message).toMatch(/no complete TLS ClientHello after the header/);
    expect(server.accepted).toEqual([]);
  });

  test("bad header on a TLS server: no handshake is attempted", async () => {
    const rejects: ProxyHeaderError[] = [];
    const server = new EchoServer(proxyTransport(serverTls(), proxyOptions(true)!, (e) => rejects.push(e)));
    const client = new NetClient(server.port);
    client.write(Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x10)); // a ClientHello without a header
    await client.waitClosed();
    expect(rejects[0]!.message).toMatch(/not a PROXY protocol header/);
    expect(server.accepted).toEqual([]);
  });
});

describe("through startServer / startConnector (the public Transport interface)", () => {
  const echo: Handler<number> = {
    init: () => ({ state: 0 }),
    handlePacket: (packet, n) => ({ state: n + 1, send: packet }),
    handleDisconnect: () => undefined,
  };

  test.each([
    ["tcp", () => tcp(), () => tcp()],
    [
      "tls",
      () => tls({ cert: pem.serverCert, key: pem.serverKey }),
      () => tls({ ca: pem.ca, serverName: "localhost" }),
    ],
  ])("%s: a connector sending a header talks to a proxyProtocol server", async (_name, serverT, clientT) => {
    const rejects: ProxyHeaderError[] = [];
    const server = track(
      (await startServer(echo, undefined, 0, {
        hostname: "127.0.0.1",
        transport: proxyTransport(serverT(), proxyOptions(true)!, (e) => rejects.push(e)),
      }))!,
    );
    const replies: string[] = [];
    const { promise: replied, resolve } = Promise.withResolvers<void>();
    const client: Handler<undefined> = {
      init: () => ({ state: undefined, send: "ping" }),
      handlePacket: (packet) => {
        replies.push(Buffer.from(packet as Uint8Array).toString());
        resolve();
        return undefined;
      },
    };
    const header = encodeProxyHeader({
      version: 1,
      sourceAddress: "192.0.2.9",
      sourcePort: 1234,
      destinationAddress: "127.0.0.1",
      destinationPort: server.port,
    });
    const conn = await startConnector(client, undefined, "127.0.0.1", server.port, {
      transport: proxyConnectTransport(clientT(), header),
    });
    trackStop(conn!);
    await within(replied, 3000, "echo through the library");
    expect(replies.join("")).toBe("ping");
    expect(rejects).toEqual([]);
  });
});
