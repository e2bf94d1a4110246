// The leanest Bun.listen server doing what the library's `packet: 4` echo does: the baseline of the
// `packet: 4` cells (sockerl-echo-packet4.ts is the library counterpart).
// Usage: bun bench/servers/raw-echo-packet4.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Framing by hand, per frame, as a hand-written request/response server must: it walks the length
// headers of a chunk, hands each complete frame's payload (a view, no copy) to the application's
// function, and writes each reply with its header into one buffer reused for every chunk (Replies in
// raw-framed.ts), so a chunk of 16 requests is answered by one write and no allocation but the views.
// A partial frame at the end is kept until the rest arrives, as a view: Bun hands each data callback
// a fresh buffer, so keeping one is safe. Backpressure as in raw-echo.ts: what write() did not take
// is kept and flushed from drain(). raw-echo-packet4-whole.ts is the bound nobody handling frames
// reaches (it echoes the complete frames back whole).
import { concat, framedServer, Replies } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 9000);
const replies = new Replies();

/** The application: the reply to one request (an echo). */
function answer(payload: Uint8Array): Uint8Array {
  return payload;
}

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let i = 0;
  while (i + 4 <= buf.length) {
    const n = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    if (i + 4 + n > buf.length) break;
    const reply = answer(buf.subarray(i + 4, i + 4 + n));
    const r = reply.length;
    replies.room(4 + r);
    const out = replies.buf;
    const at = replies.at;
    out[at] = r >>> 24;
    out[at + 1] = (r >>> 16) & 0xff;
    out[at + 2] = (r >>> 8) & 0xff;
    out[at + 3] = r & 0xff;
    out.set(reply, at + 4);
    replies.at = at + 4 + r;
    i += 4 + n;
  }
  st.partial = i === buf.length ? undefined : buf.subarray(i);
  replies.flush(s);
});
