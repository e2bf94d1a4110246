/**
 * TLS test helpers: the PEM fixtures (see `test/fixtures/README.md`), a plain Bun client that can
 * speak TLS from the start or upgrade to it (STARTTLS) and never loses a write (Bun drops bytes
 * written before the handshake, docs/bun-sockets.md#tls-connect-before-handshake), and a relay that glues the client's STARTTLS
 * line and its ClientHello into one TCP segment (a pipelined ClientHello).
 *
 * Every client and relay is registered for {@link closeTlsHelpers} (call it from `afterEach`).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TLSOptions } from "bun";
import type { ConnectionProcess } from "../../src/connection/process.ts";
import { viewOf } from "../../src/connection/view.ts";
import type { Connection, Transport, TransportEvents } from "../../src/index.ts";
import { WaitTimeoutError } from "./wait.ts";

const FIXTURES = join(import.meta.dir, "..", "fixtures");

/** Absolute path of a fixture file. */
export function fixturePath(name: string): string {
  return join(FIXTURES, name);
}

const read = (name: string): string => readFileSync(fixturePath(name), "utf8");

/** The PEM fixtures. `server` has SAN localhost + 127.0.0.1; `alt` has SAN alt.example; all but `untrusted` are signed by `ca`. */
export const pem = {
  ca: read("ca.pem"),
  serverCert: read("server.pem"),
  serverKey: read("server-key.pem"),
  altCert: read("alt.pem"),
  altKey: read("alt-key.pem"),
  clientCert: read("client.pem"),
  clientKey: read("client-key.pem"),
  untrustedCert: read("untrusted.pem"),
  untrustedKey: read("untrusted-key.pem"),
} as const;

/** What a client saw of its TLS handshake. */
export interface HandshakeResult {
  readonly success: boolean;
  readonly error: Error | null;
  readonly authorized: boolean;
  readonly alpn: string | false | null;
  /** The CN of the server certificate. */
  readonly peerCN: string | undefined;
}

const live = new Set<TestClient>();

type BunSocket = Socket<TestClient | undefined>;

/** The client's handler table: dispatches to `socket.data`; a raw twin (data undefined) is ignored. */
const HANDLERS = {
  open() {},
  data(s: BunSocket, chunk: Uint8Array) {
    s.data?.onData(chunk);
  },
  drain(s: BunSocket) {
    s.data?.flush();
  },
  end() {},
  close(s: BunSocket, error?: Error) {
    s.data?.onClose(s, error);
  },
  error(s: BunSocket, error: Error) {
    s.data?.errors.push(error);
  },
  handshake(s: BunSocket, success: boolean, error: Error | null) {
    s.data?.onHandshake(s, success, error);
  },
};

/**
 * A plain Bun client (TCP or TLS) that collects everything it receives as text. Writes are queued
 * until the socket can take them (after the handshake on TLS) and retried on `drain`.
 */
export class TestClient {
  socket: BunSocket;
  text = "";
  readonly chunks: Uint8Array[] = [];
  readonly errors: Error[] = [];
  closed = false;
  closeError: Error | undefined = undefined;
  /** Resolves on the (latest) TLS handshake. */
  handshake: Promise<HandshakeResult>;
  /** Resolves when the socket closes. */
  readonly closedPromise: Promise<Error | undefined>;
  #secure: boolean;
  #ready: boolean;
  /** rejectUnauthorized: false — Bun then reports success=false for a bad name, yet the session works. */
  #lenient = false;
  #queue: Uint8Array[] = [];
  #resolveHandshake!: (result: HandshakeResult) => void;
  #resolveClosed!: (error: Error | undefined) => void;
  #waiters: (() => void)[] = [];

  private constructor(socket: BunSocket, secure: boolean) {
    this.socket = socket;
    this.#secure = secure;
    this.#ready = !secure;
    this.handshake = this.#newHandshake();
    this.closedPromise = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** Connects to 127.0.0.1:`port`; with `tls`, speaks TLS from the start. */
  static async connect(port: number, tls?: TLSOptions, hostname = "127.0.0.1"): Promise<TestClient> {
    const socket = (await Bun.connect<TestClient | undefined>({
      hostname,
      port,
      data: undefined,
      socket: HANDLERS as unknown as Bun.SocketHandler<TestClient | undefined>,
      ...(tls === undefined ? {} : { tls }),
    })) as BunSocket;
    const client = new TestClient(socket, tls !== undefined);
    client.#lenient = tls?.rejectUnauthorized === false;
    live.add(client);
    socket.data = client;
    // The handshake may have happened before `data` was set (then it was not reported): catch up.
    if (tls !== undefined && socket.authorized) client.onHandshake(socket, true, null);
    return client;
  }

  #newHandshake(): Promise<HandshakeResult> {
    return new Promise((resolve) => (this.#resolveHandshake = resolve));
  }

  /** @internal */
  onData(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.text += Buffer.from(chunk).toString("latin1");
    this.#wake();
  }

  /** @internal */
  onClose(socket: BunSocket, error: Error | undefined): void {
    if (socket !== this.socket) return;
    this.closed = true;
    this.closeError = error;
    live.delete(this);
    this.#resolveClosed(error);
    if (this.#secure && !this.#ready) {
      this.#resolveHandshake({
        success: false,
        error: error ?? null,
        authorized: false,
        alpn: false,
        peerCN: undefined,
      });
    }
    this.#wake();
  }

  /** @internal */
  onHandshake(socket: BunSocket, success: boolean, error: Error | null): void {
    if (socket !== this.socket) return;
    const cert = socket.getPeerCertificate?.() as { subject?: { CN?: string } } | undefined;
    this.#resolveHandshake({
      success,
      error,
      authorized: socket.authorized,
      alpn: socket.alpnProtocol,
      peerCN: cert?.subject?.CN,
    });
    if (success || (this.#lenient && socket.readyState === 1)) {
      this.#ready = true;
      this.flush();
    }
  }

  /** Writes `data` in order, never dropping bytes (held until the handshake on TLS). */
  write(data: string | Uint8Array): void {
    this.#queue.push(typeof data === "string" ? Buffer.from(data) : data);
    this.flush();
  }

  /** @internal */
  flush(): void {
    if (!this.#ready || this.closed) return;
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const n = this.socket.write(head);
      if (n < 0) return;
      if (n < head.byteLength) {
        this.#queue[0] = head.subarray(Math.max(n, 0));
        return;
      }
      this.#queue.shift();
    }
  }

  /** Resolves once the received text contains `needle` (rejects after `timeoutMs`, or if the socket closes first). */
  async waitFor(needle: string, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.text.includes(needle)) {
      if (this.closed)
        throw new Error(
          `socket closed before ${JSON.stringify(needle)} arrived; got ${JSON.stringify(this.text)}`,
        );
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new WaitTimeoutError(
          `timed out waiting for ${JSON.stringify(needle)}; got ${JSON.stringify(this.text)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /**
   * STARTTLS on the client side: upgrades the live plain socket. The raw twin Bun leaves behind is
   * detached (its `data` is cleared first), so its ciphertext is not collected. `text` is reset.
   */
  startTls(tls: TLSOptions): Promise<HandshakeResult> {
    const old = this.socket;
    old.data = undefined; // the raw twin copies it: its events are ignored
    this.#secure = true;
    this.#ready = false;
    this.#lenient = tls.rejectUnauthorized === false;
    this.text = "";
    this.handshake = this.#newHandshake();
    const [, upgraded] = old.upgradeTLS({
      tls,
      socket: HANDLERS as never,
      data: this,
    }) as unknown as [BunSocket, BunSocket];
    this.socket = upgraded;
    upgraded.data = this;
    return this.handshake;
  }

  /** Closes the socket. */
  end(): void {
    if (!this.closed) this.socket.end();
  }

  /** Resets the socket. */
  terminate(): void {
    if (!this.closed) this.socket.terminate();
  }
}

/**
 * A TCP relay between a client and `targetPort` that records what the server sends (`serverBytes()`,
 * the bytes on the wire). With `glue`, it holds the client's first line (`"STARTTLS\n"`) until the
 * whole first TLS record behind it (the ClientHello) has arrived, then forwards both in **one** write,
 * so the server receives the command and the ClientHello in the same chunk.
 */
export class Relay {
  readonly #listener: Bun.TCPSocketListener<RelayPair>;
  /** Bytes forwarded in the first (glued) write. */
  gluedBytes = 0;

  private constructor(listener: Bun.TCPSocketListener<RelayPair>) {
    this.#listener = listener;
  }

  get port(): number {
    return this.#listener.port;
  }

  /** Everything the server sent, as received on the wire. */
  readonly fromServer: Uint8Array[] = [];

  /** The server's bytes as latin1 text (ciphertext stays unreadable). */
  serverBytes(): string {
    return Buffer.concat(this.fromServer).toString("latin1");
  }

  static start(targetPort: number, options: { glue?: boolean } = {}): Relay {
    let relay: Relay | undefined;
    const listener = Bun.listen<RelayPair>({
      hostname: "127.0.0.1",
      port: 0,
      data: undefined as unknown as RelayPair,
      socket: {
        open(client) {
          const pair = new RelayPair(client, relay!, options.glue === true);
          client.data = pair;
          Bun.connect<RelayPair>({
            hostname: "127.0.0.1",
            port: targetPort,
            data: pair,
            socket: {
              open(server) {
                pair.server = server;
                pair.flush();
              },
              data(server, chunk) {
                server.data.relay.fromServer.push(chunk);
                server.data.client.write(chunk);
              },
              close(server) {
                server.data.client.end();
              },
              error() {},
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          client.data.fromClient(chunk);
        },
        close(client) {
          client.data?.server?.end();
        },
        error() {},
      },
    });
    relay = new Relay(listener);
    relays.add(relay);
    return relay;
  }

  stop(): void {
    relays.delete(this);
    this.#listener.stop(true);
  }
}

class RelayPair {
  server: Socket<RelayPair> | undefined = undefined;
  #held: Uint8Array[] = [];
  #glued: boolean;

  constructor(
    readonly client: Socket<RelayPair>,
    readonly relay: Relay,
    glue: boolean,
  ) {
    this.#glued = !glue;
  }

  fromClient(chunk: Uint8Array): void {
    this.#held.push(chunk);
    this.flush();
  }

  flush(): void {
    if (this.server === undefined || this.#held.length === 0) return;
    const all = Buffer.concat(this.#held);
    if (!this.#glued) {
      // Wait for "line\n" + one complete TLS record.
      const nl = all.indexOf(10);
      if (nl < 0 || all.length < nl + 1 + 5) return;
      const recordLength = all.readUInt16BE(nl + 1 + 3);
      if (all.length < nl + 1 + 5 + recordLength) return;
      this.#glued = true;
      this.relay.gluedBytes = all.length;
    }
    this.#held = [];
    this.server.write(all);
  }
}

const relays = new Set<Relay>();

/** Terminates every client and stops every relay (for `afterEach`). */
export function closeTlsHelpers(): void {
  for (const client of live) client.terminate();
  live.clear();
  for (const relay of relays) relay.stop();
  relays.clear();
}

/**
 * Wraps a transport to catch every connection it accepts, as soon as it exists (before the TLS
 * handshake): `next()` resolves with the next accepted connection, so a test can await its `exited`
 * even when it never starts (a failed handshake). Name, `secure` and everything else are the inner
 * transport's.
 */
export function spyTransport(inner: Transport): Transport & { next(): Promise<Connection> } {
  const arrived: Connection[] = [];
  const waiting: ((conn: Connection) => void)[] = [];
  const wrap = (events: TransportEvents): TransportEvents => ({
    ...events,
    open(socket) {
      events.open(socket);
      // The library keeps its connection process in `socket.data`; its public handle is the view.
      const conn: Connection = viewOf(socket.data as ConnectionProcess);
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(conn);
      else arrived.push(conn);
    },
  });
  const spy: Transport & { next(): Promise<Connection> } = {
    name: inner.name,
    secure: inner.secure,
    listen: (request) => inner.listen({ ...request, events: wrap(request.events) }),
    connect: (request) => inner.connect(request),
    next: () => {
      const conn = arrived.shift();
      return conn !== undefined ? Promise.resolve(conn) : new Promise((resolve) => waiting.push(resolve));
    },
  };
  if (inner.upgrade !== undefined) spy.upgrade = inner.upgrade.bind(inner);
  if (inner.handshakeError !== undefined) spy.handshakeError = inner.handshakeError.bind(inner);
  return spy;
}
