/**
 * Invariant: every `bun test` example of docs/testing.md passes. The page's TypeScript blocks that
 * import "bun:test" are extracted into a work folder (with "sockerl" and "sockerl/testing" mapped to
 * the source, as `npm run check:docs` does for type-checking) and run with `bun test` in a child
 * process; the guide's tests are the kit's tests too.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
const work = mkdtempSync(join(tmpdir(), "sockerl-testing-guide-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function blocks(): Array<{ line: number; code: string }> {
  const lines = readFileSync(join(root, "docs/testing.md"), "utf8").split("\n");
  const out: Array<{ line: number; code: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ts\s*$/.test(lines[i] ?? "")) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? "")) end++;
    const code = lines.slice(i + 1, end).join("\n");
    if (code.includes('"bun:test"')) out.push({ line: i + 2, code });
    i = end;
  }
  return out;
}

test("the guide's bun test examples pass", () => {
  const found = blocks();
  expect(found.length).toBeGreaterThanOrEqual(6);
  const files = found.map(({ line, code }) => {
    const file = join(work, `testing_md_L${line}.test.ts`);
    const mapped = code
      .replace(/(["'])sockerl\/testing\1/g, JSON.stringify(join(root, "src/testing/index.ts")))
      .replace(/(["'])sockerl\1/g, JSON.stringify(join(root, "src/index.ts")));
    writeFileSync(file, mapped);
    return file;
  });
  const run = Bun.spawnSync([process.execPath, "test", ...files], {
    cwd: work,
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000,
  });
  const output = `${run.stdout.toString()}${run.stderr.toString()}`;
  expect({ exitCode: run.exitCode, failed: /\b[1-9]\d* fail\b/.test(output) ? output : "" }).toEqual({
    exitCode: 0,
    failed: "",
  });
  if (process.env.SHOW_GUIDE === "1") console.log(output);
  expect(output).toContain(`${found.length} pass`);
}, 40_000);
