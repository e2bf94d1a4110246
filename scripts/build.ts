/**
 * Builds `dist/`: ES modules for Bun plus `.d.ts` files, from `src/` (`npm run build`, also run by
 * `prepack`, so `npm pack` and `npm publish` always ship a fresh build).
 *
 * tsc does both halves (`tsconfig.build.json`): it keeps one output file per source file, rewrites
 * the `.ts` import specifiers of the JS to `.js` (`rewriteRelativeImportExtensions`) and drops every
 * member marked `@internal` from the declarations (`stripInternal`). It does not rewrite the
 * specifiers inside the `.d.ts` files, which would then import `./handler.ts`: a user's `tsc`
 * without `allowImportingTsExtensions` rejects that (TS5097) and NodeNext resolution finds no such
 * file in `dist/`. So the last step rewrites them to `.js`, as a hand-written declaration would say.
 *
 * @module
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });

const tsc = Bun.spawnSync(
  [process.execPath, join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
  {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  },
);
if (tsc.exitCode !== 0) {
  console.error(`build: tsc failed (exit ${tsc.exitCode})`);
  process.exit(1);
}

// `from "./x.ts"`, `import("./x.ts")` and `export * from "../y.ts"`: relative specifiers only.
const relativeTs = /((?:from|import)\s*\(?\s*["'])(\.\.?\/[^"']+)\.ts(["'])/g;
let files = 0;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const path = join(entry.parentPath, entry.name);
  const text = readFileSync(path, "utf8");
  const fixed = text.replace(relativeTs, "$1$2.js$3");
  if (fixed !== text) writeFileSync(path, fixed);
  files++;
}
console.log(`build: dist/ written (${files} declaration files)`);
