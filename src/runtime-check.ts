/**
 * Fails the import at once, with an error that says what is wrong, when the package is loaded by a
 * runtime other than Bun (Node, Deno, a browser bundle). sockerl runs on `Bun.listen` and
 * `Bun.connect`; without this check the first sign would be `ReferenceError: Bun is not defined`
 * from deep inside a server start, long after the import.
 *
 * `src/index.ts` imports this module first, so it is evaluated before any other module of the
 * package. It imports nothing itself for the same reason, which is also why its error is a small
 * class of its own and not one from `errors.ts`.
 *
 * @module
 */

/**
 * Thrown when the package is imported outside Bun. It has the same `code` convention as every
 * sockerl error.
 *
 * @example
 * // Under Node:
 * // import { startServer } from "sockerl";
 * // → RuntimeError [ERR_RUNTIME]: sockerl needs the Bun runtime (https://bun.sh) ...
 */
export class RuntimeError extends Error {
  /** Always `"ERR_RUNTIME"`. */
  readonly code = "ERR_RUNTIME";
  override readonly name = "RuntimeError";
}

/**
 * Throws a {@link RuntimeError} unless the global `Bun` exists.
 *
 * @example
 * assertBunRuntime(); // no-op under Bun
 */
export function assertBunRuntime(): void {
  if (typeof Bun !== "undefined") return;
  const runtime =
    typeof process !== "undefined" && typeof process.versions?.node === "string"
      ? `Node ${process.versions.node}`
      : "this runtime";
  throw new RuntimeError(
    `sockerl needs the Bun runtime (https://bun.sh, >= 1.4.5): it is built on Bun.listen and Bun.connect, ` +
      `which ${runtime} does not have. Run your program with \`bun\` instead.`,
  );
}

assertBunRuntime();
