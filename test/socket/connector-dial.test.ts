/**
 * Invariant: a connector's TCP connect can be abandoned. `dialTcp` connects with `node:net` (which
 * can cancel a connect in SYN-SENT) and hands the connected descriptor over to `Bun.connect({ fd })`;
 * the peer's first bytes are not read by the dialing socket (they arrive on the handed-over one);
 * a refused connect rejects with its errno code; a cancelled connect to an address that black-holes
 * SYNs releases its descriptor at once. TLS connectors dialled this way still check the server's
 * certificate against the host name.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { closeFd, dialTcp } from "../../src/dial.ts";
import { startConnector, TlsHandshakeError, tls } from "../../src/index.ts";
import { BLACK_HOLE_AVAILABLE, BlackHole } from "../helpers/blackhole.ts";
import { cleanup, closedPort, startTestServer, trackStop } from "../helpers/server.ts";
import { pem } from "../helpers/tls.ts";
import { waitFor, within } from "../helpers/wait.ts";

const teardown: Array<() => void> = [];
afterEach(() => {
  for (const fn of teardown.splice(0)) fn();
});

const openFds = (): number => readdirSync("/proc/self/fd").length;

/** Sockets in SYN-SENT towards `port` (Linux /proc/net/tcp, state 02). */
function synSent(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[2]?.endsWith(hex) === true && f[3] === "02";
    }).length;
}

if (!BLACK_HOLE_AVAILABLE)
  console.warn("bun:ffi cannot load libc.so.6: skipping the cancellable-connect tests");

describe.skipIf(!BLACK_HOLE_AVAILABLE)("dialTcp", () => {
  test("hands a connected descriptor to Bun.connect({ fd }); the server's greeting is not lost", async () => {
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          s.write("HELLO\n");
        },
        data(s, d) {
          s.write(d);
        },
      },
    });
    teardown.push(() => listener.stop(true));
    const dial = dialTcp("127.0.0.1", listener.port);
    expect(dial).toBeDefined();
    const fd = await within(dial!.fd, 3000, "the dial");
    let got = "";
    const echoed = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      fd,
      socket: {
        data(_s: unknown, d: Uint8Array) {
          got += Buffer.from(d).toString();
          if (got.endsWith("ping")) echoed.resolve();
        },
      },
    } as unknown as Bun.TCPSocketConnectOptions<undefined>);
    teardown.push(() => socket.terminate());
    socket.write("ping");
    await within(echoed.promise, 3000, "the echo");
    expect(got).toBe("HELLO\nping");
  });

  test("a refused connect rejects with ECONNREFUSED", async () => {
    const port = await closedPort();
    const error = await dialTcp("127.0.0.1", port)!.fd.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
  });

  test("cancelling connects to a black-holed address frees their descriptors at once", async () => {
    const hole = await BlackHole.open();
    teardown.push(() => hole.close());
    const before = openFds();
    const dials = Array.from({ length: 20 }, () => dialTcp("127.0.0.1", hole.port)!);
    await waitFor(() => synSent(hole.port) >= 20, 2000, "20 connects in SYN-SENT");
    expect(openFds()).toBeGreaterThanOrEqual(before + 20);
    for (const d of dials) d.cancel();
    await waitFor(() => synSent(hole.port) === 0 && openFds() <= before, 1000, "the descriptors to close");
  });

  test("closeFd closes a descriptor that will not be used", async () => {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    teardown.push(() => listener.stop(true));
    const fd = await dialTcp("127.0.0.1", listener.port)!.fd;
    const before = openFds();
    closeFd(fd);
    expect(openFds()).toBe(before - 1);
  });
});

describe.skipIf(!BLACK_HOLE_AVAILABLE)("TLS connectors over a dialled descriptor", () => {
  afterEach(cleanup);

  const echoTls = (cert: string, key: string) =>
    startTestServer({ init: () => undefined, handlePacket: (p) => ({ send: p }) }, undefined, {
      transport: tls({ cert, key }),
    });

  test("the certificate is still checked against the host name (no serverName given)", async () => {
    const good = await echoTls(pem.serverCert, pem.serverKey);
    const conn = trackStop(
      (await startConnector(
        { init: () => undefined, handlePacket: () => undefined },
        undefined,
        "localhost",
        good.port,
        {
          transport: tls({ ca: pem.ca }),
        },
      ))!,
    );
    expect(conn.id).toBeGreaterThan(0);
    const wrong = await echoTls(pem.altCert, pem.altKey); // a trusted certificate for alt.example
    const error = await startConnector(
      { init: () => undefined, handlePacket: () => undefined },
      undefined,
      "localhost",
      wrong.port,
      { transport: tls({ ca: pem.ca }) },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TlsHandshakeError);
  });
});
