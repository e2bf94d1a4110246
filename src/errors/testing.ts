/**
 * Errors raised by the testing kit (`sockerl/testing`): a STARTTLS the memory transport cannot do,
 * leaks found after a test, a scripted peer's failed read.
 *
 * @module
 */
import { SockerlError } from "./base.ts";

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
