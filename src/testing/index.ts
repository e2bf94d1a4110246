/**
 * `sockerl/testing`: test and benchmark handlers in `bun test` with no ports and no real time.
 *
 * - {@link testKit} gives a memory network that runs the library's real connection process (same
 *   handler, same options: framing, passive mode, actions, plans, tracing), a manual clock for the
 *   library's timers, and clean-up with a leak check (`await using kit = testKit()`).
 * - `kit.connect(server)` is a scripted {@link Peer}: split writes, reads by bytes, frame or
 *   delimiter, backpressure, half-close, reset.
 * - `kit.listen(script)` is a scripted server for connectors and pools.
 * - `kit.driver(handler)` pushes packets synchronously for benchmarks.
 *
 * The memory transport cannot upgrade to TLS: returning `{ transport: tls(...) }` on it ends the
 * connection with a `TlsHandshakeError` whose `cause` is a {@link MemoryUpgradeError}. Test STARTTLS
 * on loopback. See docs/testing.md.
 *
 * @module
 */
// First: outside Bun the import fails here, with an error naming Bun, before anything else loads.
import "../runtime-check.ts";

export type { Clock, TimerHandle } from "../clock.ts";
export { MemoryUpgradeError, PeerReadError, TestLeakError } from "../errors.ts";
export { HandlerDriver, type HandlerDriverOptions } from "./driver.ts";
export { type ConnectOptions, TestKit, type TestKitOptions, testKit } from "./kit.ts";
export type { Stoppable } from "./kit-resources.ts";
export { ManualClock } from "./manual-clock.ts";
export { DEFAULT_WINDOW } from "./memory-transport.ts";
export { Peer, type PeerClose, type PeerOptions } from "./peer.ts";
export { type Bytes, splitBytes, type WriteOptions } from "./peer-bytes.ts";
export type { ReadFraming, ReadOptions } from "./peer-reader.ts";
export { type ListenOptions, type PeerScript, ScriptedListener } from "./scripted-listener.ts";
export type { Target } from "./target.ts";
