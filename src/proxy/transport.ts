/**
 * PROXY protocol transports: {@link proxyTransport} reads a PROXY header off every accepted socket
 * before the library (and, on a TLS server, the TLS layer) sees a byte; {@link proxyConnectTransport}
 * writes one first on every connection it makes.
 *
 * Life of an accepted socket:
 *
 * ```text
 *   Bun.listen (plain TCP, this module's handler table)
 *      │ open
 *      ▼
 *   untrusted source? ──yes──► RST, onReject(ProxyHeaderError)
 *      │ no
 *      ▼
 *   header stage (socket.data: a Pending): bytes gathered, parseProxyHeader on each read
 *      │   bad bytes / FIN / close / timeoutMs / a version not accepted ──► RST, onReject(…)
 *      │ header complete: setProxyHeader(socket, header)
 *      ├── plain inner: socket.data = request.data, events.open(socket), events.data(rest);
 *      │                later events reach this table and are forwarded to the library's events
 *      └── TLS inner:   tls(): wait for the whole ClientHello, upgradeTLS with the certificate
 *                       for its server name (the `sni` map); another TLS transport: its
 *                       upgrade(socket, { isServer, initialData: rest }). The TLS socket
 *                       reports to the library's events; the raw twin (ciphertext) is marked
 *                       and ignored here
 * ```
 *
 * The header is read before anything else because it is the first thing on the wire: on a TLS
 * server the balancer passes the client's ClientHello through after the header, so TLS starts
 * only once the header is off.
 *
 * @module
 */
import { ArgumentError, ProxyHeaderError } from "../errors.ts";
import { readServerName } from "../transport/tls.ts";
import {
  bunHandlers,
  type ConnectRequest,
  isTransport,
  type ListenRequest,
  type Transport,
  type TransportEvents,
  type TransportListener,
  type TransportSocket,
} from "../transport/transport.ts";
import { MAX_V2_LENGTH, type ProxyHeader, parseProxyHeader, setProxyHeader } from "./header.ts";
import { type ProxyOptions, trustMatcher } from "./options.ts";

/** `socket.data` of a raw twin after a TLS upgrade: its ciphertext and close are not ours. */
const TWIN = Symbol("sockerl.proxyTwin");

/** What the message of a parser error starts with (stripped when the address is added). */
const MESSAGE_PREFIX = "Bad PROXY protocol header: ";

/** Per-socket state during the header stage. */
class Pending {
  /**
   * Set once the header is read, on a TLS server with an `sni` map: the socket then waits for the
   * rest of the ClientHello, to pick the certificate by its server name.
   */
  header: ProxyHeader | undefined = undefined;
  /** Bytes of a header split across reads (grown by doubling: a dribbled 64 KiB v2 header stays linear). */
  buffer: Uint8Array | undefined = undefined;
  length = 0;
  constructor(
    readonly listener: ProxyListener,
    /** `performance.now()` past which the header (then the ClientHello) is late. */
    public deadline: number,
  ) {}
}

/** The socket surface needed here (Bun's socket). */
interface BunSocket extends TransportSocket {
  upgradeTLS?(options: {
    isServer: boolean;
    tls: unknown;
    socket: unknown;
    data: unknown;
    initialData?: Uint8Array;
  }): [TransportSocket, TransportSocket];
}

/** A TLS transport that picks its certificate by server name (the library's `tls({ sni })`). */
interface SniTransport {
  optionsFor(serverName: string | undefined): unknown;
  readonly sniTimeout?: number;
}

/** Longest ClientHello waited for behind a header (bytes), as the `sni` listener of `tls()` does. */
const MAX_HELLO = 64 * 1024;
/** `readServerName`'s "more bytes needed". */
const HELLO_INCOMPLETE = 0;

/** A listener whose sockets start with a PROXY header. */
class ProxyListener implements TransportListener {
  readonly #listener: TransportListener;
  readonly request: ListenRequest;
  /** Sockets still in the header stage (closed by `stop`). */
  readonly pending = new Set<TransportSocket>();
  readonly trusted: (address: string | undefined) => boolean;
  /** The library's events with `open` recording the header first (for TLS sockets, whose object is new). */
  readonly tlsEvents: TransportEvents;
  /** Set when the inner TLS transport chooses certificates by server name (then the ClientHello is read first). */
  readonly sni: SniTransport | undefined;
  /** The header of the socket being upgraded right now (upgradeTLS may fire `open` inside the call). */
  upgrading: ProxyHeader | undefined = undefined;
  /**
   * One coarse sweep per listener finds late headers, instead of a timer per connection (a timer
   * set and cleared per accept costs more than parsing the header). A late header is therefore
   * dropped between `timeoutMs` and `timeoutMs` plus a quarter of it (at most 1 s more).
   */
  readonly #sweep: ReturnType<typeof setInterval>;

  constructor(
    readonly inner: Transport,
    readonly options: ProxyOptions,
    readonly onReject: (error: ProxyHeaderError) => void,
    request: ListenRequest,
  ) {
    this.request = request;
    this.trusted = trustMatcher(options.trusted);
    const sni = inner as Partial<SniTransport>;
    this.sni = inner.secure && typeof sni.optionsFor === "function" ? (sni as SniTransport) : undefined;
    const events = request.events;
    this.tlsEvents = {
      ...events,
      open: (socket) => {
        if (this.upgrading !== undefined) setProxyHeader(socket, this.upgrading);
        events.open(socket);
      },
    };
    const table = handlersFor(this);
    // A plain inner transport binds with this table (so tcp({ ipv6Only }), unix(path) and custom
    // transports keep their own way of listening); a TLS one cannot (its listener would start the
    // handshake on the header), so plain TCP is bound here and TLS starts after the header.
    this.#listener = !inner.secure
      ? inner.listen({ ...request, events: table, data: this })
      : Bun.listen<unknown>({
          hostname: request.hostname,
          port: request.port,
          socket: bunHandlers(table),
          data: this,
          allowHalfOpen: true,
          // Not in Bun's listen types, but honoured: several processes can then bind the port.
          ...({ reusePort: request.reusePort } as object),
        });
    this.#sweep = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, options.timeoutMs / 4)));
    this.#sweep.unref();
  }

  /** Rejects the sockets whose header is late. */
  sweep(): void {
    if (this.pending.size === 0) return;
    const now = performance.now();
    for (const socket of this.pending) {
      const p = socket.data;
      if (p instanceof Pending && p.deadline <= now) {
        this.reject(
          socket,
          p.header === undefined
            ? `no complete header within ${this.options.timeoutMs} ms`
            : "no complete TLS ClientHello after the header in time",
        );
      }
    }
  }

  get port(): number {
    return this.#listener.port;
  }

  get hostname(): string {
    return this.#listener.hostname;
  }

  /** Sockets accepted but still sending their header. */
  get pendingSockets(): number {
    return this.pending.size;
  }

  stop(closeActive?: boolean): void {
    clearInterval(this.#sweep);
    // Sockets in the header stage belong to nobody yet: they go with the listener, quietly (first,
    // so that `stop(true)` closing them is not reported as bad headers).
    const pending = [...this.pending];
    this.pending.clear();
    for (const socket of pending) socket.data = TWIN;
    for (const socket of pending) socket.terminate();
    this.#listener.stop(closeActive === true);
  }

  /** Drops a socket in the header stage (RST: a bad header must not be answered) and reports why. */
  reject(socket: TransportSocket, info: string, cause?: unknown): void {
    this.pending.delete(socket);
    socket.data = TWIN;
    socket.terminate();
    this.onReject(new ProxyHeaderError(info, socket.remoteAddress, cause));
  }

  /** Header complete: record it and hand the socket (and the bytes after the header) to the library. */
  handOff(socket: BunSocket, p: Pending, header: ProxyHeader, rest: Uint8Array): void {
    const request = this.request;
    setProxyHeader(socket, header);
    if (this.sni !== undefined) {
      // The certificate depends on the server name in the ClientHello: wait for all of it.
      const name = readServerName(rest);
      if (name === HELLO_INCOMPLETE && rest.length < MAX_HELLO) {
        p.header = header;
        p.deadline = performance.now() + Math.max(this.options.timeoutMs, this.sni.sniTimeout ?? 0);
        p.buffer = Uint8Array.prototype.slice.call(rest, 0, rest.length);
        p.length = rest.length;
        return;
      }
      this.pending.delete(socket);
      this.upgradeTls(socket, header, rest, typeof name === "string" ? name : undefined);
      return;
    }
    this.pending.delete(socket);
    if (!this.inner.secure) {
      socket.data = request.data;
      request.events.open(socket);
      // The library may have closed it in open (maxConnections, a refusing listenInit, …).
      if (rest.length > 0 && socket.readyState !== -1) request.events.data(socket, rest);
      return;
    }
    this.upgradeTls(socket, header, rest, undefined);
  }

  /**
   * Starts TLS on a socket whose header is read: with the certificate for `serverName` when the inner
   * transport has an `sni` map, else through the inner transport's own `upgrade`.
   */
  upgradeTls(
    socket: BunSocket,
    header: ProxyHeader,
    hello: Uint8Array,
    serverName: string | undefined,
  ): void {
    const request = this.request;
    // The raw twin keeps this table and this `data`: mark it so its ciphertext is ignored.
    socket.data = TWIN;
    this.upgrading = header;
    try {
      let upgraded: TransportSocket;
      if (this.sni !== undefined && typeof socket.upgradeTLS === "function") {
        const options: Parameters<NonNullable<BunSocket["upgradeTLS"]>>[0] = {
          isServer: true,
          tls: this.sni.optionsFor(serverName),
          socket: bunHandlers(this.tlsEvents),
          data: request.data,
        };
        if (hello.length > 0) options.initialData = hello;
        upgraded = socket.upgradeTLS(options)[1];
      } else {
        upgraded = this.inner.upgrade!(socket, {
          isServer: true,
          events: this.tlsEvents,
          data: request.data,
          initialData: hello.length > 0 ? hello : undefined,
        });
      }
      setProxyHeader(upgraded, header);
    } catch (error) {
      socket.terminate();
      this.onReject(
        new ProxyHeaderError("the TLS upgrade after the header failed", socket.remoteAddress, error),
      );
    } finally {
      this.upgrading = undefined;
    }
  }
}

/** One handler table per listener (Bun wants a table per listen call), dispatching on `socket.data`. */
function handlersFor(listener: ProxyListener): TransportEvents {
  const events = listener.request.events;
  return {
    open(socket: BunSocket) {
      // Near the server's open-file limit, a socket is not held for its header (see ListenRequest.admit).
      if (listener.request.admit?.() === false) {
        socket.data = TWIN;
        socket.terminate();
        return;
      }
      socket.data = new Pending(listener, performance.now() + listener.options.timeoutMs);
      if (!listener.trusted(socket.remoteAddress)) {
        listener.reject(socket, "the source address is not trusted to send one");
        return;
      }
      listener.pending.add(socket);
    },
    data(socket: BunSocket, chunk: Uint8Array) {
      const p = socket.data;
      if (p instanceof Pending) return onHeaderBytes(listener, socket, p, chunk);
      if (p !== TWIN) events.data(socket, chunk);
    },
    drain(socket: BunSocket) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.drain(socket);
    },
    end(socket: BunSocket) {
      const p = socket.data;
      if (p instanceof Pending)
        listener.reject(socket, `the connection ended before ${stage(p)} was complete`);
      else if (p !== TWIN) events.end(socket);
    },
    close(socket: BunSocket, error?: Error) {
      const p = socket.data;
      if (p instanceof Pending) {
        listener.reject(socket, `the connection closed before ${stage(p)} was complete`, error);
      } else if (p !== TWIN) events.close(socket, error);
    },
    error(socket: BunSocket, error: Error) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.error(socket, error);
    },
    handshake(socket: BunSocket, success: boolean, authorizationError: Error | null) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.handshake(socket, success, authorizationError);
    },
  };
}

/** What a socket in the header stage is still sending. */
function stage(p: Pending): string {
  return p.header === undefined ? "the header" : "the TLS ClientHello after the header";
}

function onHeaderBytes(listener: ProxyListener, socket: BunSocket, p: Pending, chunk: Uint8Array): void {
  // Most headers arrive in one read: only a split header pays for a copy.
  let bytes = chunk;
  if (p.buffer !== undefined) {
    const needed = p.length + chunk.length;
    if (needed > p.buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * p.buffer.length));
      grown.set(p.buffer.subarray(0, p.length));
      p.buffer = grown;
    }
    p.buffer.set(chunk, p.length);
    p.length = needed;
    bytes = p.buffer.subarray(0, needed);
  }
  if (p.header !== undefined) {
    // The header is read; this is the ClientHello, for its server name (see ProxyListener.handOff).
    const name = readServerName(bytes);
    if (name === HELLO_INCOMPLETE && bytes.length < MAX_HELLO) return;
    listener.pending.delete(socket);
    listener.upgradeTls(socket, p.header, bytes, typeof name === "string" ? name : undefined);
    return;
  }
  let result: ReturnType<typeof parseProxyHeader>;
  try {
    result = parseProxyHeader(bytes);
  } catch (error) {
    const info = error instanceof Error ? error.message.replace(MESSAGE_PREFIX, "") : String(error);
    listener.reject(socket, info, error);
    return;
  }
  if (result === "incomplete") {
    // The parser bounds each version (107 bytes for v1, 16 + 65535 for v2), so this holds at most that.
    if (bytes.length > MAX_V2_LENGTH) listener.reject(socket, "header too long");
    else if (p.buffer === undefined) {
      // A copy (Bun may reuse nothing, but `chunk.slice()` would be a view on a Buffer anyway).
      p.buffer = new Uint8Array(Math.max(256, 2 * chunk.length));
      p.buffer.set(chunk);
      p.length = chunk.length;
    }
    return;
  }
  if (!listener.options.versions.includes(result.header.version)) {
    listener.reject(socket, `version ${result.header.version} is not accepted here`);
    return;
  }
  listener.handOff(socket, p, result.header, bytes.subarray(result.length));
}

class ProxyTransport implements Transport {
  readonly name: string;
  readonly secure: boolean;

  constructor(
    readonly inner: Transport,
    readonly options: ProxyOptions,
    readonly onReject: (error: ProxyHeaderError) => void,
  ) {
    this.name = inner.name;
    this.secure = inner.secure;
    if (inner.secure && typeof inner.upgrade !== "function") {
      throw new ArgumentError(
        "inner",
        "a secure transport with upgrade() (TLS starts after the header)",
        inner.name,
      );
    }
    if (inner.handshakeError !== undefined) this.handshakeError = inner.handshakeError.bind(inner);
    if (inner.upgrade !== undefined) this.upgrade = inner.upgrade.bind(inner);
  }

  upgrade?: Transport["upgrade"];
  handshakeError?: Transport["handshakeError"];

  listen(request: ListenRequest): TransportListener {
    return new ProxyListener(this.inner, this.options, this.onReject, request);
  }

  /** Outbound connections are the inner transport's (a PROXY header is for the accepting side). */
  connect(request: ConnectRequest): Promise<TransportSocket> {
    return this.inner.connect(request);
  }
}

/**
 * A transport that accepts plain TCP, reads a PROXY protocol header (v1 or v2) from each socket,
 * then hands the socket to the library over `inner` (plain TCP, or TLS: the handshake starts after
 * the header). The header is recorded for {@link proxyHeaderOf}. A socket from an address outside
 * `options.trusted`, with a bad, late (`timeoutMs`) or missing header, or a version not in
 * `options.versions`, is reset and reported to `onReject` (never to the library). Behind the
 * header, `tls()` reads the ClientHello first (waiting at most `max(timeoutMs, sniTimeout)` from
 * the header) and picks the certificate of its `sni` map by the server name; another TLS
 * transport is started through its own `upgrade`.
 *
 * @example
 * const server = await startServer(handler, undefined, 0, {
 *   transport: proxyTransport(tcp(), proxyOptions(true)!, (e) => console.warn(e.message)),
 * });
 * // in a callback: proxyHeaderOf(socket)?.sourceAddress is the client's address
 */
export function proxyTransport(
  inner: Transport,
  options: ProxyOptions,
  onReject: (error: ProxyHeaderError) => void,
): Transport {
  if (!isTransport(inner)) throw new ArgumentError("inner", "a Transport (tcp(), tls(), unix() …)", inner);
  if (
    options === null ||
    typeof options !== "object" ||
    !Array.isArray(options.versions) ||
    !Array.isArray(options.trusted) ||
    typeof options.timeoutMs !== "number"
  ) {
    throw new ArgumentError("options", "ProxyOptions (from proxyOptions())", options);
  }
  if (typeof onReject !== "function") throw new ArgumentError("onReject", "a function", onReject);
  return new ProxyTransport(inner, options, onReject);
}

// ---------------------------------------------------------------- connector side

class ProxyConnectTransport implements Transport {
  readonly name: string;
  readonly secure: boolean;
  upgrade?: Transport["upgrade"];
  handshakeError?: Transport["handshakeError"];

  constructor(
    readonly inner: Transport,
    readonly header: Uint8Array,
  ) {
    this.name = inner.name;
    this.secure = inner.secure;
    if (inner.secure && typeof inner.upgrade !== "function") {
      throw new ArgumentError(
        "inner",
        "a secure transport with upgrade() (TLS starts after the header)",
        inner.name,
      );
    }
    if (inner.handshakeError !== undefined) this.handshakeError = inner.handshakeError.bind(inner);
    if (inner.upgrade !== undefined) this.upgrade = inner.upgrade.bind(inner);
  }

  listen(request: ListenRequest): TransportListener {
    return this.inner.listen(request);
  }

  connect(request: ConnectRequest): Promise<TransportSocket> {
    const header = this.header;
    const events = request.events;
    if (!this.inner.secure) {
      // The header goes out inside `open`, before the library can write anything.
      const table: TransportEvents = {
        ...events,
        open(socket) {
          writeAll(socket, header);
          events.open(socket);
        },
      };
      return Bun.connect<unknown>({
        hostname: request.hostname,
        port: request.port,
        socket: bunHandlers(table),
        data: request.data,
        allowHalfOpen: true,
      }) as Promise<TransportSocket>;
    }
    const inner = this.inner;
    const { promise, resolve, reject } = Promise.withResolvers<TransportSocket>();
    const ignore = () => {};
    Bun.connect<unknown>({
      hostname: request.hostname,
      port: request.port,
      data: undefined,
      allowHalfOpen: true,
      socket: {
        open(socket) {
          writeAll(socket as unknown as TransportSocket, header);
          // The raw twin keeps this table: after the upgrade it only sees ciphertext, ignored here.
          socket.data = TWIN;
          try {
            resolve(
              inner.upgrade!(socket as unknown as TransportSocket, {
                isServer: false,
                events,
                data: request.data,
                initialData: undefined,
              }),
            );
          } catch (error) {
            socket.terminate();
            reject(error);
          }
        },
        data: ignore,
        drain: ignore,
        end: ignore,
        close: ignore,
        error: ignore,
        connectError(_socket, error) {
          reject(error);
        },
      },
    }).catch(reject);
    return promise;
  }
}

/** Writes the whole header: it is far below one segment, so a short write means a dead socket. */
function writeAll(socket: TransportSocket, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    const n = socket.write(bytes, offset, bytes.length - offset);
    if (n <= 0) return;
    offset += n;
  }
}

/**
 * A transport that connects over plain TCP, sends `header` (see {@link encodeProxyHeader}) first,
 * then carries on over `inner`: plain TCP as is, TLS by upgrading the socket on the client side
 * (so the TLS handshake follows the header, as behind a balancer). Set `serverName` in the TLS
 * options: an upgraded socket has no host name to verify against otherwise.
 *
 * @example
 * const header = encodeProxyHeader({ version: 2, sourceAddress: "203.0.113.7", sourcePort: 40000,
 *   destinationAddress: "127.0.0.1", destinationPort: port });
 * await startConnector(handler, undefined, "127.0.0.1", port, {
 *   transport: proxyConnectTransport(tcp(), header),
 * });
 */
export function proxyConnectTransport(inner: Transport, header: Uint8Array): Transport {
  if (!isTransport(inner)) throw new ArgumentError("inner", "a Transport (tcp(), tls() …)", inner);
  if (!(header instanceof Uint8Array) || header.length === 0) {
    throw new ArgumentError("header", "a non-empty Uint8Array (from encodeProxyHeader())", header);
  }
  return new ProxyConnectTransport(inner, Uint8Array.prototype.slice.call(header));
}
