/**
 * The generic option validators, shared by the start options and the transports: each returns the
 * value when it keeps its rule, the fallback when it is `undefined`, and otherwise throws an
 * {@link OptionError} naming the option, the rule and the value. One set, so that one rule reads the
 * same everywhere (``Expected `sendTimeout` to be a number of milliseconds >= 0 (or Infinity), …``).
 *
 * @module
 */
import { OptionError } from "./errors.ts";

/**
 * A positive safe integer, or `fallback` when undefined.
 *
 * @example
 * positiveInteger("acceptorCount", options.acceptorCount, 1); // 1 when unset; throws for 0 or 1.5
 */
export function positiveInteger(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new OptionError(option, "a positive integer", value);
  }
  return value;
}

/**
 * A number of milliseconds (>= 0, or Infinity), or `fallback` when undefined.
 *
 * @example
 * milliseconds("closeTimeout", options.closeTimeout, 5_000); // 0 and Infinity are allowed
 */
export function milliseconds(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new OptionError(option, "a number of milliseconds >= 0 (or Infinity)", value);
  }
  return value;
}

/**
 * A number of milliseconds above 0 (or Infinity), or `fallback` when undefined: for waits where 0
 * would mean "drop at once", which is never what was meant.
 *
 * @example
 * positiveMilliseconds("sniTimeout", options.sniTimeout, 10_000); // throws for 0
 */
export function positiveMilliseconds(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  // NaN fails `> 0`; finite or +Infinity only.
  if (typeof value !== "number" || !(value > 0)) {
    throw new OptionError(option, "a positive number of milliseconds", value);
  }
  return value;
}

/**
 * A size in bytes (positive integer, or Infinity), or `fallback` when undefined.
 *
 * @example
 * byteSize("maxPacketSize", options.maxPacketSize, 16 * 1024 * 1024);
 */
export function byteSize(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new OptionError(option, "a positive integer number of bytes (or Infinity)", value);
  }
  return value;
}

/**
 * A boolean, or `fallback` when undefined (pass `undefined` to learn whether it was set).
 *
 * @example
 * booleanOption("noDelay", options.noDelay, true);
 * booleanOption("requestCert", options.requestCert, undefined); // boolean | undefined
 */
export function booleanOption<F extends boolean | undefined>(
  option: string,
  value: unknown,
  fallback: F,
): boolean | F {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new OptionError(option, "a boolean", value);
  return value;
}

/**
 * A non-empty string, or `fallback` when undefined.
 *
 * @example
 * stringOption("hostname", options.hostname, "0.0.0.0");
 */
export function stringOption<F extends string | undefined>(
  option: string,
  value: unknown,
  fallback: F,
): string | F {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value.length === 0)
    throw new OptionError(option, "a non-empty string", value);
  return value;
}
