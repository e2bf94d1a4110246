/**
 * The connector side of the PROXY protocol: {@link proxyConnectTransport} writes a PROXY header
 * first on every connection it makes, then carries on over the inner transport (TLS by upgrading
 * the socket after the header, as a balancer would pass it through).
 *
 * @module
 */
import { ArgumentError } from "../errors.ts";
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
import { TWIN } from "./header-stage.ts";

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
