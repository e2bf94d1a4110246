/**
 * The consumer check (`npm run check:package`): the package as a user installs it, type-checked,
 * run and bundled in a project of its own. See test/package/README.md for the steps; any failure
 * exits non-zero. Offline: TypeScript and `@types/bun` are linked from this repository.
 *
 * @module
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const fixture = join(root, "test/package");
const started = performance.now();
const keep = process.env.KEEP === "1";

interface Step {
  readonly exitCode: number;
  readonly output: string;
  readonly stdout: string;
}

function run(cmd: string[], cwd: string, timeoutMs = 30_000): Step {
  const result = Bun.spawnSync(cmd, {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    timeout: timeoutMs,
    env: {
      ...process.env,
      SOCKERL_CERTS: join(cwd, "certs"),
      NO_COLOR: "1",
      npm_config_audit: "false",
      npm_config_fund: "false",
    },
  });
  const stdout = result.stdout.toString();
  return { exitCode: result.exitCode ?? -1, output: `${stdout}${result.stderr.toString()}`, stdout };
}

const failures: string[] = [];
function check(name: string, step: Step, ok = step.exitCode === 0): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${ok ? "ok  " : "FAIL"} ${name} (${seconds} s)`);
  if (!ok) {
    failures.push(name);
    console.log(step.output.trimEnd().replace(/^/gm, "     "));
  }
}

const work = mkdtempSync(join(tmpdir(), "sockerl-consumer-"));
try {
  // 1. npm pack (prepack builds dist/) and install the tarball into a fresh project.
  const pack = run(["npm", "pack", "--json", "--pack-destination", work], root, 60_000);
  check("npm pack", pack);
  if (pack.exitCode !== 0) throw new Error("npm pack failed");
  // The JSON is the last thing on stdout, after what the prepack build printed.
  const packed = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[/m))) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  const tarball = packed[0];
  if (tarball === undefined) throw new Error("npm pack printed no tarball");
  const listed = tarball.files.map((file) => file.path);
  const stray = listed.filter(
    (path) =>
      !/^(dist|src|docs)\//.test(path) &&
      !["package.json", "README.md", "LICENSE", "CHANGELOG.md"].includes(path),
  );
  const missing = [
    "dist/index.js",
    "dist/index.d.ts",
    "src/index.ts",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
  ].filter((path) => !listed.includes(path));
  const leaked = listed.filter((path) => /\.test\.ts$|^docs\/api\//.test(path));
  check(
    `tarball lists ${listed.length} files: dist, src, docs, README, LICENSE, CHANGELOG only`,
    {
      exitCode: 0,
      stdout: "",
      output: `stray: ${stray.join(", ")}\nmissing: ${missing.join(", ")}\nleaked: ${leaked.join(", ")}`,
    },
    stray.length === 0 && missing.length === 0 && leaked.length === 0,
  );

  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    `${JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { sockerl: `file:../${tarball.filename}` } }, null, 2)}\n`,
  );
  check("npm install <tarball>", run(["npm", "install", "--offline", "--ignore-scripts"], app, 60_000));
  // The tools a user adds themselves (`bun add -d typescript @types/bun`), linked from here.
  for (const name of ["typescript", "@types/bun", "bun-types", "@types/node", "undici-types"]) {
    mkdirSync(join(app, "node_modules", name, ".."), { recursive: true });
    rmSync(join(app, "node_modules", name), { recursive: true, force: true });
    symlinkSync(join(root, "node_modules", name), join(app, "node_modules", name));
  }
  for (const file of readdirSync(join(fixture, "app"))) cpSync(join(fixture, "app", file), join(app, file));
  for (const file of readdirSync(fixture).filter((name) => name.startsWith("tsconfig."))) {
    cpSync(join(fixture, file), join(app, file));
  }
  mkdirSync(join(app, "certs"));
  for (const file of ["server.pem", "server-key.pem", "ca.pem"]) {
    cpSync(join(root, "test/fixtures", file), join(app, "certs", file));
  }

  // 2. Type-check under the three configs. Every error counts, the package's and the app's.
  const tsc = join(app, "node_modules/typescript/bin/tsc");
  for (const config of ["tsconfig.bun-init.json", "tsconfig.nodenext.json", "tsconfig.strictest.json"]) {
    const result = run(["node", tsc, "-p", config, "--pretty", "false"], app);
    const errors = result.output.split("\n").filter((line) => /error TS\d+/.test(line));
    const fromPackage = errors.filter((line) => line.includes("node_modules/sockerl/")).length;
    check(`tsc -p ${config}: ${errors.length} errors (${fromPackage} from the package)`, result);
  }

  // 3. Run it with bun (the `bun` condition: the package's TypeScript source).
  check("bun main.ts", run([process.execPath, "main.ts"], app));

  // 4. Bundle it with bun build and run the bundle.
  check(
    "bun build --target bun",
    run([process.execPath, "build", "main.ts", "--target", "bun", "--outdir", "out"], app),
  );
  check("bun out/main.js", run([process.execPath, "out/main.js"], app));

  // 5. The compiled JS (the `default` condition) loads under Bun with the same exports as the source.
  const same = run(
    [
      process.execPath,
      "-e",
      `for (const [js, ts] of [["index.js", "index.ts"], ["testing/index.js", "testing/index.ts"]]) {
         const a = Object.keys(await import("./node_modules/sockerl/dist/" + js)).sort().join();
         const b = Object.keys(await import("./node_modules/sockerl/src/" + ts)).sort().join();
         if (a !== b) { console.log(a); console.log(b); process.exit(1); }
       }`,
    ],
    app,
  );
  check("dist/ exports what src/ exports (sockerl, sockerl/testing)", same);

  // 6. Under Node the import fails at once with ERR_RUNTIME, naming Bun (both entry points).
  for (const entry of ["sockerl", "sockerl/testing"]) {
    const node = run(
      [
        "node",
        "-e",
        `import("${entry}").then(() => process.exit(2), (e) => { console.log(e.code, e.message); })`,
      ],
      app,
    );
    check(
      `node: import("${entry}") fails with ERR_RUNTIME`,
      node,
      node.exitCode === 0 && node.output.startsWith("ERR_RUNTIME") && node.output.includes("Bun"),
    );
  }
} catch (error) {
  failures.push(String(error));
  console.log(`FAIL ${String(error)}`);
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`consumer check: ${failures.length === 0 ? "ok" : `${failures.length} failed`} in ${seconds} s`);
process.exit(failures.length === 0 ? 0 : 1);
