// The leanest Bun.listen echo server for 4-byte length-prefixed frames: the baseline of the
// `packet: 4` cells (sockerl-echo-packet4.ts is the library counterpart).
// Usage: bun bench/servers/raw-echo-packet4.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// It does the framing by hand, as efficiently as it can: it walks the length headers of a chunk to
// find where its last complete frame ends, and echoes all the complete frames with one write (the
// echo of a frame is the frame itself, so no copy is needed). A partial frame at the end is kept until
// the rest arrives, as a view: Bun hands each data callback a fresh buffer, so keeping one is safe.
// Backpressure as in raw-echo.ts: what write() did not take is kept and flushed from drain().
// (a module, so the servers' top-level names do not clash when type-checked together)
export {};

const port = Number(process.argv[2] ?? 9000);

interface State {
  /** bytes write() did not take yet */
  out: Uint8Array | undefined;
  /** the start of a frame whose rest has not arrived */
  partial: Uint8Array | undefined;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a, 0);
  c.set(b, a.length);
  return c;
}

/** Where the last complete frame of `buf` ends. */
function completeFrames(buf: Uint8Array): number {
  let i = 0;
  while (i + 4 <= buf.length) {
    const n = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    if (i + 4 + n > buf.length) break;
    i += 4 + n;
  }
  return i;
}

function send(s: Bun.Socket<State>, bytes: Uint8Array): void {
  const st = s.data;
  if (st.out !== undefined) {
    st.out = concat(st.out, bytes);
    return;
  }
  const w = Math.max(s.write(bytes), 0);
  if (w < bytes.length) st.out = bytes.subarray(w);
}

const listener = Bun.listen<State>({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(s) {
      s.data = { out: undefined, partial: undefined };
    },
    data(s, chunk) {
      const st = s.data;
      const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
      const end = completeFrames(buf);
      st.partial = end === buf.length ? undefined : buf.subarray(end);
      if (end > 0) send(s, end === buf.length ? buf : buf.subarray(0, end));
    },
    drain(s) {
      const st = s.data;
      const out = st.out;
      if (out === undefined) return;
      st.out = undefined;
      send(s, out);
    },
  },
});

// the bound port: PORT 0 picks a free one (the tests use that)
console.log(`ready port=${listener.port}`);
