/**
 * Invariant: with tracing on, every event of a traced process writes exactly one `*DBG*` line to the
 * sink, in SockErl's wording and in the order the events happened (connections: got packet, sent
 * packet, got call … from, sent … to, got cast, got event, got synchronous / asynchronous request for
 * sending packet, sent ok, got timeout, got srtimeout, changed mode, terminating; acceptors: started,
 * accepted socket, gave socket, could not start / was ignored, changed mode), and a process that is not
 * traced writes nothing. Payloads print readably (`"str"`, `"bytes"`, hex, cut when long). An
 * abnormal exit prints one termination report (id, reason, state), followed by the event log when
 * `log` is on; a normal exit prints nothing. The `log` ring keeps the last 100 events.
 *
 * Sequences are compared whole with `toEqual`, after replacing process ids with names, call tags with
 * their order of appearance and ephemeral ports with PORT.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Connection, type Handler, type Server, sys } from "../../src/index.ts";
import { formatTerm, LOG_CAPACITY } from "../../src/trace.ts";
import { RawClient } from "../helpers/client.ts";
import { cleanup, connectOne, startTestServer } from "../helpers/server.ts";
import { captureSink } from "../helpers/trace.ts";
import { waitFor, within } from "../helpers/wait.ts";

afterEach(cleanup);

/**
 * Replaces `<id>` with `<name>` (names: id → name; unknown ids become `<?id>`), `<call N>` tags with
 * `<call 1>`, `<call 2>`… in order of appearance, and `127.0.0.1:port` with `127.0.0.1:PORT`.
 */
function normalise(raw: readonly string[], names: ReadonlyMap<number, string>): string[] {
  const tags = new Map<string, number>();
  return raw.map((line) =>
    line
      .replace(/<call (\d+)>/g, (_, tag: string) => {
        if (!tags.has(tag)) tags.set(tag, tags.size + 1);
        return `<call ${tags.get(tag)}>`;
      })
      .replace(/(?<!<)<(\d+)>(?!>)/g, (_, id: string) => `<${names.get(Number(id)) ?? `?${id}`}>`)
      .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT"),
  );
}

/** Names of the acceptors of `server` (`a1`, `a2`…) for {@link normalise}. */
function acceptorNames(server: Pick<Server, "acceptorList">): Map<number, string> {
  return new Map(server.acceptorList().map((a) => [a.pid, `a${a.index}`]));
}

/** An echo handler counting packets, casts and events in its state; calls reply `req:state`. */
const counting: Handler<number> = {
  init: () => ({ state: 0 }),
  handlePacket: (packet, n) => ({ state: n + 1, send: packet }),
  handleCall: (request, _from, n) => ({ reply: `${String(request)}:${n}` }),
  handleCast: (_message, n) => ({ state: n + 1 }),
  handleEvent: (_event, n) => ({ state: n + 1 }),
};

describe("connection trace lines", () => {
  test('connectorDebug: ["trace"] prints one line per event, in SockErl\'s wording and order', async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, { connectorDebug: ["trace"] });
    const [client, conn] = await connectOne(server, "foo");
    expect(await conn.call("ping")).toBe("ping:1");
    conn.cast("c");
    conn.notify({ kind: "e" });
    await conn.sendSync("s");
    conn.sendAsync(Buffer.from([0, 1, 2]));
    expect(await conn.call("last")).toBe("last:3");
    await client.waitForBytes(3 + 1 + 3);
    await conn.stop();
    expect(normalise(lines, new Map([[conn.id, "c"]]))).toEqual([
      '*DBG* Sockerl connector <c> got packet "foo"',
      '*DBG* Sockerl connector <c> sent packet "foo"',
      '*DBG* Sockerl connector <c> got call "ping" from <call 1>',
      '*DBG* Sockerl connector <c> sent "ping:1" to <call 1>',
      '*DBG* Sockerl connector <c> got cast "c"',
      '*DBG* Sockerl connector <c> got event { kind: "e" }',
      '*DBG* Sockerl connector <c> got synchronous request for sending packet "s" from <call 2>',
      '*DBG* Sockerl connector <c> sent packet "s"',
      "*DBG* Sockerl connector <c> sent ok to <call 2>",
      "*DBG* Sockerl connector <c> got asynchronous request for sending packet <<00 01 02>>",
      "*DBG* Sockerl connector <c> sent packet <<00 01 02>>",
      '*DBG* Sockerl connector <c> got call "last" from <call 3>',
      '*DBG* Sockerl connector <c> sent "last:3" to <call 3>',
      "*DBG* Sockerl connector <c> terminating with reason normal",
    ]);
  }, 10_000);

  test("a deferred reply (from.reply) is traced when it is sent, and a peer close as a disconnect", async () => {
    const { lines } = captureSink();
    let pending: { reply(value: unknown): boolean } | undefined;
    const handler: Handler<undefined> = {
      init: () => undefined,
      handlePacket: (packet) => ({ send: packet }),
      handleCall: (request, from) => {
        if (request !== "later") return { reply: "flushed" };
        pending = from;
      },
      handleDisconnect: () => undefined,
    };
    const server = await startTestServer(handler, undefined, { connectorDebug: ["trace"] });
    const client = await RawClient.connect(server.port);
    client.write("x");
    await client.waitForText("x");
    const [[, conn]] = server.connections() as [[number, Connection]];
    const answer = conn.call("later");
    expect(await conn.call("flush")).toBe("flushed");
    expect(pending?.reply("now")).toBe(true);
    expect(await answer).toBe("now");
    client.end();
    await within(conn.exited, 2000, "the connection to end");
    expect(normalise(lines, new Map([[conn.id, "c"]]))).toEqual([
      '*DBG* Sockerl connector <c> got packet "x"',
      '*DBG* Sockerl connector <c> sent packet "x"',
      '*DBG* Sockerl connector <c> got call "later" from <call 1>',
      '*DBG* Sockerl connector <c> got call "flush" from <call 2>',
      '*DBG* Sockerl connector <c> sent "flushed" to <call 2>',
      '*DBG* Sockerl connector <c> sent "now" to <call 1>',
      "*DBG* Sockerl connector <c> got disconnect",
      "*DBG* Sockerl connector <c> terminating with reason normal",
    ]);
  }, 10_000);

  test("timeout, srtimeout and mode changes are traced", async () => {
    const { lines } = captureSink();
    const fired = Promise.withResolvers<void>();
    const handler: Handler<undefined> = {
      init: () => ({ timeout: 10 }),
      handlePacket: () => undefined,
      timeout: () => ({ timeout: Number.POSITIVE_INFINITY, mode: "passive", srtimeout: 10 }),
      srtimeout: () => {
        fired.resolve();
        return { srtimeout: Number.POSITIVE_INFINITY, mode: "active" };
      },
    };
    const server = await startTestServer(handler, undefined, { connectorDebug: ["trace"] });
    await RawClient.connect(server.port);
    await within(fired.promise, 3000, "srtimeout to fire");
    const [[, conn]] = server.connections() as [[number, Connection]];
    await conn.stop();
    expect(normalise(lines, new Map([[conn.id, "c"]]))).toEqual([
      "*DBG* Sockerl connector <c> got timeout",
      "*DBG* Sockerl connector <c> changed mode to passive",
      "*DBG* Sockerl connector <c> got srtimeout",
      "*DBG* Sockerl connector <c> changed mode to active",
      "*DBG* Sockerl connector <c> terminating with reason normal",
    ]);
  }, 10_000);

  test("run-time sys.trace on one of two connections traces only that one, until switched off", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined);
    const [client1, conn1] = await connectOne(server, "a");
    const [client2, conn2] = await connectOne(server, "b");
    expect(lines).toEqual([]);

    sys.trace(conn1, true);
    client1.write("1");
    client2.write("2");
    await client1.waitForText("a1");
    await client2.waitForText("b2");
    conn2.cast("not traced");
    conn1.cast("traced");
    await conn2.call("sync");
    await conn1.call("sync");

    sys.trace(conn1, false);
    client1.write("3");
    await client1.waitForText("a13");
    await conn1.call("after");

    expect(normalise(lines, new Map([[conn1.id, "one"]]))).toEqual([
      '*DBG* Sockerl connector <one> got packet "1"',
      '*DBG* Sockerl connector <one> sent packet "1"',
      '*DBG* Sockerl connector <one> got cast "traced"',
      '*DBG* Sockerl connector <one> got call "sync" from <call 1>',
      '*DBG* Sockerl connector <one> sent "sync:3" to <call 1>',
    ]);
  }, 10_000);

  test('payloads print readably: strings quoted, bytes as "…", UTF-8, hex, long ones cut', async () => {
    const { lines } = captureSink();
    const handler: Handler<number> = {
      ...counting,
      handleCast: (message) => ({ send: message as string }),
    };
    const server = await startTestServer(handler, undefined, { connectorDebug: ["trace"] });
    const [, conn] = await connectOne(server, "x");
    conn.cast("a".repeat(100));
    conn.cast(Buffer.from("héllo"));
    await conn.stop();
    expect(normalise(lines, new Map([[conn.id, "c"]]))).toEqual([
      '*DBG* Sockerl connector <c> got packet "x"',
      '*DBG* Sockerl connector <c> sent packet "x"',
      `*DBG* Sockerl connector <c> got cast "${"a".repeat(64)}"...(100 chars)`,
      `*DBG* Sockerl connector <c> sent packet "${"a".repeat(64)}"...(100 chars)`,
      '*DBG* Sockerl connector <c> got cast "héllo"',
      '*DBG* Sockerl connector <c> sent packet "héllo"',
      "*DBG* Sockerl connector <c> terminating with reason normal",
    ]);
  }, 10_000);
});

describe("acceptor trace lines", () => {
  test('acceptorDebug: ["trace"] prints started, accepted, gave and changed mode lines', async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, { acceptorDebug: ["trace"] });
    const [, conn] = await connectOne(server);
    server.sleepAcceptors();
    server.wakeupAcceptors();
    const names = acceptorNames(server);
    names.set(conn.id, "c");
    expect(normalise(lines, names)).toEqual([
      "*DBG* Sockerl acceptor <a1> started for listen socket 127.0.0.1:PORT with options:\n\ttransporter module: 'tcp'\n\tmode: 'accept'",
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c>",
      "*DBG* Sockerl acceptor <a1> changed mode to sleep",
      "*DBG* Sockerl acceptor <a1> changed mode to accept",
    ]);
  }, 10_000);

  test("a connection held by a sleeping acceptor is given to its handler at wakeup", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, {
      acceptorDebug: ["trace"],
      acceptorMode: "sleep",
    });
    const client = await RawClient.connect(server.port);
    client.write("held");
    await waitFor(() => lines.length === 2, 2000, "the accepted line");
    server.wakeupAcceptors();
    await client.waitForText("held");
    const [[id]] = server.connections() as [[number, Connection]];
    const names = acceptorNames(server);
    names.set(id, "c");
    expect(normalise(lines, names)).toEqual([
      "*DBG* Sockerl acceptor <a1> started for listen socket 127.0.0.1:PORT with options:\n\ttransporter module: 'tcp'\n\tmode: 'sleep'",
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> changed mode to accept",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c>",
    ]);
  }, 10_000);

  test("an init that throws is traced as could not start, one that returns ignore as was ignored", async () => {
    const { lines } = captureSink();
    let ignore = false;
    const handler: Handler<undefined> = {
      init: () => {
        if (ignore) return "ignore";
        throw new Error("nope");
      },
      handlePacket: () => undefined,
    };
    const server = await startTestServer(handler, undefined, { acceptorDebug: ["trace"], plan: ["delete"] });
    const names = acceptorNames(server);
    const failing = await RawClient.connect(server.port);
    await failing.waitForEnd();
    ignore = true;
    const ignored = await RawClient.connect(server.port);
    await ignored.waitForEnd();
    const ids = lines
      .map((l) => /connection handler <(\d+)>/.exec(l)?.[1])
      .filter((id): id is string => id !== undefined)
      .map(Number);
    names.set(ids[0]!, "c1");
    names.set(ids[2]!, "c2");
    expect(normalise(lines, names)).toEqual([
      "*DBG* Sockerl acceptor <a1> started for listen socket 127.0.0.1:PORT with options:\n\ttransporter module: 'tcp'\n\tmode: 'accept'",
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c1>",
      "** Sockerl connector <c1> terminating\n** Reason for termination == CallbackError ERR_CALLBACK: Callback init failed: nope\n** State == undefined",
      "*DBG* Sockerl acceptor <a1> could not start connection handler <c1> for socket 127.0.0.1:PORT with reason CallbackError ERR_CALLBACK: Callback init failed: nope",
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c2>",
      "*DBG* Sockerl acceptor <a1> starting new connection handler <c2> for socket 127.0.0.1:PORT was ignored",
    ]);
  }, 10_000);

  test("sys.trace on a server traces its acceptors, its live connections and the ones accepted later", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined);
    const [client1, conn1] = await connectOne(server, "a");
    sys.trace(server, true);
    client1.write("1");
    await client1.waitForText("a1");
    const [client2, conn2] = await connectOne(server, "b");

    sys.trace(server, false);
    client1.write("x");
    client2.write("y");
    await client1.waitForText("a1x");
    await client2.waitForText("by");
    const [, conn3] = await connectOne(server, "c");
    await conn3.call("quiet");

    const names = acceptorNames(server);
    names.set(conn1.id, "c1");
    names.set(conn2.id, "c2");
    expect(normalise(lines, names)).toEqual([
      '*DBG* Sockerl connector <c1> got packet "1"',
      '*DBG* Sockerl connector <c1> sent packet "1"',
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c2>",
      '*DBG* Sockerl connector <c2> got packet "b"',
      '*DBG* Sockerl connector <c2> sent packet "b"',
    ]);
  }, 10_000);

  test("an acceptor target { server, acceptor: id } traces that acceptor only", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, { acceptorCount: 2 });
    sys.trace({ server, acceptor: 2 }, true);
    server.sleepAcceptors();
    server.wakeupAcceptors();
    await connectOne(server);
    const traced = normalise(lines, acceptorNames(server));
    expect(traced.slice(0, 2)).toEqual([
      "*DBG* Sockerl acceptor <a2> changed mode to sleep",
      "*DBG* Sockerl acceptor <a2> changed mode to accept",
    ]);
    // The connection may land on either acceptor (SO_REUSEPORT); only acceptor 2 is traced either way.
    expect(traced.every((l) => l.startsWith("*DBG* Sockerl acceptor <a2> "))).toBe(true);
  }, 10_000);
});

describe("termination reports", () => {
  test("an abnormal exit prints one report with the id, the reason and the state", async () => {
    const { lines } = captureSink();
    const handler: Handler<{ count: number }> = {
      init: () => ({ state: { count: 7 } }),
      handlePacket: () => {
        throw new TypeError("boom");
      },
    };
    const server = await startTestServer(handler, undefined, { plan: ["delete"] });
    const client = await RawClient.connect(server.port);
    client.write("x");
    await client.waitForEnd();
    const ids = server.connections();
    expect(ids).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.replace(/<\d+>/, "<c>")).toBe(
      "** Sockerl connector <c> terminating\n** Reason for termination == CallbackError ERR_CALLBACK: Callback handlePacket failed: boom\n** State == { count: 7 }",
    );
  }, 10_000);

  test("a normal exit (close, stop, peer close, server shutdown) prints nothing", async () => {
    const { lines } = captureSink();
    const handler: Handler<undefined> = {
      init: () => undefined,
      handlePacket: (packet) => (String(packet) === "bye" ? { close: true } : { send: packet }),
    };
    const server = await startTestServer(handler, undefined);
    const closing = await RawClient.connect(server.port);
    closing.write("bye");
    await closing.waitForEnd();
    const peer = await RawClient.connect(server.port);
    peer.write("x");
    await peer.waitForText("x");
    const [[, conn]] = server.connections() as [[number, Connection]];
    peer.end();
    await within(conn.exited, 2000, "the peer-closed connection to end");
    const stopped = await RawClient.connect(server.port);
    stopped.write("y");
    await stopped.waitForText("y");
    await server.connections()[0]![1].stop();
    const last = await RawClient.connect(server.port);
    last.write("z");
    await last.waitForText("z");
    await server.stop();
    expect(lines).toEqual([]);
  }, 10_000);

  test("with log on, an abnormal exit prints the logged events after the report", async () => {
    const { lines } = captureSink();
    const handler: Handler<number> = {
      init: () => ({ state: 1 }),
      handlePacket: (packet) => (String(packet) === "die" ? { stop: "died" } : { send: packet }),
    };
    const server = await startTestServer(handler, undefined, { connectorDebug: ["log"], plan: ["delete"] });
    const client = await RawClient.connect(server.port);
    client.write("a");
    await client.waitForText("a");
    const [[id]] = server.connections() as [[number, Connection]];
    client.write("die");
    await client.waitForEnd();
    expect(normalise(lines, new Map([[id, "c"]]))).toEqual([
      "** Sockerl connector <c> terminating\n** Reason for termination == died\n** State == 1",
      '*DBG* Sockerl connector <c> got packet "a"',
      '*DBG* Sockerl connector <c> sent packet "a"',
      '*DBG* Sockerl connector <c> got packet "die"',
      "*DBG* Sockerl connector <c> terminating with reason died",
    ]);
  }, 10_000);
});

describe("event log", () => {
  test(`the log keeps the last ${LOG_CAPACITY} events, oldest first, and prints nothing`, async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined);
    const [, conn] = await connectOne(server);
    expect(sys.getLog(conn)).toEqual([]);
    sys.log(conn, true);
    for (let i = 1; i <= 120; i++) conn.cast(i);
    await conn.call("sync");
    const expected = [
      ...Array.from({ length: 98 }, (_, k) => `*DBG* Sockerl connector <c> got cast ${k + 23}`),
      '*DBG* Sockerl connector <c> got call "sync" from <call 1>',
      '*DBG* Sockerl connector <c> sent "sync:121" to <call 1>',
    ];
    expect(normalise(sys.getLog(conn), new Map([[conn.id, "c"]]))).toEqual(expected);
    expect(lines).toEqual([]);
    sys.log(conn, false);
    expect(sys.getLog(conn)).toEqual([]);
  }, 10_000);

  test("getLog on a server merges its processes' logs in the order the events happened", async () => {
    const { lines } = captureSink();
    const server = await startTestServer(counting, undefined, {
      connectorDebug: ["log"],
      acceptorDebug: ["log"],
    });
    const [client1, conn1] = await connectOne(server, "a");
    const [client2, conn2] = await connectOne(server, "b");
    client1.write("1");
    await client1.waitForText("a1");
    conn2.cast("two");
    await conn2.call("s");
    const names = acceptorNames(server);
    names.set(conn1.id, "c1");
    names.set(conn2.id, "c2");
    expect(client2.closed).toBe(false);
    expect(normalise(sys.getLog(server), names)).toEqual([
      "*DBG* Sockerl acceptor <a1> started for listen socket 127.0.0.1:PORT with options:\n\ttransporter module: 'tcp'\n\tmode: 'accept'",
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c1>",
      '*DBG* Sockerl connector <c1> got packet "a"',
      '*DBG* Sockerl connector <c1> sent packet "a"',
      "*DBG* Sockerl acceptor <a1> accepted socket 127.0.0.1:PORT",
      "*DBG* Sockerl acceptor <a1> gave socket 127.0.0.1:PORT to connection handler <c2>",
      '*DBG* Sockerl connector <c2> got packet "b"',
      '*DBG* Sockerl connector <c2> sent packet "b"',
      '*DBG* Sockerl connector <c1> got packet "1"',
      '*DBG* Sockerl connector <c1> sent packet "1"',
      '*DBG* Sockerl connector <c2> got cast "two"',
      '*DBG* Sockerl connector <c2> got call "s" from <call 1>',
      '*DBG* Sockerl connector <c2> sent "s:2" to <call 1>',
    ]);
    expect(lines).toEqual([]);
  }, 10_000);
});

describe("formatTerm", () => {
  test("formats strings, bytes, errors and objects on one line", () => {
    expect(formatTerm("foo")).toBe('"foo"');
    expect(formatTerm('say "hi"\n')).toBe('"say \\"hi\\"\\n"');
    expect(formatTerm(Buffer.from("foo"))).toBe('"foo"');
    expect(formatTerm(new TextEncoder().encode("a\tb\r\n"))).toBe('"a\\tb\\r\\n"');
    expect(formatTerm(Buffer.from("€uro"))).toBe('"€uro"');
    expect(formatTerm(Buffer.from([0, 0x7f, 0xff, 0x10]))).toBe("<<00 7f ff 10>>");
    expect(formatTerm(new Uint16Array([1]))).toBe("<<01 00>>");
    expect(formatTerm(new ArrayBuffer(2))).toBe("<<00 00>>");
    expect(formatTerm(Buffer.alloc(70, 0x62))).toBe(`"${"b".repeat(64)}"...(70 bytes)`);
    expect(formatTerm(Buffer.from("é".repeat(40)))).toBe(`"${"é".repeat(32)}"...(80 bytes)`);
    expect(formatTerm(["a", Buffer.from("b")])).toBe('["a", "b"]');
    expect(formatTerm({ a: { b: [1, { c: 2 }] } })).toBe("{ a: { b: [ 1, { c: 2 } ] } }");
    expect(formatTerm(new RangeError("bad"))).toBe("RangeError: bad");
    expect(formatTerm(undefined)).toBe("undefined");
    expect(formatTerm(42)).toBe("42");
    expect(formatTerm({ long: "y".repeat(300) })).toHaveLength(200);
  });

  test("a sink that throws never takes a connection down", async () => {
    captureSink(); // cleanup() restores the default sink, after the server has stopped
    sys.setSink(() => {
      throw new Error("sink failed");
    });
    const server = await startTestServer(counting, undefined, { connectorDebug: ["trace"] });
    const [client, conn] = await connectOne(server, "a");
    client.write("b");
    await client.waitForText("ab");
    expect(await conn.call("ok")).toBe("ok:2");
  }, 10_000);
});
