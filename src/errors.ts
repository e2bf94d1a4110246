/**
 * Every error the library raises or rejects with. All extend {@link SockerlError}, carry a stable
 * `code` (match on it, not on the message) and pass `cause` through.
 *
 * @module
 */

/** Stable error codes of errors that are not socket errno codes. */
export type SockerlErrorCode =
  | "ERR_SOCKERL"
  | "ERR_OPTION"
  | "ERR_ARGUMENT"
  | "ERR_CALLBACK"
  | "ERR_BAD_RETURN"
  | "ERR_CALL_TIMEOUT"
  | "ERR_NOPROC"
  | "ERR_RESTART_LIMIT"
  | "ERR_FRAME_TOO_LARGE"
  | "ERR_FRAMING"
  | "ERR_SEND_OVERFLOW"
  | "ERR_POOL_FULL"
  | "ERR_POOL_TIMEOUT"
  | "ERR_PROXY_HEADER"
  | "ERR_SOCKET_SEND"
  | "ERR_SEND_TIMEOUT"
  | "ERR_TLS_HANDSHAKE"
  | "ERR_HANDSHAKE_TIMEOUT"
  | "ERR_INIT_STOP"
  | "ERR_INIT_CLOSED"
  | "ERR_LISTEN_INIT_STOP"
  | "ERR_MEMORY_UPGRADE"
  | "ERR_TEST_LEAK"
  | "ERR_PEER_READ"
  | "ERR_WORKER_EXIT";

/** Base class: `code` is stable, `reason` is a short machine-friendly reason (SockErl style). */
export class SockerlError extends Error {
  /** A stable code: one of {@link SockerlErrorCode}, or an errno code (`"ECONNREFUSED"`) for socket errors. */
  readonly code: string;
  /** A short reason term, e.g. `"econnrefused"`, or the value a `listenInit` stopped with. */
  readonly reason: unknown;

  constructor(message: string, options: { code?: string; reason?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? "ERR_SOCKERL";
    this.reason = options.reason;
  }
}

/** Describes a value for error messages: `` `"foo"` (string) ``. */
export function describeValue(value: unknown): string {
  let shown: string;
  if (typeof value === "string") shown = JSON.stringify(value);
  else if (typeof value === "function") shown = `[Function ${value.name || "anonymous"}]`;
  else if (typeof value === "bigint") shown = `${value}n`;
  else if (typeof value === "symbol") shown = value.toString();
  else {
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = String(value);
    }
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  return `\`${shown}\` (${type})`;
}

/**
 * A start option (or a function argument, see {@link ArgumentError}) broke its rule.
 * The message names the option, the rule and the value:
 * ``Expected `acceptorCount` to be a positive integer, got `"foo"` (string)``.
 */
export class OptionError extends SockerlError {
  /** The option's name, e.g. `"acceptorCount"`. */
  readonly option: string;
  /** The rule it broke, e.g. `"a positive integer"`. */
  readonly rule: string;
  /** The value given. */
  readonly value: unknown;

  constructor(option: string, rule: string, value: unknown, code: SockerlErrorCode = "ERR_OPTION") {
    const message =
      rule === "a known option"
        ? `Unknown option \`${option}\`, got ${describeValue(value)}`
        : `Expected \`${option}\` to be ${rule}, got ${describeValue(value)}`;
    super(message, { code, reason: "bad_option" });
    this.option = option;
    this.rule = rule;
    this.value = value;
  }
}

/** A public function was called with a bad argument (same message form as {@link OptionError}). */
export class ArgumentError extends OptionError {
  constructor(argument: string, rule: string, value: unknown) {
    super(argument, rule, value, "ERR_ARGUMENT");
  }
}

/** Fields shared by socket errors. */
export interface SocketErrorInfo {
  /** Errno code, e.g. `"ECONNREFUSED"`. */
  code: string;
  /** Lower-case reason, e.g. `"econnrefused"`. */
  reason: string;
  /** Human text, e.g. `"connection refused"`. */
  info: string;
  /** Transport name, e.g. `"tcp"`. */
  transport: string;
  host?: string | undefined;
  port?: number | undefined;
  cause?: unknown;
}

const ERRNO_INFO: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ETIMEDOUT: "connection timed out",
  ENOTFOUND: "host not found",
  EAI_NONAME: "host not found",
  EHOSTUNREACH: "host is unreachable",
  ENETUNREACH: "network is unreachable",
  ECONNRESET: "connection reset by peer",
  EPIPE: "broken pipe",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address",
  EACCES: "permission denied",
  EMFILE: "too many open files",
  ENOENT: "no such file or directory",
  ECLOSED: "socket connection closed",
};

/** Human text for an errno code (`"ECONNREFUSED"` → `"connection refused"`). */
export function errnoInfo(code: string): string {
  return ERRNO_INFO[code] ?? code.toLowerCase();
}

/** Takes the errno code out of whatever Bun threw (`{ code: "ECONNREFUSED" }`), else `fallback`. */
export function errnoCode(error: unknown, fallback: string): string {
  if (error !== null && typeof error === "object") {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.length > 0) return code;
  }
  return fallback;
}

abstract class SocketError extends SockerlError {
  /** Human text for the errno, e.g. `"connection refused"`. */
  readonly info: string;
  /** The transport's name, e.g. `"tcp"` or `"tls"`. */
  readonly transport: string;
  /** The host connected to or bound, when known. */
  readonly host: string | undefined;
  /** The port connected to or bound, when known. */
  readonly port: number | undefined;

  constructor(what: string, fields: SocketErrorInfo) {
    const where =
      fields.host === undefined
        ? ""
        : fields.port === undefined
          ? ` ${fields.host}`
          : ` ${fields.host}:${fields.port}`;
    super(`${what}${where} (${fields.transport}): ${fields.info}`, {
      code: fields.code,
      reason: fields.reason,
      cause: fields.cause,
    });
    this.info = fields.info;
    this.transport = fields.transport;
    this.host = fields.host;
    this.port = fields.port;
  }
}

/** A connector could not connect. `code` is the errno (`ECONNREFUSED`, `ETIMEDOUT`, `ENOTFOUND`, …). */
export class SocketConnectError extends SocketError {
  constructor(fields: SocketErrorInfo) {
    super("Could not connect to", fields);
  }
}

/** A server could not listen. `code` is the errno (`EADDRINUSE`, `EACCES`, …). */
export class SocketListenError extends SocketError {
  constructor(fields: SocketErrorInfo) {
    super("Could not listen on", fields);
  }
}

/** Bytes could not be handed to the kernel: the connection died first (`sendSync` rejects with it). */
export class SocketSendError extends SockerlError {
  constructor(reason: string, cause?: unknown) {
    super(`Could not send: ${reason}`, { code: "ERR_SOCKET_SEND", reason, cause });
  }
}

/** A peer did not read what was sent within `sendTimeout` ms. */
export class SendTimeoutError extends SockerlError {
  /** Bytes still queued when the connection gave up. */
  readonly queuedBytes: number;
  constructor(timeoutMs: number, queuedBytes: number) {
    super(`Peer did not read ${queuedBytes} queued bytes within ${timeoutMs} ms`, {
      code: "ERR_SEND_TIMEOUT",
      reason: "send_timeout",
    });
    this.queuedBytes = queuedBytes;
  }
}

/** A TLS handshake failed (bad certificate, protocol error, garbage). */
export class TlsHandshakeError extends SockerlError {
  constructor(info: string, cause?: unknown) {
    super(`TLS handshake failed: ${info}`, { code: "ERR_TLS_HANDSHAKE", reason: "tls_handshake", cause });
  }
}

/** A TLS handshake did not finish within `handshakeTimeout` ms. */
export class HandshakeTimeoutError extends SockerlError {
  constructor(timeoutMs: number) {
    super(`TLS handshake did not finish within ${timeoutMs} ms`, {
      code: "ERR_HANDSHAKE_TIMEOUT",
      reason: "handshake_timeout",
    });
  }
}

/** A handler callback threw or its promise rejected; `cause` is what it threw. */
export class CallbackError extends SockerlError {
  /** The callback's name, e.g. `"handlePacket"`. */
  readonly callback: string;
  constructor(callback: string, cause: unknown) {
    const what = cause instanceof Error ? cause.message : String(cause);
    super(`Callback ${callback} failed: ${what}`, { code: "ERR_CALLBACK", reason: "callback_crash", cause });
    this.callback = callback;
  }
}

/** A callback returned something that is not an action (or `listenInit` returned a bad value). */
export class BadReturnError extends SockerlError {
  /** The callback that returned it (`"handlePacket"`, `"plan"`, …). */
  readonly callback: string;
  /** The value it returned. */
  readonly returned: unknown;
  constructor(callback: string, returned: unknown, detail?: string) {
    super(
      `Callback ${callback} returned a bad value ${describeValue(returned)}${detail ? `: ${detail}` : ""}`,
      { code: "ERR_BAD_RETURN", reason: "callback_bad_return_value" },
    );
    this.callback = callback;
    this.returned = returned;
  }
}

/** A `call` got no reply in time. */
export class CallTimeoutError extends SockerlError {
  /** The timeout the call had, in ms. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`Call got no reply within ${timeoutMs} ms`, { code: "ERR_CALL_TIMEOUT", reason: "timeout" });
    this.timeoutMs = timeoutMs;
  }
}

/** The target (connection, server, pool, name) is not running. */
export class NoProcError extends SockerlError {
  /** The handle or registry name that is not running. */
  readonly target: unknown;
  constructor(target: unknown) {
    super(`No such process: ${typeof target === "string" ? target : describeValue(target)}`, {
      code: "ERR_NOPROC",
      reason: "noproc",
    });
    this.target = target;
  }
}

/** A child exited more often than its restart plan allows (`reached_max_restart_plan`). */
export class RestartLimitError extends SockerlError {
  /** The exit reason of the child's last exit. */
  readonly childReason: unknown;
  /** The id of that child. */
  readonly childId: number;
  constructor(
    childId: number,
    childReason: unknown,
    reason: "reached_max_restart_plan" | "empty_plan_child_terminated" = "reached_max_restart_plan",
  ) {
    super(`Child ${childId} exited (${describeReason(childReason)}) past its restart plan: ${reason}`, {
      code: "ERR_RESTART_LIMIT",
      reason,
    });
    this.childReason = childReason;
    this.childId = childId;
  }
}

/** A frame (or a line, or a passive read) is larger than `maxPacketSize`. */
export class FrameTooLargeError extends SockerlError {
  /** The size of the frame (announced by its header, or buffered so far), in bytes. */
  readonly size: number;
  /** The `maxPacketSize` it exceeded, in bytes. */
  readonly maxPacketSize: number;
  constructor(size: number, maxPacketSize: number) {
    super(`Frame of ${size} bytes exceeds maxPacketSize ${maxPacketSize}`, {
      code: "ERR_FRAME_TOO_LARGE",
      reason: "frame_too_large",
    });
    this.size = size;
    this.maxPacketSize = maxPacketSize;
  }
}

/** A codec's `frameLength` threw (or returned a bad length): the peer sent bytes the protocol rejects. */
export class FramingError extends SockerlError {
  constructor(info: string, cause?: unknown) {
    super(`Framing failed: ${info}`, { code: "ERR_FRAMING", reason: "framing", cause });
  }
}

/** A send would take the outbound queue past `maxQueuedBytes`: the peer does not read what it is sent. */
export class SendOverflowError extends SockerlError {
  /** Bytes queued before the send that overflowed. */
  readonly queuedBytes: number;
  /** The limit (`maxQueuedBytes`). */
  readonly maxQueuedBytes: number;
  constructor(queuedBytes: number, maxQueuedBytes: number) {
    super(`Outbound queue of ${queuedBytes} bytes would exceed maxQueuedBytes ${maxQueuedBytes}`, {
      code: "ERR_SEND_OVERFLOW",
      reason: "send_overflow",
    });
    this.queuedBytes = queuedBytes;
    this.maxQueuedBytes = maxQueuedBytes;
  }
}

/** A pool request found no live connector and `maxWaiting` requests already waiting. */
export class PoolFullError extends SockerlError {
  /** The pool's `maxWaiting`. */
  readonly maxWaiting: number;
  constructor(maxWaiting: number) {
    super(`No live connector and ${maxWaiting} requests already waiting (maxWaiting)`, {
      code: "ERR_POOL_FULL",
      reason: "pool_full",
    });
    this.maxWaiting = maxWaiting;
  }
}

/** A pool request waited `waitTimeout` ms for a live connector. */
export class PoolTimeoutError extends SockerlError {
  /** The pool's `waitTimeout`, in ms. */
  readonly waitTimeout: number;
  constructor(waitTimeout: number) {
    super(`No live connector within ${waitTimeout} ms (waitTimeout)`, {
      code: "ERR_POOL_TIMEOUT",
      reason: "pool_timeout",
    });
    this.waitTimeout = waitTimeout;
  }
}

/** A connection did not start with a valid PROXY protocol header (missing, malformed, late or untrusted). */
export class ProxyHeaderError extends SockerlError {
  /** The address the connection came from (the proxy's). */
  readonly remoteAddress: string | undefined;
  constructor(info: string, remoteAddress?: string, cause?: unknown) {
    super(
      `Bad PROXY protocol header${remoteAddress === undefined ? "" : ` from ${remoteAddress}`}: ${info}`,
      {
        code: "ERR_PROXY_HEADER",
        reason: "proxy_header",
        cause,
      },
    );
    this.remoteAddress = remoteAddress;
  }
}

/** The testing kit's memory transport was asked to upgrade a live connection (STARTTLS): it cannot. */
export class MemoryUpgradeError extends SockerlError {
  constructor(target: string) {
    super(
      `The memory transport of sockerl/testing cannot upgrade a live connection to ${target} (STARTTLS): test the upgrade on loopback`,
      { code: "ERR_MEMORY_UPGRADE", reason: "upgrade_unsupported" },
    );
  }
}

/** The testing kit found something still running after a test: `leaks` says what. */
export class TestLeakError extends SockerlError {
  /** One line per leaked thing, e.g. `"memory socket 127.0.0.1:1 <-> 127.0.0.1:49152 is open"`. */
  readonly leaks: readonly string[];
  constructor(leaks: readonly string[]) {
    super(`Left running after the test:\n  ${leaks.join("\n  ")}`, { code: "ERR_TEST_LEAK", reason: "leak" });
    this.leaks = leaks;
  }
}

/** A scripted test peer's read did not complete: it timed out, or the connection closed first. */
export class PeerReadError extends SockerlError {
  /** The bytes the peer had received but not consumed when the read failed. */
  readonly buffered: Uint8Array;
  constructor(message: string, reason: "timeout" | "closed", buffered: Uint8Array) {
    super(message, { code: "ERR_PEER_READ", reason });
    this.buffered = buffered;
  }
}

/**
 * A cluster worker exited before it was ready (its `main` had not resolved), so `cluster()` or a
 * rolling `restart()` could not go on: `exitCode` / `signal` say how it ended.
 */
export class WorkerExitError extends SockerlError {
  /** The worker's slot id (from 1). */
  readonly slot: number;
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  constructor(slot: number, pid: number, exitCode: number | null, signal: string | null, cause?: unknown) {
    const how = signal !== null ? `killed by ${signal}` : `exit code ${exitCode}`;
    super(`Cluster worker ${slot} (pid ${pid}) exited before it was ready: ${how}`, {
      code: "ERR_WORKER_EXIT",
      reason: "worker_exit",
      cause,
    });
    this.slot = slot;
    this.pid = pid;
    this.exitCode = exitCode;
    this.signal = signal;
  }
}

/**
 * Whether an exit reason is the remote peer's doing, not the handler's: a close or reset
 * (`"normal"` after `handleDisconnect`, `"closed_by_remote"`), a frame too large, bytes a codec rejects,
 * a failed or timed-out TLS handshake (at accept or during STARTTLS), a peer that does not read
 * (`SendTimeoutError`, `SendOverflowError`), a bad PROXY header, a passive receive timeout
 * (`"srtimeout"`). Plan functions use it: `(r) => (isPeerFault(r) ? "delete" : "stop")`.
 */
export function isPeerFault(reason: unknown): boolean {
  return (
    reason === "normal" ||
    reason === "closed_by_remote" ||
    reason === "srtimeout" ||
    reason instanceof FrameTooLargeError ||
    reason instanceof FramingError ||
    reason instanceof TlsHandshakeError ||
    reason instanceof HandshakeTimeoutError ||
    reason instanceof SendTimeoutError ||
    reason instanceof SendOverflowError ||
    reason instanceof ProxyHeaderError ||
    (reason instanceof SocketSendError && reason.reason !== "noproc")
  );
}

/** Short text for an exit reason in messages and reports. */
export function describeReason(reason: unknown): string {
  if (typeof reason === "string") return reason;
  if (reason instanceof Error) {
    const code = (reason as { code?: unknown }).code;
    return typeof code === "string"
      ? `${reason.name} ${code}: ${reason.message}`
      : `${reason.name}: ${reason.message}`;
  }
  return describeValue(reason);
}
