/**
 * Invariant: `unix(path)` serves and connects over a Unix domain socket exactly like TCP (the port
 * given to `startServer`, and the host and port given to `startConnector`, are ignored). Before
 * listening, a socket file left by a dead process is removed, but a path that is not a socket, or a
 * socket someone still listens on, is never touched: the start fails with `SocketListenError`
 * (`EADDRINUSE`). Stopping the server removes the file.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Handler,
  OptionError,
  SocketListenError,
  startConnector,
  startServer,
  unix,
} from "../../src/index.ts";
import { rejection } from "../helpers/errors.ts";
import { cleanup, defer, track, trackStop } from "../helpers/server.ts";
import { within } from "../helpers/wait.ts";

const dir = mkdtempSync(join(tmpdir(), "sockerl-unix-"));
let counter = 0;
afterEach(cleanup);

process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const socketPath = () => join(dir, `s${++counter}.sock`);

interface Seen {
  transport: string;
  secure: boolean;
}

const echo = (seen: Seen[] = []): Handler<undefined, unknown> => ({
  init(_i, meta) {
    seen.push({ transport: meta.transport, secure: meta.secure });
  },
  handlePacket: (packet) => ({ send: packet }),
});

async function startUnixServer(path: string, seen: Seen[] = []) {
  const server = await startServer(echo(seen), undefined, 0, { transport: unix(path) });
  if (server === undefined) throw new Error("ignored");
  return track(server);
}

/** Starting a server on `path` fails with SocketListenError EADDRINUSE. */
async function expectAddressInUse(path: string): Promise<void> {
  const error = await rejection(startServer(echo(), undefined, 0, { transport: unix(path) }));
  expect(error).toBeInstanceOf(SocketListenError);
  expect((error as SocketListenError).code).toBe("EADDRINUSE");
}

/** A plain Bun client on the Unix socket that resolves with the first reply. */
async function roundTrip(path: string, message: string): Promise<string> {
  const reply = Promise.withResolvers<string>();
  const socket = await Bun.connect({
    unix: path,
    socket: {
      data(_s, data) {
        reply.resolve(Buffer.from(data).toString());
      },
      close() {
        reply.reject(new Error("closed before the reply"));
      },
    },
  });
  defer(() => socket.terminate());
  socket.write(message);
  return within(reply.promise, 3000, "the echo over the unix socket");
}

/** Runs a child Bun process listening on `path`; resolves once it listens. */
async function childListener(path: string): Promise<Bun.Subprocess> {
  const child = Bun.spawn(
    [
      process.execPath,
      "-e",
      `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); console.log("ready");`,
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  defer(async () => {
    child.kill(9);
    await child.exited;
  });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  while (!out.includes("ready")) {
    const { value, done } = await within(reader.read(), 5000, "the child to listen");
    if (done) throw new Error(`child exited: ${out}`);
    out += Buffer.from(value).toString();
  }
  reader.releaseLock();
  return child;
}

describe("unix()", () => {
  test("a server echoes over a Unix socket; meta.transport is unix and the port is ignored", async () => {
    const path = socketPath();
    const seen: Seen[] = [];
    const server = await startUnixServer(path, seen);
    expect(server.port).toBe(0);
    expect(await roundTrip(path, "over unix")).toBe("over unix");
    expect(seen).toEqual([{ transport: "unix", secure: false }]);
  });

  test("a connector talks to a Unix socket server (host and port ignored)", async () => {
    const path = socketPath();
    await startUnixServer(path);
    const got = Promise.withResolvers<string>();
    const seen: Seen[] = [];
    const conn = await startConnector(
      {
        init(_i, meta) {
          seen.push({ transport: meta.transport, secure: meta.secure });
          return { send: "from connector" };
        },
        handlePacket(packet) {
          got.resolve(Buffer.from(packet as Uint8Array).toString());
        },
      },
      undefined,
      "ignored",
      0,
      { transport: unix(path) },
    );
    trackStop(conn!);
    expect(await within(got.promise, 3000, "the echo")).toBe("from connector");
    expect(seen).toEqual([{ transport: "unix", secure: false }]);
  });

  test("stopping the server removes the socket file", async () => {
    const path = socketPath();
    const server = await startUnixServer(path);
    expect(existsSync(path)).toBe(true);
    await server.stop();
    expect(existsSync(path)).toBe(false);
  });

  test("a stale socket file left by a killed process is removed before listening", async () => {
    const path = socketPath();
    const child = await childListener(path);
    child.kill(9);
    await child.exited;
    expect(existsSync(path)).toBe(true); // stale: nobody listens
    await startUnixServer(path);
    expect(await roundTrip(path, "reclaimed")).toBe("reclaimed");
  });

  test.skipIf(process.platform !== "linux")(
    "a socket another process listens on is not removed: EADDRINUSE",
    async () => {
      const path = socketPath();
      await childListener(path);
      await expectAddressInUse(path);
      expect(existsSync(path)).toBe(true);
    },
  );

  test("a second server on the same path fails with EADDRINUSE; the first keeps serving", async () => {
    const path = socketPath();
    await startUnixServer(path);
    await expectAddressInUse(path);
    expect(await roundTrip(path, "first")).toBe("first");
  });

  test("a regular file at the path is never deleted: EADDRINUSE", async () => {
    const path = socketPath();
    writeFileSync(path, "precious");
    await expectAddressInUse(path);
    expect(readFileSync(path, "utf8")).toBe("precious");
  });

  test("an empty path throws OptionError", () => {
    expect(() => unix("")).toThrow(OptionError);
  });
});
