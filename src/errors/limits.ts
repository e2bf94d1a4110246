/**
 * Errors for a limit reached: a frame past `maxPacketSize`, an outbound queue past
 * `maxQueuedBytes`, a pool with no live connector to give.
 *
 * @module
 */
import { SockerlError } from "./base.ts";

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
