/**
 * The open-file limit guard of a server.
 *
 * Bun 1.4.5 (uSockets) retries a failing `accept()` at once: when the process has used all its file
 * descriptors (EMFILE) the listening socket stays readable, so the event loop spins at ~100 % of a core
 * while serving nothing and reporting nothing (measured: 90 % CPU with `ulimit -n 64`; the backoff is a
 * "Todo" in uSockets' `loop.c`, oven-sh/bun PR #32705, open). JavaScript never sees the failed accept, so
 * the library cannot back off after the fact; it must never let its accepted sockets take the last
 * descriptors. Near the limit a server therefore resets each new connection at once (accept, then RST)
 * instead of holding it: `accept()` keeps succeeding, the backlog empties, nothing spins, and new
 * connections are served again as soon as descriptors are free.
 *
 * Counting descriptors reads `/proc/self/fd` (Linux); it is done only when the server's own socket count
 * has grown past half of the room left at the previous count, so a server far from the limit pays one
 * directory read per halving of its headroom. Where the limit is unknown (no `/proc`), there is no guard.
 *
 * Both are read without `node:fs` where possible (see builtins.ts for why a plain server should not
 * load it): the limit by {@link prefetchOpenFileLimit}, started when a server is made (a server's first
 * socket comes at least one event-loop turn later). Where the prefetch has not finished, `node:fs`
 * reads the limit at once. The count is the size `stat` gives the directory: Linux 6.2 and later report
 * the number of open descriptors there, at the cost of one syscall and one object, needing no descriptor
 * of its own (so it works at EMFILE too). Older kernels report 0; there the directory is listed with
 * `Bun.Glob`, which makes a string per descriptor: at 10,000 connections one count left 10,000 strings
 * and 20,000 objects on the heap, about 0.2 kB of RSS per idle connection until the next collection.
 *
 * @module
 */
import { nodeFs } from "./builtins.ts";

const LIMITS = "/proc/self/limits";
const FD_DIR = "/proc/self/fd";
/** Every entry of the descriptor directory (their names are numbers: no dot files to miss). */
const fdScan = new Bun.Glob("*");

/** The limit once read (null: unknown or unlimited); undefined until then. */
let cachedLimit: number | null | undefined;
/** The background read of the limit, once started. */
let prefetch: Promise<void> | undefined;

/** The "Max open files" soft limit of a `/proc/<pid>/limits` text, or null. */
function parseLimit(limits: string): number | null {
  const match = /^Max open files\s+(\d+)/m.exec(limits);
  return match === null ? null : Number(match[1]);
}

/** The soft open-file limit of this process (`ulimit -n`), or undefined when unknown or unlimited. */
export function openFileLimit(): number | undefined {
  if (cachedLimit === undefined) {
    try {
      cachedLimit = parseLimit(nodeFs().readFileSync(LIMITS, "utf8"));
    } catch {
      cachedLimit = null; // Not Linux: no guard.
    }
  }
  return cachedLimit ?? undefined;
}

/**
 * Starts reading the limit in the background (once), so that {@link openFileLimit} needs no `node:fs`.
 * The promise settles (never rejects) once the read is over.
 */
export function prefetchOpenFileLimit(): Promise<void> {
  if (cachedLimit !== undefined) return Promise.resolve();
  prefetch ??= Bun.file(LIMITS)
    .text()
    .then(
      (limits) => {
        // Only a limit it found counts: for anything else (an empty read, "unlimited") the
        // synchronous read decides, as it would have without the prefetch.
        const limit = parseLimit(limits);
        if (limit !== null) cachedLimit ??= limit;
      },
      () => undefined, // the synchronous read decides
    );
  return prefetch;
}

/** Descriptors open in this process now (throws when it cannot tell). */
function openFileCount(): number {
  return statOpenFiles() || scanOpenFiles();
}

/**
 * Descriptors open in this process by `stat` of the descriptor directory, or 0 where the kernel does
 * not report them (before Linux 6.2, or no `/proc`). A fresh `BunFile` per count: one caches its size.
 */
export function statOpenFiles(): number {
  return Bun.file(FD_DIR).size;
}

/** Descriptors open in this process by listing the descriptor directory (throws when it cannot be opened, at EMFILE). */
export function scanOpenFiles(): number {
  let count = 0;
  for (const _ of fdScan.scanSync({ cwd: FD_DIR, onlyFiles: false, followSymlinks: false })) count++;
  // The listing includes the descriptor of the directory being read.
  return count - 1;
}

/** Decides, per accepted socket, whether a server may keep it without nearing the open-file limit. */
export class FdBudget {
  readonly limit: number;
  /** Descriptors left free for everything else (files, connectors, the next accept). */
  readonly reserve: number;
  /** The server's socket count from which the next accept counts descriptors again. */
  #nextCheck = 0;
  /** Whether connections are being reset (the report is printed once per episode). */
  shedding = false;

  constructor(limit: number) {
    this.limit = limit;
    this.reserve = Math.max(8, Math.ceil(limit / 32));
  }

  /** Whether a just-accepted socket may be kept; `held` is the server's socket count with it. */
  admit(held: number): boolean {
    if (held < this.#nextCheck) return true;
    let used: number;
    try {
      used = openFileCount();
    } catch {
      used = this.limit; // EMFILE on the directory itself: we are at the limit.
    }
    const room = this.limit - this.reserve - used;
    if (room >= 0) {
      this.#nextCheck = held + Math.max(1, room >> 1);
      return true;
    }
    this.#nextCheck = 0; // count again at every accept until there is room
    return false;
  }
}

/** A budget for this process's limit, or undefined when the limit is unknown. */
export function fdBudget(): FdBudget | undefined {
  const limit = openFileLimit();
  return limit === undefined ? undefined : new FdBudget(limit);
}
