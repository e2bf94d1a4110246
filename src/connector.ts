/**
 * Connectors: outgoing connections (`Bun.connect`) run by the same connection process as server
 * connections. Bun has no connect timeout and cannot cancel a pending connect (docs/bun-sockets.md),
 * so `connectTimeout` is the library's own timer; a socket that opens after it fired is reset at once.
 *
 * @module
 */
import { attachSocket, EVENTS } from "./connection/events.ts";
import { detach, isAlive, onStarted } from "./connection/lifecycle.ts";
import {
  type ConnectionOwner,
  ConnectionProcess,
  type ConnectionSettings,
  Counters,
  F_IGNORED,
} from "./connection/process.ts";
import { viewOf } from "./connection/view.ts";
import {
  ArgumentError,
  describeReason,
  errnoCode,
  errnoInfo,
  OptionError,
  SockerlError,
  SocketConnectError,
} from "./errors.ts";
import type { Connection, ExitReason, Handler } from "./handler.ts";
import type { CheckedActions, Encoding, PacketFor, UnlessIgnored } from "./handler-check.ts";
import {
  CONNECTOR_KEYS,
  type ConnectorOptions,
  checkOptionKeys,
  connectionSettings,
  handlerArgument,
  milliseconds,
  portArgument,
  stringOption,
  transportOption,
} from "./options.ts";
import { encodeProxyHeader, type ProxyHeaderInit } from "./proxy/header.ts";
import { proxyConnectTransport } from "./proxy/transport.ts";
import { register, unregister } from "./registry.ts";
import type { Transport, TransportSocket } from "./transport/transport.ts";

/** Default `connectTimeout`: 3000 ms. */
export const DEFAULT_CONNECT_TIMEOUT = 3000;

/** Everything needed to (re)start one connector. */
export interface ConnectSpec {
  readonly handler: Handler<unknown, unknown>;
  readonly init: unknown;
  readonly settings: ConnectionSettings;
  readonly transport: Transport;
  readonly host: string;
  readonly port: number;
  readonly connectTimeout: number;
  /** Totals of the connector (or of the pool it belongs to). */
  readonly counters: Counters;
}

/** Builds the {@link SocketConnectError} for a failed connect. */
export function connectError(
  spec: ConnectSpec,
  cause: unknown,
  fallbackCode = "ECONNREFUSED",
): SocketConnectError {
  let code = errnoCode(cause, fallbackCode);
  // Bun reports DNS failures with getaddrinfo's names.
  if (code === "DNS_ENOTFOUND" || code === "EAI_NONAME" || code === "ENOENT_DNS") code = "ENOTFOUND";
  return new SocketConnectError({
    code,
    reason: code.toLowerCase(),
    info: errnoInfo(code),
    transport: spec.transport.name,
    host: spec.host,
    port: spec.port,
    cause,
  });
}

/** Why a connector's `init` refused to start, as an Error. */
export function initFailure(reason: ExitReason): Error {
  if (reason instanceof Error) return reason;
  return new SockerlError(`Connector init stopped: ${describeReason(reason)}`, {
    code: reason === "normal" ? "ERR_INIT_CLOSED" : "ERR_INIT_STOP",
    reason,
  });
}

/**
 * Connects once and runs `init`. Resolves with the running connection, `undefined` when `init`
 * returned "ignore"; rejects with {@link SocketConnectError} (connect failed or timed out) or the
 * reason `init` failed with.
 */
export function connectOnce(
  spec: ConnectSpec,
  owner: ConnectionOwner | undefined,
): Promise<ConnectionProcess | undefined> {
  const conn = new ConnectionProcess(
    {
      handler: spec.handler,
      init: spec.init,
      settings: spec.settings,
      isServer: false,
      host: spec.host,
      port: spec.port,
      counters: spec.counters,
    },
    spec.transport,
    owner,
  );
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      reject(error);
    };
    onStarted(conn, (ok, reason) => {
      if (timer !== undefined) clearTimeout(timer);
      if (settled) return;
      settled = true;
      if (ok) resolve(conn);
      else if ((conn.flags & F_IGNORED) !== 0) resolve(undefined);
      else reject(initFailure(reason));
    });
    if (spec.connectTimeout !== Number.POSITIVE_INFINITY) {
      timer = setTimeout(() => {
        timer = undefined;
        if (conn.socket !== undefined) return; // connected: init (or the handshake, with its own timeout) is running
        detach(conn); // a socket that opens later is reset by the connection's open handler
        fail(
          new SocketConnectError({
            code: "ETIMEDOUT",
            reason: "etimedout",
            info: `connection timed out after ${spec.connectTimeout} ms`,
            transport: spec.transport.name,
            host: spec.host,
            port: spec.port,
          }),
        );
      }, spec.connectTimeout);
    }
    let pending: Promise<unknown>;
    try {
      pending = spec.transport.connect({
        hostname: spec.host,
        port: spec.port,
        events: EVENTS,
        data: conn,
      });
    } catch (error) {
      detach(conn);
      fail(connectError(spec, error));
      return;
    }
    pending.then(
      (socket) => {
        // Bun usually fires `open` before this; attach here in case a transport does not.
        if (!settled && conn.socket === undefined && isAlive(conn))
          attachSocket(conn, socket as TransportSocket);
      },
      (error) => {
        detach(conn);
        fail(connectError(spec, error));
      },
    );
  });
}

/** Validates connector options into a spec. */
export function connectSpec(
  handler: unknown,
  init: unknown,
  host: unknown,
  port: unknown,
  record: Record<string, unknown>,
): ConnectSpec {
  handlerArgument(handler);
  if (typeof host !== "string" || host.length === 0)
    throw new ArgumentError("host", "a non-empty string", host);
  return {
    handler: handler as Handler<unknown, unknown>,
    init,
    settings: connectionSettings(record),
    transport: connectTransport(record),
    host,
    port: portArgument(port),
    connectTimeout: milliseconds("connectTimeout", record.connectTimeout, DEFAULT_CONNECT_TIMEOUT),
    counters: new Counters(),
  };
}

/** The `transport` option, behind a PROXY protocol header when `proxyHeader` is given. */
function connectTransport(record: Record<string, unknown>): Transport {
  const transport = transportOption(record.transport);
  const header = record.proxyHeader;
  if (header === undefined) return transport;
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new OptionError("proxyHeader", "an object { version, sourceAddress, sourcePort, ... }", header);
  }
  let bytes: Uint8Array;
  try {
    bytes = encodeProxyHeader(header as ProxyHeaderInit);
  } catch (error) {
    throw new OptionError("proxyHeader", `a valid PROXY header (${(error as Error).message})`, header);
  }
  return proxyConnectTransport(transport, bytes);
}

/** Owner of a lone, named connector: frees the name when it ends. */
class NamedConnector implements ConnectionOwner {
  constructor(readonly name: string) {}
  childLeaving(child: ConnectionProcess): void {
    unregister(this.name, viewOf(child));
  }
  childExited(): void {}
}

/**
 * Connects to `host:port` and runs `init`. Resolves with the connection handle (a process like a
 * server connection), or `undefined` when `init` returns "ignore". Rejects with
 * {@link SocketConnectError} (`code` `ECONNREFUSED`, `ETIMEDOUT`, `ENOTFOUND`, …).
 *
 * As with `startServer`, a handler written as an object literal (or with `satisfies Handler<S>`)
 * has its actions checked for unknown fields and its packet type taken from `encoding`; the
 * result has no `undefined` unless `init` can return `"ignore"`.
 *
 * @example
 * const conn = await startConnector(handler, undefined, "127.0.0.1", 8080, { connectTimeout: 1000 });
 * await conn?.call("ping");
 */
export function startConnector<
  S = undefined,
  I = unknown,
  E extends Encoding | undefined = undefined,
  T = Handler<S, I, PacketFor<E>>,
>(
  handler: Handler<S, I, PacketFor<E>> & T & NoInfer<CheckedActions<T>>,
  init: I,
  host: string,
  port: number,
  options?: ConnectorOptions & { encoding?: E },
): Promise<UnlessIgnored<T, "init", Connection>>;
export async function startConnector<S, I>(
  handler: Handler<S, I>,
  init: I,
  host: string,
  port: number,
  options?: ConnectorOptions,
): Promise<Connection | undefined> {
  const record = checkOptionKeys(options, CONNECTOR_KEYS);
  const spec = connectSpec(handler, init, host, port, record);
  const name = record.name === undefined ? undefined : stringOption("name", record.name, "");
  const owner = name === undefined ? undefined : new NamedConnector(name);
  if (name === undefined) return handleOf(await connectOnce(spec, owner));
  // Hold the name while connecting: a clash fails before connecting, and two starts with one name
  // cannot both connect and then find the name taken with a live connector nobody can reach.
  const placeholder = {};
  register(name, placeholder);
  let conn: ConnectionProcess | undefined;
  try {
    conn = await connectOnce(spec, owner);
  } finally {
    unregister(name, placeholder);
  }
  const handle = handleOf(conn);
  if (conn !== undefined && isAlive(conn)) register(name, handle!);
  return handle;
}

function handleOf(conn: ConnectionProcess | undefined): Connection | undefined {
  return conn === undefined ? undefined : viewOf(conn);
}
