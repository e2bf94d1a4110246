/**
 * Registry names: servers, pools and connectors started with `name` can be found with {@link whereis},
 * and the module functions accept a name wherever they accept a handle.
 *
 * @module
 */
import { ArgumentError, NoProcError, OptionError } from "./errors.ts";

const names = new Map<string, object>();

/** Registers `process` under `name`; throws `OptionError` when the name is taken. */
export function register(name: string, process: object): void {
  if (names.has(name)) throw new OptionError("name", "a name not already registered", name);
  names.set(name, process);
}

/** Frees `name` if it still points at `process`. */
export function unregister(name: string | undefined, process: object): void {
  if (name !== undefined && names.get(name) === process) names.delete(name);
}

/** The server, pool or connector registered under `name`, or undefined. */
export function whereis(name: string): object | undefined {
  if (typeof name !== "string") throw new ArgumentError("name", "a string", name);
  return names.get(name);
}

/** Resolves a handle or a registry name to an instance of `kind`; throws `NoProcError` otherwise. */
export function resolveTarget<T>(
  target: unknown,
  kind: abstract new (...args: never[]) => T,
  what: string,
): T {
  if (target instanceof kind) return target;
  if (typeof target === "string") {
    const found = names.get(target);
    if (found instanceof kind) return found;
    throw new NoProcError(target);
  }
  throw new ArgumentError(what, `a ${what} handle or a registry name`, target);
}
