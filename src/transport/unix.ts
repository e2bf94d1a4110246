/**
 * Unix domain sockets: `unix(path)` for servers (the `port` given to `startServer` is ignored) and
 * connectors (the host and port given to `startConnector` are ignored).
 *
 * A socket file left behind by a process that died is removed before listening. A path that is not
 * a socket, or a socket someone is still listening on (checked in `/proc/net/unix` on Linux), is
 * never removed: listening fails with `EADDRINUSE`. Bun removes the file when the listener stops.
 * Abstract names (`"\0name"`, Linux) have no file and are used as given.
 *
 * @module
 */
import { nodeFs, nodePath } from "../builtins.ts";
import { OptionError } from "../errors.ts";
import { bunConnect, bunListen, COPIES_WRITES } from "./bun-options.ts";
import type {
  ConnectRequest,
  ListenRequest,
  Transport,
  TransportListener,
  TransportSocket,
} from "./transport.ts";

/** Paths this process listens on (a second bind on one path would fail anyway). */
const listening = new Set<string>();

class UnixTransport implements Transport {
  readonly name = "unix";
  readonly secure = false;
  readonly [COPIES_WRITES] = true;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  listen(request: ListenRequest): TransportListener {
    const path = this.path;
    if (!path.startsWith("\0")) removeStale(path);
    const listener = bunListen({ endpoint: { unix: path }, handlers: request.events, data: request.data });
    listening.add(path);
    let stopped = false;
    return {
      port: 0,
      hostname: path,
      stop(closeActive?: boolean) {
        if (stopped) return;
        stopped = true;
        listening.delete(path);
        listener.stop(closeActive === true);
      },
    };
  }

  connect(request: ConnectRequest): Promise<TransportSocket> {
    return bunConnect({ endpoint: { unix: this.path }, handlers: request.events, data: request.data });
  }
}

function addressInUse(path: string, why: string): Error {
  return Object.assign(new Error(`${path}: ${why}`), {
    code: "EADDRINUSE",
    syscall: "listen",
    address: path,
  });
}

/** Removes a socket file nobody listens on; throws EADDRINUSE for anything else in the way. */
function removeStale(path: string): void {
  if (listening.has(path)) throw addressInUse(path, "already listening in this process");
  const fs = nodeFs();
  if (!fs.existsSync(path)) return;
  if (!fs.lstatSync(path).isSocket()) throw addressInUse(path, "exists and is not a socket");
  if (hasListener(path)) throw addressInUse(path, "another process is listening");
  fs.unlinkSync(path);
}

/** Linux: whether a listening socket is bound to `path` (absolute). Elsewhere: false. */
function hasListener(path: string): boolean {
  let table: string;
  try {
    table = nodeFs().readFileSync("/proc/net/unix", "latin1");
  } catch {
    return false;
  }
  // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = __SO_ACCEPTCON (listening).
  for (const line of table.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && fields[3] === "00010000" && fields.slice(7).join(" ") === path) return true;
  }
  return false;
}

/**
 * Unix domain socket transport. `path` is made absolute (relative to the current directory), except
 * for Linux abstract names that start with `"\0"`.
 *
 * @example
 * const server = await startServer(handler, undefined, 0, { transport: unix("/tmp/app.sock") });
 * const conn = await startConnector(handler, undefined, "localhost", 0, { transport: unix("/tmp/app.sock") });
 */
export function unix(path: string): Transport {
  if (typeof path !== "string" || path.length === 0 || path.includes("\0", 1)) {
    throw new OptionError("path", "a non-empty socket path", path);
  }
  return new UnixTransport(path.startsWith("\0") ? path : nodePath().resolve(path));
}
