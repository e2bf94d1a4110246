/**
 * Invariant: the package fails at import time, with a `RuntimeError` (`code` `ERR_RUNTIME`) whose
 * message names Bun, under any runtime that has no global `Bun`; under Bun the check is silent.
 * The Node case runs the check module, transpiled to JavaScript, in a real `node` process (the
 * consumer check does the same with the packed package).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertBunRuntime, RuntimeError } from "../../src/runtime-check.ts";

const node = Bun.which("node");
if (node === null) console.warn("runtime-check.test.ts: node is not installed; the Node test is skipped");

let work: string | undefined;
afterEach(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  work = undefined;
});

describe("runtime check", () => {
  test("under Bun, importing the package and asserting the runtime are silent", () => {
    expect(() => assertBunRuntime()).not.toThrow();
  });

  test.skipIf(node === null)("under Node, the import throws RuntimeError ERR_RUNTIME naming Bun", () => {
    work = mkdtempSync(join(tmpdir(), "sockerl-runtime-"));
    const source = readFileSync(join(import.meta.dir, "../../src/runtime-check.ts"), "utf8");
    const file = join(work, "runtime-check.mjs");
    writeFileSync(file, new Bun.Transpiler({ loader: "ts" }).transformSync(source));
    const script = `import(${JSON.stringify(file)}).then(
      () => process.exit(3),
      (e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, isError: e instanceof Error })),
    );`;
    const run = Bun.spawnSync([node ?? "node", "-e", script], {
      stdout: "pipe",
      stderr: "pipe",
      timeout: 10_000,
    });
    expect(run.exitCode).toBe(0);
    const thrown = JSON.parse(run.stdout.toString()) as {
      name: string;
      code: string;
      message: string;
      isError: boolean;
    };
    expect(thrown).toMatchObject({ name: "RuntimeError", code: "ERR_RUNTIME", isError: true });
    expect(thrown.message).toContain("needs the Bun runtime");
    expect(thrown.message).toContain("Node ");
  });

  test("RuntimeError carries the code convention of every sockerl error", () => {
    const error = new RuntimeError("x");
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe("ERR_RUNTIME");
    expect(error.name).toBe("RuntimeError");
  });
});
