/**
 * Invariant: `startServer(handler, init, 0, { hostname })` binds a real port (read `server.port`), runs
 * `listenInit` once (undefined keeps init, `{ init }` replaces it, `{ stop: r }` rejects the start with a
 * SockerlError whose `reason` is r and releases the port, "ignore" resolves `undefined` with nothing
 * listening, anything else rejects with BadReturnError), and serves every accepted socket with its own
 * connection process. `server.connections()` lists live children only; `server.stop()` terminates
 * each with "shutdown" exactly once, releases the port and resolves `server.exited`. A `name` is
 * registered (`whereis`) and unique. Meta carries the peer's address and ports. The SockErl README
 * echo server walkthrough works end to end: echo and count, a call, `sendSync`/`sendAsync`, a peer
 * close handled by `handleDisconnect`, and the server goes on accepting.
 */
import { afterEach, describe, expect, test } from "bun:test";
import {
  BadReturnError,
  CallbackError,
  type Connection,
  type ExitReason,
  type Handler,
  type ListenerInfo,
  OptionError,
  runningServers,
  Server,
  SockerlError,
  startServer,
  whereis,
} from "../../src/index.ts";
import { packetText, RawClient } from "../helpers/client.ts";
import { cleanup, SOCKERL_PLAN, startTestServer, track } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

/** An echo handler that reports each started connection. */
function echo(
  onStart?: (conn: Connection) => void,
  terminated?: ExitReason[],
): Handler<undefined, undefined> {
  return {
    init: (_i, meta) => void onStart?.(meta.connection),
    handlePacket: (packet) => ({ send: packet }),
    terminate: (reason) => void terminated?.push(reason),
  };
}

/** Resolves true if a TCP connect to `port` is refused, false if it connects. */
async function refused(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.terminate();
    return false;
  } catch (error) {
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
    return true;
  }
}

describe("startServer", () => {
  test("port 0 picks a free port; server.port and server.hostname tell where it listens", async () => {
    const server = await startTestServer(echo(), undefined);
    expect(server).toBeInstanceOf(Server);
    expect(server.port).toBeGreaterThan(0);
    expect(server.hostname).toBe("127.0.0.1");
    expect(server.name).toBeUndefined();
    const client = await RawClient.connect(server.port);
    client.write("ping");
    await client.waitForText("ping");
  });

  test("serves many connections at once, each with its own state", async () => {
    const server = await startTestServer<number, undefined>(
      {
        init: () => ({ state: 0 }),
        handlePacket: (_p, n) => ({ state: n + 1, send: `${n + 1};` }),
      },
      undefined,
    );
    const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(server.port)));
    for (let round = 1; round <= 3; round++) {
      for (const c of clients) c.write("x");
      await Promise.all(clients.map((c) => c.waitForText(`${round};`)));
    }
    for (const c of clients) expect(c.text()).toBe("1;2;3;");
  });

  test("meta carries remoteAddress, remotePort and localPort of the accepted socket", async () => {
    const seen = Promise.withResolvers<[string | undefined, number | undefined, number | undefined]>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void seen.resolve([meta.remoteAddress, meta.remotePort, meta.localPort]),
        handlePacket: () => undefined,
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const [address, remotePort, localPort] = await within(seen.promise, 2000, "init");
    expect(address).toBe("127.0.0.1");
    expect(remotePort).toBe(client.socket.localPort);
    expect(localPort).toBe(server.port);
  });
});

describe("connections()", () => {
  test("lists live children as [id, connection] pairs; a child leaves it as it ends", async () => {
    const started: Connection[] = [];
    const server = await startTestServer(
      echo((c) => started.push(c)),
      undefined,
    );
    expect(server.connections()).toEqual([]);
    const a = await RawClient.connect(server.port);
    const b = await RawClient.connect(server.port);
    await waitFor(() => started.length === 2, 2000, "two connections");
    const ids = server
      .connections()
      .map(([id]) => id)
      .sort((x, y) => x - y);
    expect(ids).toEqual(started.map((c) => c.id).sort((x, y) => x - y));
    for (const [id, conn] of server.connections()) expect(conn.id).toBe(id);
    a.end();
    await within(started[0]!.exited, 2000, "first exit");
    expect(server.connections().map(([id]) => id)).toEqual([started[1]!.id]);
    await started[1]!.stop();
    expect(server.connections()).toEqual([]);
    expect(b.closed || b.ended || (await b.waitForEnd().then(() => true))).toBe(true);
  });

  test("a child is gone from the list when terminate runs", async () => {
    let listedInTerminate: number | undefined;
    let server: Server<undefined, undefined> | undefined;
    const started = Promise.withResolvers<Connection>();
    server = await startTestServer<undefined, undefined>(
      {
        init: (_i, meta) => void started.resolve(meta.connection),
        handlePacket: () => ({ close: true }),
        terminate: () => void (listedInTerminate = server!.connections().length),
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    const conn = await started.promise;
    client.write("bye");
    await within(conn.exited, 2000, "exit");
    expect(listedInTerminate).toBe(0);
  });
});

describe("stop()", () => {
  test("terminates every connection once with 'shutdown', releases the port and resolves exited", async () => {
    const terminated: ExitReason[] = [];
    const started: Connection[] = [];
    const server = await startTestServer(
      echo((c) => started.push(c), terminated),
      undefined,
    );
    const clients = await Promise.all([1, 2, 3].map(() => RawClient.connect(server.port)));
    await waitFor(() => started.length === 3, 2000, "three connections");
    await within(server.stop(), 2000, "stop");
    expect(terminated).toEqual(["shutdown", "shutdown", "shutdown"]);
    expect(server.connections()).toEqual([]);
    expect(await within(server.exited, 1000, "exited")).toBe("normal");
    for (const c of started) expect(await c.exited).toBe("shutdown");
    await Promise.all(clients.map((c) => c.waitForEnd()));
    expect(await refused(server.port)).toBe(true);
    // Stopping again is harmless; terminate still ran once per connection.
    await server.stop();
    expect(terminated).toHaveLength(3);
  });

  test("stop(reason) resolves exited with that reason; children still get 'shutdown'", async () => {
    const sink = captureSink();
    const terminated: ExitReason[] = [];
    const started = Promise.withResolvers<Connection>();
    const server = await startTestServer(
      echo((c) => started.resolve(c), terminated),
      undefined,
    );
    await RawClient.connect(server.port);
    await started.promise;
    await server.stop("maintenance");
    expect(await server.exited).toBe("maintenance");
    expect(terminated).toEqual(["shutdown"]);
    expect(sink.reports().join("\n")).toContain("maintenance");
  });

  test("stop waits for an async terminate and for a pending async callback", async () => {
    const events: string[] = [];
    const inPacket = Promise.withResolvers<void>();
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        async handlePacket() {
          events.push("packet start");
          inPacket.resolve();
          await Bun.sleep(20);
          events.push("packet end");
        },
        async terminate(reason) {
          await Bun.sleep(5);
          events.push(`terminate ${String(reason)}`);
        },
      },
      undefined,
    );
    const client = await RawClient.connect(server.port);
    client.write("x");
    await within(inPacket.promise, 2000, "handlePacket");
    await server.stop();
    expect(events).toEqual(["packet start", "packet end", "terminate shutdown"]);
  });

  test("with SockErl's strict plan (explicit), a crashing connection stops the server: the others get 'shutdown'", async () => {
    const sink = captureSink();
    const terminated: ExitReason[] = [];
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          if (packetText(packet) === "crash") throw new Error("kaboom");
          return undefined;
        },
        terminate: (reason) => void terminated.push(reason),
      },
      undefined,
      { plan: SOCKERL_PLAN },
    );
    const a = await RawClient.connect(server.port);
    const b = await RawClient.connect(server.port);
    await waitFor(() => server.connections().length === 2, 2000, "two connections");
    a.write("crash");
    const reason = await within(server.exited, 2000, "server exit");
    expect(reason).toBeInstanceOf(CallbackError);
    expect((reason as CallbackError).cause).toEqual(new Error("kaboom"));
    expect(terminated).toHaveLength(2);
    expect(terminated).toContain(reason);
    expect(terminated).toContain("shutdown");
    await b.waitForEnd();
    expect(await refused(server.port)).toBe(true);
    expect(sink.reports().some((l) => l.includes("kaboom"))).toBe(true);
  });

  test("with plan ['delete'], a crashing connection is forgotten and the server keeps serving", async () => {
    captureSink();
    const server = await startTestServer<undefined, undefined>(
      {
        init: () => undefined,
        handlePacket(packet) {
          if (packetText(packet) === "crash") throw new Error("kaboom");
          return { send: packet };
        },
      },
      undefined,
      { plan: ["delete"] },
    );
    const a = await RawClient.connect(server.port);
    a.write("crash");
    await a.waitForEnd();
    const b = await RawClient.connect(server.port);
    b.write("alive");
    await b.waitForText("alive");
  });
});

describe("name", () => {
  test("registers the server: whereis(name) finds it until it stops", async () => {
    const server = await startTestServer(echo(), undefined, { name: "server-test-registered" });
    expect(server.name).toBe("server-test-registered");
    expect(whereis("server-test-registered")).toBe(server);
    await server.stop();
    expect(whereis("server-test-registered")).toBeUndefined();
    const again = await startTestServer(echo(), undefined, { name: "server-test-registered" });
    expect(whereis("server-test-registered")).toBe(again);
  });

  test("a second server with a taken name is refused with OptionError and the first keeps serving", async () => {
    const first = await startTestServer(echo(), undefined, { name: "server-test-unique" });
    const error = await startServer(echo(), undefined, 0, {
      hostname: "127.0.0.1",
      name: "server-test-unique",
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OptionError);
    expect((error as OptionError).code).toBe("ERR_OPTION");
    expect((error as OptionError).option).toBe("name");
    expect(whereis("server-test-unique")).toBe(first);
    const client = await RawClient.connect(first.port);
    client.write("still");
    await client.waitForText("still");
  });

  test("whereis of an unknown name is undefined", () => {
    expect(whereis("server-test-nobody")).toBeUndefined();
  });
});

describe("listenInit", () => {
  test("gets the init argument and the listener's port, hostname and transport; undefined keeps init", async () => {
    const infos: ListenerInfo[] = [];
    const inits = Promise.withResolvers<unknown>();
    const server = await startTestServer<undefined, string>(
      {
        listenInit(init, info) {
          expect(init).toBe("original");
          infos.push(info);
          return undefined;
        },
        init: (init) => void inits.resolve(init),
        handlePacket: () => undefined,
      },
      "original",
    );
    expect(infos).toEqual([{ port: server.port, hostname: "127.0.0.1", transport: "tcp" }]);
    await RawClient.connect(server.port);
    expect(await within(inits.promise, 2000, "init")).toBe("original");
  });

  test("{ init } replaces the init argument of every connection", async () => {
    const inits: unknown[] = [];
    const server = await startTestServer<undefined, string>(
      {
        listenInit: async () => ({ init: "replaced" }),
        init: (init) => void inits.push(init),
        handlePacket: () => undefined,
      },
      "original",
    );
    await RawClient.connect(server.port);
    await RawClient.connect(server.port);
    await waitFor(() => inits.length === 2, 2000, "two inits");
    expect(inits).toEqual(["replaced", "replaced"]);
  });

  test("{ stop: reason } rejects the start with a SockerlError whose reason is that value; the port is released", async () => {
    const reason = { why: "not today" };
    let port = 0;
    const error = await startServer<undefined, undefined>(
      {
        listenInit(_init, info) {
          port = info.port;
          return { stop: reason };
        },
        init: () => undefined,
        handlePacket: () => undefined,
      },
      undefined,
      0,
      { hostname: "127.0.0.1", name: "server-test-listen-stop" },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SockerlError);
    expect((error as SockerlError).reason).toBe(reason);
    expect(port).toBeGreaterThan(0);
    expect(await refused(port)).toBe(true);
    expect(whereis("server-test-listen-stop")).toBeUndefined();
  });

  test('"ignore" resolves to undefined and nothing listens', async () => {
    let port = 0;
    const server = await startServer<undefined, undefined>(
      {
        listenInit(_init, info) {
          port = info.port;
          return "ignore";
        },
        init: () => undefined,
        handlePacket: () => undefined,
      },
      undefined,
      0,
      { hostname: "127.0.0.1", name: "server-test-listen-ignore" },
    );
    if (server !== undefined) track(server);
    expect(server).toBeUndefined();
    expect(port).toBeGreaterThan(0);
    expect(await refused(port)).toBe(true);
    expect(whereis("server-test-listen-ignore")).toBeUndefined();
  });

  test.each([
    ['"ok"', "ok"],
    ["42", 42],
    ["{ foo: 1 }", { foo: 1 }],
    ["{ init: 1, stop: 2 }", { init: 1, stop: 2 }],
    ["null", null],
  ])(
    "a bad result (%s) rejects the start with BadReturnError; the port is released",
    async (_label, value) => {
      let port = 0;
      const error = await startServer<undefined, undefined>(
        {
          listenInit(_init, info) {
            port = info.port;
            return value as unknown as undefined;
          },
          init: () => undefined,
          handlePacket: () => undefined,
        },
        undefined,
        0,
        { hostname: "127.0.0.1" },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BadReturnError);
      expect((error as BadReturnError).code).toBe("ERR_BAD_RETURN");
      expect((error as BadReturnError).callback).toBe("listenInit");
      expect((error as BadReturnError).returned).toBe(value);
      expect(await refused(port)).toBe(true);
    },
  );

  test("a throwing listenInit rejects the start with CallbackError(cause)", async () => {
    const thrown = new Error("no listening today");
    const error = await startServer<undefined, undefined>(
      {
        listenInit: () => {
          throw thrown;
        },
        init: () => undefined,
        handlePacket: () => undefined,
      },
      undefined,
      0,
      { hostname: "127.0.0.1" },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallbackError);
    expect((error as CallbackError).callback).toBe("listenInit");
    expect((error as CallbackError).cause).toBe(thrown);
  });
});

describe("the SockErl README echo server walkthrough", () => {
  test("echo + packet count, how_much, sendSync/sendAsync, peer close → handleDisconnect, server still accepting", async () => {
    const disconnects: Array<{ count: number; remote: string | undefined }> = [];
    const terminated: ExitReason[] = [];
    // echo_server.erl, in TypeScript.
    const echoServer: Handler<number, null | "null2"> = {
      listenInit: (init) => (init === null ? { init: "null2" } : undefined),
      init: (init) => {
        expect(init).toBe("null2");
        return { state: 0 };
      },
      handlePacket: (packet, count) => ({ state: count + 1, send: packet }),
      handleCall: (request, _from, count) => (request === "how_much" ? { reply: count } : undefined),
      handleDisconnect(count, meta) {
        disconnects.push({ count, remote: meta.remoteAddress });
        return undefined;
      },
      terminate: (reason) => void terminated.push(reason),
      codeChange: (_old, state) => state,
    };
    const server = await startTestServer(echoServer, null, { name: "echo_server" });
    expect(whereis("echo_server")).toBe(server);
    expect(server.connections()).toEqual([]);

    const telnet = await RawClient.connect(server.port);
    await waitFor(() => server.connections().length === 1, 2000, "the connection to be listed");
    const [[, conn]] = server.connections() as [[number, Connection]];

    const lines = ["foo\n", "2\n", "3\n", "4\n", "5\n"];
    let expected = "";
    for (const line of lines) {
      telnet.write(line);
      expected += line;
      await telnet.waitForText(expected);
    }
    expect(telnet.text()).toBe("foo\n2\n3\n4\n5\n");
    expect(await conn.call("how_much")).toBe(5);

    await conn.sendSync("first line\n");
    conn.sendAsync("second line\n");
    await telnet.waitForText("first line\nsecond line\n");
    expect(telnet.text()).toBe(`${expected}first line\nsecond line\n`);

    telnet.end();
    expect(await within(conn.exited, 2000, "disconnect")).toBe("normal");
    expect(disconnects).toEqual([{ count: 5, remote: "127.0.0.1" }]);
    expect(terminated).toEqual(["normal"]);
    expect(server.connections()).toEqual([]);

    // The server is still up and accepting.
    let serverEnded = false;
    void server.exited.then(() => {
      serverEnded = true;
    });
    const again = await RawClient.connect(server.port);
    again.write("hello again\n");
    await again.waitForText("hello again\n");
    expect(server.connections()).toHaveLength(1);
    expect(serverEnded).toBe(false);
  });
});

describe("runningServers() and reusePort", () => {
  test("runningServers lists a server while it runs, not after it stopped", async () => {
    const server = await startTestServer<undefined, undefined>(
      { init: () => undefined, handlePacket: () => undefined },
      undefined,
    );
    expect(runningServers()).toContain(server as never);
    await server.stop();
    expect(runningServers()).not.toContain(server as never);
  });

  test("reusePort: true lets two one-acceptor servers share a port; without it the second is EADDRINUSE", async () => {
    const handler: Handler<undefined, undefined> = {
      init: () => undefined,
      handlePacket: (p) => ({ send: p }),
    };
    const first = await startTestServer(handler, undefined, { reusePort: true });
    const second = track(
      (await startServer(handler, undefined, first.port, { hostname: "127.0.0.1", reusePort: true }))!,
    );
    expect(second.port).toBe(first.port);
    const error = await startServer(handler, undefined, first.port, { hostname: "127.0.0.1" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "EADDRINUSE" });
    const client = await RawClient.connect(first.port);
    client.write("x");
    await client.waitForBytes(1);
  });
});
