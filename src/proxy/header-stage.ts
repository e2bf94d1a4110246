/**
 * The header stage of an accepted PROXY socket: the per-socket {@link Pending} state, the handler
 * table every socket of a {@link ProxyListener} reports to, and what each read does while the
 * header (then, on an `sni` TLS server, the ClientHello) is still arriving. Kept apart from the
 * listener so the per-read path can be read on its own.
 *
 * @module
 */
import { readServerName } from "../transport/tls.ts";
import type { TransportEvents, TransportSocket } from "../transport/transport.ts";
import { MAX_V2_LENGTH, type ProxyHeader, parseProxyHeader } from "./header.ts";
import type { ProxyListener } from "./listener.ts";

/**
 * `socket.data` of a raw twin after a TLS upgrade: its ciphertext and close are not ours. Shared
 * with the connector side, which marks its raw twin the same way.
 */
export const TWIN = Symbol("sockerl.proxyTwin");

/** What the message of a parser error starts with (stripped when the address is added). */
const MESSAGE_PREFIX = "Bad PROXY protocol header: ";

/** Per-socket state during the header stage. */
export class Pending {
  /**
   * Set once the header is read, on a TLS server with an `sni` map: the socket then waits for the
   * rest of the ClientHello, to pick the certificate by its server name.
   */
  header: ProxyHeader | undefined = undefined;
  /** Bytes of a header split across reads (grown by doubling: a dribbled 64 KiB v2 header stays linear). */
  buffer: Uint8Array | undefined = undefined;
  length = 0;
  constructor(
    readonly listener: ProxyListener,
    /** `performance.now()` past which the header (then the ClientHello) is late. */
    public deadline: number,
  ) {}
}

/** The socket surface needed here (Bun's socket). */
export interface BunSocket extends TransportSocket {
  upgradeTLS?(options: {
    isServer: boolean;
    tls: unknown;
    socket: unknown;
    data: unknown;
    initialData?: Uint8Array;
  }): [TransportSocket, TransportSocket];
}

/** Longest ClientHello waited for behind a header (bytes), as the `sni` listener of `tls()` does. */
export const MAX_HELLO = 64 * 1024;
/** `readServerName`'s "more bytes needed". */
export const HELLO_INCOMPLETE = 0;

/** One handler table per listener (Bun wants a table per listen call), dispatching on `socket.data`. */
export function handlersFor(listener: ProxyListener): TransportEvents {
  const events = listener.request.events;
  return {
    open(socket: BunSocket) {
      // Near the server's open-file limit, a socket is not held for its header (see ListenRequest.admit).
      if (listener.request.admit?.() === false) {
        socket.data = TWIN;
        socket.terminate();
        return;
      }
      socket.data = new Pending(listener, performance.now() + listener.options.timeoutMs);
      if (!listener.trusted(socket.remoteAddress)) {
        listener.reject(socket, "the source address is not trusted to send one");
        return;
      }
      listener.pending.add(socket);
    },
    data(socket: BunSocket, chunk: Uint8Array) {
      const p = socket.data;
      if (p instanceof Pending) return onHeaderBytes(listener, socket, p, chunk);
      if (p !== TWIN) events.data(socket, chunk);
    },
    drain(socket: BunSocket) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.drain(socket);
    },
    end(socket: BunSocket) {
      const p = socket.data;
      if (p instanceof Pending)
        listener.reject(socket, `the connection ended before ${stage(p)} was complete`);
      else if (p !== TWIN) events.end(socket);
    },
    close(socket: BunSocket, error?: Error) {
      const p = socket.data;
      if (p instanceof Pending) {
        listener.reject(socket, `the connection closed before ${stage(p)} was complete`, error);
      } else if (p !== TWIN) events.close(socket, error);
    },
    error(socket: BunSocket, error: Error) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.error(socket, error);
    },
    handshake(socket: BunSocket, success: boolean, authorizationError: Error | null) {
      const p = socket.data;
      if (!(p instanceof Pending) && p !== TWIN) events.handshake(socket, success, authorizationError);
    },
  };
}

/** What a socket in the header stage is still sending. */
function stage(p: Pending): string {
  return p.header === undefined ? "the header" : "the TLS ClientHello after the header";
}

function onHeaderBytes(listener: ProxyListener, socket: BunSocket, p: Pending, chunk: Uint8Array): void {
  // Most headers arrive in one read: only a split header pays for a copy.
  let bytes = chunk;
  if (p.buffer !== undefined) {
    const needed = p.length + chunk.length;
    if (needed > p.buffer.length) {
      const grown = new Uint8Array(Math.max(needed, 2 * p.buffer.length));
      grown.set(p.buffer.subarray(0, p.length));
      p.buffer = grown;
    }
    p.buffer.set(chunk, p.length);
    p.length = needed;
    bytes = p.buffer.subarray(0, needed);
  }
  if (p.header !== undefined) {
    // The header is read; this is the ClientHello, for its server name (see ProxyListener.handOff).
    const name = readServerName(bytes);
    if (name === HELLO_INCOMPLETE && bytes.length < MAX_HELLO) return;
    listener.pending.delete(socket);
    listener.upgradeTls(socket, p.header, bytes, typeof name === "string" ? name : undefined);
    return;
  }
  let result: ReturnType<typeof parseProxyHeader>;
  try {
    result = parseProxyHeader(bytes);
  } catch (error) {
    const info = error instanceof Error ? error.message.replace(MESSAGE_PREFIX, "") : String(error);
    listener.reject(socket, info, error);
    return;
  }
  if (result === "incomplete") {
    // The parser bounds each version (107 bytes for v1, 16 + 65535 for v2), so this holds at most that.
    if (bytes.length > MAX_V2_LENGTH) listener.reject(socket, "header too long");
    else if (p.buffer === undefined) {
      // A copy (Bun may reuse nothing, but `chunk.slice()` would be a view on a Buffer anyway).
      p.buffer = new Uint8Array(Math.max(256, 2 * chunk.length));
      p.buffer.set(chunk);
      p.length = chunk.length;
    }
    return;
  }
  if (!listener.options.versions.includes(result.header.version)) {
    listener.reject(socket, `version ${result.header.version} is not accepted here`);
    return;
  }
  listener.handOff(socket, p, result.header, bytes.subarray(result.length));
}
