/**
 * Node's built-in modules, loaded at their first use rather than when the library is imported.
 *
 * Only some paths need them: TLS options (`node:crypto`, reading PEM files), the connector's
 * cancellable dial and SNI (`node:net`), Unix socket files, the cluster's CPU count, the open-file
 * guard. Importing them up front costs every process that uses the library: in Bun 1.4 each one is a
 * JavaScript module of its own (`node:net` and `node:crypto` add about 0.5 MB of functions and
 * structures each to the heap), and every garbage collection pays for a bigger heap. Measured on a
 * plain echo server of 16 KiB messages (where the 64 KiB chunks make the collector run several hundred
 * times a second): the same `Bun.listen` server with `node:net`, `node:crypto`, `node:fs` and
 * `node:tls` imported runs at x0.97. `process.getBuiltinModule` loads a module synchronously where it
 * is needed, with the same types as an `import`.
 *
 * @module
 */

/** The modules loaded here, by id. */
interface Builtins {
  "node:net": typeof import("node:net");
  "node:crypto": typeof import("node:crypto");
  "node:fs": typeof import("node:fs");
  "node:os": typeof import("node:os");
  "node:path": typeof import("node:path");
}

/** A getter of `id` that loads it at its first call. */
function lazy<ID extends keyof Builtins>(id: ID): () => Builtins[ID] {
  let loaded: Builtins[ID] | undefined;
  // (the cast: Node's own typing of the ids is not exported; the modules are the same)
  return () => (loaded ??= process.getBuiltinModule(id) as Builtins[ID]);
}

/** `node:net`, loaded at the first call. */
export const nodeNet = lazy("node:net");
/** `node:crypto`, loaded at the first call. */
export const nodeCrypto = lazy("node:crypto");
/** `node:fs`, loaded at the first call. */
export const nodeFs = lazy("node:fs");
/** `node:os`, loaded at the first call. */
export const nodeOs = lazy("node:os");
/** `node:path`, loaded at the first call. */
export const nodePath = lazy("node:path");
