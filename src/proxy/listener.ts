/**
 * The listener of {@link proxyTransport}: binds (through the inner transport, or plain TCP under a
 * TLS one), keeps the sockets still in the header stage, sweeps late headers, and hands each socket
 * on once its header is read, over plain TCP or after starting TLS.
 *
 * @module
 */
import { ProxyHeaderError } from "../errors.ts";
import { readServerName } from "../transport/tls.ts";
import {
  bunHandlers,
  type ListenRequest,
  type Transport,
  type TransportEvents,
  type TransportListener,
  type TransportSocket,
} from "../transport/transport.ts";
import { type ProxyHeader, setProxyHeader } from "./header.ts";
import { type BunSocket, HELLO_INCOMPLETE, handlersFor, MAX_HELLO, Pending, TWIN } from "./header-stage.ts";
import { type ProxyOptions, trustMatcher } from "./options.ts";

/** A TLS transport that picks its certificate by server name (the library's `tls({ sni })`). */
interface SniTransport {
  optionsFor(serverName: string | undefined): unknown;
  readonly sniTimeout?: number;
}

/** A listener whose sockets start with a PROXY header. */
export class ProxyListener implements TransportListener {
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
