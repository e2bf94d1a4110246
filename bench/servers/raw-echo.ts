// The leanest Bun.listen echo server: the baseline sockerl is measured against.
// Usage: bun bench/servers/raw-echo.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Backpressure: socket.write() returns how many bytes the kernel took. The
// rest is kept (per socket, in s.data) and flushed from drain();
// while something is pending, new data is appended behind it, so the echo
// stays in order and nothing is dropped.
// (a module, so the servers' top-level names do not clash when type-checked together)
export {};

const port = Number(process.argv[2] ?? 9000);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function flush(s: Bun.Socket<Uint8Array | undefined>, buf: Uint8Array): void {
  const n = s.write(buf);
  const w = Math.max(n, 0);
  // Buffer.slice is a view (Bun hands each data callback a fresh buffer, so keeping one is safe);
  // after a concat it is a copy
  s.data = w >= buf.length ? undefined : buf.slice(w);
}

const listener = Bun.listen<Uint8Array | undefined>({
  hostname: "127.0.0.1",
  port,
  socket: {
    data(s, chunk) {
      const pending = s.data;
      if (pending !== undefined) s.data = concat(pending, chunk);
      else flush(s, chunk);
    },
    drain(s) {
      const pending = s.data;
      if (pending !== undefined) flush(s, pending);
    },
  },
});

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${listener.port}`);
