/**
 * TLS transport: `tls(options)` for servers, connectors, and as the target of a STARTTLS upgrade
 * (`{ transport: tls(...) }` returned from any callback).
 *
 * ```text
 *   listen, one certificate ── Bun.listen({ tls }) ─────────────────────────────┐
 *   listen, `sni` map ──────── Bun.listen (plain) → read the ClientHello,        │ open → handshake
 *                              pick the certificate by server name,              ├──► connection
 *                              socket.upgradeTLS({ isServer, initialData }) ─────┤ (init runs after
 *   connect ────────────────── Bun.connect({ tls }) ────────────────────────────┤  the handshake)
 *   upgrade (STARTTLS) ─────── socket.upgradeTLS({ isServer, initialData }) ────┘
 * ```
 *
 * Bun behaviours handled here (docs/bun-sockets.md):
 * - The handshake's `success` flag is not the verdict: an untrusted client certificate gives
 *   `success === true` with `authorized === false`. {@link TlsTransport.handshakeError} decides.
 * - `Bun.listen({ tls: [...] })` (several certificates) is rejected, so an `sni` server listens in
 *   plain TCP and upgrades each socket itself (sni-listener.ts).
 * - `upgradeTLS` returns `[raw, tls]`; the raw twin keeps the old handlers and the old `socket.data`
 *   (a copy of the reference taken at upgrade time), and receives the ciphertext. The connection
 *   detaches the old socket's `data` before calling {@link TlsTransport.upgrade}, so the twin starts
 *   detached; the `sni` listener does the same with its own table.
 * - Option conversion (ALPN wire format, numeric versions) is in options.ts.
 *
 * @module
 */

import { nodeNet } from "../../builtins.ts";
import { OptionError, TlsHandshakeError } from "../../errors.ts";
import {
  bunConnect,
  bunHandlers,
  bunListen,
  COPIES_WRITES,
  type FdConnectRequest,
  TAKES_FD,
  type UpgradableSocket,
} from "../bun-options.ts";
import type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportListener,
  TransportSocket,
  UpgradeRequest,
} from "../transport.ts";
import { type BunTls, type ParsedTls, parseTlsOptions, type TlsOptions } from "./options.ts";
import { type CertificateChooser, SniListener } from "./sni-listener.ts";

/** The TLS transport: one validated option set, used for every role. */
class TlsTransport implements Transport, CertificateChooser {
  readonly name = "tls";
  readonly secure = true;
  readonly [TAKES_FD] = true;
  readonly [COPIES_WRITES] = true;
  readonly #options: ParsedTls;

  constructor(options: TlsOptions) {
    this.#options = parseTlsOptions(options);
  }

  listen(request: ListenRequest): TransportListener {
    const server = this.#serverOptions();
    if (this.#options.byName !== undefined) return new SniListener(this, request);
    return bunListen({
      endpoint: { hostname: request.hostname, port: request.port },
      handlers: request.events,
      data: request.data,
      tls: server,
      reusePort: request.reusePort,
    });
  }

  connect(request: ConnectRequest): Promise<TransportSocket> {
    const fd = (request as FdConnectRequest).fd;
    if (fd === undefined) {
      return bunConnect({
        endpoint: { hostname: request.hostname, port: request.port },
        handlers: request.events,
        data: request.data,
        tls: this.#options.client,
      });
    }
    // A descriptor connected by the connector's dial: Bun no longer knows the host, so the name to
    // send as SNI and check the certificate against is given here (an IP address is not a valid SNI
    // name; the certificate is then checked against the peer's address, as a connect by IP does).
    const client = this.#options.client as { serverName?: string };
    const tls =
      client.serverName === undefined && nodeNet().isIP(request.hostname) === 0
        ? { ...client, serverName: request.hostname }
        : client;
    return bunConnect({ endpoint: { fd }, handlers: request.events, data: request.data, tls });
  }

  upgrade(socket: TransportSocket, request: UpgradeRequest): TransportSocket {
    const bun = socket as UpgradableSocket;
    if (typeof bun.upgradeTLS !== "function") {
      throw new TypeError("tls() can only upgrade a Bun TCP socket (the socket has no upgradeTLS)");
    }
    const options: Parameters<UpgradableSocket["upgradeTLS"]>[0] = {
      isServer: request.isServer,
      tls: request.isServer ? this.#serverOptions() : this.#options.client,
      socket: bunHandlers(request.events),
      data: request.data,
    };
    if (request.initialData !== undefined && request.initialData.byteLength > 0) {
      options.initialData = request.initialData;
    }
    const result = bun.upgradeTLS(options);
    if (!Array.isArray(result) || result[1] === undefined) {
      throw new TypeError("upgradeTLS refused the socket (already TLS, or not established)");
    }
    return result[1];
  }

  handshakeError(
    socket: TransportSocket,
    success: boolean,
    authorizationError: Error | null,
    isServer: boolean,
  ): Error | undefined {
    // Bun's `success` is not the verdict: it is true for an untrusted client certificate
    // (authorized=false), and false for a server certificate that failed verification under
    // rejectUnauthorized: false with a serverName (data flows all the same). The server-side
    // `authorized` means nothing without requestCert. Decide by what was asked for.
    const { requestCert, rejectUnauthorized } = this.#options;
    const verify = isServer ? requestCert && rejectUnauthorized : rejectUnauthorized;
    if (!success && (verify || !isVerificationError(authorizationError))) {
      return new TlsHandshakeError(authorizationError?.message ?? "handshake failed", authorizationError);
    }
    if (verify && socket.authorized !== true) {
      const who = isServer ? "client" : "server";
      const why = authorizationError?.message ?? "no certificate";
      return new TlsHandshakeError(`${who} certificate rejected: ${why}`, authorizationError);
    }
    return undefined;
  }

  /** @internal The `sni` certificate for `serverName` (lower-case), else the default. */
  optionsFor(serverName: string | undefined): BunTls {
    if (serverName !== undefined) {
      const exact = this.#options.byName?.get(serverName);
      if (exact !== undefined) return exact;
      const dot = serverName.indexOf(".");
      if (dot > 0) {
        const wild = this.#options.byWildcard?.get(serverName.slice(dot));
        if (wild !== undefined) return wild;
      }
    }
    return this.#serverOptions();
  }

  /** @internal */
  get sniTimeout(): number {
    return this.#options.sniTimeout;
  }

  #serverOptions(): BunTls {
    const server = this.#options.server;
    if (server === undefined) {
      throw new OptionError("cert", "set (with `key`) for a TLS server", undefined);
    }
    return server;
  }
}

/**
 * TLS (also the target of a STARTTLS upgrade: return `{ transport: tls(...) }` from a callback).
 * Servers need `cert` and `key` (or `sni`); connectors verify the server against `ca` (or the
 * system roots) and `serverName`. Throws {@link OptionError} for a bad option, an unreadable file,
 * a key that does not parse (wrong `passphrase`) or does not match its certificate.
 *
 * @example
 * const server = await startServer(handler, undefined, 0, {
 *   transport: tls({ certFile: "server.pem", keyFile: "server-key.pem", alpn: ["myproto/1"] }),
 * });
 * const conn = await startConnector(handler, undefined, "localhost", server.port, {
 *   transport: tls({ caFile: "ca.pem", alpn: ["myproto/1"] }),
 * });
 */
export function tls(options: TlsOptions = {}): Transport {
  return new TlsTransport(options);
}

/**
 * Whether a handshake error is a certificate verification verdict (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `DEPTH_ZERO_SELF_SIGNED_CERT`, …), which `rejectUnauthorized: false`
 * waives, rather than a protocol failure (`EPROTO`: no common ALPN protocol or version, bad bytes).
 */
function isVerificationError(error: Error | null): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    /^(ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH|[A-Z0-9_]*(CERT|UNABLE_TO|SELF_SIGNED|ISSUER|CHAIN|EXPIRED|PURPOSE|REVOKED|CRL)[A-Z0-9_]*)$/.test(
      code,
    )
  );
}
