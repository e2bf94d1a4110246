/**
 * `npm run check:docs`: every TypeScript block of README.md and docs/*.md is type-checked, and the
 * ones marked runnable are run, so the guide cannot drift from the API.
 *
 * - A block opened with ```ts (or ```typescript) is a module of its own: it must compile under the
 *   repository's strict tsconfig, with `sockerl` and `sockerl/testing` mapped to `src/`. So every
 *   block carries its imports and declares what it uses: no fragments.
 * - A block opened with ```ts run is also run with bun (from the repository root, 15 s at most) and
 *   must exit 0. Runnable blocks listen on port 0 and stop what they start.
 * - Other blocks (sh, text, unlabelled) are left alone.
 *
 * Errors are reported as `file:line` of the Markdown source. `docs/api/` (generated) is skipped.
 *
 * @module
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const root = join(import.meta.dir, "..");
const RUN_TIMEOUT_MS = 15_000;

interface Block {
  /** Markdown file, relative to the repository root. */
  readonly file: string;
  /** 1-based line of the block's first code line in the Markdown file. */
  readonly line: number;
  readonly code: string;
  readonly run: boolean;
  /** The extracted file's name in the work folder. */
  readonly name: string;
}

function markdownFiles(): string[] {
  const files = ["README.md"];
  for (const entry of readdirSync(join(root, "docs"), { recursive: true, withFileTypes: true })) {
    const path = relative(root, join(entry.parentPath, entry.name));
    if (entry.isFile() && path.endsWith(".md") && !path.startsWith("docs/api/")) files.push(path);
  }
  return files.sort();
}

function extract(file: string): Block[] {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)(\s+run)?\s*$/.exec(lines[i] ?? "");
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? "")) end++;
    const slug = file.replace(/[^A-Za-z0-9]+/g, "_");
    blocks.push({
      file,
      line: start + 1,
      code: lines.slice(start, end).join("\n"),
      run: open[2] !== undefined,
      name: `${slug}_L${start + 1}.ts`,
    });
    i = end;
  }
  return blocks;
}

/** Maps the package's import names to the source, as the package's `bun` condition does. */
function mapImports(code: string, file: string): string {
  return (
    code
      .replace(/(["'])sockerl\/testing\1/g, JSON.stringify(join(root, "src/testing/index.ts")))
      .replace(/(["'])sockerl\1/g, JSON.stringify(join(root, "src/index.ts")))
      // A relative import (`../examples/x.ts`) is relative to the page, as a reader would read it.
      .replace(
        /(from\s*|import\s*\(\s*)(["'])(\.\.?\/[^"']+)\2/g,
        (_match, lead: string, _quote: string, path: string) =>
          `${lead}${JSON.stringify(join(root, dirname(file), path))}`,
      )
  );
}

/**
 * Relative links to files that do not exist (README.md and docs/ are shipped in the package, so
 * links out of them must point at files that are there, or be absolute). Reported, not fatal: a
 * page another change is still writing may be linked before it lands.
 */
function brokenLinks(files: readonly string[]): string[] {
  const broken: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (target === undefined || /^(https?:|mailto:|#)/.test(target)) continue;
      const path = target.split("#")[0] ?? "";
      if (!existsSync(join(root, dirname(file), path)))
        broken.push(`${file}: link to ${target}: no such file`);
    }
  }
  return broken;
}

const files = markdownFiles();
const blocks = files.flatMap(extract);
for (const link of brokenLinks(files)) console.log(`docs: warning: ${link}`);
const work = mkdtempSync(join(tmpdir(), "sockerl-docs-"));
const failures: string[] = [];
let elsewhere = 0;
try {
  for (const block of blocks) {
    // `export {}` makes a block without imports a module too (top-level await, no global clashes).
    writeFileSync(join(work, block.name), `${mapImports(block.code, block.file)}\nexport {};\n`);
  }
  writeFileSync(
    join(work, "tsconfig.json"),
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      compilerOptions: {
        typeRoots: [join(root, "node_modules/@types")],
        noUnusedLocals: false,
        // The work folder is outside the repository: resolve the dev dependencies a block imports
        // (mitata, in the guide's benchmark example) from the repository's node_modules.
        paths: { "*": [join(root, "node_modules/*")] },
      },
      include: ["*.ts"],
      exclude: [],
    }),
  );
  const tsc = Bun.spawnSync(
    [process.execPath, join(root, "node_modules/typescript/bin/tsc"), "-p", work, "--pretty", "false"],
    { cwd: work, stdout: "pipe", stderr: "pipe" },
  );
  const byName = new Map(blocks.map((block) => [block.name, block]));
  for (const text of `${tsc.stdout.toString()}${tsc.stderr.toString()}`.split("\n")) {
    // "README_md_L30.ts(3,5): error TS2304: ..." → "README.md:32:5: error TS2304: ..."
    const at = /^(?:.*\/)?([^/(]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(text);
    const block = at === null ? undefined : byName.get(at[1] ?? "");
    if (at !== null && block !== undefined) {
      failures.push(`${block.file}:${block.line + Number(at[2]) - 1}:${at[3]}: ${at[4]}`);
    } else if (/error TS\d+/.test(text)) {
      // An error inside src/ is the typecheck's to report (npm run typecheck), not the docs'.
      elsewhere++;
    }
  }
  const typeErrors = failures.length;

  for (const block of blocks.filter((b) => b.run)) {
    const run = Bun.spawnSync([process.execPath, join(work, block.name)], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
      timeout: RUN_TIMEOUT_MS,
    });
    if (run.exitCode !== 0) {
      const output = `${run.stdout.toString()}${run.stderr.toString()}`.trimEnd().replace(/^/gm, "    ");
      const why = run.exitCode === null ? `killed after ${RUN_TIMEOUT_MS} ms` : `exit ${run.exitCode}`;
      failures.push(`${block.file}:${block.line}: runnable block failed (${why})\n${output}`);
    }
  }
  const runnable = blocks.filter((b) => b.run).length;
  for (const failure of failures) console.log(failure);
  if (elsewhere > 0) console.log(`docs: ${elsewhere} type errors outside the blocks (see npm run typecheck)`);
  console.log(
    `docs: ${blocks.length} TypeScript blocks type-checked (${typeErrors} errors), ` +
      `${runnable} run (${failures.length - typeErrors} failed)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failures.length === 0 ? 0 : 1);
