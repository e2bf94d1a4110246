// The leanest Bun.listen RESP server doing the work of examples/resp-server.ts: the baseline of the
// RESP cells (sockerl-resp.ts is the library counterpart, raw-resp-naive.ts the naive raw one).
// Usage: bun bench/servers/raw-resp.ts PORT   (prints "ready port=N" once listening on 127.0.0.1)
//
// Same work as the example, with the example's own code: each command is cut with the RESP codec's
// frameLength (examples/resp.ts), split with parseCommand and run by the example's execute() against
// one Map per server. Only the plumbing is by hand, as lean as it gets: a partial command at the end of
// a chunk is kept (a view: Bun hands each data callback a fresh buffer) until its rest arrives, and
// every reply of one chunk is copied into one shared buffer that goes out in one write(). What write()
// did not take is copied out of that buffer, kept, and flushed from drain() (raw-framed.ts).

import { parseCommand, resp } from "../../examples/resp.ts";
import { execute, type Store } from "../../examples/resp-server.ts";
import { concat, type FramedState, framedServer, send } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 6379);
const store: Store = new Map();

/** The replies of one chunk, reused for every chunk: the kernel copies what write() takes. */
let out = Buffer.allocUnsafe(64 * 1024);

/** Appends one reply at `at` (growing the buffer when it must), returns the new end. */
function put(reply: Uint8Array | string, at: number): number {
  const need = at + reply.length; // a latin1 string: one byte per char
  if (need > out.length) {
    const bigger = Buffer.allocUnsafe(Math.max(need, out.length * 2));
    bigger.set(out.subarray(0, at), 0);
    out = bigger;
  }
  // Replies are latin1 text (the example builds them from latin1 keys and ASCII) or bytes.
  if (typeof reply === "string") return at + out.write(reply, at, "latin1");
  out.set(reply, at);
  return need;
}

function flush(s: Bun.Socket<FramedState>, len: number): void {
  if (len === 0) return;
  if (s.data.out !== undefined) {
    send(s, Uint8Array.from(out.subarray(0, len))); // queued behind earlier bytes: a copy of its own
    return;
  }
  const w = Math.max(s.write(out, 0, len), 0); // no view to allocate
  // a copy (Buffer#slice would be a view): `out` is reused by the next chunk
  if (w < len) s.data.out = Uint8Array.from(out.subarray(w, len));
}

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let at = 0;
  let len = 0;
  try {
    while (at < buf.length) {
      const rest = at === 0 ? buf : buf.subarray(at);
      const n = resp.frameLength(rest); // 0 or -N: the command is not complete yet
      if (n <= 0) break;
      const { reply, close } = execute(parseCommand(n === rest.length ? rest : rest.subarray(0, n)), store);
      at += n;
      if (reply !== undefined) len = put(reply, len);
      if (close) {
        flush(s, len);
        s.end();
        return;
      }
    }
  } catch {
    // Not RESP (RespProtocolError): answered so far, then closed, as the library's FramingError does.
    flush(s, len);
    s.end();
    return;
  }
  st.partial = at === buf.length ? undefined : buf.subarray(at);
  flush(s, len);
});
