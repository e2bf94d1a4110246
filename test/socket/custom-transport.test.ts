/**
 * Invariant: the public `Transport` interface is enough to write a transport outside the library
 * (SockErl's `sockerl_transporter`; docs/transports.md#writing-a-transport). The "xor" transport below wraps `Bun.listen` /
 * `Bun.connect` and XORs every byte in both directions; a server and a connector using it talk
 * through it (the wire carries only XORed bytes), report `meta.transport === "xor"`, keep
 * backpressure (short writes are reported, not buffered), and a transport without `upgrade` cannot
 * be swapped in on a live connection (`BadReturnError`).
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  BadReturnError,
  type ConnectRequest,
  type ExitReason,
  type Handler,
  type ListenRequest,
  startConnector,
  type Transport,
  type TransportEvents,
  type TransportListener,
  type TransportSocket,
} from "../../src/index.ts";
import { cleanup, defer, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { within } from "../helpers/wait.ts";

const KEY = 0x5a;
/** Writes the kernel took only in part (the transport reported them, buffering nothing). */
let shortWrites = 0;

function xor(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i++) out[i] = bytes[i]! ^ KEY;
  return out;
}

/** The library's socket: XORs on write, delegates the rest to the Bun socket. */
class XorSocket implements TransportSocket {
  data: unknown;
  constructor(
    readonly raw: Bun.Socket<XorSocket>,
    data: unknown,
  ) {
    this.data = data;
  }
  write(data: Uint8Array | string, byteOffset = 0, byteLength?: number): number {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const end = byteLength === undefined ? bytes.byteLength : byteOffset + byteLength;
    // XOR is per byte, so a short write stays consistent: the library retries from the count returned.
    const n = this.raw.write(xor(bytes.subarray(byteOffset, end)));
    if (n >= 0 && n < end - byteOffset) shortWrites++;
    return n;
  }
  end() {
    return this.raw.end();
  }
  shutdown(halfClose?: boolean) {
    this.raw.shutdown(halfClose);
  }
  terminate() {
    return this.raw.terminate();
  }
  pause() {
    this.raw.pause();
  }
  resume() {
    this.raw.resume();
  }
  get remoteAddress() {
    return this.raw.remoteAddress;
  }
  get remotePort() {
    return this.raw.remotePort;
  }
  get localPort() {
    return this.raw.localPort;
  }
  get readyState() {
    return this.raw.readyState;
  }
}

/** Bun handlers that wrap each socket and report to the library's `events` (XORing what arrives). */
function xorHandlers(events: TransportEvents, initialData: unknown): Bun.SocketHandler<XorSocket> {
  return {
    open(raw) {
      const socket = new XorSocket(raw, initialData);
      raw.data = socket;
      events.open(socket);
    },
    data(raw, chunk) {
      events.data(raw.data, xor(chunk));
    },
    drain(raw) {
      events.drain(raw.data);
    },
    end(raw) {
      events.end(raw.data);
    },
    close(raw, error) {
      if (raw.data !== undefined) events.close(raw.data, error);
    },
    error(raw, error) {
      if (raw.data !== undefined) events.error(raw.data, error);
    },
  };
}

/** A complete custom transport in ~20 lines. */
function xorTransport(): Transport {
  return {
    name: "xor",
    secure: false,
    listen(request: ListenRequest): TransportListener {
      return Bun.listen<XorSocket>({
        hostname: request.hostname,
        port: request.port,
        allowHalfOpen: true,
        socket: xorHandlers(request.events, request.data),
      });
    },
    connect(request: ConnectRequest): Promise<TransportSocket> {
      return Bun.connect<XorSocket>({
        hostname: request.hostname,
        port: request.port,
        allowHalfOpen: true,
        socket: xorHandlers(request.events, request.data),
      }).then((raw) => raw.data);
    },
  };
}

afterEach(cleanup);

interface Seen {
  transport: string;
  packets: string[];
}

function echoServer(seen: Seen): Handler<undefined, unknown> {
  return {
    init(_i, meta) {
      seen.transport = meta.transport;
    },
    handlePacket(packet) {
      const text = Buffer.from(packet as Uint8Array).toString();
      seen.packets.push(text);
      return { send: `echo:${text}` };
    },
  };
}

describe("a custom xor transport", () => {
  test("a server and a connector talk through it; meta.transport is its name", async () => {
    const serverSeen: Seen = { transport: "", packets: [] };
    const server = await startTestServer(echoServer(serverSeen), undefined, { transport: xorTransport() });
    const got = Promise.withResolvers<string>();
    let connectorTransport = "";
    const conn = await startConnector(
      {
        init(_i, meta) {
          connectorTransport = meta.transport;
          return { send: "hello xor" };
        },
        handlePacket(packet) {
          got.resolve(Buffer.from(packet as Uint8Array).toString());
        },
      },
      undefined,
      "127.0.0.1",
      server.port,
      { transport: xorTransport() },
    );
    trackStop(conn!);
    expect(await within(got.promise, 3000, "the echo")).toBe("echo:hello xor");
    expect(serverSeen).toEqual({ transport: "xor", packets: ["hello xor"] });
    expect(connectorTransport).toBe("xor");
  });

  test("the wire carries XORed bytes both ways (checked with a plain TCP client)", async () => {
    const seen: Seen = { transport: "", packets: [] };
    const server = await startTestServer(echoServer(seen), undefined, { transport: xorTransport() });
    const reply = Promise.withResolvers<Buffer>();
    const raw = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(_s, data) {
          reply.resolve(Buffer.from(data));
        },
      },
    });
    defer(() => raw.terminate());
    raw.write(xor(Buffer.from("plain")));
    const wire = await within(reply.promise, 3000, "the reply");
    expect(wire.toString()).not.toContain("echo");
    expect(xor(wire).toString()).toBe("echo:plain");
    expect(seen.packets).toEqual(["plain"]);
  });

  test("large sends go through short writes without loss (the library queues, the transport never buffers)", async () => {
    shortWrites = 0;
    const size = 8 * 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31) & 0xff;
    const server = await startTestServer(
      {
        init: () => ({ send: payload, close: true }),
        handlePacket: () => undefined,
      },
      undefined,
      { transport: xorTransport() },
    );
    const chunks: Buffer[] = [];
    const done = Promise.withResolvers<void>();
    const conn = await startConnector(
      {
        init: () => undefined,
        handlePacket(packet) {
          chunks.push(Buffer.from(packet as Uint8Array));
        },
        handleDisconnect() {
          done.resolve();
        },
      },
      undefined,
      "127.0.0.1",
      server.port,
      { transport: xorTransport() },
    );
    trackStop(conn!);
    await within(done.promise, 10000, "the whole payload");
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    expect(shortWrites).toBeGreaterThan(0); // the kernel cannot take 8 MiB at once: the queue was used
  });

  test("a transport without upgrade cannot be swapped in: the connection stops with BadReturnError", async () => {
    captureSink();
    const exited = Promise.withResolvers<ExitReason>();
    const server = await startTestServer(
      {
        init(_i, meta) {
          meta.connection.exited.then(exited.resolve);
        },
        handlePacket: () => ({ transport: xorTransport() }),
      },
      undefined,
      { plan: ["delete"] },
    );
    const raw = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
    defer(() => raw.terminate());
    raw.write("swap");
    const reason = await within(exited.promise, 3000, "the connection to stop");
    expect(reason).toBeInstanceOf(BadReturnError);
    expect((reason as BadReturnError).code).toBe("ERR_BAD_RETURN");
  });
});
