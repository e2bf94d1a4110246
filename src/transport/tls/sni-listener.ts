/**
 * The listener of a `tls({ sni })` server: several certificates on one port. Bun cannot do this
 * itself (`Bun.listen({ tls: [...] })` is rejected, see docs/bun-sockets.md#no-sni-on-bun-listen), so
 * the listener accepts in plain TCP, reads the ClientHello, picks the certificate by the server name
 * it carries, and upgrades the socket with `upgradeTLS`, handing the hello over as `initialData`.
 *
 * ```text
 *   accept ─► open: Sniff { reader, chunks, timer } ── pendingSockets + 1
 *     data ─► reader.push(chunk)  (linear: each byte parsed once, chunks kept for the TLS layer)
 *               ├─ INCOMPLETE and < MAX_HELLO bytes ─► wait for more
 *               └─ name / no name / INVALID / MAX_HELLO reached ─► upgradeTLS(certificate for the name,
 *                    initialData: the chunks joined once) ─► the library's open ── pendingSockets - 1
 *     sniTimeout, peer FIN or close, listener stop ─► dropped (terminate) ── pendingSockets - 1
 * ```
 *
 * A hello that is not one (INVALID) or is too long still goes to the TLS layer with the default
 * certificate: the handshake then fails there and the library reports it (`TlsHandshakeError`), as
 * for any other bad handshake.
 *
 * @module
 */
import { type BunListener, bunHandlers, bunListen, type UpgradableSocket } from "../bun-options.ts";
import type { ListenRequest, TransportListener } from "../transport.ts";
import { ClientHelloReader, INCOMPLETE, MAX_HELLO } from "./client-hello.ts";
import type { BunTls } from "./options.ts";

/** What the listener needs of its TLS transport. */
export interface CertificateChooser {
  /** The server options for `serverName` (lower-case), else the default certificate. */
  optionsFor(serverName: string | undefined): BunTls;
  /** ms a client may take to send its ClientHello. */
  readonly sniTimeout: number;
}

/**
 * `socket.data` of a socket this listener no longer reads: the raw twin left by `upgradeTLS` (which
 * copies `data` and receives the ciphertext), or a socket being dropped.
 */
const SNIFF_DONE = Symbol("sockerl.sniffDone");

/** Per-socket state while the ClientHello is read. */
class Sniff {
  readonly reader = new ClientHelloReader();
  /** The bytes received, kept as they came and joined once for the TLS layer. */
  readonly chunks: Uint8Array[] = [];
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  constructor(readonly listener: SniListener) {}
}

/** Handlers of the listener's plain sockets (one table for all, dispatching through `socket.data`). */
const SNIFF_EVENTS = {
  open(socket: UpgradableSocket) {
    const listener = socket.data as SniListener;
    if (!listener.admit()) {
      socket.data = SNIFF_DONE;
      socket.terminate();
      return;
    }
    const sniff = new Sniff(listener);
    socket.data = sniff;
    listener.pending.add(socket);
    sniff.timer = setTimeout(() => listener.drop(socket), listener.chooser.sniTimeout);
  },
  data(socket: UpgradableSocket, chunk: Uint8Array) {
    const sniff = socket.data;
    if (!(sniff instanceof Sniff)) return;
    sniff.chunks.push(chunk);
    const name = sniff.reader.push(chunk);
    if (name === INCOMPLETE && sniff.reader.bytes < MAX_HELLO) return;
    sniff.listener.upgrade(socket, sniff, typeof name === "string" ? name : undefined);
  },
  drain() {},
  end(socket: UpgradableSocket) {
    if (socket.data instanceof Sniff) socket.end();
  },
  close(socket: UpgradableSocket) {
    const sniff = socket.data;
    if (!(sniff instanceof Sniff)) return;
    clearTimeout(sniff.timer);
    sniff.listener.pending.delete(socket);
  },
  error() {},
};

/** A plain listener whose sockets become TLS once their ClientHello names a certificate. */
export class SniListener implements TransportListener {
  readonly #listener: BunListener;
  readonly #request: ListenRequest;
  /** Sockets still sending their ClientHello (closed by `stop`). */
  readonly pending = new Set<UpgradableSocket>();

  constructor(
    readonly chooser: CertificateChooser,
    request: ListenRequest,
  ) {
    this.#request = request;
    this.#listener = bunListen({
      endpoint: { hostname: request.hostname, port: request.port },
      handlers: SNIFF_EVENTS,
      data: this,
      reusePort: request.reusePort,
    });
  }

  get port(): number {
    return this.#listener.port;
  }

  get hostname(): string {
    return this.#listener.hostname;
  }

  /** Sockets accepted and still sending their ClientHello (open descriptors the library never saw). */
  /** Whether the server may hold one more socket (its open-file guard); true when it has no guard. */
  admit(): boolean {
    return this.#request.admit?.() ?? true;
  }

  get pendingSockets(): number {
    return this.pending.size;
  }

  stop(closeActive?: boolean): void {
    this.#listener.stop(closeActive === true);
    for (const socket of [...this.pending]) this.drop(socket);
    this.pending.clear();
  }

  /** Drops a socket still sniffing (timeout, stop): RST, nothing more is read from it. */
  drop(socket: UpgradableSocket): void {
    const sniff = socket.data;
    if (sniff instanceof Sniff) clearTimeout(sniff.timer);
    this.pending.delete(socket);
    socket.data = SNIFF_DONE;
    socket.terminate();
  }

  /** Hands the socket to the library as TLS, with the certificate for `serverName`. */
  upgrade(socket: UpgradableSocket, sniff: Sniff, serverName: string | undefined): void {
    clearTimeout(sniff.timer);
    this.pending.delete(socket);
    const hello = sniff.chunks.length === 1 ? sniff.chunks[0]! : Buffer.concat(sniff.chunks);
    sniff.chunks.length = 0;
    // The raw twin copies `data` now: mark it done so its ciphertext and close are ignored here.
    socket.data = SNIFF_DONE;
    const request = this.#request;
    try {
      // The new socket's `open` fires inside upgradeTLS: the library accepts it there.
      socket.upgradeTLS({
        isServer: true,
        tls: this.chooser.optionsFor(serverName),
        socket: bunHandlers(request.events),
        data: request.data,
        initialData: hello,
      });
    } catch {
      socket.terminate();
    }
  }
}
