/**
 * Errors for bytes from the peer that the protocol rejects: a codec's framing failure and a bad
 * PROXY protocol header.
 *
 * @module
 */
import { SockerlError } from "./base.ts";

/** A codec's `frameLength` threw (or returned a bad length): the peer sent bytes the protocol rejects. */
export class FramingError extends SockerlError {
  constructor(info: string, cause?: unknown) {
    super(`Framing failed: ${info}`, { code: "ERR_FRAMING", reason: "framing", cause });
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
