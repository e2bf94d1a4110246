// The leanest Bun.listen echo server over TLS: raw-echo.ts with Bun's `tls` option, the baseline of
// the TLS cells (sockerl-echo-tls.ts is the library counterpart). Certificate and key are the test
// fixtures test/fixtures/server.pem and server-key.pem.
// Usage: bun bench/servers/raw-echo-tls.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Backpressure as in raw-echo.ts: what write() did not take is kept in s.data and flushed
// from drain(), with later data appended behind it.
import { join } from "node:path";

const port = Number(process.argv[2] ?? 9000);
const fixtures = join(import.meta.dir, "..", "..", "test", "fixtures");

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function flush(s: Bun.Socket<Uint8Array | undefined>, buf: Uint8Array): void {
  const w = Math.max(s.write(buf), 0);
  s.data = w >= buf.length ? undefined : buf.subarray(w);
}

const listener = Bun.listen<Uint8Array | undefined>({
  hostname: "127.0.0.1",
  port,
  tls: {
    cert: Bun.file(join(fixtures, "server.pem")),
    key: Bun.file(join(fixtures, "server-key.pem")),
  },
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
