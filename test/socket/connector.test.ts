/**
 * Invariant: `startConnector` dials `host:port` and runs the same connection process as an accepted
 * server connection (docs/connectors.md): `init` then callbacks that never overlap, calls, casts, events,
 * `sendSync`/`sendAsync`, `stop` (terminate runs once, the peer sees the close) and `exited`. A peer that
 * closes the connection runs `handleDisconnect`, whose `stop` reason ends the connector with an
 * abnormal-exit report (SockErl README's timeout-driven client exits with "closed_by_remote"). A connect
 * that fails rejects with `SocketConnectError` carrying `code`, `reason`, `info`, `transport`, `host` and
 * `port`: ECONNREFUSED for a closed port, ENOTFOUND for an unknown host, ETIMEDOUT after the library's
 * own `connectTimeout` (Bun has no connect timeout). `init` returning "ignore" resolves to `undefined`
 * quietly; `init` throwing rejects with `CallbackError`.
 */

import { dlopen, FFIType, ptr } from "bun:ffi";
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  ArgumentError,
  CallbackError,
  type Connection,
  type ExitReason,
  type Handler,
  NoProcError,
  OptionError,
  type Server,
  SockerlError,
  SocketConnectError,
  startConnector,
  startConnectorPool,
  whereis,
} from "../../src/index.ts";
import { rejection } from "../helpers/errors.ts";
import { cleanup, closedPort, defer, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { EventRecorder, waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

/** startConnector on 127.0.0.1 that registers the connector for cleanup. */
async function connect<S, I>(
  handler: Handler<S, I>,
  init: I,
  port: number,
  options: Parameters<typeof startConnector>[4] = {},
): Promise<Connection | undefined> {
  const conn = await startConnector(handler, init, "127.0.0.1", port, options);
  if (conn !== undefined) trackStop(conn);
  return conn;
}

/** Server side of the tests: records every connection, packet and terminate. */
class ServerLog extends EventRecorder {
  readonly conns: Connection[] = [];
  readonly packets: string[] = [];
  readonly terminated: ExitReason[] = [];
}

/** An echo server (text packets) that records what it sees; `quiet: true` records without echoing. */
async function recordingServer(log: ServerLog, quiet = false): Promise<Server<undefined, unknown>> {
  return startTestServer<undefined, unknown>(
    {
      init(_i, meta) {
        log.conns.push(meta.connection);
        log.changed();
        return undefined;
      },
      handlePacket(packet) {
        log.packets.push(String(packet));
        log.changed();
        return quiet ? undefined : { send: packet };
      },
      terminate(reason) {
        log.terminated.push(reason);
        log.changed();
      },
    },
    undefined,
    { encoding: "utf8" },
  );
}

// ------------------------------------------------------------------ SockErl's README client

/** What the README client saw: the timeout at each echo, and its terminate reasons. */
class ReadmeLog extends EventRecorder {
  readonly timeouts: number[] = [];
  readonly terminated: ExitReason[] = [];
}

/**
 * SockErl README's `check_echo_server2`: `init` arms a timeout; `timeout` sends a timestamp;
 * `handlePacket` raises the timeout; `handleDisconnect` stops with "closed_by_remote".
 */
function readmeClient(log: ReadmeLog, stepMs: number): Handler<undefined, number> {
  return {
    init(ms) {
      return { timeout: ms };
    },
    timeout() {
      return { send: String(Date.now()) };
    },
    handlePacket(_packet, _state, meta) {
      log.timeouts.push(meta.timeout);
      log.changed();
      return { timeout: meta.timeout + stepMs };
    },
    handleDisconnect() {
      return { stop: "closed_by_remote" };
    },
    terminate(reason) {
      log.terminated.push(reason);
    },
  };
}

describe("SockErl README timeout-driven client", () => {
  test("sends timestamps on timeout, raises its timeout per reply, and exits 'closed_by_remote' with a report when the server stops its connection", async () => {
    const sink = captureSink();
    const serverLog = new ServerLog();
    const server = await recordingServer(serverLog);
    const log = new ReadmeLog();
    const conn = await connect(readmeClient(log, 5), 10, server.port);
    expect(conn).toBeDefined();

    await serverLog.until(() => serverLog.packets.length >= 3, 3000, "three timestamps");
    for (const p of serverLog.packets.slice(0, 3)) expect(p).toMatch(/^\d{13}$/);
    // The timeout grows by the step with each echoed packet (the client saw 10, then 15, ...).
    await log.until(() => log.timeouts.length >= 2, 3000, "two echoes");
    expect(log.timeouts.slice(0, 2)).toEqual([10, 15]);

    // The server stops its side of the connection (normal exit: no report for it).
    const [serverConn] = serverLog.conns;
    await within(serverConn!.stop(), 2000, "server conn.stop()");
    expect(await within(conn!.exited, 2000, "connector.exited")).toBe("closed_by_remote");
    expect(log.terminated).toEqual(["closed_by_remote"]);

    const reports = sink.reports();
    expect(reports).toEqual([
      `** Sockerl connector <${conn!.id}> terminating\n** Reason for termination == closed_by_remote\n** State == undefined`,
    ]);
    expect(server.connections()).toEqual([]);
  }, 10000);
});

// ------------------------------------------------------------------ connect errors

/** The libc calls behind {@link NonAcceptingListener}. */
function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    accept: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

const POLLIN = 1;
const POLLERR = 8;
const POLLHUP = 16;
const MSG_DONTWAIT = 0x40;

/**
 * A loopback listener that accepts only when told to, bound through libc (Bun.listen and node:net
 * always accept at once). With backlog 0 the kernel queues one connection and drops further SYNs, so
 * once the queue is full a connect hangs (the client retransmits its SYN after about 1 s, 3 s, ...).
 */
interface NonAcceptingListener {
  readonly port: number;
  /** Whether fd has something to read, a hang-up or an error (poll with timeout 0: never blocks). */
  ready(fd: number): boolean;
  /** The listening socket's fd. */
  readonly fd: number;
  /** accept(2) one queued connection (call only when {@link ready}); returns its fd. */
  accept(): number;
  /** recv(2) without blocking: the byte count, 0 at EOF, -1 on error (reset). */
  recv(fd: number): number;
  close(): void;
}

function nonAcceptingListener(): NonAcceptingListener | undefined {
  let libc: ReturnType<typeof openLibc>;
  try {
    libc = openLibc();
  } catch {
    return undefined;
  }
  const L = libc.symbols;
  const fd = L.socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
  if (fd < 0) return undefined;
  const addr = new Uint8Array(16); // struct sockaddr_in, port 0
  new DataView(addr.buffer).setUint16(0, 2, true); // sin_family = AF_INET (host order)
  addr.set([127, 0, 0, 1], 4); // sin_addr
  const length = new Uint32Array([16]);
  if (
    L.bind(fd, ptr(addr), 16) !== 0 ||
    L.listen(fd, 0) !== 0 ||
    L.getsockname(fd, ptr(addr), ptr(length)) !== 0
  ) {
    L.close(fd);
    return undefined;
  }
  const port = new DataView(addr.buffer).getUint16(2, false);
  const fds = [fd];
  let closed = false;
  return {
    port,
    fd,
    ready(target) {
      const pollfd = new Int32Array(2); // struct pollfd { int fd; short events; short revents; }
      pollfd[0] = target;
      const shorts = new Int16Array(pollfd.buffer);
      shorts[2] = POLLIN | POLLERR | POLLHUP;
      return L.poll(ptr(pollfd), 1, 0) > 0 && shorts[3] !== 0;
    },
    accept() {
      const accepted = L.accept(fd, null, null);
      if (accepted >= 0) fds.push(accepted);
      return accepted;
    },
    recv(target) {
      const buffer = new Uint8Array(64);
      return Number(L.recv(target, ptr(buffer), buffer.length, MSG_DONTWAIT));
    },
    close() {
      if (closed) return;
      closed = true;
      for (const f of fds) L.close(f);
      libc.close();
    },
  };
}

/** Sockets in SYN-SENT towards `port` on 127.0.0.1 (Linux /proc/net/tcp, state 02). */
function synSentTo(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[2]?.endsWith(hex) === true && f[3] === "02";
    }).length;
}

/** A full non-accepting listener (one connection queued), or undefined where libc is unavailable. */
async function hangingListener(): Promise<NonAcceptingListener | undefined> {
  const listener = nonAcceptingListener();
  // Without glibc (e.g. musl) there is no way here to get a listener that never accepts: Bun.listen
  // and node:net accept at once, and an unroutable address fails fast in a sandbox.
  if (listener === undefined) {
    console.warn("skipped: cannot bind a non-accepting listener through libc");
    return undefined;
  }
  defer(listener.close);
  // Fill the one-slot accept queue so the next SYNs are dropped.
  const filler = await Bun.connect({ hostname: "127.0.0.1", port: listener.port, socket: { data() {} } });
  defer(() => filler.terminate());
  return listener;
}

describe("connect errors", () => {
  test("a refused port rejects with SocketConnectError ECONNREFUSED (reason, info, transport, host, port)", async () => {
    const port = await closedPort();
    const error = await rejection(startConnector(readmeClient(new ReadmeLog(), 1), 10, "127.0.0.1", port));
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toBeInstanceOf(SockerlError);
    expect(error).toMatchObject({
      code: "ECONNREFUSED",
      reason: "econnrefused",
      info: "connection refused",
      transport: "tcp",
      host: "127.0.0.1",
      port,
    });
  });

  test("an unknown host rejects with SocketConnectError ENOTFOUND", async () => {
    const error = await rejection(
      startConnector(
        { init: () => undefined, handlePacket: () => undefined },
        undefined,
        "no-such-host.invalid",
        80,
      ),
    );
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({
      code: "ENOTFOUND",
      reason: "enotfound",
      info: "host not found",
      transport: "tcp",
      host: "no-such-host.invalid",
      port: 80,
    });
  });

  test("a connect that hangs rejects with SocketConnectError ETIMEDOUT after connectTimeout, and init never runs", async () => {
    const listener = await hangingListener();
    if (listener === undefined) return;
    let inits = 0;
    const started = performance.now();
    const error = await rejection(
      startConnector(
        {
          init: () => {
            inits++;
            return undefined;
          },
          handlePacket: () => undefined,
        },
        undefined,
        "127.0.0.1",
        listener.port,
        { connectTimeout: 200 },
      ),
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({
      code: "ETIMEDOUT",
      reason: "etimedout",
      transport: "tcp",
      host: "127.0.0.1",
      port: listener.port,
    });
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(2000);
    expect(inits).toBe(0);
  }, 10000);

  test("a TCP connect that times out is abandoned at once: its socket closes (no SYN-SENT left), init never runs", async () => {
    const listener = await hangingListener();
    if (listener === undefined) return;
    const before = synSentTo(listener.port);
    let inits = 0;
    const error = await rejection(
      startConnector(
        {
          init: () => {
            inits++;
            return { send: "too late" };
          },
          handlePacket: () => undefined,
        },
        undefined,
        "127.0.0.1",
        listener.port,
        { connectTimeout: 100 },
      ),
    );
    expect(error).toMatchObject({ code: "ETIMEDOUT" });
    // Bun.connect cannot abandon a connect (its SYN would be retried for ~2 minutes and complete
    // once the queue had room); the connector's dial closed it when the timeout fired.
    await waitFor(() => synSentTo(listener.port) <= before, 500, "the connect to be closed");
    expect(inits).toBe(0);
  }, 10000);

  test("a pool's connectTimeout applies to its connectors (ETIMEDOUT without watchdog)", async () => {
    const listener = await hangingListener();
    if (listener === undefined) return;
    const started = performance.now();
    const error = await rejection(
      startConnectorPool(
        { init: () => undefined, handlePacket: () => undefined },
        undefined,
        [["127.0.0.1", listener.port]],
        {
          connectTimeout: 150,
        },
      ),
    );
    expect(error).toBeInstanceOf(SocketConnectError);
    expect(error).toMatchObject({ code: "ETIMEDOUT", port: listener.port });
    expect(performance.now() - started).toBeLessThan(2000);
  }, 10000);

  test("connectTimeout is validated at start: OptionError naming it", async () => {
    const h = { init: () => undefined, handlePacket: () => undefined };
    for (const bad of [-1, "soon", Number.NaN]) {
      const error = await rejection(
        startConnector(h, undefined, "127.0.0.1", 1, { connectTimeout: bad as never }),
      );
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).code).toBe("ERR_OPTION");
      expect((error as OptionError).option).toBe("connectTimeout");
    }
  });

  test("bad arguments are rejected before connecting: ArgumentError for host and port, OptionError for unknown options", async () => {
    const h = { init: () => undefined, handlePacket: () => undefined };
    const host = await rejection(startConnector(h, undefined, 42 as never, 1));
    expect(host).toBeInstanceOf(ArgumentError);
    expect((host as ArgumentError).code).toBe("ERR_ARGUMENT");
    const port = await rejection(startConnector(h, undefined, "127.0.0.1", -5));
    expect(port).toBeInstanceOf(ArgumentError);
    const unknown = await rejection(
      startConnector(h, undefined, "127.0.0.1", 1, { plan: ["delete"] } as never),
    );
    expect(unknown).toBeInstanceOf(OptionError);
    expect((unknown as OptionError).option).toBe("plan");
  });
});

// ------------------------------------------------------------------ a connector is a process

interface ClientState {
  casts: unknown[];
  events: unknown[];
}

function processClient(terminated: ExitReason[]): Handler<ClientState, string> {
  return {
    init(greeting) {
      return { state: { casts: [], events: [] }, send: greeting };
    },
    handlePacket() {
      return undefined;
    },
    handleCall(request, from, state) {
      if (request === "state") return { reply: state };
      if (request === "later") {
        queueMicrotask(() => from.reply("deferred"));
        return undefined;
      }
      return { reply: ["echo", request] };
    },
    handleCast(message, state) {
      return { state: { ...state, casts: [...state.casts, message] }, send: `cast:${String(message)}` };
    },
    handleEvent(event, state) {
      return { state: { ...state, events: [...state.events, event] } };
    },
    terminate(reason) {
      terminated.push(reason);
    },
  };
}

describe("a connector behaves like a server connection", () => {
  test("call (immediate and deferred reply), cast, notify, sendSync and sendAsync reach the handler and the peer in order", async () => {
    const serverLog = new ServerLog();
    const server = await recordingServer(serverLog, true);
    const terminated: ExitReason[] = [];
    const conn = (await connect(processClient(terminated), "hi|", server.port))!;
    expect(typeof conn.id).toBe("number");

    expect(await conn.call("ping")).toEqual(["echo", "ping"]);
    expect(await conn.call("later")).toBe("deferred");
    conn.cast("c1");
    conn.notify("e1");
    await conn.sendSync("sync|");
    conn.sendAsync("async|");
    expect(await conn.call("state")).toEqual({ casts: ["c1"], events: ["e1"] });

    await serverLog.until(() => serverLog.packets.join("") === "hi|cast:c1sync|async|", 2000, "the bytes");
  }, 10000);

  test("stop() runs terminate once, resolves after it, closes the socket (the server sees the disconnect) and exited resolves 'normal'", async () => {
    const serverLog = new ServerLog();
    const server = await recordingServer(serverLog, true);
    const terminated: ExitReason[] = [];
    const conn = (await connect(processClient(terminated), "hi", server.port))!;
    await serverLog.until(() => serverLog.conns.length === 1, 2000, "the server connection");

    await within(conn.stop(), 2000, "conn.stop()");
    expect(terminated).toEqual(["normal"]);
    expect(await conn.exited).toBe("normal");
    await serverLog.until(() => serverLog.terminated.length === 1, 2000, "the server side to end");
    expect(serverLog.terminated).toEqual(["normal"]);
    expect(server.connections()).toEqual([]);
  }, 10000);

  test("a stopped connector rejects calls and sendSync with NoProcError; stop() again resolves", async () => {
    captureSink();
    const server = await recordingServer(new ServerLog(), true);
    const terminated: ExitReason[] = [];
    const conn = (await connect(processClient(terminated), "hi", server.port))!;
    await conn.stop("done");
    expect(await conn.exited).toBe("done");

    const call = await rejection(conn.call("ping"));
    expect(call).toBeInstanceOf(NoProcError);
    expect((call as NoProcError).code).toBe("ERR_NOPROC");
    const send = await rejection(conn.sendSync("x"));
    expect(send).toBeInstanceOf(NoProcError);
    conn.cast("ignored");
    conn.sendAsync("ignored");
    await within(conn.stop(), 1000, "a second stop");
    expect(terminated).toEqual(["done"]);
  }, 10000);

  test("a connector whose server goes away exits normally (no handleDisconnect) and prints no report", async () => {
    const sink = captureSink();
    const server = await recordingServer(new ServerLog(), true);
    const terminated: ExitReason[] = [];
    const conn = (await connect(processClient(terminated), "hi", server.port))!;
    await server.stop();
    expect(await within(conn.exited, 2000, "connector.exited")).toBe("normal");
    expect(terminated).toEqual(["normal"]);
    expect(sink.reports()).toEqual([]);
  }, 10000);
});

describe("init outcomes", () => {
  test("init returning 'ignore' resolves to undefined: no terminate, no report, the server sees the close", async () => {
    const sink = captureSink();
    const serverLog = new ServerLog();
    const server = await recordingServer(serverLog, true);
    let terminates = 0;
    const result = await connect(
      {
        init: () => "ignore" as const,
        handlePacket: () => undefined,
        terminate: () => {
          terminates++;
        },
      },
      undefined,
      server.port,
    );
    expect(result).toBeUndefined();
    await serverLog.until(() => serverLog.terminated.length === 1, 2000, "the server side to end");
    expect(terminates).toBe(0);
    expect(sink.reports()).toEqual([]);
  }, 10000);

  test("init throwing rejects with CallbackError (callback 'init', cause the thrown value) and closes the socket", async () => {
    captureSink();
    const serverLog = new ServerLog();
    const server = await recordingServer(serverLog, true);
    const thrown = new Error("no init for you");
    let terminates = 0;
    const error = await rejection(
      startConnector(
        {
          init: () => {
            throw thrown;
          },
          handlePacket: () => undefined,
          terminate: () => {
            terminates++;
          },
        },
        undefined,
        "127.0.0.1",
        server.port,
      ),
    );
    expect(error).toBeInstanceOf(CallbackError);
    expect((error as CallbackError).code).toBe("ERR_CALLBACK");
    expect((error as CallbackError).callback).toBe("init");
    expect((error as CallbackError).cause).toBe(thrown);
    expect(terminates).toBe(0);
    await serverLog.until(() => serverLog.terminated.length === 1, 2000, "the server side to end");
  }, 10000);

  test("an async init that rejects also rejects with CallbackError", async () => {
    captureSink();
    const server = await recordingServer(new ServerLog(), true);
    const error = await rejection(
      startConnector(
        {
          init: async () => {
            throw new Error("later");
          },
          handlePacket: () => undefined,
        },
        undefined,
        "127.0.0.1",
        server.port,
      ),
    );
    expect(error).toBeInstanceOf(CallbackError);
    expect((error as CallbackError).callback).toBe("init");
  }, 10000);

  test("init returning { stop: reason } rejects with a SockerlError carrying that reason", async () => {
    captureSink();
    const server = await recordingServer(new ServerLog(), true);
    const error = await rejection(
      startConnector(
        { init: () => ({ stop: "refused" }), handlePacket: () => undefined },
        undefined,
        "127.0.0.1",
        server.port,
      ),
    );
    expect(error).toBeInstanceOf(SockerlError);
    expect((error as SockerlError).code).toBe("ERR_INIT_STOP");
    expect((error as SockerlError).reason).toBe("refused");
  }, 10000);
});

describe("names", () => {
  test("two connectors started at once with one name: the second is refused before connecting, the first owns the name", async () => {
    const srv = await startTestServer({ init: () => undefined, handlePacket: () => undefined }, undefined);
    const handler: Handler = { init: () => undefined, handlePacket: () => undefined };
    const first = connect(handler, undefined, srv.port, { name: "twin-connector" });
    const second = connect(handler, undefined, srv.port, { name: "twin-connector" });
    const error = await rejection(second, 3000, "the second start");
    expect(error).toBeInstanceOf(OptionError);
    expect((error as OptionError).option).toBe("name");
    const conn = await within(first, 3000, "the first start");
    expect(whereis("twin-connector")).toBe(conn);
    await waitFor(() => srv.connections().length === 1, 3000, "one server connection");
  });
});
