/**
 * Every error the library raises or rejects with. All extend {@link SockerlError}, carry a stable
 * `code` (match on it, not on the message) and pass `cause` through.
 *
 * @module
 */
// The classes live in src/errors/ by concern; this file re-exports them all so that every importer
// (and the public entry points) keeps importing from "./errors.ts".

import { FrameTooLargeError, SendOverflowError } from "./errors/limits.ts";
import { FramingError, ProxyHeaderError } from "./errors/protocol.ts";
import {
  HandshakeTimeoutError,
  SendTimeoutError,
  SocketSendError,
  TlsHandshakeError,
} from "./errors/socket.ts";

export * from "./errors/base.ts";
export * from "./errors/limits.ts";
export * from "./errors/option.ts";
export * from "./errors/process.ts";
export * from "./errors/protocol.ts";
export * from "./errors/socket.ts";
export * from "./errors/testing.ts";

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
