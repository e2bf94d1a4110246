/**
 * Errors of the socket itself: connect, listen and send failures (errno codes, with the errno
 * helpers that read Bun's errors), a peer that does not read in time, and TLS handshake failures.
 *
 * @module
 */
import { SockerlError } from "./base.ts";

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
