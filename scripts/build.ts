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
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
// Names a declaration imports or re-exports from a module whose declaration no longer has them:
// members marked `@internal` there (`export { cpuQuota } from "./settings.ts"`, kept for tests).
// Dropping them keeps the published types consistent; a name still used would be reported by the
// consumer check as a missing name, which is a real leak of an internal type.
const namedList = /^(import|export)( type)? \{([^}]*)\} from "(\.\.?\/[^"]+)\.js";$/gm;
let dropped = 0;
// A declaration file's text with the files it re-exports with `export *`, where the names may be.
const declaredTexts = new Map<string, string>();
function declaredText(file: string): string {
  const known = declaredTexts.get(file);
  if (known !== undefined) return known;
  declaredTexts.set(file, ""); // a cycle of `export *` adds nothing
  let text = readFileSync(file, "utf8");
  for (const [, from] of text.matchAll(/^export \* from "(\.\.?\/[^"]+)\.js";$/gm)) {
    const target = join(file, "..", `${from}.d.ts`);
    if (existsSync(target)) text += declaredText(target);
  }
  declaredTexts.set(file, text);
  return text;
}
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const path = join(entry.parentPath, entry.name);
  const text = readFileSync(path, "utf8");
  const fixed = text.replace(
    namedList,
    (statement, kind: string, typeOnly = "", list: string, from: string) => {
      const target = join(entry.parentPath, `${from}.d.ts`);
      if (!existsSync(target)) return statement;
      const declared = declaredText(target);
      const names = list
        .split(",")
        .map((name) => name.trim())
        .filter((name) => name !== "");
      const kept = names.filter((name) => {
        const local = name.replace(/^type\s+/, "").split(/\s+as\s+/)[0] ?? name;
        return new RegExp(`\\b${local}\\b`).test(declared);
      });
      dropped += names.length - kept.length;
      if (process.env.BUILD_DEBUG)
        for (const name of names.filter((n) => !kept.includes(n))) console.log(`dropped ${name} in ${path}`);
      if (kept.length === names.length) return statement;
      return kept.length === 0 ? "" : `${kind}${typeOnly} { ${kept.join(", ")} } from "${from}.js";`;
    },
  );
  if (fixed !== text) writeFileSync(path, fixed);
}
console.log(`build: dist/ written (${files} declaration files, ${dropped} stripped names dropped)`);
