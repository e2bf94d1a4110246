/**
 * A loopback address that black-holes SYNs, without privileges: a listening socket with a backlog of
 * 0 whose connections are never accepted. Once its accept queue holds one connection (made here),
 * Linux drops every further SYN, so a connect to it stays in SYN-SENT (retried for about 2 minutes,
 * `tcp_syn_retries`), as against a host that has gone silent. `Bun.listen` cannot do this (its
 * backlog is fixed at 512 and it always accepts), so the socket is made with libc through `bun:ffi`.
 *
 * @module
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import net from "node:net";

const libc = (() => {
  try {
    return dlopen("libc.so.6", {
      socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
    });
  } catch {
    return undefined;
  }
})();

/** Whether {@link BlackHole} works here (Linux with glibc). */
export const BLACK_HOLE_AVAILABLE = libc !== undefined && process.platform === "linux";

/** A port on 127.0.0.1 where connects hang in SYN-SENT until {@link BlackHole.close}. */
export class BlackHole {
  readonly port: number;
  readonly #fd: number;
  readonly #filler: net.Socket;

  private constructor(port: number, fd: number, filler: net.Socket) {
    this.port = port;
    this.#fd = fd;
    this.#filler = filler;
  }

  /** Opens the listener and fills its accept queue; resolves once connects to it hang. */
  static async open(): Promise<BlackHole> {
    if (libc === undefined) throw new Error("bun:ffi cannot load libc.so.6 here");
    const { socket, bind, listen, getsockname, close } = libc.symbols;
    const fd = socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
    if (fd < 0) throw new Error("socket() failed");
    // struct sockaddr_in: family (host order), port (network order), 127.0.0.1, 8 zero bytes.
    const address = new Uint8Array(16);
    const view = new DataView(address.buffer);
    view.setUint16(0, 2, true);
    view.setUint16(2, 0, false);
    view.setUint32(4, 0x7f000001, false);
    const length = new Uint32Array([16]);
    if (
      bind(fd, ptr(address), 16) !== 0 ||
      listen(fd, 0) !== 0 ||
      getsockname(fd, ptr(address), ptr(length)) !== 0
    ) {
      close(fd);
      throw new Error("bind/listen on 127.0.0.1 failed");
    }
    const port = view.getUint16(2, false);
    // One connection completes into the accept queue (backlog 0 holds one); nothing ever accepts it.
    const filler = net.connect({ host: "127.0.0.1", port });
    filler.on("error", () => undefined);
    filler.unref(); // the black hole must not keep a process alive by itself
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the filler connection did not complete")), 3000);
      filler.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return new BlackHole(port, fd, filler);
  }

  /** Closes the listener: connects still in SYN-SENT then get RST on their next retry. */
  close(): void {
    this.#filler.destroy();
    libc?.symbols.close(this.#fd);
  }
}
