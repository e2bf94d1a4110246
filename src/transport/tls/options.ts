/**
 * `tls()` options: their types, and their validation into the option objects Bun takes. Everything is
 * checked (and every file read) once, when `tls()` is called, so a bad value throws an
 * {@link OptionError} naming the option at start instead of failing a handshake later.
 *
 * Bun's TLS options differ from what users write (see docs/bun-sockets.md#alpn-wire-format):
 * `ALPNProtocols` must be wire format (length-prefixed bytes), so `alpn: string[]` is encoded here;
 * `minVersion`/`maxVersion` must be numbers, so `"TLSv1.2"`/`"TLSv1.3"` are mapped here.
 *
 * @module
 */
import type { KeyObject, X509Certificate } from "node:crypto";
import { nodeCrypto, nodeFs } from "../../builtins.ts";
import { OptionError } from "../../errors.ts";
import { booleanOption, positiveMilliseconds, stringOption } from "../../validate.ts";

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

/** Bun's TLS options, as far as we set them (some are accepted but not in Bun's types). */
export interface BunTls {
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

/** `tls()` options once validated: what the transport needs, ready for Bun. */
export interface ParsedTls {
  /** The server's default certificate options (undefined: this `tls()` cannot serve). */
  readonly server: BunTls | undefined;
  readonly client: BunTls;
  /** `sni` exact names → server options (undefined without `sni`). */
  readonly byName: Map<string, BunTls> | undefined;
  /** `sni` wildcards, keyed by `".suffix"` → server options. */
  readonly byWildcard: Map<string, BunTls> | undefined;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
  readonly sniTimeout: number;
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

/**
 * Validates `tls()` options (reading the files) into Bun's TLS options for each role; throws
 * {@link OptionError} naming the first bad option.
 *
 * @example
 * const parsed = parseTlsOptions({ certFile: "server.pem", keyFile: "server-key.pem", alpn: ["h2"] });
 * parsed.server?.ALPNProtocols; // Uint8Array [2, 104, 50]
 */
export function parseTlsOptions(options: TlsOptions): ParsedTls {
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
  const rejectUnauthorized = booleanOption("rejectUnauthorized", options.rejectUnauthorized, undefined);
  const requestCert = booleanOption("requestCert", options.requestCert, undefined);
  if (rejectUnauthorized !== undefined) common.rejectUnauthorized = rejectUnauthorized;
  if (options.alpn !== undefined) common.ALPNProtocols = encodeAlpn(options.alpn);
  const min = versionOption("minVersion", options.minVersion);
  const max = versionOption("maxVersion", options.maxVersion);
  if (min !== undefined && max !== undefined && min > max) {
    throw new OptionError("minVersion", `at most \`maxVersion\` (${options.maxVersion})`, options.minVersion);
  }
  if (min !== undefined) common.minVersion = min;
  if (max !== undefined) common.maxVersion = max;
  const ciphers = stringOption("ciphers", options.ciphers, undefined);
  if (ciphers !== undefined) common.ciphers = ciphers;
  const serverName = stringOption("serverName", options.serverName, undefined);
  const sniTimeout = positiveMilliseconds("sniTimeout", options.sniTimeout, 10_000);

  // Client side: our own certificate is the client certificate (mTLS).
  const client: BunTls = { ...common, ...own };
  if (serverName !== undefined) client.serverName = serverName;

  // Server side.
  const serverCommon: BunTls = { ...common };
  if (requestCert !== undefined) serverCommon.requestCert = requestCert;
  let fallback: BunTls | undefined = own.cert === undefined ? undefined : { ...serverCommon, ...own };
  let byName: Map<string, BunTls> | undefined;
  let byWildcard: Map<string, BunTls> | undefined;
  if (options.sni !== undefined) {
    const sni = options.sni;
    if (sni === null || typeof sni !== "object" || Array.isArray(sni) || Object.keys(sni).length === 0) {
      throw new OptionError("sni", "an object of server name → { cert, key }, with at least one name", sni);
    }
    byName = new Map();
    byWildcard = new Map();
    for (const [rawName, entry] of Object.entries(sni)) {
      const bun = { ...serverCommon, ...sniEntry(rawName, entry) };
      const name = rawName.toLowerCase();
      if (name.startsWith("*.")) byWildcard.set(name.slice(1), bun);
      else byName.set(name, bun);
      fallback ??= bun;
    }
  }
  return {
    server: fallback,
    client,
    byName,
    byWildcard,
    requestCert: requestCert === true,
    rejectUnauthorized: rejectUnauthorized !== false,
    sniTimeout,
  };
}

/** One `sni` entry: a host name (or `*.` wildcard) and its certificate. */
function sniEntry(rawName: string, entry: unknown): BunTls {
  if (!/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(rawName.toLowerCase())) {
    throw new OptionError("sni", "keyed by host names (or `*.` wildcards)", rawName);
  }
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new OptionError(`sni["${rawName}"]`, "an object { cert, key }", entry);
  }
  for (const key of Object.keys(entry)) {
    if (!CERT_KEYS.has(key)) throw new OptionError(`sni["${rawName}"].${key}`, "a known option", "…");
  }
  const certificate = readCertificate(entry as TlsCertificate, `sni["${rawName}"].`);
  if (certificate.cert === undefined) {
    throw new OptionError(`sni["${rawName}"].cert`, "set (with `key`)", undefined);
  }
  return certificate;
}

/**
 * Encodes ALPN protocol names to TLS wire format (each name prefixed by its length), the only form
 * Bun takes: an array throws and a comma-separated string silently negotiates nothing.
 *
 * @example
 * encodeAlpn(["h2", "http/1.1"]); // Uint8Array [2, 104, 50, 8, 104, 116, ...]
 */
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
    return nodeFs().readFileSync(path, "utf8");
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
  const passphrase = stringOption(`${prefix}passphrase`, source.passphrase, undefined);
  if ((cert === undefined) !== (key === undefined)) {
    const missing = cert === undefined ? "cert" : "key";
    const other = missing === "cert" ? "key" : "cert";
    throw new OptionError(`${prefix}${missing}`, `set when \`${other}\` is given`, undefined);
  }
  if (cert === undefined || key === undefined) return out;
  let certificate: X509Certificate;
  try {
    certificate = new (nodeCrypto().X509Certificate)(cert);
  } catch {
    throw new OptionError(`${prefix}cert`, "a PEM certificate", source.cert ?? source.certFile);
  }
  let keyObject: KeyObject;
  try {
    keyObject = nodeCrypto().createPrivateKey(passphrase === undefined ? { key } : { key, passphrase });
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
