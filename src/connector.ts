/**
 * Connectors: outgoing connections run by the same connection process as server connections.
 * `Bun.connect` has no connect timeout and cannot abandon a connect in progress (against a host that
 * drops SYNs its socket lingers ~2 minutes, holding a descriptor and the process). So for TCP and TLS the
 * connect phase is a cancellable dial (src/dial.ts: `node:net`, its descriptor then handed to
 * `Bun.connect({ fd })`, TLS included): `connectTimeout` and a stopping pool close a connect in
 * progress at once. Transports that cannot take a descriptor (custom ones, PROXY-header wrappers)
 * connect with `connectTimeout` as the library's own timer; a socket that opens after it fired is
 * reset.
 *
 * @module
 */
import { clock, type TimerHandle } from "./clock.ts";
import { attachSocket, EVENTS } from "./connection/events.ts";
import { detach, isAlive, onStarted } from "./connection/lifecycle.ts";
import {
  type ConnectionOwner,
  ConnectionProcess,
  type ConnectionSettings,
  F_IGNORED,
  Totals,
} from "./connection/process.ts";
import { viewOf } from "./connection/view.ts";
import { closeFd, type Dial, dialTcp } from "./dial.ts";
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
import { type FdConnectRequest, TAKES_FD } from "./transport/bun-options.ts";
import type { ConnectRequest, Transport, TransportSocket } from "./transport/transport.ts";

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
  readonly totals: Totals;
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

/** Lets the owner abandon a connect in progress (a stopping pool). */
export interface ConnectCancel {
  /** Set by {@link connectOnce} while the connect is in progress; closes it and rejects the start. */
  cancel?: (() => void) | undefined;
}

/**
 * Connects once and runs `init`. Resolves with the running connection, `undefined` when `init`
 * returned "ignore"; rejects with {@link SocketConnectError} (connect failed, timed out, or was
 * cancelled through `control`) or the reason `init` failed with.
 */
export function connectOnce(
  spec: ConnectSpec,
  owner: ConnectionOwner | undefined,
  control?: ConnectCancel,
): Promise<ConnectionProcess | undefined> {
  const conn = new ConnectionProcess({
    handler: spec.handler,
    init: spec.init,
    settings: spec.settings,
    isServer: false,
    host: spec.host,
    port: spec.port,
    totals: spec.totals,
    transport: spec.transport,
    owner,
  });
  return new Promise((resolve, reject) => {
    let timer: TimerHandle | undefined;
    let settled = false;
    let dial: Dial | undefined;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      if (control !== undefined) control.cancel = undefined;
      reject(error);
    };
    /** Gives up before the socket is attached: the dial (if any) closes now. */
    const abandon = (code: "ETIMEDOUT" | "ECONNABORTED", info: string): void => {
      if (settled || conn.socket !== undefined) return; // connected: init (or the TLS handshake) is running
      dial?.cancel();
      detach(conn); // a socket that opens later is reset by the connection's open handler
      fail(
        new SocketConnectError({
          code,
          reason: code.toLowerCase(),
          info,
          transport: spec.transport.name,
          host: spec.host,
          port: spec.port,
        }),
      );
    };
    onStarted(conn, (ok, reason) => {
      if (timer !== undefined) clock.clearTimeout(timer);
      if (control !== undefined) control.cancel = undefined;
      if (settled) return;
      settled = true;
      if (ok) resolve(conn);
      else if ((conn.flags & F_IGNORED) !== 0) resolve(undefined);
      else reject(initFailure(reason));
    });
    if (control !== undefined) control.cancel = () => abandon("ECONNABORTED", "connect cancelled");
    if (spec.connectTimeout !== Number.POSITIVE_INFINITY) {
      timer = clock.setTimeout(() => {
        timer = undefined;
        abandon("ETIMEDOUT", `connection timed out after ${spec.connectTimeout} ms`);
      }, spec.connectTimeout);
    }
    const request: ConnectRequest & FdConnectRequest = {
      hostname: spec.host,
      port: spec.port,
      events: EVENTS,
      data: conn,
    };
    const open = (fd: number | undefined): void => {
      let pending: Promise<unknown>;
      try {
        pending = spec.transport.connect(fd === undefined ? request : { ...request, fd });
      } catch (error) {
        if (fd !== undefined) closeFd(fd);
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
    };
    if ((spec.transport as { [TAKES_FD]?: boolean })[TAKES_FD] === true) dial = dialTcp(spec.host, spec.port);
    if (dial === undefined) {
      open(undefined);
      return;
    }
    dial.fd.then(
      (fd) => {
        if (settled)
          closeFd(fd); // timed out or cancelled just as it connected
        else open(fd);
      },
      (error: unknown) => {
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
    totals: new Totals(),
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
