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
import { concat, framedServer, Replies } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 6379);
const store: Store = new Map();

/** The replies of one chunk, in one buffer reused for every chunk (the kernel copies what write() takes). */
const replies = new Replies();

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let at = 0;
  try {
    while (at < buf.length) {
      const rest = at === 0 ? buf : buf.subarray(at);
      const n = resp.frameLength(rest); // 0 or -N: the command is not complete yet
      if (n <= 0) break;
      const { reply, close } = execute(parseCommand(n === rest.length ? rest : rest.subarray(0, n)), store);
      at += n;
      if (reply !== undefined) replies.put(reply);
      if (close) {
        replies.flush(s);
        s.end();
        return;
      }
    }
  } catch {
    // Not RESP (RespProtocolError): answered so far, then closed, as the library's FramingError does.
    replies.flush(s);
    s.end();
    return;
  }
  st.partial = at === buf.length ? undefined : buf.subarray(at);
  replies.flush(s);
});
