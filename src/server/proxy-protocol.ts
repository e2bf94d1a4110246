/**
 * The `proxyProtocol` server option: behind a load balancer (HAProxy, nginx, an NLB) every connection
 * starts with a PROXY protocol header naming the real client. The listening transport is wrapped so the
 * header is read and checked before anything else (before the TLS handshake on a TLS server); the
 * connection then reports the client's address (`meta.remoteAddress`, `meta.remotePort`) and the header
 * (`meta.proxy`). A missing, malformed, late or untrusted header drops that connection as a start failure
 * (`ProxyHeaderError`, a peer fault); the server serves on.
 *
 * @module
 */
import type { ProxyHeaderError } from "../errors.ts";
import { type ProxyHeader, proxyHeaderOf } from "../proxy/header.ts";
import { proxyOptions } from "../proxy/options.ts";
import { proxyTransport } from "../proxy/transport.ts";
import type { Transport, TransportSocket } from "../transport/transport.ts";

/** The transport a server listens with: `transport` itself, or wrapped in the PROXY header stage. */
export function serverTransport(
  transport: Transport,
  option: unknown,
  onReject: (error: ProxyHeaderError) => void,
): Transport {
  const options = proxyOptions(option);
  return options === undefined ? transport : proxyTransport(transport, options, onReject);
}

/** The PROXY header an accepted socket arrived with (only sockets of a `proxyProtocol` server have one). */
export function proxyHeaderFor(socket: TransportSocket): ProxyHeader | undefined {
  return proxyHeaderOf(socket);
}
