/**
 * Helpers of the PROXY protocol socket tests: an echo "library" driven straight through the Transport
 * interface (so a test sees the very socket objects the transport hands over, and can read
 * proxyHeaderOf on them), and a node:net client that can bind its source address (127.0.0.2, for
 * the untrusted-source case; Bun.connect cannot bind one) and never loses a write.
 *
 * Everything made here is registered for {@link closeProxyKit} (call it from `afterEach`).
 *
 * @module
 */
import net from "node:net";
import type { ProxyHeader } from "../../src/proxy/header.ts";
import { proxyHeaderOf } from "../../src/proxy/header.ts";
import type {
  Transport,
  TransportEvents,
  TransportListener,
  TransportSocket,
} from "../../src/transport/transport.ts";
import { waitFor } from "../helpers/wait.ts";

const cleanups: Array<() => void> = [];

/** Closes every listener, socket and client made by this kit. */
export function closeProxyKit(): void {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // already closed
    }
  }
}

/** One connection the echo server accepted. */
export interface Accepted {
  readonly socket: TransportSocket;
  /** proxyHeaderOf(socket) at `open` time. */
  readonly header: ProxyHeader | undefined;
  received: string;
  handshake: boolean | undefined;
  closed: boolean;
}

/** An echo server over `transport`: every chunk is written back prefixed with "echo:". */
export class EchoServer {
  readonly accepted: Accepted[] = [];
  /** The transport's listener (`pendingSockets`: sockets still sending their header). */
  readonly listener: TransportListener & { readonly pendingSockets?: number };

  constructor(transport: Transport, reusePort = false) {
    const byData = new Map<unknown, Accepted>();
    const self = this;
    let next = 0;
    const events: TransportEvents = {
      open(socket) {
        const a: Accepted = {
          socket,
          header: proxyHeaderOf(socket),
          received: "",
          handshake: undefined,
          closed: false,
        };
        const key = { id: next++ };
        socket.data = key;
        byData.set(key, a);
        self.accepted.push(a);
      },
      data(socket, chunk) {
        const a = byData.get(socket.data);
        if (a === undefined) return;
        a.received += Buffer.from(chunk).toString("latin1");
        socket.write(Buffer.concat([Buffer.from("echo:"), chunk]));
      },
      drain() {},
      end(socket) {
        socket.end();
      },
      close(socket) {
        const a = byData.get(socket.data);
        if (a !== undefined) a.closed = true;
      },
      error() {},
      handshake(socket, success) {
        const a = byData.get(socket.data);
        if (a !== undefined) a.handshake = success;
      },
    };
    this.listener = transport.listen({ hostname: "127.0.0.1", port: 0, reusePort, events, data: undefined });
    cleanups.push(() => this.listener.stop(true));
  }

  get port(): number {
    return this.listener.port;
  }
}

/** A node:net client that collects what it receives. */
export class NetClient {
  received = Buffer.alloc(0);
  closed = false;
  /** The close error code (ECONNRESET …), if any. */
  error: string | undefined = undefined;
  readonly socket: net.Socket;
  readonly connected: Promise<void>;

  constructor(port: number, localAddress?: string) {
    this.socket = net.connect({ host: "127.0.0.1", port, ...(localAddress ? { localAddress } : {}) });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
    });
    this.socket.on("error", (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
    });
    this.socket.on("close", () => {
      this.closed = true;
    });
    cleanups.push(() => this.socket.destroy());
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  async waitText(text: string, timeoutMs = 2000): Promise<void> {
    await waitFor(
      () => this.received.toString("latin1").includes(text),
      timeoutMs,
      `client to receive ${text}`,
    );
  }

  async waitClosed(timeoutMs = 2000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, "client close");
  }
}

/** Registers extra teardown for {@link closeProxyKit}. */
export function onClose(fn: () => void): void {
  cleanups.push(fn);
}

/** What a library server with `proxyProtocol` saw of each connection, in `init`. */
export interface SeenByLibrary {
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  proxy: unknown;
}

/**
 * A library echo server started with the `proxyProtocol` server option, recording `meta` in `init`;
 * `undefined` when this build's startServer does not know the option yet.
 */
export async function startProxyProtocolServer(
  proxyProtocol: unknown = true,
  transport?: Transport,
): Promise<{ port: number; seen: SeenByLibrary[] } | undefined> {
  const { startServer } = await import("../../src/index.ts");
  const seen: SeenByLibrary[] = [];
  try {
    const server = await startServer(
      {
        init: (_init: unknown, meta: { remoteAddress?: string; remotePort?: number; proxy?: unknown }) => {
          seen.push({ remoteAddress: meta.remoteAddress, remotePort: meta.remotePort, proxy: meta.proxy });
          return { state: undefined };
        },
        handlePacket: (packet: unknown) => ({ send: packet as Uint8Array }),
        handleDisconnect: () => undefined,
      } as never,
      undefined,
      0,
      { hostname: "127.0.0.1", proxyProtocol, ...(transport === undefined ? {} : { transport }) } as never,
    );
    if (server === undefined) return undefined;
    cleanups.push(() => void server.stop());
    return { port: server.port, seen };
  } catch (error) {
    if ((error as { option?: unknown }).option === "proxyProtocol") return undefined;
    throw error;
  }
}
