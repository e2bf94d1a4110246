/**
 * Interop with a real nginx (`stream` module, `proxy_protocol on`, which sends v1): the server behind
 * it sees the client's address and port, and bytes flow both ways. The library server is started
 * with the `proxyProtocol` option when this build has it (the handler's `meta` then carries the
 * client's address), and the PROXY transport under a bare echo server in any case. nginx runs in
 * the foreground from a temp dir on free loopback ports. Skipped, visibly, when nginx or its stream
 * module is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProxyHeaderError } from "../../src/errors.ts";
import { tcp } from "../../src/index.ts";
import { proxyOptions } from "../../src/proxy/options.ts";
import { proxyTransport } from "../../src/proxy/transport.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  closeProxyKit,
  EchoServer,
  NetClient,
  type SeenByLibrary,
  startProxyProtocolServer,
} from "./proxy-kit.ts";

const NGINX = Bun.which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
const available = NGINX !== null && existsSync(STREAM_MODULE);
if (!available) console.warn("proxy-nginx.test.ts: nginx with the stream module is not installed; skipped");

function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function portOpen(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

let dir = "";
let proc: Bun.Subprocess | undefined;
let echo: EchoServer;
let wired: { port: number; seen: SeenByLibrary[] } | undefined;
const rejects: ProxyHeaderError[] = [];
const front = { echo: 0, wired: 0 };

describe.skipIf(!available)("nginx stream (proxy_protocol on) in front of sockerl", () => {
  beforeAll(async () => {
    echo = new EchoServer(proxyTransport(tcp(), proxyOptions(true)!, (e) => rejects.push(e)));
    wired = await startProxyProtocolServer(true);
    if (wired === undefined) console.warn("proxy-nginx.test.ts: startServer has no proxyProtocol option yet");
    front.echo = freePort();
    front.wired = freePort();
    dir = mkdtempSync(join(tmpdir(), "sockerl-nginx-"));
    const upstreamWired =
      wired === undefined
        ? ""
        : `server { listen 127.0.0.1:${front.wired}; proxy_pass 127.0.0.1:${wired.port}; proxy_protocol on; }`;
    writeFileSync(
      join(dir, "nginx.conf"),
      `load_module ${STREAM_MODULE};
daemon off;
master_process off;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 64; }
stream {
  server { listen 127.0.0.1:${front.echo}; proxy_pass 127.0.0.1:${echo.port}; proxy_protocol on; }
  ${upstreamWired}
}
`,
    );
    proc = Bun.spawn([NGINX!, "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
      stdout: "ignore",
      stderr: "pipe",
    });
    const deadline = Date.now() + 5000;
    for (const port of wired === undefined ? [front.echo] : [front.echo, front.wired]) {
      while (!(await portOpen(port))) {
        if (Date.now() > deadline || proc.exitCode !== null) {
          throw new Error(`nginx did not start: ${await new Response(proc.stderr as ReadableStream).text()}`);
        }
        await Bun.sleep(20);
      }
    }
  });

  afterAll(async () => {
    proc?.kill("SIGTERM");
    await proc?.exited;
    closeProxyKit();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  test("PROXY transport: the header names the client; echo both ways", async () => {
    const client = new NetClient(front.echo);
    await client.connected;
    client.write("via nginx");
    await client.waitText("echo:via nginx", 3000);
    const a = echo.accepted.find((x) => x.received.includes("via nginx"));
    expect(a?.header).toMatchObject({
      version: 1,
      family: "INET",
      sourceAddress: "127.0.0.1",
      sourcePort: client.socket.localPort,
      destinationPort: front.echo,
    });
    expect(rejects).toEqual([]);
  });

  test("startServer with proxyProtocol: meta.remoteAddress / remotePort are the client's", async () => {
    if (wired === undefined) {
      console.warn("skipped: startServer has no proxyProtocol option in this build");
      return;
    }
    const client = new NetClient(front.wired);
    await client.connected;
    client.write("hi");
    await client.waitText("hi", 3000);
    await waitFor(() => wired!.seen.length > 0, 2000, "init");
    expect(wired.seen.at(-1)).toMatchObject({
      remoteAddress: "127.0.0.1",
      remotePort: client.socket.localPort,
    });
    expect(wired.seen.at(-1)!.proxy).toMatchObject({ version: 1, command: "PROXY" });
  });
});
