/**
 * Builds `dist/`: ES modules for Bun plus `.d.ts` files, from `src/` (`npm run build`, also run by
 * `prepack`, so `npm pack` and `npm publish` always ship a fresh build).
 *
 * tsc does both halves (`tsconfig.build.json`): it keeps one output file per source file, rewrites
 * the `.ts` import specifiers of the JS to `.js` (`rewriteRelativeImportExtensions`) and drops every
 * member marked `@internal` from the declarations (`stripInternal`). It does not rewrite the
 * specifiers inside the `.d.ts` files, which would then import `./handler.ts`: a user's `tsc`
 * without `allowImportingTsExtensions` rejects that (TS5097) and NodeNext resolution finds no such
 * file in `dist/`. So the last step rewrites them to `.js`, as a hand-written declaration would say,
 * and drops `implements` clauses (see below).
 *
 * @module
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });

// tsc compiles a copy of src/ in which a file's opening comment no longer says `@internal`: that
// comment is also the leading comment of the file's first statement (an import), which
// stripInternal would then drop, leaving the declarations with names that resolve to nothing.
// Such a file is internal anyway: nothing public re-exports it.
const work = mkdtempSync(join(tmpdir(), "sockerl-build-"));
cpSync(join(root, "src"), join(work, "src"), { recursive: true });
for (const entry of readdirSync(join(work, "src"), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".ts")) continue;
  const path = join(entry.parentPath, entry.name);
  const text = readFileSync(path, "utf8");
  const header = /^\s*\/\*\*[\s\S]*?\*\//.exec(text)?.[0];
  if (header?.includes("@internal")) {
    writeFileSync(path, header.replaceAll("@internal", "(internal module)") + text.slice(header.length));
  }
}
writeFileSync(
  join(work, "tsconfig.json"),
  JSON.stringify({
    extends: join(root, "tsconfig.build.json"),
    compilerOptions: {
      rootDir: join(work, "src"),
      outDir: dist,
      typeRoots: [join(root, "node_modules/@types")],
    },
    include: ["src/index.ts", "src/testing/index.ts"],
  }),
);

const tsc = Bun.spawnSync([process.execPath, join(root, "node_modules/typescript/bin/tsc"), "-p", work], {
  cwd: root,
  stdout: "inherit",
  stderr: "inherit",
});
rmSync(work, { recursive: true, force: true });
if (tsc.exitCode !== 0) {
  console.error(`build: tsc failed (exit ${tsc.exitCode})`);
  process.exit(1);
}

// `from "./x.ts"`, `import("./x.ts")` and `export * from "../y.ts"`: relative specifiers only.
const relativeTs = /((?:from|import)\s*\(?\s*["'])(\.\.?\/[^"']+)\.ts(["'])/g;
// `implements A, B` of a declared class: it only re-checks the class against its interfaces, which
// a user's compiler has no need of, and an internal interface (stripped) would make it an error.
const implementsClause = /^((?:export )?(?:declare )?(?:abstract )?class [^\n]*?) implements [^{\n]*\{$/gm;
let files = 0;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const path = join(entry.parentPath, entry.name);
  const text = readFileSync(path, "utf8");
  const fixed = text.replace(relativeTs, "$1$2.js$3").replace(implementsClause, "$1 {");
  if (fixed !== text) writeFileSync(path, fixed);
  files++;
}
console.log(`build: dist/ written (${files} declaration files)`);
