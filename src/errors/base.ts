/**
 * The root of the error hierarchy: {@link SockerlError}, the {@link SockerlErrorCode} union, and the
 * helpers every error message uses to show a value or an exit reason. Every other file of
 * `src/errors/` extends this one; it imports none of them, so the re-exporting `src/errors.ts` has
 * no import cycle (a class cannot extend a base whose module is still evaluating).
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
