/**
 * Invariant: a plain TCP server loads none of Node's heavy built-in modules (`node:net`,
 * `node:crypto`, `node:fs`): each adds hundreds of kB to the heap that every garbage collection then
 * pays for (src/builtins.ts). They load at first use, on the paths that need them (TLS options, the
 * connector's dial, Unix sockets, the cluster). The open-file guard reads its limit in the background
 * and counts descriptors by `stat` (a `Bun.Glob` listing on older kernels), and both agree with `node:fs`.
 */

import { heapStats } from "bun:jsc";
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import {
  FdBudget,
  openFileLimit,
  prefetchOpenFileLimit,
  scanOpenFiles,
  statOpenFiles,
} from "../../src/fd-limit.ts";

/** Runs `code` in a fresh Bun process (a clean module registry) and returns what it printed. */
async function runFresh(code: string): Promise<string> {
  const child = Bun.spawn([process.execPath, "-e", code], {
    cwd: `${import.meta.dir}/../..`,
    stdout: "pipe",
  });
  const out = await new Response(child.stdout).text();
  expect(await child.exited).toBe(0);
  return out.trim();
}

// What a server process has loaded, seen from inside it: `process.getBuiltinModule` is the library's
// only way in (src/builtins.ts), so counting its calls per module tells what was loaded.
const PROBE = `
const loaded = new Set();
const get = process.getBuiltinModule.bind(process);
process.getBuiltinModule = (id) => { loaded.add(id); return get(id); };
`;

describe("Node's built-in modules load at first use", () => {
  test("a plain server accepting a connection loads no node:net, node:crypto or node:fs", async () => {
    const out = await runFresh(`${PROBE}
const { startServer } = await import("./src/index.ts");
const server = await startServer({ init: () => undefined, handlePacket: (p) => ({ send: p }) }, undefined, 0, { hostname: "127.0.0.1" });
const echoed = Promise.withResolvers();
const socket = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data: (_s, d) => echoed.resolve(String(d)) } });
socket.write("ping");
const reply = await echoed.promise;
socket.end();
await server.stop();
console.log(JSON.stringify({ reply, loaded: [...loaded] }));`);
    expect(JSON.parse(out)).toEqual({ reply: "ping", loaded: [] });
  }, 15_000);

  test("TLS options load node:crypto and node:fs when they are checked", async () => {
    const out = await runFresh(`${PROBE}
const { tls } = await import("./src/index.ts");
const before = [...loaded];
tls({ certFile: "test/fixtures/server.pem", keyFile: "test/fixtures/server-key.pem" });
console.log(JSON.stringify({ before, after: [...loaded].sort() }));`);
    expect(JSON.parse(out)).toEqual({ before: [], after: ["node:crypto", "node:fs"] });
  }, 15_000);
});

describe("the open-file guard without node:fs", () => {
  test("the prefetched limit is the one /proc/self/limits gives", async () => {
    await prefetchOpenFileLimit();
    const expected = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1];
    expect(openFileLimit()).toBe(Number(expected));
  });

  test("the descriptor count agrees with readdir: admitted with no descriptor to spare, refused one short", () => {
    // readdir lists its own directory descriptor too; the guard subtracts the one its scan opens.
    const open = readdirSync("/proc/self/fd").length - 1;
    /** A budget whose limit leaves `room` descriptors free beyond its reserve with `open` in use. */
    const withRoom = (room: number): FdBudget => {
      for (let limit = open; ; limit++) {
        const budget = new FdBudget(limit);
        if (limit - budget.reserve - open === room) return budget;
      }
    };
    expect(withRoom(0).admit(1)).toBe(true);
    expect(withRoom(-1).admit(1)).toBe(false);
  });

  test("both counts agree with readdir: stat of the directory (Linux 6.2+) and its listing", () => {
    const open = readdirSync("/proc/self/fd").length - 1;
    expect(scanOpenFiles()).toBe(open);
    // 0 where the kernel does not report the count in stat; the guard then lists the directory.
    const stat = statOpenFiles();
    if (stat === 0)
      console.log("statOpenFiles: this kernel reports no count (before Linux 6.2); the scan is used");
    else expect(stat).toBe(open);
  });

  test("a count by stat makes no string per descriptor (one listing at 10,000 connections made 10,000)", () => {
    if (statOpenFiles() === 0) {
      console.log("skip: this kernel reports no descriptor count in stat (before Linux 6.2)");
      return;
    }
    const held: number[] = [];
    try {
      for (let i = 0; i < 500; i++) held.push(openSync("/dev/null", "r"));
      const strings = (): number => heapStats().objectTypeCounts.string ?? 0;
      Bun.gc(true);
      const before = strings();
      for (let i = 0; i < 20; i++) statOpenFiles();
      expect(strings() - before).toBeLessThan(50);
    } finally {
      for (const fd of held) closeSync(fd);
    }
  });

  /** What a child with `ulimit -n 40` that used up its descriptors prints for `code`. */
  const atEmfile = async (code: string): Promise<string> => {
    const script = `
      const fd = await import("./src/fd-limit.ts");
      await fd.prefetchOpenFileLimit();
      const fs = require("node:fs");
      try { for (;;) fs.openSync("/dev/null", "r"); } catch {}
      ${code}`;
    const child = Bun.spawn(["bash", "-c", 'ulimit -n 40 && exec "$0" -e "$1"', process.execPath, script], {
      cwd: `${import.meta.dir}/../..`,
      stdout: "pipe",
    });
    const out = await new Response(child.stdout).text();
    expect(await child.exited).toBe(0);
    return out.trim();
  };

  test("at EMFILE the guard for the real limit refuses", async () => {
    expect(await atEmfile("console.log(fd.fdBudget().limit, fd.fdBudget().admit(1));")).toBe("40 false");
  }, 15_000);

  test("at EMFILE the listing fails (the guard takes that as at the limit), so a kernel without the stat count refuses too", async () => {
    // A listing that silently found nothing would let a guard admit.
    const out = await atEmfile(
      `let scan; try { scan = fd.scanOpenFiles(); } catch (e) { scan = e.code; } console.log(scan);`,
    );
    expect(out).toBe("EMFILE");
  }, 15_000);
});

describe("no heavy built-in module is imported up front", () => {
  test("src/ imports node:net, node:crypto, node:fs, node:tls, node:os, node:path only as types", async () => {
    const runtime = /^import\s+(?!type\b)[^;]*from\s+"node:(net|crypto|fs|tls|os|path|child_process|dns)"/m;
    const offenders: string[] = [];
    for await (const file of new Bun.Glob("src/**/*.ts").scan({ cwd: `${import.meta.dir}/../..` })) {
      const text = await Bun.file(`${import.meta.dir}/../../${file}`).text();
      if (runtime.test(text)) offenders.push(file);
    }
    expect(offenders).toEqual([]);
  });
});
