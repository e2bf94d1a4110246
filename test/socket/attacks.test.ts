/**
 * Invariant: under the default plan, no remote peer stops, stalls or bloats a server. Each attack below
 * (bytes a peer sends, a STARTTLS it breaks off, a peer that does not read, a handler that throws on a
 * peer's bytes, a flood of connects) ends at most the attacker's own connection, with a typed reason
 * that `isPeerFault` classifies; afterwards a fresh client is served and `server.exited` is still
 * pending. Options are the defaults except what a scenario needs to exist at all (a framing mode, a
 * STARTTLS handler, a short timeout so the test is quick), named in each test.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import {
  type Action,
  CallbackError,
  type Connection,
  type ExitReason,
  FrameTooLargeError,
  type Handler,
  HandshakeTimeoutError,
  isPeerFault,
  SendOverflowError,
  SendTimeoutError,
  type Server,
  type ServerOptions,
  TlsHandshakeError,
  tls,
} from "../../src/index.ts";
import { frame, packetText, RawClient } from "../helpers/client.ts";
import { cleanup, startTestServer } from "../helpers/server.ts";
import { closeTlsHelpers, pem, TestClient } from "../helpers/tls.ts";
import { captureSink } from "../helpers/trace.ts";
import { Log, observe, waitFor, within } from "../helpers/wait.ts";

afterEach(async () => {
  closeTlsHelpers();
  await cleanup();
});

const serverTls = () => tls({ cert: pem.serverCert, key: pem.serverKey });
const clientTls = { ca: pem.ca, serverName: "localhost" };

/** A server whose handler echoes `echo:<packet>` and logs every connection it starts. */
async function echoServer(
  options: ServerOptions = {},
  extra: Partial<Handler<undefined, unknown>> = {},
): Promise<{ server: Server<undefined, unknown>; conns: Log<Connection> }> {
  const conns = new Log<Connection>();
  const server = await startTestServer<undefined, unknown>(
    {
      init(_i, meta) {
        conns.push(meta.connection);
      },
      handlePacket: (packet) => ({ send: `echo:${packetText(packet)}` }),
      ...extra,
    },
    undefined,
    options,
  );
  return { server, conns };
}

/** The attacker's connection ended with a peer-fault reason of `kind`; the server serves a fresh client. */
async function survived(
  server: Server<undefined, unknown>,
  attacker: Connection,
  kind: abstract new (...args: never[]) => Error,
  fresh: (port: number) => Promise<void>,
): Promise<ExitReason> {
  const exited = observe(server.exited);
  const reason = await within(attacker.exited, 5000, "the attacker's connection to end");
  expect(reason).toBeInstanceOf(kind);
  await fresh(server.port);
  expect(exited.settled).toBe(false);
  return reason;
}

/** A plain client is echoed (raw framing). */
const rawEcho = async (port: number): Promise<void> => {
  const client = await RawClient.connect(port);
  client.write("hi");
  await client.waitForText("echo:hi", 3000);
};

describe("bytes a peer sends end only its own connection", () => {
  test("a packet: 4 header announcing more than maxPacketSize (5 bytes) → FrameTooLargeError, a peer fault", async () => {
    captureSink();
    const { server, conns } = await echoServer({ packet: 4 });
    const attacker = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    attacker.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]));
    const reason = await survived(server, conn!, FrameTooLargeError, async (port) => {
      const client = await RawClient.connect(port);
      client.write(frame(4, "ok"));
      await client.waitForText("echo:ok", 3000);
    });
    expect(isPeerFault(reason)).toBe(true);
  });

  test('a packet: "line" line longer than maxPacketSize (64 KiB here) → FrameTooLargeError', async () => {
    captureSink();
    const { server, conns } = await echoServer({ packet: "line", maxPacketSize: 64 * 1024 });
    const attacker = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    attacker.write(Buffer.alloc(70 * 1024, 0x61));
    const reason = await survived(server, conn!, FrameTooLargeError, async (port) => {
      const client = await RawClient.connect(port);
      client.write("ok\n");
      await client.waitForText("echo:ok\n", 3000);
    });
    expect(isPeerFault(reason)).toBe(true);
  });

  test("a handler that throws on a peer's bytes (JSON.parse) ends that connection; the report is printed", async () => {
    const sink = captureSink();
    const { server, conns } = await echoServer(
      {},
      { handlePacket: (packet) => ({ send: JSON.stringify(JSON.parse(packetText(packet))) }) },
    );
    const attacker = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    attacker.write("{not json");
    const reason = await survived(server, conn!, CallbackError, async (port) => {
      const client = await RawClient.connect(port);
      client.write('{"a":1}');
      await client.waitForText('{"a":1}', 3000);
    });
    expect(isPeerFault(reason)).toBe(false);
    expect(sink.reports().some((r) => r.includes(`<${conn!.id}> terminating`))).toBe(true);
  });

  test("a terminate that throws and a handleDisconnect that rejects end that connection only", async () => {
    captureSink();
    const { server, conns } = await echoServer(
      {},
      {
        handleDisconnect: () => Promise.reject(new Error("disconnect failed")),
        terminate: () => {
          throw new Error("terminate failed");
        },
      },
    );
    const attacker = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    attacker.end();
    const reason = await survived(server, conn!, CallbackError, rawEcho);
    expect((reason as CallbackError).callback).toBe("terminate");
  });
});

describe("a STARTTLS the peer breaks off ends only that connection, with a typed reason", () => {
  /** A line server that upgrades on "STARTTLS\n" (answering GO in plain text first). */
  async function starttlsServer(options: ServerOptions = {}, upgrade?: () => Action<undefined>) {
    return echoServer(
      { packet: "line", ...options },
      {
        handlePacket(packet, _s, meta) {
          const text = packetText(packet);
          if (text === "STARTTLS\n") return upgrade?.() ?? { send: "GO\n", transport: serverTls() };
          return { send: `echo:${text}${meta.secure ? "secure" : "plain"}\n` };
        },
      },
    );
  }

  const lineEcho = async (port: number): Promise<void> => {
    const client = await TestClient.connect(port);
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    await within(client.startTls(clientTls), 3000, "a good STARTTLS");
    client.write("ping\n");
    await client.waitFor("echo:ping\nsecure\n");
  };

  async function brokenUpgrade(
    options: ServerOptions,
    kind: abstract new (...args: never[]) => Error,
    act: (client: TestClient) => void | Promise<void>,
  ): Promise<void> {
    captureSink();
    const { server, conns } = await starttlsServer(options);
    const client = await TestClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    let secureInTerminate: boolean | undefined;
    void conn!.exited;
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    await act(client);
    const reason = await survived(server, conn!, kind, lineEcho);
    expect(isPeerFault(reason)).toBe(true);
    expect(secureInTerminate ?? false).toBe(false);
  }

  test("garbage instead of a ClientHello → TlsHandshakeError", async () => {
    await brokenUpgrade({}, TlsHandshakeError, (client) => client.write(Buffer.alloc(64, 0x41)));
  });

  test("a FIN instead of a ClientHello → TlsHandshakeError", async () => {
    await brokenUpgrade({}, TlsHandshakeError, (client) => client.socket.shutdown());
  });

  test("a reset instead of a ClientHello → TlsHandshakeError", async () => {
    await brokenUpgrade({}, TlsHandshakeError, (client) => client.terminate());
  });

  test("silence (handshakeTimeout 300 ms here) → HandshakeTimeoutError", async () => {
    await brokenUpgrade({ handshakeTimeout: 300 }, HandshakeTimeoutError, () => undefined);
  });

  test("a real TLS client that rejects our certificate → TlsHandshakeError", async () => {
    await brokenUpgrade({}, TlsHandshakeError, async (client) => {
      const result = await within(
        client.startTls({ ca: pem.untrustedCert, serverName: "localhost" }),
        3000,
        "the client's verdict",
      );
      expect(result.success && result.authorized).toBe(false);
      client.terminate();
    });
  });

  test("meta.secure is false in terminate after a failed upgrade", async () => {
    captureSink();
    const seen: boolean[] = [];
    const { server, conns } = await echoServer(
      { packet: "line" },
      {
        handlePacket: (packet) =>
          packetText(packet) === "STARTTLS\n" ? { send: "GO\n", transport: serverTls() } : undefined,
        terminate: (_r, _s, meta) => void seen.push(meta.secure),
      },
    );
    const client = await TestClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    client.write(Buffer.alloc(64, 0x42));
    expect(await within(conn!.exited, 3000, "the upgrade to fail")).toBeInstanceOf(TlsHandshakeError);
    expect(seen).toEqual([false]);
  });

  test("a second STARTTLS inside TLS → TlsHandshakeError for that connection only", async () => {
    captureSink();
    const { server, conns } = await starttlsServer();
    const client = await TestClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    client.write("STARTTLS\n");
    await client.waitFor("GO\n");
    await within(client.startTls(clientTls), 3000, "the first upgrade");
    client.write("STARTTLS\n");
    const reason = await survived(server, conn!, TlsHandshakeError, lineEcho);
    expect(isPeerFault(reason)).toBe(true);
  });
});

describe("a peer that does not read cannot bloat the server", () => {
  test("sendTimeout (200 ms here): a peer that stops reading is dropped with SendTimeoutError", async () => {
    captureSink();
    const chunk = Buffer.alloc(64 * 1024, 0x63);
    const { server, conns } = await echoServer(
      { sendTimeout: 200 },
      { handlePacket: () => ({ send: Array.from({ length: 64 }, () => chunk) }) },
    );
    const attacker = await RawClient.connect(server.port, { paused: true, keep: false });
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    attacker.write("go");
    const reason = await survived(server, conn!, SendTimeoutError, async (port) => {
      const client = await RawClient.connect(port, { keep: false });
      client.write("go");
      await client.waitForBytes(64 * chunk.length, 5000);
    });
    expect(isPeerFault(reason)).toBe(true);
  });

  test("server-initiated sends to a peer that never reads stop at maxQueuedBytes (SendOverflowError), memory bounded", async () => {
    captureSink();
    const HWM = 64 * 1024; // maxQueuedBytes defaults to 64 × highWaterMark: 4 MiB
    const chunk = Buffer.alloc(64 * 1024, 0x64);
    let queuedMax = 0;
    const { server, conns } = await echoServer(
      { highWaterMark: HWM },
      {
        init(_i, meta) {
          // The first connection gets a feed that never looks at the queue: 2,000 × 64 KiB (128 MiB).
          const conn = meta.connection;
          conns.push(conn);
          if (conns.items.length > 1) return;
          queueMicrotask(() => {
            try {
              for (let i = 0; i < 2000; i++) {
                conn.sendAsync(chunk);
                queuedMax = Math.max(queuedMax, conn.queuedBytes);
              }
            } catch {
              // the connection ended
            }
          });
        },
      },
    );
    await RawClient.connect(server.port, { paused: true, keep: false });
    await conns.until((l) => l.length === 1);
    const conn = conns.items[0];
    const reason = await survived(server, conn!, SendOverflowError, rawEcho);
    expect(isPeerFault(reason)).toBe(true);
    expect((reason as SendOverflowError).maxQueuedBytes).toBe(64 * HWM);
    expect(queuedMax).toBeLessThanOrEqual(64 * HWM);
  });

  test("handleDrain: a producer that pauses above highWaterMark and resumes on drain delivers every byte with a bounded queue", async () => {
    captureSink();
    const HWM = 256 * 1024;
    const chunk = Buffer.alloc(16 * 1024, 0x65);
    const TOTAL = 512;
    let sent = 0;
    let queuedMax = 0;
    let drains = 0;
    const pump = (meta: { send(p: Uint8Array): void; readonly queuedBytes: number }) => {
      while (sent < TOTAL && meta.queuedBytes <= HWM) {
        meta.send(chunk);
        sent++;
        queuedMax = Math.max(queuedMax, meta.queuedBytes);
      }
    };
    const { server } = await echoServer(
      { highWaterMark: HWM },
      {
        init(_i, meta) {
          pump(meta);
        },
        handleDrain(_s, meta) {
          drains++;
          pump(meta);
        },
      },
    );
    const client = await RawClient.connect(server.port, { keep: false, paused: true });
    await waitFor(() => sent > 0, 2000, "the producer to start");
    client.resume();
    await client.waitForBytes(TOTAL * chunk.length, 10_000);
    expect(sent).toBe(TOTAL);
    expect(drains).toBeGreaterThan(0);
    expect(queuedMax).toBeLessThanOrEqual(HWM + chunk.length);
  });
});

describe("a flood of connections cannot lock a server out", () => {
  /** Descriptors open in this process (Linux). */
  const fds = (): number => readdirSync("/proc/self/fd").length;

  test("maxConnections: peers that connect and leave while every slot is full free their sockets at once", async () => {
    captureSink();
    const { server, conns } = await echoServer({ maxConnections: 1 });
    const holder = await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const before = fds();
    for (let round = 0; round < 4; round++) {
      const quitters = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(server.port)));
      await waitFor(() => server.info().waiting === 50, 3000, "50 waiting connections");
      for (const q of quitters) q.end();
      await waitFor(() => server.info().waiting === 0, 3000, "the quitters to be noticed");
    }
    // Client and server sides of 200 connections came and went: nothing is left held.
    await waitFor(() => fds() <= before + 4, 3000, "descriptors back to where they were");
    holder.write("still");
    await holder.waitForText("echo:still", 2000);
  });

  test("maxWaiting (2 here): a connection past the waiting queue is reset at once", async () => {
    captureSink();
    const { server, conns } = await echoServer({ maxConnections: 1, maxWaiting: 2 });
    await RawClient.connect(server.port);
    await conns.until((l) => l.length === 1);
    const waiting = await Promise.all([RawClient.connect(server.port), RawClient.connect(server.port)]);
    await waitFor(() => server.info().waiting === 2, 2000, "two waiting");
    const extra = await RawClient.connect(server.port);
    await within(extra.closedPromise, 2000, "the extra connection to be reset");
    expect(waiting.every((c) => !c.closed)).toBe(true);
  });

  test("TLS: connections still handshaking do not hold the slots of maxConnections", async () => {
    captureSink();
    const { server } = await echoServer({ transport: serverTls(), maxConnections: 2 });
    // Ten peers open the TLS port and say nothing.
    const silent = await Promise.all(Array.from({ length: 10 }, () => RawClient.connect(server.port)));
    for (let i = 0; i < 2; i++) {
      const client = await TestClient.connect(server.port, clientTls);
      client.write("hello");
      await client.waitFor("echo:hello", 3000);
    }
    expect(silent.every((c) => !c.closed)).toBe(true);
  });

  test("maxHandshakes (3 here): a TLS connection past the handshakes in progress is reset at once", async () => {
    captureSink();
    const { server } = await echoServer({ transport: serverTls(), maxHandshakes: 3 });
    await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(server.port)));
    const extra = await RawClient.connect(server.port);
    await within(extra.closedPromise, 2000, "the extra connection to be reset");
  });
});
