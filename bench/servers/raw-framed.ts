// What the three framed raw baselines share (raw-echo-packet4.ts, raw-echo-naive.ts,
// raw-echo-line.ts): per-socket state, a send that keeps what write() did not take (Bun drops it)
// and flushes it from drain(), and the Bun.listen on 127.0.0.1 that prints "ready port=N". Each
// baseline only says how it cuts a chunk into replies.

/** Per-socket state of a framed raw server. */
export interface FramedState {
  /** bytes write() did not take yet */
  out: Uint8Array | undefined;
  /** the start of a frame whose rest has not arrived (a view: Bun hands each data callback a fresh buffer) */
  partial: Uint8Array | undefined;
}

/** `a` then `b`, in one new buffer. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a, 0);
  c.set(b, a.length);
  return c;
}

/** Writes `bytes`, or queues them behind what is already waiting for drain(). */
export function send(s: Bun.Socket<FramedState>, bytes: Uint8Array): void {
  const st = s.data;
  if (st.out !== undefined) {
    st.out = concat(st.out, bytes);
    return;
  }
  const w = Math.max(s.write(bytes), 0);
  if (w < bytes.length) st.out = bytes.subarray(w);
}

/** Listens on 127.0.0.1:`port` with `data` as the data handler, and prints "ready port=N". */
export function framedServer(
  port: number,
  data: (s: Bun.Socket<FramedState>, chunk: Uint8Array) => void,
): void {
  const listener = Bun.listen<FramedState>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(s) {
        s.data = { out: undefined, partial: undefined };
      },
      data,
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
}

/**
 * The replies of one chunk, merged into one buffer reused for every chunk of every socket (the kernel
 * copies what `write()` takes, so the buffer is free again when it returns): the leanest way to answer
 * each frame of a chunk with one write. Grows by doubling for a bigger batch.
 */
export class Replies {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  /** Bytes of `buf` filled for the current chunk. */
  at = 0;

  /** Makes room for `n` more bytes. */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.at + n));
    grown.set(this.buf.subarray(0, this.at), 0);
    this.buf = grown;
  }

  /** Appends one reply: bytes, or latin1 text (one byte per char, as the RESP example's replies are). */
  put(reply: Uint8Array | string): void {
    this.room(reply.length);
    if (typeof reply === "string") this.at += this.buf.write(reply, this.at, "latin1");
    else {
      this.buf.set(reply, this.at);
      this.at += reply.length;
    }
  }

  /** Writes the replies collected for `s` (one write), keeping a copy of what the kernel did not take. */
  flush(s: Bun.Socket<FramedState>): void {
    const n = this.at;
    this.at = 0;
    if (n === 0) return;
    const st = s.data;
    if (st.out !== undefined) {
      st.out = concat(st.out, this.buf.subarray(0, n));
      return;
    }
    const w = Math.max(s.write(this.buf, 0, n), 0);
    if (w < n) st.out = Buffer.from(this.buf.subarray(w, n));
  }
}
