/**
 * Start options of servers, connectors and pools, validated at start: an unknown or ill-typed option
 * throws {@link OptionError} naming the option, the rule and the value.
 *
 * @module
 */

import { STAGE_SIZE } from "./connection/cork.ts";
import type { ConnectionSettings } from "./connection/process.ts";
import { ArgumentError, OptionError } from "./errors.ts";
import {
  FrameCutter,
  headerSize,
  isCodec,
  isPacketFraming,
  type PacketFraming,
  prefixLimit,
} from "./framing/framing.ts";
import type { ReceiveMode } from "./handler.ts";
import type { PoolStrategy } from "./pool/router.ts";
import type { Plan } from "./supervisor.ts";
import { type DebugOption, parseDebugOptions } from "./trace.ts";
import { tcp } from "./transport/tcp.ts";
import { isTransport, type Transport } from "./transport/transport.ts";
import { byteSize, milliseconds } from "./validate.ts";

// The generic validators live in validate.ts; importers of this module keep finding them here.
export { booleanOption, milliseconds, positiveInteger, stringOption } from "./validate.ts";

/** Whether an acceptor serves arriving connections (`"accept"`) or holds them unserved (`"sleep"`). */
export type AcceptorMode = "accept" | "sleep";

/** Options every kind of start takes. */
export interface CommonOptions {
  /** The transport. @default tcp() */
  transport?: Transport;
  /** Receive mode of new connections. @default "active" */
  mode?: ReceiveMode;
  /** Framing: `"raw"`, 1/2/4-byte big-endian length prefix, `"line"`, `{ delimiter }` or a codec `{ frameLength, encode? }` (docs/framing.md). @default "raw" */
  packet?: PacketFraming;
  /** `"utf8"` delivers packets as strings; `"binary"` as bytes. @default "binary" */
  encoding?: "binary" | "utf8";
  /** Largest frame, line or passive read in bytes; beyond it the connection stops with `FrameTooLargeError`. @default 16 MiB */
  maxPacketSize?: number;
  /** Outbound bytes queued per connection above which reading pauses, in bytes. @default 1 MiB */
  highWaterMark?: number;
  /** `false` turns Nagle's algorithm on (TCP_NODELAY is on by default). */
  noDelay?: boolean;
  /** SO_KEEPALIVE: `true`, or the initial delay in ms. */
  keepAlive?: boolean | number;
  /** sys debug options of every connection: `["trace"]`, `["log"]`, `["statistics"]`. */
  connectorDebug?: DebugOption[];
  /** ms a peer may leave sent bytes unread before it is dropped with `SendTimeoutError`. @default Infinity */
  sendTimeout?: number;
  /** ms a TLS handshake may take. @default 10000 */
  handshakeTimeout?: number;
  /** ms a closing connection waits for queued bytes to drain and for the peer's FIN. @default 5000 */
  closeTimeout?: number;
  /**
   * Bytes the outbound queue may hold; a send past it ends the connection with `SendOverflowError` (the
   * peer is not reading). Bounds memory for server-initiated sends (timers, `sendAsync` loops), which
   * `highWaterMark` cannot (it pauses reading). @default 64 × highWaterMark
   */
  maxQueuedBytes?: number;
}

/** Options of {@link startServer}. */
export interface ServerOptions extends CommonOptions {
  /** Registry name (unique); module functions and `whereis` accept it. */
  name?: string;
  /** Address to bind. @default "0.0.0.0" */
  hostname?: string;
  /** Listening sockets on the port (SO_REUSEPORT), each an acceptor with its own mode. @default 1 */
  acceptorCount?: number;
  /** Initial mode of every acceptor. @default "accept" */
  acceptorMode?: AcceptorMode;
  /** sys debug options of the acceptors. */
  acceptorDebug?: DebugOption[];
  /**
   * Restart plan for connections. The default deletes every connection that ends, whatever the reason
   * (abnormal endings print the termination report), so no peer can stop the server. SockErl's strict
   * default is `[(reason) => (reason === "normal" ? "delete" : "stop")]`; the strict-but-safe one is
   * `[(reason) => (isPeerFault(reason) ? "delete" : "stop")]`. @default ["delete"]
   */
  plan?: Plan;
  /** Passes through the plan a connection may make. @default Infinity */
  planCount?: number;
  /**
   * Connections served at once; more wait, accepted but unserved (no `init`; their first 64 KiB are read
   * ahead so a peer that leaves is noticed), until one ends. A TLS connection takes a slot once its
   * handshake is done. @default Infinity
   */
  maxConnections?: number;
  /** Connections that may wait for a slot under `maxConnections`; one more is reset at once. @default 1024 */
  maxWaiting?: number;
  /** TLS handshakes in progress at once; a connection past it is reset at once. @default 1024 */
  maxHandshakes?: number;
  /** Bind with SO_REUSEPORT even with one acceptor, so several processes can serve one port (Linux). @default false */
  reusePort?: boolean;
  /**
   * Every connection starts with a PROXY protocol v1/v2 header (behind HAProxy, nginx, an NLB): `true`,
   * or `{ versions, trusted, timeoutMs }` (defaults: `[1, 2]`, `["127.0.0.0/8", "::1/128"]`, 3000).
   * Then `meta.remoteAddress`/`remotePort` are the client's and `meta.proxy` is the header.
   */
  proxyProtocol?: boolean | { versions?: (1 | 2)[]; trusted?: string[]; timeoutMs?: number };
}

/** Options of {@link startConnector}. */
export interface ConnectorOptions extends CommonOptions {
  /** Registry name (unique). */
  name?: string;
  /** ms to wait for the TCP connect (and TLS handshake). @default 3000 */
  connectTimeout?: number;
  /** Send a PROXY protocol header first (for chaining behind a proxy, and for tests). */
  proxyHeader?: {
    version: 1 | 2;
    sourceAddress: string;
    sourcePort: number;
    destinationAddress: string;
    destinationPort: number;
  };
}

/** Options of {@link startConnectorPool}. */
export interface PoolOptions extends ConnectorOptions {
  /** Connectors per address. @default 1 */
  connectorCount?: number;
  /** Restart plan for connectors. @default [backoff()]: reconnect forever, with exponential backoff */
  plan?: Plan;
  /** Passes through the plan a connector may make. @default Infinity */
  planCount?: number;
  /** Start even when peers are down; every connect failure goes through the plan. @default false */
  watchdog?: boolean;
  /**
   * How `pool.call` (and cast, notify, sendAsync, sendSync) picks a live connector: `"round-robin"`,
   * `"least-busy"` (fewest calls in flight), or a function of the live connectors and the request.
   * @default "round-robin"
   */
  strategy?: PoolStrategy;
  /** Requests that may wait while no connector is live; one more rejects with `PoolFullError`. @default 1000 */
  maxWaiting?: number;
  /** Milliseconds a request may wait for a live connector before `PoolTimeoutError`. @default 5000 */
  waitTimeout?: number;
}

const COMMON_KEYS = [
  "transport",
  "mode",
  "packet",
  "encoding",
  "maxPacketSize",
  "highWaterMark",
  "noDelay",
  "keepAlive",
  "connectorDebug",
  "sendTimeout",
  "handshakeTimeout",
  "closeTimeout",
  "maxQueuedBytes",
] as const;

/** Option names each kind of start accepts. */
export const SERVER_KEYS: ReadonlySet<string> = new Set([
  ...COMMON_KEYS,
  "name",
  "hostname",
  "acceptorCount",
  "acceptorMode",
  "acceptorDebug",
  "plan",
  "planCount",
  "maxConnections",
  "maxWaiting",
  "maxHandshakes",
  "reusePort",
  "proxyProtocol",
]);
export const CONNECTOR_KEYS: ReadonlySet<string> = new Set([
  ...COMMON_KEYS,
  "name",
  "connectTimeout",
  "proxyHeader",
]);
export const POOL_KEYS: ReadonlySet<string> = new Set([
  ...CONNECTOR_KEYS,
  "connectorCount",
  "plan",
  "planCount",
  "watchdog",
  "strategy",
  "maxWaiting",
  "waitTimeout",
]);

/** Rejects a non-object and unknown keys; returns the options as a record. */
export function checkOptionKeys(options: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ArgumentError("options", "an object", options);
  }
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.has(key)) throw new OptionError(key, "a known option", record[key]);
  }
  return record;
}

/** The transport option (default `tcp()`). */
export function transportOption(value: unknown): Transport {
  if (value === undefined) return tcp();
  if (!isTransport(value)) {
    throw new OptionError("transport", "a Transport (tcp(), tls(...), unix(...) or a custom one)", value);
  }
  return value;
}

/** Default `maxPacketSize`: 16 MiB. */
export const DEFAULT_MAX_PACKET_SIZE = 16 * 1024 * 1024;
/** Default `highWaterMark`: 1 MiB. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;

/** Validates the options shared by every start and builds the connections' settings. */
export function connectionSettings(record: Record<string, unknown>): ConnectionSettings {
  const mode = record.mode ?? "active";
  if (mode !== "active" && mode !== "passive") throw new OptionError("mode", '"active" or "passive"', mode);
  const packet = record.packet ?? "raw";
  if (!isPacketFraming(packet)) {
    throw new OptionError(
      "packet",
      '"raw", 1, 2, 4, "line", { delimiter } (a non-empty string or Uint8Array) or a codec { frameLength(buffered), encode? } (functions)',
      packet,
    );
  }
  const encoding = record.encoding ?? "binary";
  if (encoding !== "binary" && encoding !== "utf8")
    throw new OptionError("encoding", '"binary" or "utf8"', encoding);
  const keepAlive = record.keepAlive;
  if (
    keepAlive !== undefined &&
    typeof keepAlive !== "boolean" &&
    (typeof keepAlive !== "number" || !Number.isSafeInteger(keepAlive) || keepAlive < 0)
  ) {
    throw new OptionError("keepAlive", "a boolean or a delay in ms (integer >= 0)", keepAlive);
  }
  const noDelay = record.noDelay;
  if (noDelay !== undefined && typeof noDelay !== "boolean")
    throw new OptionError("noDelay", "a boolean", noDelay);
  const highWaterMark = byteSize("highWaterMark", record.highWaterMark, DEFAULT_HIGH_WATER_MARK);
  const maxPacketSize = byteSize("maxPacketSize", record.maxPacketSize, DEFAULT_MAX_PACKET_SIZE);
  const maxQueuedBytes = byteSize("maxQueuedBytes", record.maxQueuedBytes, 64 * highWaterMark);
  const framing = packet as PacketFraming;
  return {
    framing,
    cutter: framing === "raw" ? undefined : new FrameCutter(framing, maxPacketSize),
    prefixBytes: headerSize(framing) as 0 | 1 | 2 | 4,
    stageSendMax: stageSendMax(framing, maxPacketSize),
    corkLimit: Math.min(highWaterMark, maxQueuedBytes),
    stageRoom: Math.min(STAGE_SIZE, highWaterMark, maxQueuedBytes) - headerSize(framing),
    utf8: encoding === "utf8",
    maxPacketSize,
    highWaterMark,
    maxQueuedBytes,
    mode: mode as ReceiveMode,
    noDelay,
    keepAlive: keepAlive as boolean | number | undefined,
    sendTimeout: milliseconds("sendTimeout", record.sendTimeout, Number.POSITIVE_INFINITY),
    handshakeTimeout: milliseconds("handshakeTimeout", record.handshakeTimeout, 10_000),
    closeTimeout: milliseconds("closeTimeout", record.closeTimeout, 5_000),
    debug: parseDebugOptions("connectorDebug", record.connectorDebug),
    options: Object.freeze({ ...record }),
  };
}

/**
 * Largest payload a send may copy as it is into the cork stage: what one frame may carry (a prefix's
 * limit and `maxPacketSize`; `maxPacketSize` for lines and delimiters, the whole frame; no bound for
 * raw bytes and codecs), or -1 for a codec with `encode` (every send is encoded first).
 */
function stageSendMax(framing: PacketFraming, maxPacketSize: number): number {
  const hs = headerSize(framing);
  if (hs !== 0) return Math.min(maxPacketSize, prefixLimit(hs));
  if (framing === "raw") return Number.POSITIVE_INFINITY;
  if (isCodec(framing)) return framing.encode === undefined ? Number.POSITIVE_INFINITY : -1;
  return maxPacketSize;
}

/** Validates a port argument (0 = pick one). */
export function portArgument(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > 65535) {
    throw new ArgumentError("port", "an integer from 0 to 65535", value);
  }
  return value;
}

/** Validates a handler argument. */
export function handlerArgument(value: unknown): void {
  if (value === null || typeof value !== "object") {
    throw new ArgumentError("handler", "an object with init and handlePacket functions", value);
  }
  const h = value as Record<string, unknown>;
  for (const name of ["init", "handlePacket"]) {
    if (typeof h[name] !== "function") throw new ArgumentError(`handler.${name}`, "a function", h[name]);
  }
  for (const name of [
    "listenInit",
    "handleCall",
    "handleCast",
    "handleEvent",
    "handleDisconnect",
    "timeout",
    "srtimeout",
    "terminate",
    "codeChange",
  ]) {
    if (h[name] !== undefined && typeof h[name] !== "function") {
      throw new ArgumentError(`handler.${name}`, "a function (or absent)", h[name]);
    }
  }
}
