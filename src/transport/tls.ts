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
 * Bun quirks handled here (BUN-SOCKETS.md §0 and §5):
 * - `ALPNProtocols` must be wire format (length-prefixed bytes): `alpn: string[]` is encoded here.
 * - `minVersion`/`maxVersion` must be numbers: `"TLSv1.2"`/`"TLSv1.3"` are mapped here.
 * - The handshake's `success` flag is not the verdict: an untrusted client certificate gives
 *   `success === true` with `authorized === false`. {@link TlsTransport.handshakeError} decides.
 * - `Bun.listen({ tls: [...] })` (several certificates) is rejected, so an `sni` server listens in
 *   plain TCP, reads the ClientHello itself and upgrades each socket with the chosen certificate.
 * - `upgradeTLS` returns `[raw, tls]`; the raw twin keeps the old handlers and the old `socket.data`
 *   (a copy of the reference taken at upgrade time), and receives the ciphertext. The connection
 *   detaches the old socket's `data` before calling {@link TlsTransport.upgrade}, so the twin starts
 *   detached; the `sni` listener does the same with its own table.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { OptionError, TlsHandshakeError } from "../errors.ts";
import {
  bunHandlers,
  type ConnectRequest,
  type ListenRequest,
  type Transport,
  type TransportListener,
  type TransportSocket,
  type UpgradeRequest,
} from "./transport.ts";

/** PEM text, as a string or bytes. */
export type Pem = string | Uint8Array;

/** A certificate and its key, for one server name of {@link TlsOptions.sni}. */
export interface TlsCertificate {
  /** PEM certificate (chain). Exclusive with `certFile`. */
  readonly cert?: Pem;
  /** PEM private key. Exclusive with `keyFile`. */
  readonly key?: Pem;
  /** Path of a PEM certificate file, read once by `tls()`. */
  readonly certFile?: string;
  /** Path of a PEM key file, read once by `tls()`. */
  readonly keyFile?: string;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
}

/** A TLS protocol version. */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";

/**
 * Options of {@link tls}. Certificates and keys are PEM (strings or bytes) or PEM files
 * (`certFile`, `keyFile`, `caFile`, read when `tls()` is called). Everything is validated by `tls()`:
 * a bad value throws an {@link OptionError} naming the option.
 */
export interface TlsOptions extends TlsCertificate {
  /** Trusted CA certificate(s), PEM. Without `ca`/`caFile`, the system's roots are trusted. */
  readonly ca?: Pem | readonly Pem[];
  /** Path of a PEM file of trusted CA certificate(s). Exclusive with `ca`. */
  readonly caFile?: string;
  /** Client: the name sent as SNI and checked against the server certificate. @default the host connected to */
  readonly serverName?: string;
  /**
   * Client: reject a server whose certificate does not verify (chain or name). Server with
   * `requestCert`: reject a client whose certificate does not verify. The connection then ends with
   * a `TlsHandshakeError` (`ERR_TLS_HANDSHAKE`). @default true
   */
  readonly rejectUnauthorized?: boolean;
  /** Server: ask the client for a certificate (mutual TLS), verified against `ca`. @default false */
  readonly requestCert?: boolean;
  /** ALPN protocols, most preferred first, e.g. `["h2", "http/1.1"]`. Read the result in `meta.alpnProtocol`. */
  readonly alpn?: readonly string[];
  /** Lowest protocol version accepted. @default "TLSv1.2" (Bun's default) */
  readonly minVersion?: TlsVersion;
  /** Highest protocol version accepted. @default "TLSv1.3" */
  readonly maxVersion?: TlsVersion;
  /** OpenSSL cipher list (TLS 1.2 and below). */
  readonly ciphers?: string;
  /**
   * Server: several certificates on one listener, chosen by the server name the client sends (SNI).
   * Keys are names (`"alt.example"`) or one-label wildcards (`"*.example.com"`). A client that sends
   * no name, or an unknown one, gets the top-level `cert`/`key`, or the first entry when there is
   * none. A STARTTLS upgrade always uses the top-level certificate (or the first entry).
   *
   * @example
   * tls({ cert, key, sni: { "alt.example": { cert: altCert, key: altKey } } })
   */
  readonly sni?: Readonly<Record<string, TlsCertificate>>;
  /** Server with `sni`: ms a client may take to send its ClientHello before it is dropped. @default 10000 */
  readonly sniTimeout?: number;
}

const OPTION_KEYS = new Set([
  "cert",
  "key",
  "certFile",
  "keyFile",
  "passphrase",
  "ca",
  "caFile",
  "serverName",
  "rejectUnauthorized",
  "requestCert",
  "alpn",
  "minVersion",
  "maxVersion",
  "ciphers",
  "sni",
  "sniTimeout",
]);
const CERT_KEYS = new Set(["cert", "key", "certFile", "keyFile", "passphrase"]);

const VERSIONS: Record<TlsVersion, number> = {
  TLSv1: 0x0301,
  "TLSv1.1": 0x0302,
  "TLSv1.2": 0x0303,
  "TLSv1.3": 0x0304,
};

/** Bun's TLS options, as far as we set them (some are accepted but not in Bun's types). */
interface BunTls {
  cert?: Pem;
  key?: Pem;
  passphrase?: string;
  ca?: Pem | Pem[];
  serverName?: string;
  rejectUnauthorized?: boolean;
  requestCert?: boolean;
  ALPNProtocols?: Uint8Array;
  minVersion?: number;
  maxVersion?: number;
  ciphers?: string;
}

/** The Bun socket surface used for upgrades and the `sni` listener. */
interface BunSocket extends TransportSocket {
  upgradeTLS(options: {
    isServer?: boolean;
    tls: BunTls;
    socket: unknown;
    data: unknown;
    initialData?: Uint8Array;
  }): [TransportSocket, TransportSocket];
}

/** `socket.data` of a raw twin the library no longer listens to (the `sni` listener's table ignores it). */
const SNIFF_DONE = Symbol("sockerl.sniffDone");

class TlsTransport implements Transport {
  readonly name = "tls";
  readonly secure = true;
  readonly #server: BunTls | undefined;
  readonly #client: BunTls;
  /** Name → server options, for `sni` (exact names). */
  readonly #byName: Map<string, BunTls> | undefined;
  /** `*.suffix` → server options, for `sni` wildcards (key: ".suffix"). */
  readonly #byWildcard: Map<string, BunTls> | undefined;
  readonly #requestCert: boolean;
  readonly #rejectUnauthorized: boolean;
  readonly #sniTimeout: number;

  constructor(options: TlsOptions) {
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      throw new OptionError("tls options", "an object", options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new OptionError(key, "a known option", (options as never)[key]);
    }
    const own = readCertificate(options, "");
    const common: BunTls = {};
    const ca = readCa(options);
    if (ca !== undefined) common.ca = ca;
    const rejectUnauthorized = booleanOption("rejectUnauthorized", options.rejectUnauthorized);
    const requestCert = booleanOption("requestCert", options.requestCert);
    this.#rejectUnauthorized = rejectUnauthorized !== false;
    this.#requestCert = requestCert === true;
    if (rejectUnauthorized !== undefined) common.rejectUnauthorized = rejectUnauthorized;
    if (options.alpn !== undefined) common.ALPNProtocols = encodeAlpn(options.alpn);
    const min = versionOption("minVersion", options.minVersion);
    const max = versionOption("maxVersion", options.maxVersion);
    if (min !== undefined && max !== undefined && min > max) {
      throw new OptionError(
        "minVersion",
        `at most \`maxVersion\` (${options.maxVersion})`,
        options.minVersion,
      );
    }
    if (min !== undefined) common.minVersion = min;
    if (max !== undefined) common.maxVersion = max;
    if (options.ciphers !== undefined) common.ciphers = stringOption("ciphers", options.ciphers);
    if (options.serverName !== undefined) stringOption("serverName", options.serverName);
    this.#sniTimeout =
      options.sniTimeout === undefined ? 10_000 : millisecondsOption("sniTimeout", options.sniTimeout);

    // Client side: our own certificate is the client certificate (mTLS).
    this.#client = { ...common, ...own };
    if (options.serverName !== undefined) this.#client.serverName = options.serverName;

    // Server side.
    const serverCommon: BunTls = { ...common };
    if (requestCert !== undefined) serverCommon.requestCert = requestCert;
    let fallback: BunTls | undefined = own.cert === undefined ? undefined : { ...serverCommon, ...own };
    if (options.sni !== undefined) {
      const sni = options.sni;
      if (sni === null || typeof sni !== "object" || Array.isArray(sni) || Object.keys(sni).length === 0) {
        throw new OptionError("sni", "an object of server name → { cert, key }, with at least one name", sni);
      }
      this.#byName = new Map();
      this.#byWildcard = new Map();
      for (const [rawName, entry] of Object.entries(sni)) {
        const name = rawName.toLowerCase();
        if (!/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(name)) {
          throw new OptionError("sni", "keyed by host names (or `*.` wildcards)", rawName);
        }
        if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
          throw new OptionError(`sni["${rawName}"]`, "an object { cert, key }", entry);
        }
        for (const key of Object.keys(entry)) {
          if (!CERT_KEYS.has(key)) throw new OptionError(`sni["${rawName}"].${key}`, "a known option", "…");
        }
        const certificate = readCertificate(entry, `sni["${rawName}"].`);
        if (certificate.cert === undefined) {
          throw new OptionError(`sni["${rawName}"].cert`, "set (with `key`)", undefined);
        }
        const bun = { ...serverCommon, ...certificate };
        if (name.startsWith("*.")) this.#byWildcard.set(name.slice(1), bun);
        else this.#byName.set(name, bun);
        fallback ??= bun;
      }
    }
    this.#server = fallback;
  }

  listen(request: ListenRequest): TransportListener {
    const server = this.#serverOptions();
    if (this.#byName !== undefined) return new SniListener(this, request);
    return Bun.listen<unknown>({
      hostname: request.hostname,
      port: request.port,
      socket: bunHandlers(request.events),
      data: request.data,
      allowHalfOpen: true,
      tls: server as Bun.TLSOptions,
      ...({ reusePort: request.reusePort } as object),
    });
  }

  connect(request: ConnectRequest): Promise<TransportSocket> {
    return Bun.connect<unknown>({
      hostname: request.hostname,
      port: request.port,
      socket: bunHandlers(request.events),
      data: request.data,
      allowHalfOpen: true,
      tls: this.#client as Bun.TLSOptions,
    }) as Promise<TransportSocket>;
  }

  upgrade(socket: TransportSocket, request: UpgradeRequest): TransportSocket {
    const bun = socket as BunSocket;
    if (typeof bun.upgradeTLS !== "function") {
      throw new TypeError("tls() can only upgrade a Bun TCP socket (the socket has no upgradeTLS)");
    }
    const options: {
      isServer: boolean;
      tls: BunTls;
      socket: unknown;
      data: unknown;
      initialData?: Uint8Array;
    } = {
      isServer: request.isServer,
      tls: request.isServer ? this.#serverOptions() : this.#client,
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
    const verify = isServer ? this.#requestCert && this.#rejectUnauthorized : this.#rejectUnauthorized;
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
      const exact = this.#byName?.get(serverName);
      if (exact !== undefined) return exact;
      const dot = serverName.indexOf(".");
      if (dot > 0) {
        const wild = this.#byWildcard?.get(serverName.slice(dot));
        if (wild !== undefined) return wild;
      }
    }
    return this.#server!;
  }

  /** @internal */
  get sniTimeout(): number {
    return this.#sniTimeout;
  }

  #serverOptions(): BunTls {
    if (this.#server === undefined) {
      throw new OptionError("cert", "set (with `key`) for a TLS server", undefined);
    }
    return this.#server;
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

// ---------------------------------------------------------------- SNI listener

/** Per-socket state while the ClientHello is read. */
class Sniff {
  chunks: Uint8Array[] = [];
  bytes = 0;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  constructor(readonly listener: SniListener) {}
}

/** Longest ClientHello we wait for (bytes). */
const MAX_HELLO = 64 * 1024;

/** Handlers of an `sni` listener's plain sockets: collect the ClientHello, then upgrade. */
const SNIFF_EVENTS = {
  open(socket: BunSocket) {
    const listener = socket.data as SniListener;
    const sniff = new Sniff(listener);
    socket.data = sniff;
    listener.pending.add(socket);
    sniff.timer = setTimeout(() => {
      listener.pending.delete(socket);
      socket.data = SNIFF_DONE;
      socket.terminate();
    }, listener.transport.sniTimeout);
  },
  data(socket: BunSocket, chunk: Uint8Array) {
    const sniff = socket.data;
    if (!(sniff instanceof Sniff)) return;
    sniff.chunks.push(chunk);
    sniff.bytes += chunk.byteLength;
    const hello = sniff.chunks.length === 1 ? chunk : Buffer.concat(sniff.chunks);
    const name = readServerName(hello);
    if (name === INCOMPLETE && sniff.bytes < MAX_HELLO) return;
    sniff.listener.upgrade(socket, sniff, hello, typeof name === "string" ? name : undefined);
  },
  drain() {},
  end(socket: BunSocket) {
    if (socket.data instanceof Sniff) socket.end();
  },
  close(socket: BunSocket) {
    const sniff = socket.data;
    if (!(sniff instanceof Sniff)) return;
    clearTimeout(sniff.timer);
    sniff.listener.pending.delete(socket);
  },
  error() {},
};

/** A plain listener whose sockets become TLS once their ClientHello names a certificate. */
class SniListener implements TransportListener {
  readonly #listener: Bun.TCPSocketListener<unknown>;
  readonly #request: ListenRequest;
  /** Sockets still sending their ClientHello (closed by `stop`). */
  readonly pending = new Set<BunSocket>();

  constructor(
    readonly transport: TlsTransport,
    request: ListenRequest,
  ) {
    this.#request = request;
    this.#listener = Bun.listen<unknown>({
      hostname: request.hostname,
      port: request.port,
      socket: SNIFF_EVENTS as unknown as Bun.SocketHandler<unknown>,
      data: this,
      allowHalfOpen: true,
      ...({ reusePort: request.reusePort } as object),
    });
  }

  get port(): number {
    return this.#listener.port;
  }

  get hostname(): string {
    return this.#listener.hostname;
  }

  stop(closeActive?: boolean): void {
    this.#listener.stop(closeActive === true);
    for (const socket of this.pending) {
      const sniff = socket.data;
      if (sniff instanceof Sniff) clearTimeout(sniff.timer);
      socket.data = SNIFF_DONE;
      socket.terminate();
    }
    this.pending.clear();
  }

  /** Hands the socket to the library as TLS, with the certificate for `serverName`. */
  upgrade(socket: BunSocket, sniff: Sniff, hello: Uint8Array, serverName: string | undefined): void {
    clearTimeout(sniff.timer);
    this.pending.delete(socket);
    // The raw twin copies `data` now: mark it done so its ciphertext and close are ignored here.
    socket.data = SNIFF_DONE;
    const request = this.#request;
    try {
      // The new socket's `open` fires inside upgradeTLS: the library accepts it there.
      socket.upgradeTLS({
        isServer: true,
        tls: this.transport.optionsFor(serverName),
        socket: bunHandlers(request.events),
        data: request.data,
        initialData: hello,
      });
    } catch {
      socket.terminate();
    }
  }
}

const INCOMPLETE = 0;
const INVALID = 1;

/**
 * The SNI host name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), lower-cased; `undefined`
 * when the hello has none; {@link INCOMPLETE} when more bytes are needed; {@link INVALID} when the
 * bytes are not a ClientHello (the TLS layer then fails the handshake).
 */
export function readServerName(bytes: Uint8Array): string | undefined | typeof INCOMPLETE | typeof INVALID {
  // Reassemble the handshake message from its records (it may span several).
  let hs: Uint8Array = new Uint8Array(0);
  let offset = 0;
  let needed = -1;
  while (needed < 0 || hs.byteLength < needed) {
    if (offset + 5 > bytes.byteLength) return INCOMPLETE;
    if (bytes[offset] !== 0x16 || bytes[offset + 1] !== 0x03) return INVALID; // handshake record, TLS 1.x
    const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
    if (length === 0 || length > 16384) return INVALID;
    if (offset + 5 + length > bytes.byteLength) return INCOMPLETE;
    const fragment = bytes.subarray(offset + 5, offset + 5 + length);
    hs = hs.byteLength === 0 ? fragment : Buffer.concat([hs, fragment]);
    offset += 5 + length;
    if (needed < 0 && hs.byteLength >= 4) {
      if (hs[0] !== 0x01) return INVALID; // client_hello
      needed = 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!);
      if (needed > MAX_HELLO) return INVALID;
    }
  }
  const body = hs.subarray(4, needed);
  const end = body.byteLength;
  let p = 2 + 32; // legacy_version, random
  if (p >= end) return INVALID;
  p += 1 + body[p]!; // legacy_session_id
  if (p + 2 > end) return INVALID;
  p += 2 + ((body[p]! << 8) | body[p + 1]!); // cipher_suites
  if (p >= end) return INVALID;
  p += 1 + body[p]!; // legacy_compression_methods
  if (p === end) return undefined; // no extensions
  if (p + 2 > end) return INVALID;
  const extensionsEnd = p + 2 + ((body[p]! << 8) | body[p + 1]!);
  if (extensionsEnd > end) return INVALID;
  p += 2;
  while (p + 4 <= extensionsEnd) {
    const type = (body[p]! << 8) | body[p + 1]!;
    const length = (body[p + 2]! << 8) | body[p + 3]!;
    p += 4;
    if (p + length > extensionsEnd) return INVALID;
    if (type === 0x0000) {
      // server_name: list length, then (name_type, length, name)*
      let q = p + 2;
      const listEnd = p + length;
      while (q + 3 <= listEnd) {
        const nameType = body[q]!;
        const nameLength = (body[q + 1]! << 8) | body[q + 2]!;
        q += 3;
        if (q + nameLength > listEnd) return INVALID;
        if (nameType === 0)
          return Buffer.from(body.subarray(q, q + nameLength))
            .toString("latin1")
            .toLowerCase();
        q += nameLength;
      }
      return undefined;
    }
    p += length;
  }
  return undefined;
}

// ---------------------------------------------------------------- option parsing

/** Encodes ALPN protocol names to TLS wire format (each name prefixed by its length). */
export function encodeAlpn(protocols: unknown): Uint8Array {
  if (!Array.isArray(protocols) || protocols.length === 0) {
    throw new OptionError("alpn", "a non-empty array of protocol names", protocols);
  }
  const parts: Uint8Array[] = [];
  for (const protocol of protocols) {
    const bytes = typeof protocol === "string" ? Buffer.from(protocol, "utf8") : undefined;
    if (bytes === undefined || bytes.byteLength === 0 || bytes.byteLength > 255) {
      throw new OptionError("alpn", "an array of protocol names of 1 to 255 bytes", protocols);
    }
    parts.push(Uint8Array.of(bytes.byteLength), bytes);
  }
  return Buffer.concat(parts);
}

function booleanOption(option: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new OptionError(option, "a boolean", value);
}

function stringOption(option: string, value: unknown): string {
  if (typeof value === "string" && value.length > 0) return value;
  throw new OptionError(option, "a non-empty string", value);
}

function millisecondsOption(option: string, value: unknown): number {
  if (
    typeof value === "number" &&
    value > 0 &&
    (Number.isFinite(value) || value === Number.POSITIVE_INFINITY)
  ) {
    return value;
  }
  throw new OptionError(option, "a positive number of milliseconds", value);
}

function versionOption(option: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const version = typeof value === "string" ? VERSIONS[value as TlsVersion] : undefined;
  if (version === undefined) {
    throw new OptionError(option, '"TLSv1", "TLSv1.1", "TLSv1.2" or "TLSv1.3"', value);
  }
  return version;
}

/** PEM text of `value`, or an OptionError. Never echoes key material in the message. */
function pemOption(option: string, value: unknown, secret: boolean): string {
  const text =
    typeof value === "string"
      ? value
      : value instanceof Uint8Array
        ? Buffer.from(value).toString("utf8")
        : undefined;
  if (text === undefined || !text.includes("-----BEGIN ")) {
    throw new OptionError(option, "PEM text (a string or bytes)", secret ? redact(value) : value);
  }
  return text;
}

function redact(value: unknown): unknown {
  return typeof value === "string" || value instanceof Uint8Array ? "[redacted]" : value;
}

function fileOption(option: string, path: unknown): string {
  if (typeof path !== "string" || path.length === 0) throw new OptionError(option, "a file path", path);
  try {
    return readFileSync(path, "utf8");
  } catch {
    throw new OptionError(option, "a readable file", path);
  }
}

/** Reads `cert`/`key` (or the files) of `source`, checking that the key parses and matches. */
function readCertificate(source: TlsCertificate, prefix: string): BunTls {
  const out: BunTls = {};
  if (source.cert !== undefined && source.certFile !== undefined) {
    throw new OptionError(`${prefix}certFile`, "unset when `cert` is given", source.certFile);
  }
  if (source.key !== undefined && source.keyFile !== undefined) {
    throw new OptionError(`${prefix}keyFile`, "unset when `key` is given", source.keyFile);
  }
  const cert =
    source.certFile !== undefined
      ? pemOption(`${prefix}certFile`, fileOption(`${prefix}certFile`, source.certFile), false)
      : source.cert !== undefined
        ? pemOption(`${prefix}cert`, source.cert, false)
        : undefined;
  const key =
    source.keyFile !== undefined
      ? pemOption(`${prefix}keyFile`, fileOption(`${prefix}keyFile`, source.keyFile), true)
      : source.key !== undefined
        ? pemOption(`${prefix}key`, source.key, true)
        : undefined;
  const passphrase =
    source.passphrase === undefined ? undefined : stringOption(`${prefix}passphrase`, source.passphrase);
  if ((cert === undefined) !== (key === undefined)) {
    const missing = cert === undefined ? "cert" : "key";
    const other = missing === "cert" ? "key" : "cert";
    throw new OptionError(`${prefix}${missing}`, `set when \`${other}\` is given`, undefined);
  }
  if (cert === undefined || key === undefined) return out;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new OptionError(`${prefix}cert`, "a PEM certificate", source.cert ?? source.certFile);
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(passphrase === undefined ? { key } : { key, passphrase });
  } catch {
    throw new OptionError(
      `${prefix}key`,
      passphrase === undefined
        ? "a PEM private key (encrypted? set `passphrase`)"
        : "a PEM private key for `passphrase`",
      source.keyFile ?? "[redacted]",
    );
  }
  if (!certificate.checkPrivateKey(keyObject)) {
    throw new OptionError(`${prefix}key`, "the private key of `cert`", source.keyFile ?? "[redacted]");
  }
  out.cert = cert;
  out.key = key;
  if (passphrase !== undefined) out.passphrase = passphrase;
  return out;
}

function readCa(options: TlsOptions): Pem | Pem[] | undefined {
  if (options.ca !== undefined && options.caFile !== undefined) {
    throw new OptionError("caFile", "unset when `ca` is given", options.caFile);
  }
  if (options.caFile !== undefined) return pemOption("caFile", fileOption("caFile", options.caFile), false);
  if (options.ca === undefined) return undefined;
  if (Array.isArray(options.ca)) {
    if (options.ca.length === 0)
      throw new OptionError("ca", "PEM text or a non-empty array of it", options.ca);
    return options.ca.map((pem: unknown) => pemOption("ca", pem, false));
  }
  return pemOption("ca", options.ca, false);
}
