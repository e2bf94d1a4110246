/**
 * TCP connects that can be cancelled. `Bun.connect` has no timeout and no way to abandon a connect
 * in progress: against a host that drops SYNs its socket stays in SYN-SENT for the kernel's ~2 minutes
 * of retries, holding a descriptor and keeping the process alive, whatever our own timer decided. A
 * pool reconnecting to such a host leaked one descriptor per attempt (20 connectors, 200 ms
 * `connectTimeout`: 50 → 330 fds in 4 s; the process outlived `pool.stop()` by ~135 s).
 *
 * `node:net` in Bun *can* abandon a connect: `destroy()` closes the socket at once. So the connect
 * phase runs there, paused (it must not read: the peer's first bytes belong to the connection), and
 * once connected its descriptor is duplicated (`dup(2)` through `bun:ffi`) and handed to
 * `Bun.connect({ fd })`, which runs the connection as usual (TLS included); the `node:net` socket is
 * then destroyed, closing only its own copy. Where libc cannot be loaded, {@link dialTcp} returns
 * `undefined` and callers connect with `Bun.connect` as before.
 *
 * ```text
 *   dialTcp ── net.connect (paused) ──┬─ "connect" → dup(fd) → destroy node socket → resolve(fd copy)
 *                                     ├─ "error"   → reject (errno code: ECONNREFUSED, ENOTFOUND, …)
 *                                     └─ cancel()  → destroy: the SYN-SENT socket is closed now
 * ```
 *
 * @module
 * @internal
 */
import { nodeNet } from "./builtins.ts";

interface Libc {
  dup(fd: number): number;
  close(fd: number): number;
}

/** libc's `dup` and `close`, loaded on first use; `null` where that is impossible. */
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== "linux") return libc;
  try {
    // A dynamic require keeps bun:ffi (and dlopen) off the path of programs that never connect.
    const ffi = require("bun:ffi") as typeof import("bun:ffi");
    const { symbols } = ffi.dlopen("libc.so.6", {
      dup: { args: [ffi.FFIType.i32], returns: ffi.FFIType.i32 },
      close: { args: [ffi.FFIType.i32], returns: ffi.FFIType.i32 },
    });
    libc = { dup: (fd) => symbols.dup(fd), close: (fd) => symbols.close(fd) };
  } catch {
    libc = null; // musl, or FFI disabled: connect with Bun.connect, uncancellable
  }
  return libc;
}

/** A connect in progress. */
export interface Dial {
  /** Resolves with a connected descriptor the caller owns (hand it to `Bun.connect({ fd })` or {@link closeFd}). */
  readonly fd: Promise<number>;
  /** Abandons the connect: its socket closes now. `fd` then never resolves (nor rejects). */
  cancel(): void;
}

/**
 * Starts a cancellable TCP connect to `host:port`; `undefined` where descriptors cannot be handed
 * over (then use `Bun.connect`). Rejects with `node:net`'s error (an errno `code`).
 *
 * @example
 * const dial = dialTcp("127.0.0.1", 6379);
 * const timer = setTimeout(() => dial?.cancel(), 3000);
 * const fd = await dial?.fd;
 */
export function dialTcp(host: string, port: number): Dial | undefined {
  const lib = loadLibc();
  if (lib === null) return undefined;
  const socket = nodeNet().connect({ host, port });
  socket.pause();
  let done = false;
  const fd = new Promise<number>((resolve, reject) => {
    socket.once("connect", () => {
      if (done) return;
      done = true;
      const own = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
      const copy = typeof own === "number" && own >= 0 ? lib.dup(own) : -1;
      socket.destroy();
      if (copy < 0)
        reject(Object.assign(new Error("cannot take over the connected socket"), { code: "EBADF" }));
      else resolve(copy);
    });
    socket.once("error", (error) => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(error);
    });
  });
  return {
    fd,
    cancel() {
      if (done) return;
      done = true;
      socket.destroy();
    },
  };
}

/** Closes a descriptor from {@link Dial.fd} that will not be used. */
export function closeFd(fd: number): void {
  loadLibc()?.close(fd);
}
