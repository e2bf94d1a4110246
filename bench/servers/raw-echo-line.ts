// The leanest Bun.listen server doing what the library's `{ delimiter: "\r\n" }` echo does: the
// baseline of the line cells (sockerl-echo-line.ts is the library counterpart).
// Usage: bun bench/servers/raw-echo-line.ts PORT   (prints "ready" once listening on 127.0.0.1)
//
// Framing by hand, per line, as a hand-written line protocol server must: it finds each "\r\n" of a
// chunk with indexOf, hands each complete line (a view, terminator included, as the library delivers
// it) to the application's function, and writes the replies into one buffer reused for every chunk
// (Replies in raw-framed.ts): one write per chunk. A partial line at the end is kept until its end
// arrives, as a view. Backpressure as in raw-echo.ts. raw-echo-line-whole.ts is the bound nobody
// handling lines reaches (it echoes the complete lines back whole).
import { concat, framedServer, Replies } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 9000);
const replies = new Replies();

/** The application: the reply to one line (an echo). */
function answer(line: Uint8Array): Uint8Array {
  return line;
}

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  // only the new bytes can end a line, but a "\r" may be the kept partial's last byte
  let start = 0;
  let i = buf.indexOf(10, st.partial === undefined ? 0 : st.partial.length);
  while (i !== -1) {
    if (i > start && buf[i - 1] === 13) {
      replies.put(answer(buf.subarray(start, i + 1)));
      start = i + 1;
    }
    i = buf.indexOf(10, i + 1);
  }
  st.partial = start === buf.length ? undefined : buf.subarray(start);
  replies.flush(s);
});
