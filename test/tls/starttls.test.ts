/**
 * Invariant: returning `{ transport: tls(...) }` from a callback upgrades the live TCP connection to
 * TLS, on the server side and on the connector side (docs/transports.md#starttls). Bytes sent before the swap go out in
 * plain text first; bytes sent after it are held until the handshake and travel encrypted (so
 * `{ send, transport }` answers in plain text while `[{ transport }, { send }]` sends encrypted).
 * `meta.secure` and `meta.transport` flip at the swap. A ClientHello pipelined behind the command is
 * handed to the TLS layer, and the ciphertext Bun still delivers to the raw socket it leaves behind
 * (the "raw twin") never reaches `handlePacket`. A failed STARTTLS handshake ends that connection with
 * `TlsHandshakeError`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  type Action,
  type Connection,
  type ExitReason,
  type Handler,
  type Meta,
  type ServerOptions,
  startConnector,
  TlsHandshakeError,
  tls,
} from "../../src/index.ts";
import { cleanup, defer, startTestServer, trackStop } from "../helpers/server.ts";
import { closeTlsHelpers, pem, Relay, TestClient } from "../helpers/tls.ts";
import { captureSink } from "../helpers/trace.ts";
import { within } from "../helpers/wait.ts";

afterEach(async () => {
  closeTlsHelpers();
  await cleanup();
});

const serverTls = () => tls({ cert: pem.serverCert, key: pem.serverKey });
const clientTls = { ca: pem.ca, serverName: "localhost" };

/** What a handler saw per packet. */
interface Log {
  packets: string[];
  secure: boolean[];
  transports: string[];
  connections: Connection[];
}

const newLog = (): Log => ({ packets: [], secure: [], transports: [], connections: [] });
const text = (packet: unknown): string => Buffer.from(packet as Uint8Array).toString("latin1");

/** A server handler: `upgrade` answers "STARTTLS\n"; anything else is echoed as `echo:<packet>`. */
function starttlsHandler(log: Log, upgrade: () => Action<undefined>): Handler<undefined, unknown> {
  return {
    init(_i, meta) {
      log.connections.push(meta.connection);
    },
    handlePacket(packet, _s, meta) {
      const t = text(packet);
      log.packets.push(t);
      log.secure.push(meta.secure);
      log.transports.push(meta.transport);
      if (t === "STARTTLS\n") return upgrade();
      return { send: `echo:${t}` };
    },
  };
}

async function startServer(log: Log, upgrade: () => Action<undefined>, options: ServerOptions = {}) {
  return startTestServer(starttlsHandler(log, upgrade), undefined, { packet: "line", ...options });
}

describe("server-side STARTTLS", () => {
  test("{ send: GO, transport } answers in plain text, then upgrades; meta.secure flips false → true", async () => {
    const log = newLog();
    const server = await startServer(log, () => ({ send: "GO\n", transport: serverTls() }));
    const relay = Relay.start(server.port);
    const client = await TestClient.connect(relay.port);
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    const hs = await within(client.startTls(clientTls), 3000, "the STARTTLS handshake");
    expect(hs).toMatchObject({ success: true, authorized: true, peerCN: "localhost" });
    client.write("ping\n");
    await client.waitFor("echo:ping\n");
    expect(log.packets).toEqual(["STARTTLS\n", "ping\n"]);
    expect(log.secure).toEqual([false, true]);
    expect(log.transports).toEqual(["tcp", "tls"]);
    const wire = relay.serverBytes();
    expect(wire.startsWith("GO\n\x16\x03")).toBe(true); // "GO" in plain text, then a TLS handshake record
    expect(wire).not.toContain("echo:ping"); // encrypted
  });

  test("the raw twin's ciphertext never reaches handlePacket (raw packets)", async () => {
    const log = newLog();
    const server = await startTestServer(
      starttlsHandler(log, () => ({ send: "GO\n", transport: serverTls() })),
      undefined,
    );
    const client = await TestClient.connect(server.port);
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    await within(client.startTls(clientTls), 3000, "the STARTTLS handshake");
    client.write("hello");
    await client.waitFor("echo:hello");
    expect(log.packets).toEqual(["STARTTLS\n", "hello"]);
    expect(log.secure).toEqual([false, true]);
  });

  test("a ClientHello pipelined behind the command (same TCP chunk) is handed to the TLS layer", async () => {
    const log = newLog();
    const server = await startServer(log, () => ({ transport: serverTls() }));
    const relay = Relay.start(server.port, { glue: true });
    const client = await TestClient.connect(relay.port);
    client.write("STARTTLS\n");
    const hs = await within(client.startTls(clientTls), 3000, "the pipelined handshake");
    expect(hs.success).toBe(true);
    expect(relay.gluedBytes).toBeGreaterThan("STARTTLS\n".length + 5); // command + a whole TLS record
    client.write("after\n");
    await client.waitFor("echo:after\n");
    expect(log.packets).toEqual(["STARTTLS\n", "after\n"]);
    expect(log.secure).toEqual([false, true]);
  });

  test("[{ transport }, { send }] upgrades first: the send is held until the handshake and travels encrypted", async () => {
    const log = newLog();
    const server = await startServer(log, () => [{ transport: serverTls() }, { send: "secret\n" }]);
    const relay = Relay.start(server.port);
    const client = await TestClient.connect(relay.port);
    client.write("STARTTLS\n");
    await within(client.startTls(clientTls), 3000, "the handshake");
    await client.waitFor("secret\n");
    const wire = relay.serverBytes();
    expect(wire.startsWith("\x16\x03")).toBe(true); // the first byte on the wire is TLS, nothing plain
    expect(wire).not.toContain("secret");
  });

  test("STARTTLS with mutual TLS: the client certificate is verified and shown in meta.peerCertificate", async () => {
    const log = newLog();
    const peers: Array<string | undefined> = [];
    const mtls = () => tls({ cert: pem.serverCert, key: pem.serverKey, ca: pem.ca, requestCert: true });
    const server = await startTestServer(
      {
        handlePacket(packet, _s, meta) {
          const t = text(packet);
          log.packets.push(t);
          if (t === "STARTTLS\n") return { send: "GO\n", transport: mtls() };
          peers.push((meta.peerCertificate as { subject?: { CN?: string } } | undefined)?.subject?.CN);
          return { send: `echo:${t}` };
        },
        init: () => undefined,
      },
      undefined,
      { packet: "line" },
    );
    const client = await TestClient.connect(server.port);
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    await within(
      client.startTls({ ...clientTls, cert: pem.clientCert, key: pem.clientKey }),
      3000,
      "handshake",
    );
    client.write("who\n");
    await client.waitFor("echo:who\n");
    expect(peers).toEqual(["client1"]);
  });

  test("a STARTTLS handshake that fails ends that connection with TlsHandshakeError; others go on", async () => {
    captureSink(); // the abnormal exit prints a report
    const log = newLog();
    const server = await startServer(log, () => ({ send: "GO\n", transport: serverTls() }), {
      plan: ["delete"],
    });
    const bad = await TestClient.connect(server.port);
    bad.write("STARTTLS\n");
    await bad.waitFor("GO\n");
    const conn = log.connections[0]!;
    bad.write(Buffer.alloc(300, 0x41)); // not a ClientHello
    const reason: ExitReason = await within(conn.exited, 3000, "the connection to end");
    expect(reason).toBeInstanceOf(TlsHandshakeError);
    expect((reason as TlsHandshakeError).code).toBe("ERR_TLS_HANDSHAKE");
    const good = await TestClient.connect(server.port);
    good.write("STARTTLS\n");
    await good.waitFor("GO\n");
    await within(good.startTls(clientTls), 3000, "a good STARTTLS after the failure");
    good.write("ok\n");
    await good.waitFor("echo:ok\n");
  });

  test("upgrading a connection that is already TLS ends it with TlsHandshakeError", async () => {
    captureSink();
    const log = newLog();
    const server = await startServer(log, () => ({ transport: serverTls() }), {
      transport: serverTls(),
      plan: ["delete"],
    });
    const client = await TestClient.connect(server.port, clientTls);
    client.write("STARTTLS\n");
    await within(client.handshake, 3000, "the TLS handshake");
    await within(client.closedPromise, 3000, "the connection to be closed");
    const reason: ExitReason = await within(log.connections[0]!.exited, 3000, "the connection to end");
    expect(reason).toBeInstanceOf(TlsHandshakeError);
    expect((reason as TlsHandshakeError).message).toContain("upgrade to tls failed");
  });
});

describe("client-side STARTTLS (connectors)", () => {
  /** A connector that asks for STARTTLS in init, upgrades on "GO\n" and then sends "ping\n". */
  function connectorHandler(log: Log, done: () => void): Handler<undefined, unknown> {
    return {
      init: () => ({ send: "STARTTLS\n" }),
      handlePacket(packet, _s, meta: Meta<undefined>) {
        const t = text(packet);
        log.packets.push(t);
        log.secure.push(meta.secure);
        log.transports.push(meta.transport);
        if (t === "GO\n") return [{ transport: tls(clientTls) }, { send: "ping\n" }];
        done();
        return undefined;
      },
    };
  }

  /** Starts that connector to `port`; resolves with its log once it has handled the reply after the upgrade. */
  async function upgradingConnector(port: number, what: string): Promise<Log> {
    const log = newLog();
    const done = Promise.withResolvers<void>();
    const conn = await startConnector(connectorHandler(log, done.resolve), undefined, "127.0.0.1", port, {
      packet: "line",
    });
    trackStop(conn!);
    await within(done.promise, 3000, what);
    return log;
  }

  test("a connector upgrades after the server says GO (an independent Bun STARTTLS server)", async () => {
    // The server side is written here with Bun's own upgradeTLS, independent of the library.
    const dead = Symbol("raw twin");
    const listener = Bun.listen<unknown>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, chunk) {
          if (socket.data === dead) return;
          if (Buffer.from(chunk).toString() !== "STARTTLS\n") return;
          socket.write("GO\n");
          socket.data = dead; // the raw twin copies it
          socket.upgradeTLS({
            isServer: true,
            tls: { cert: pem.serverCert, key: pem.serverKey },
            socket: {
              data(secure: Bun.Socket<unknown>, data: Uint8Array) {
                secure.write(`pong:${Buffer.from(data).toString()}`);
              },
            },
          } as never);
        },
      },
    });
    defer(() => listener.stop(true));
    const log = await upgradingConnector(listener.port, "the encrypted pong");
    expect(log.packets).toEqual(["GO\n", "pong:ping\n"]);
    expect(log.secure).toEqual([false, true]);
    expect(log.transports).toEqual(["tcp", "tls"]);
  });

  test("a connector and a server both upgrade (library on both sides)", async () => {
    const serverLog = newLog();
    const server = await startServer(serverLog, () => ({ send: "GO\n", transport: serverTls() }));
    const log = await upgradingConnector(server.port, "the encrypted echo");
    expect(log.packets).toEqual(["GO\n", "echo:ping\n"]);
    expect(log.secure).toEqual([false, true]);
    expect(serverLog.packets).toEqual(["STARTTLS\n", "ping\n"]);
    expect(serverLog.secure).toEqual([false, true]);
  });
});
