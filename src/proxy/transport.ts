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
 * Layout: `header-stage.ts` holds the per-socket state and the handler table of the header stage,
 * `listener.ts` the listener (pending sockets, the sweep, the hand-off and TLS start),
 * `connect-transport.ts` the connector side; this module the transport itself. Everything public
 * is importable from here.
 *
 * @module
 */
import { ArgumentError, type ProxyHeaderError } from "../errors.ts";
import {
  type ConnectRequest,
  isTransport,
  type ListenRequest,
  type Transport,
  type TransportListener,
  type TransportSocket,
} from "../transport/transport.ts";
import { ProxyListener } from "./listener.ts";
import type { ProxyOptions } from "./options.ts";

export { proxyConnectTransport } from "./connect-transport.ts";

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
