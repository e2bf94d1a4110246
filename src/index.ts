/**
 * sockerl for Bun: SockErl's model (a process per connection, connectors, pools, restart plans,
 * sys tracing) on Bun's native sockets.
 *
 * @module
 */
// First: outside Bun the import fails here, with an error naming Bun, before anything else loads.
import "./runtime-check.ts";

export {
  addConnector,
  type ConnectionRef,
  changeAcceptorModes,
  getAcceptorModes,
  getAcceptors,
  getPoolConnections,
  getServerConnections,
  type PoolRef,
  type ServerRef,
  sendAsync,
  sendSync,
  sleepAcceptors,
  stopConnector,
  stopPool,
  stopServer,
  wakeupAcceptors,
} from "./api.ts";
export { type ClusterHandle, type ClusterInfo, type ClusterOptions, cluster, workerId } from "./cluster.ts";
export { DEFAULT_CONNECT_TIMEOUT, startConnector } from "./connector.ts";
export {
  ArgumentError,
  BadReturnError,
  CallbackError,
  CallTimeoutError,
  FrameTooLargeError,
  FramingError,
  HandshakeTimeoutError,
  isPeerFault,
  NoProcError,
  OptionError,
  PoolFullError,
  PoolTimeoutError,
  ProxyHeaderError,
  RestartLimitError,
  SendOverflowError,
  SendTimeoutError,
  SockerlError,
  type SockerlErrorCode,
  SocketConnectError,
  type SocketErrorInfo,
  SocketListenError,
  SocketSendError,
  TlsHandshakeError,
  WorkerExitError,
} from "./errors.ts";
export type { Codec, DelimiterFraming, PacketFraming } from "./framing/framing.ts";
export type {
  Action,
  ActionObject,
  Connection,
  ExitReason,
  From,
  Handler,
  LastMessage,
  ListenerInfo,
  ListenInitResult,
  MaybePromise,
  Meta,
  Outgoing,
  Packet,
  ReceiveMode,
} from "./handler.ts";
export type {
  ActionCallback,
  ActionField,
  CheckedActions,
  Encoding,
  ExtraFields,
  ExtraFieldsOfObject,
  PacketFor,
  ReturnOf,
  UnknownActionField,
  UnlessIgnored,
} from "./handler-check.ts";
export type {
  AcceptorMode,
  CommonOptions,
  ConnectorOptions,
  PoolOptions,
  ServerOptions,
} from "./options.ts";
export type { PoolStrategy } from "./pool/router.ts";
export { Pool, type PoolInfo, type PoolReadyOptions, startConnectorPool } from "./pool.ts";
export {
  encodeProxyHeader,
  type ProxyHeader,
  type ProxyHeaderInit,
  type ProxySsl,
  parseProxyHeader,
  proxyHeaderOf,
} from "./proxy/header.ts";
export { type ProxyOptions, proxyOptions } from "./proxy/options.ts";
export { proxyConnectTransport, proxyTransport } from "./proxy/transport.ts";
export { whereis } from "./registry.ts";
export { runningServers, Server, type ServerInfo } from "./server/server.ts";
export { startServer } from "./server/start.ts";
export { SHUTDOWN_EVENT, type StopOptions } from "./shutdown.ts";
export {
  type BackoffOptions,
  backoff,
  type Decision,
  type Plan,
  type PlanElement,
  type PlanFunction,
} from "./supervisor.ts";
export { type AcceptorTarget, type GroupStatistics, type SysGroup, type SysTarget, sys } from "./sys.ts";
export type { DebugOption, Statistics, TraceSink } from "./trace.ts";
export { type TcpOptions, tcp } from "./transport/tcp.ts";
export type { Pem, TlsCertificate, TlsOptions, TlsVersion } from "./transport/tls/options.ts";
export { tls } from "./transport/tls/transport.ts";
export type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportEvents,
  TransportListener,
  TransportSocket,
  UpgradeRequest,
} from "./transport/transport.ts";
export { unix } from "./transport/unix.ts";
