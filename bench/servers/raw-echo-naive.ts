// A naive Bun.listen echo server for 4-byte length-prefixed frames: one write() per request, the
// way a hand-written server usually answers. Shown next to the lean raw-echo-packet4.ts in the
// pipelined (P=16) cells: Bun's write() is one syscall each, with no cork, so when a read brings
// several requests this pays one sendto per request where the lean server and the library pay one
// per read.
// Usage: bun bench/servers/raw-echo-naive.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Correct otherwise: partial frames are kept (views: Bun hands each data callback a fresh
// buffer), and what write() did not take is kept and
// flushed from drain(), with later replies queued behind it.
import { concat, framedServer, send } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 9000);

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let i = 0;
  while (i + 4 <= buf.length) {
    const n = ((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) >>> 0;
    if (i + 4 + n > buf.length) break;
    send(s, buf.subarray(i, i + 4 + n)); // one reply, one write
    i += 4 + n;
  }
  st.partial = i === buf.length ? undefined : buf.subarray(i);
});
