/**
 * What the kit's `connect`, `startConnector` and `startPool` aim at ({@link Target}), and how
 * `kit.connect` finds the library connection its peer talks to.
 *
 * @module
 */
import type { Connection } from "../index.ts";

/** Something with a port to connect to: a `Server`, a {@link ScriptedListener}, or a port number. */
export type Target = number | { readonly port: number };

/** A server-like target: its `connections()` lists the live connections. */
interface Listed {
  connections(): Array<[id: number, connection: Connection]>;
}

function isListed(target: Target): target is Target & Listed {
  return typeof target === "object" && typeof (target as Partial<Listed>).connections === "function";
}

/** Ids of the target's connections now (undefined when it has no list). */
export function connectionIds(target: Target): Set<number> | undefined {
  return isListed(target) ? new Set(target.connections().map(([id]) => id)) : undefined;
}

/**
 * The connection that appeared in the target's list since `before`: a server accepts inside the
 * transport's `open`, which the memory network calls synchronously inside the dial.
 */
export function newConnection(target: Target, before: Set<number> | undefined): Connection | undefined {
  if (before === undefined || !isListed(target)) return undefined;
  for (const [id, conn] of target.connections()) if (!before.has(id)) return conn;
  return undefined;
}
