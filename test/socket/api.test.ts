/**
 * Invariant: SockErl's module functions (src/api.ts, docs/servers.md and docs/connectors.md) act on a handle or on a registry name
 * (the `name` start option) alike: `sendSync`, `sendAsync`, `stopConnector` on connectors;
 * `getServerConnections`, `stopServer`, `sleepAcceptors`, `wakeupAcceptors`, `getAcceptorModes`,
 * `changeAcceptorModes`, `getAcceptors` on servers; `getPoolConnections`, `stopPool`, `addConnector` on
 * pools. `whereis(name)` returns the handle while it runs; a name is freed when its process ends, and a
 * taken name is refused at start with an `OptionError`. A name nobody holds (or one held by another kind
 * of process) is a `NoProcError`, a target that is neither a handle nor a string is an `ArgumentError`;
 * functions that return a promise report both as a rejection, never a synchronous throw. Calling a
 * stopped connection rejects with `NoProcError`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  ArgumentError,
  addConnector,
  type Connection,
  changeAcceptorModes,
  type ExitReason,
  getAcceptorModes,
  getAcceptors,
  getPoolConnections,
  getServerConnections,
  type Handler,
  NoProcError,
  OptionError,
  type Pool,
  type Server,
  sendAsync,
  sendSync,
  sleepAcceptors,
  startConnector,
  startConnectorPool,
  stopConnector,
  stopPool,
  stopServer,
  wakeupAcceptors,
  whereis,
} from "../../src/index.ts";
import { RawClient } from "../helpers/client.ts";
import { rejection } from "../helpers/errors.ts";
import { cleanup, SOCKERL_PLAN, startTestServer, trackStop } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { EventRecorder, within } from "../helpers/wait.ts";

afterEach(cleanup);

const HOST = "127.0.0.1";
const BY = ["handle", "name"] as const;
type By = (typeof BY)[number];

let unique = 0;
/** A registry name no other test uses. */
function freshName(kind: string): string {
  return `api-${kind}-${++unique}`;
}

/** What the server saw: packets (text), inits, terminates; awaitable conditions. */
class ServerLog extends EventRecorder {
  text = "";
  inits = 0;
  terminated: ExitReason[] = [];
}

/** A server that greets each connection with "hello\n" and records what arrives. */
async function loggingServer(log: ServerLog, name?: string): Promise<Server<undefined, unknown>> {
  const handler: Handler<undefined, unknown> = {
    init() {
      log.inits++;
      log.changed();
      return { send: "hello\n" };
    },
    handlePacket(packet) {
      log.text += String(packet);
      log.changed();
      return undefined;
    },
    terminate(reason) {
      log.terminated.push(reason);
      log.changed();
    },
  };
  return startTestServer(
    handler,
    undefined,
    name === undefined ? { encoding: "utf8" } : { encoding: "utf8", name },
  );
}

/** A connector handler that records its terminate reasons. */
function clientHandler(terminated: ExitReason[] = []): Handler<undefined, unknown> {
  return {
    init: () => undefined,
    handlePacket: () => undefined,
    terminate(reason) {
      terminated.push(reason);
    },
  };
}

/** Starts a (named) connector to `port`, stopped in afterEach. */
async function connector(port: number, name?: string, terminated?: ExitReason[]): Promise<Connection> {
  const conn = await startConnector(
    clientHandler(terminated),
    undefined,
    HOST,
    port,
    name === undefined ? {} : { name },
  );
  if (conn === undefined) throw new Error("connector ignored");
  return trackStop(conn);
}

/** Starts a (named) pool to `port`, stopped in afterEach. */
async function pool(port: number, name?: string, connectorCount = 1): Promise<Pool<undefined, unknown>> {
  const p = await startConnectorPool(clientHandler(), undefined, [[HOST, port]], {
    connectorCount,
    ...(name === undefined ? {} : { name }),
  });
  return trackStop(p);
}

/** Calls `fn`, which must return a promise (not throw), and resolves with its rejection. */
async function rejects(fn: () => Promise<unknown>): Promise<unknown> {
  let promise: Promise<unknown>;
  try {
    promise = fn();
  } catch (error) {
    throw new Error(`threw synchronously instead of rejecting: ${String(error)}`);
  }
  return rejection(promise, 3000);
}

function expectNoProc(error: unknown): void {
  expect(error).toBeInstanceOf(NoProcError);
  expect((error as NoProcError).code).toBe("ERR_NOPROC");
}

function expectArgument(error: unknown): void {
  expect(error).toBeInstanceOf(ArgumentError);
  expect((error as ArgumentError).code).toBe("ERR_ARGUMENT");
}

describe.each(BY)("connector functions by %s", (by: By) => {
  const ref = <T>(handle: T, name: string): T | string => (by === "handle" ? handle : name);

  test("sendSync(target, packet) resolves once the bytes are with the kernel; the server receives them", async () => {
    const log = new ServerLog();
    const server = await loggingServer(log);
    const name = freshName("conn");
    const conn = await connector(server.port, name);
    expect(await sendSync(ref(conn, name), "sync-bytes")).toBeUndefined();
    await log.until(() => log.text === "sync-bytes", 2000, "the bytes");
  });

  test("sendAsync(target, packet) returns at once; the server receives the bytes in order", async () => {
    const log = new ServerLog();
    const server = await loggingServer(log);
    const name = freshName("conn");
    const conn = await connector(server.port, name);
    expect(sendAsync(ref(conn, name), "a1|")).toBeUndefined();
    sendAsync(ref(conn, name), "a2|");
    await sendSync(ref(conn, name), "s3");
    await log.until(() => log.text === "a1|a2|s3", 2000, "the bytes in order");
  });

  test("stopConnector(target, reason) resolves after terminate ran; exited has the reason; the name is freed; the server sees the close", async () => {
    captureSink();
    const log = new ServerLog();
    const server = await loggingServer(log);
    const name = freshName("conn");
    const terminated: ExitReason[] = [];
    const conn = await connector(server.port, name, terminated);
    expect(whereis(name)).toBe(conn);
    await within(stopConnector(ref(conn, name), "done"), 2000, "stopConnector");
    expect(terminated).toEqual(["done"]);
    expect(await conn.exited).toBe("done");
    expect(whereis(name)).toBeUndefined();
    await log.until(() => log.terminated.length === 1, 2000, "the server to see the close");
  });

  test("stopConnector(target) defaults to reason 'normal'", async () => {
    const server = await loggingServer(new ServerLog());
    const name = freshName("conn");
    const terminated: ExitReason[] = [];
    const conn = await connector(server.port, name, terminated);
    await stopConnector(ref(conn, name));
    expect(terminated).toEqual(["normal"]);
  });
});

describe.each(BY)("server functions by %s", (by: By) => {
  const ref = <T>(handle: T, name: string): T | string => (by === "handle" ? handle : name);

  test("getServerConnections(target) lists the live connections as [id, connection]", async () => {
    const log = new ServerLog();
    const name = freshName("server");
    const server = await loggingServer(log, name);
    expect(whereis(name)).toBe(server);
    expect(getServerConnections(ref(server, name))).toEqual([]);
    await connector(server.port);
    await connector(server.port);
    await log.until(() => log.inits === 2, 2000, "two server connections");
    const list = getServerConnections(ref(server, name));
    expect(list).toHaveLength(2);
    expect(list).toEqual(server.connections());
    for (const [id, conn] of list) expect(conn.id).toBe(id);
  });

  test("stopServer(target, reason) terminates every connection and frees the name; exited has the reason", async () => {
    captureSink();
    const log = new ServerLog();
    const name = freshName("server");
    const server = await loggingServer(log, name);
    await connector(server.port);
    await log.until(() => log.inits === 1, 2000, "the server connection");
    await within(stopServer(ref(server, name), "bye"), 2000, "stopServer");
    expect(log.terminated).toEqual(["shutdown"]);
    expect(await server.exited).toBe("bye");
    expect(whereis(name)).toBeUndefined();
  });

  test("sleepAcceptors / getAcceptorModes / wakeupAcceptors: a connection arriving while asleep is served after wakeup", async () => {
    const log = new ServerLog();
    const name = freshName("server");
    const server = await loggingServer(log, name);
    expect(getAcceptorModes(ref(server, name))).toBe("accept");
    expect(sleepAcceptors(ref(server, name))).toBeUndefined();
    expect(getAcceptorModes(ref(server, name))).toBe("sleep");
    expect(getAcceptors(ref(server, name))).toEqual([[1, "sleep"]]);

    const client = await RawClient.connect(server.port);
    expect(wakeupAcceptors(ref(server, name))).toBeUndefined();
    expect(getAcceptorModes(ref(server, name))).toBe("accept");
    await client.waitForText("hello\n", 2000);
    expect(log.inits).toBe(1);
  });

  test("changeAcceptorModes(target) flips the shared mode", async () => {
    const name = freshName("server");
    const server = await loggingServer(new ServerLog(), name);
    expect(changeAcceptorModes(ref(server, name))).toBe("sleep");
    expect(getAcceptorModes(ref(server, name))).toBe("sleep");
    expect(changeAcceptorModes(ref(server, name))).toBe("accept");
    expect(getAcceptors(ref(server, name))).toEqual([[1, "accept"]]);
  });
});

describe.each(BY)("pool functions by %s", (by: By) => {
  const ref = <T>(handle: T, name: string): T | string => (by === "handle" ? handle : name);

  test("getPoolConnections(target) lists the live connectors", async () => {
    const server = await loggingServer(new ServerLog());
    const name = freshName("pool");
    const p = await pool(server.port, name, 3);
    expect(whereis(name)).toBe(p);
    const list = getPoolConnections(ref(p, name));
    expect(list).toHaveLength(3);
    expect(list).toEqual(p.connections());
  });

  test("addConnector(target, host, port) adds a live connector", async () => {
    const log = new ServerLog();
    const server = await loggingServer(log);
    const name = freshName("pool");
    const p = await pool(server.port, name);
    const added = await within(addConnector(ref(p, name), HOST, server.port), 2000, "addConnector");
    expect(getPoolConnections(ref(p, name)).map(([, c]) => c)).toContain(added);
    await log.until(() => log.inits === 2, 2000, "the server to see both");
  });

  test("stopPool(target, reason) terminates every connector and frees the name; exited has the reason", async () => {
    captureSink();
    const log = new ServerLog();
    const server = await loggingServer(log);
    const name = freshName("pool");
    const p = await pool(server.port, name, 2);
    await within(stopPool(ref(p, name), "bye"), 2000, "stopPool");
    expect(p.connections()).toEqual([]);
    expect(await p.exited).toBe("bye");
    expect(whereis(name)).toBeUndefined();
    await log.until(() => log.terminated.length === 2, 2000, "the server to see both close");
  });
});

describe("unknown names and wrong targets", () => {
  test("an unknown name is a NoProcError: thrown by the synchronous functions, a rejection from the async ones", async () => {
    const name = "api-nobody";
    expect(whereis(name)).toBeUndefined();
    expectNoProc(await rejects(() => sendSync(name, "x")));
    expectNoProc(await rejects(() => stopConnector(name)));
    expectNoProc(await rejects(() => stopServer(name)));
    expectNoProc(await rejects(() => stopPool(name)));
    expectNoProc(await rejects(() => addConnector(name, HOST, 1)));
    expect(() => sendAsync(name, "x")).toThrow(NoProcError);
    expect(() => getServerConnections(name)).toThrow(NoProcError);
    expect(() => getPoolConnections(name)).toThrow(NoProcError);
    expect(() => sleepAcceptors(name)).toThrow(NoProcError);
    expect(() => wakeupAcceptors(name)).toThrow(NoProcError);
    expect(() => getAcceptorModes(name)).toThrow(NoProcError);
    expect(() => changeAcceptorModes(name)).toThrow(NoProcError);
    expect(() => getAcceptors(name)).toThrow(NoProcError);
  });

  test("a name held by another kind of process is a NoProcError for this kind", async () => {
    const server = await loggingServer(new ServerLog(), freshName("server"));
    const poolName = freshName("pool");
    await pool(server.port, poolName);
    const connName = freshName("conn");
    await connector(server.port, connName);
    expect(() => getServerConnections(poolName)).toThrow(NoProcError);
    expect(() => getPoolConnections(server.name!)).toThrow(NoProcError);
    expectNoProc(await rejects(() => sendSync(poolName, "x")));
    expectNoProc(await rejects(() => stopPool(connName)));
    expectNoProc(await rejects(() => addConnector(server.name!, HOST, server.port)));
  });

  test("a target that is neither a handle nor a string is an ArgumentError (a rejection from the async functions)", async () => {
    const server = await loggingServer(new ServerLog());
    const p = await pool(server.port);
    const conn = await connector(server.port);
    for (const bad of [42, null, undefined, {}, ["name"]] as never[]) {
      expectArgument(await rejects(() => sendSync(bad, "x")));
      expectArgument(await rejects(() => stopConnector(bad)));
      expectArgument(await rejects(() => stopServer(bad)));
      expectArgument(await rejects(() => stopPool(bad)));
      expectArgument(await rejects(() => addConnector(bad, HOST, 1)));
      expect(() => sendAsync(bad, "x")).toThrow(ArgumentError);
      expect(() => getServerConnections(bad)).toThrow(ArgumentError);
      expect(() => getPoolConnections(bad)).toThrow(ArgumentError);
      expect(() => sleepAcceptors(bad)).toThrow(ArgumentError);
      expect(() => wakeupAcceptors(bad)).toThrow(ArgumentError);
      expect(() => getAcceptorModes(bad)).toThrow(ArgumentError);
    }
    // A handle of the wrong kind is a wrong-typed argument too.
    expect(() => getServerConnections(p as never)).toThrow(ArgumentError);
    expect(() => getPoolConnections(server as never)).toThrow(ArgumentError);
    expectArgument(await rejects(() => sendSync(server as never, "x")));
    expectArgument(await rejects(() => stopPool(conn as never)));
    // addConnector's own arguments.
    expectArgument(await rejects(() => addConnector(p, 42 as never, server.port)));
    expectArgument(await rejects(() => addConnector(p, HOST, "port" as never)));
    expect(() => whereis(42 as never)).toThrow(ArgumentError);
  });
});

describe("stopped processes", () => {
  test("calling a stopped connection rejects with NoProcError, by handle and by its (freed) name", async () => {
    const server = await loggingServer(new ServerLog());
    const name = freshName("conn");
    const terminated: ExitReason[] = [];
    const conn = await connector(server.port, name, terminated);
    await stopConnector(conn);

    expectNoProc(await rejects(() => sendSync(conn, "x")));
    expectNoProc(await rejects(() => conn.call("x")));
    expectNoProc(await rejects(() => sendSync(name, "x")));
    expectNoProc(await rejects(() => stopConnector(name)));
    expect(() => sendAsync(name, "x")).toThrow(NoProcError);
    // By handle, sendAsync stays fire-and-forget (SockErl's send_async always returns ok) and a second
    // stop resolves at once: terminate does not run again.
    expect(sendAsync(conn, "x")).toBeUndefined();
    await within(stopConnector(conn), 1000, "a second stopConnector");
    expect(terminated).toEqual(["normal"]);
  });

  test("a server or pool name is freed when it ends on its own (a crash), not only on stop", async () => {
    captureSink();
    const serverName = freshName("server");
    const server = await startTestServer<undefined, unknown>(
      { init: () => undefined, handlePacket: () => ({ stop: "crash" }) },
      undefined,
      { name: serverName, plan: SOCKERL_PLAN },
    );
    const client = await RawClient.connect(server.port);
    client.write("x");
    expect(await within(server.exited, 2000, "server.exited")).toBe("crash");
    expect(whereis(serverName)).toBeUndefined();
    expectNoProc(await rejects(() => stopServer(serverName)));
  });

  test("a named connector that fails to connect frees its name", async () => {
    const probe = await loggingServer(new ServerLog());
    const port = probe.port;
    await probe.stop();
    const name = freshName("conn");
    await rejection(startConnector(clientHandler(), undefined, HOST, port, { name }), 3000);
    expect(whereis(name)).toBeUndefined();
    const server = await loggingServer(new ServerLog());
    const conn = await connector(server.port, name);
    expect(whereis(name)).toBe(conn);
  });
});

describe("whereis and name clashes", () => {
  test("a taken name is refused at start with OptionError('name'), whatever the kind, and the holder keeps it", async () => {
    const name = freshName("taken");
    const server = await loggingServer(new ServerLog(), name);
    const clash = await rejection(
      startTestServer({ init: () => undefined, handlePacket: () => undefined }, undefined, { name }),
      3000,
    );
    expect(clash).toBeInstanceOf(OptionError);
    expect((clash as OptionError).option).toBe("name");
    const connClash = await rejection(
      startConnector(clientHandler(), undefined, HOST, server.port, { name }),
      3000,
    );
    expect(connClash).toBeInstanceOf(OptionError);
    const poolClash = await rejection(
      startConnectorPool(clientHandler(), undefined, [[HOST, server.port]], { name }),
      3000,
    );
    expect(poolClash).toBeInstanceOf(OptionError);
    expect(whereis(name)).toBe(server);
    expect(server.connections()).toEqual([]); // the refused connector and pool never connected
  });

  test("whereis returns the running server, pool or connector, and undefined for unknown names", async () => {
    const sName = freshName("server");
    const server = await loggingServer(new ServerLog(), sName);
    const pName = freshName("pool");
    const p = await pool(server.port, pName);
    const cName = freshName("conn");
    const conn = await connector(server.port, cName);
    expect(whereis(sName)).toBe(server);
    expect(whereis(pName)).toBe(p);
    expect(whereis(cName)).toBe(conn);
    expect(whereis("api-unknown")).toBeUndefined();
  });
});
