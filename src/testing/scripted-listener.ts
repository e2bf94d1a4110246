/**
 * The kit's scripted server ({@link ScriptedListener}, from `kit.listen`): a memory listener whose
 * accepted connections are {@link Peer}s handed to a script, for testing connectors and pools.
 *
 * @module
 */
import type { Peer, PeerOptions } from "./peer.ts";

/** What a {@link TestKit.listen} script does with each accepted peer. */
export type PeerScript = (peer: Peer) => void | Promise<void>;

/** Options of {@link TestKit.listen}. */
export interface ListenOptions extends PeerOptions {
  /** The memory port (0 picks one). @default 0 */
  readonly port?: number;
}

/**
 * A scripted server on the memory network, for testing connectors and pools: each connection the
 * library makes to `host:port` is a {@link Peer} handed to the script (and to {@link accept}).
 */
export class ScriptedListener {
  /** Host to give the library's connectors. */
  readonly host = "127.0.0.1";
  readonly #peers: Peer[] = [];
  readonly #waiting: Array<(peer: Peer) => void> = [];
  #next = 0;
  #stop: () => void;
  #port: number;

  /** @internal Use `kit.listen()`. */
  constructor(port: number, stop: () => void) {
    this.#port = port;
    this.#stop = stop;
  }

  /** The memory port. */
  get port(): number {
    return this.#port;
  }

  /** Every peer accepted so far, in order. */
  get peers(): readonly Peer[] {
    return this.#peers;
  }

  /** Resolves with the next accepted peer not yet taken by `accept()` (in accept order). */
  accept(): Promise<Peer> {
    const peer = this.#peers[this.#next];
    if (peer !== undefined) {
      this.#next++;
      return Promise.resolve(peer);
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Stops listening (connected peers stay). Later connects fail with ECONNREFUSED. */
  stop(): void {
    this.#stop();
  }

  /** @internal */
  arrived(peer: Peer): void {
    this.#peers.push(peer);
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      this.#next++;
      waiter(peer);
    }
  }
}
