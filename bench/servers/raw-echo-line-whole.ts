// The upper bound of the line cells: a Bun.listen server that echoes complete lines back without
// handling any of them. It finds the last line end of a chunk with indexOf, then echoes all the
// complete lines with one write (a line's echo is the line itself, so no view, no reply and no copy
// is made per line). raw-echo-line.ts is the one that does the same work as the library.
// Usage: bun bench/servers/raw-echo-line-whole.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// A partial line at the end is kept until its
// end arrives, as a view: Bun hands each data callback a fresh buffer, so keeping one is safe.
// Backpressure as in raw-echo.ts: what write() did not take is kept and flushed from drain().
import { concat, framedServer, send } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 9000);

framedServer(port, (s, chunk) => {
  const st = s.data;
  // only the new bytes can hold a line end: the kept partial line has none
  const from = st.partial === undefined ? 0 : st.partial.length;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let end = 0;
  for (let i = buf.indexOf(10, from); i !== -1; i = buf.indexOf(10, i + 1)) end = i + 1;
  st.partial = end === buf.length ? undefined : buf.subarray(end);
  if (end > 0) send(s, end === buf.length ? buf : buf.subarray(0, end));
});
