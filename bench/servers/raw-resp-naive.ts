// A naive Bun.listen RESP server: raw-resp.ts with one write() per reply, the way a hand-written
// server usually answers. Shown next to the lean raw-resp.ts in the pipelined (P=16) RESP cell: Bun's
// write() is one syscall each, with no cork, so when a read brings 16 commands this pays 16 sendto
// where the lean server and the library pay one.
// Usage: bun bench/servers/raw-resp-naive.ts PORT   (prints "ready port=N" once listening on 127.0.0.1)
//
// Correct otherwise, with the same code as raw-resp.ts for the work (the RESP codec's frameLength,
// parseCommand and the example's execute()): partial commands are kept, and what write() did not take
// is kept and flushed from drain(), with later replies queued behind it.

import { parseCommand, resp } from "../../examples/resp.ts";
import { execute, type Store } from "../../examples/resp-server.ts";
import { concat, type FramedState, framedServer, send } from "./raw-framed.ts";

const port = Number(process.argv[2] ?? 6379);
const store: Store = new Map();

/** One reply, one write(): a string as it is (Bun encodes it as UTF-8; replies are ASCII here). */
function reply(s: Bun.Socket<FramedState>, r: Uint8Array | string): void {
  if (s.data.out !== undefined || typeof r !== "string") {
    send(s, typeof r === "string" ? Buffer.from(r, "latin1") : r);
    return;
  }
  const w = Math.max(s.write(r), 0);
  if (w < r.length) s.data.out = Buffer.from(r, "latin1").subarray(w);
}

framedServer(port, (s, chunk) => {
  const st = s.data;
  const buf = st.partial === undefined ? chunk : concat(st.partial, chunk);
  let at = 0;
  try {
    while (at < buf.length) {
      const rest = at === 0 ? buf : buf.subarray(at);
      const n = resp.frameLength(rest); // 0 or -N: the command is not complete yet
      if (n <= 0) break;
      const { reply: r, close } = execute(
        parseCommand(n === rest.length ? rest : rest.subarray(0, n)),
        store,
      );
      at += n;
      if (r !== undefined) reply(s, r);
      if (close) {
        s.end();
        return;
      }
    }
  } catch {
    s.end(); // not RESP (RespProtocolError), as the library's FramingError does
    return;
  }
  st.partial = at === buf.length ? undefined : buf.subarray(at);
});
