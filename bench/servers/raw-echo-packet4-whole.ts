// The upper bound of the `packet: 4` cells: a Bun.listen server that echoes complete frames back
// without handling any of them. It walks the length headers of a chunk to find where its last
// complete frame ends, and echoes all the complete frames with one write (the echo of a frame is the
// frame itself, so no view, no reply and no copy is made per frame). No server that hands each frame
// to application code can do this little; raw-echo-packet4.ts is the one that does the same work as
// the library.
// Usage: bun bench/servers/raw-echo-packet4-whole.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// A partial frame at the end is kept until
// the rest arrives, as a view: Bun hands each data callback a fresh buffer, so keeping one is safe.
// Backpressure as in raw-echo.ts: what write() did not take is kept and flushed from drain().
import { concat, framedServer, send } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 9000);

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

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  const end = completeFrames(buf);
  st.partial = end === buf.length ? undefined : buf.subarray(end);
  if (end > 0) send(s, end === buf.length ? buf : buf.subarray(0, end));
});
