/**
 * The package's handles expose their public interface only: members the library uses internally
 * are stripped from the declarations, so each access below must be a compile error (an unused
 * `@ts-expect-error` fails the check). Type-checked only; `check()` is never called.
 */
import type { Connection, Meta, Pool, Server } from "sockerl";

export function check(server: Server, pool: Pool, conn: Connection, meta: Meta): unknown[] {
  return [
    // @ts-expect-error internal: the server's accept path
    server.accept,
    // @ts-expect-error internal: binds the acceptors (startServer does)
    server.listen,
    // @ts-expect-error internal: sys.changeCode's hook
    server.setHandler,
    // @ts-expect-error internal: the connection processes
    server.processes,
    // @ts-expect-error internal: a pool's slot bookkeeping
    pool.connectorDown,
    // @ts-expect-error internal: sys.changeCode's hook
    pool.setHandler,
    // @ts-expect-error the handle is a view: no process fields
    conn.mailbox,
    // @ts-expect-error meta is a view: no process fields
    meta.handler,
    // The public surface is there.
    server.port,
    server.info(),
    pool.connections(),
    conn.call<number>("x"),
    meta.remoteAddress,
  ];
}
