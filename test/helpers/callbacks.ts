/**
 * The handler callbacks a connection runs, for tests (and fixtures) that make each one fail in turn.
 *
 * @module
 */

/**
 * Every callback of a connection's handler that can fail and end it, in the order a connection can
 * reach them: `init`, the event callbacks, the two timeouts, `terminate` (`listenInit` is the
 * server's, `codeChange` runs only on `sys.changeCode`).
 */
export const CONNECTION_CALLBACKS = [
  "init",
  "handlePacket",
  "handleCall",
  "handleCast",
  "handleEvent",
  "handleDisconnect",
  "timeout",
  "srtimeout",
  "terminate",
] as const;

/** One of {@link CONNECTION_CALLBACKS}. */
export type ConnectionCallback = (typeof CONNECTION_CALLBACKS)[number];
