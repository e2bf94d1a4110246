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

type Net = typeof import("node:net");
type Crypto = typeof import("node:crypto");
type Fs = typeof import("node:fs");
type Os = typeof import("node:os");
type Path = typeof import("node:path");

let net: Net | undefined;
let crypto: Crypto | undefined;
let fs: Fs | undefined;
let os: Os | undefined;
let path: Path | undefined;

/** `node:net`, loaded at the first call. */
export function nodeNet(): Net {
  net ??= process.getBuiltinModule("node:net");
  return net;
}

/** `node:crypto`, loaded at the first call. */
export function nodeCrypto(): Crypto {
  crypto ??= process.getBuiltinModule("node:crypto");
  return crypto;
}

/** `node:fs`, loaded at the first call. */
export function nodeFs(): Fs {
  fs ??= process.getBuiltinModule("node:fs");
  return fs;
}

/** `node:os`, loaded at the first call. */
export function nodeOs(): Os {
  os ??= process.getBuiltinModule("node:os");
  return os;
}

/** `node:path`, loaded at the first call. */
export function nodePath(): Path {
  path ??= process.getBuiltinModule("node:path");
  return path;
}
