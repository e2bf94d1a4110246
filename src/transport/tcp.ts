/**
 * Plain TCP, the default transport.
 *
 * @module
 */
import { ArgumentError, OptionError } from "../errors.ts";
import { booleanOption } from "../validate.ts";
import { bunConnect, bunListen, COPIES_WRITES, type FdConnectRequest, TAKES_FD } from "./bun-options.ts";
import type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportListener,
  TransportSocket,
} from "./transport.ts";

/** Options of {@link tcp}. */
export interface TcpOptions {
  /** Restrict a `"::"` listener to IPv6. */
  readonly ipv6Only?: boolean;
}

class TcpTransport implements Transport {
  readonly name = "tcp";
  readonly secure = false;
  readonly [TAKES_FD] = true;
  readonly [COPIES_WRITES] = true;
  readonly #ipv6Only: boolean;

  constructor(options: TcpOptions) {
    this.#ipv6Only = options.ipv6Only === true;
  }

  listen(request: ListenRequest): TransportListener {
    return bunListen({
      endpoint: { hostname: request.hostname, port: request.port },
      handlers: request.events,
      data: request.data,
      reusePort: request.reusePort,
      ipv6Only: this.#ipv6Only,
    });
  }

  connect(request: ConnectRequest): Promise<TransportSocket> {
    const fd = (request as FdConnectRequest).fd;
    return bunConnect({
      endpoint: fd === undefined ? { hostname: request.hostname, port: request.port } : { fd },
      handlers: request.events,
      data: request.data,
    });
  }
}

/**
 * Plain TCP (the default transport).
 *
 * @example
 * await startServer(handler, undefined, 0, { transport: tcp() });
 * await startServer(handler, undefined, 0, { hostname: "::", transport: tcp({ ipv6Only: true }) });
 */
export function tcp(options: TcpOptions = {}): Transport {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ArgumentError("options", "an object", options);
  }
  for (const key of Object.keys(options)) {
    if (key !== "ipv6Only")
      throw new OptionError(key, "a known option", (options as Record<string, unknown>)[key]);
  }
  booleanOption("ipv6Only", options.ipv6Only, undefined);
  return new TcpTransport(options);
}
