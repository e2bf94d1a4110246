/**
 * Errors for a start option or a function argument that broke its rule.
 *
 * @module
 */
import { describeValue, SockerlError, type SockerlErrorCode } from "./base.ts";

/**
 * A start option (or a function argument, see {@link ArgumentError}) broke its rule.
 * The message names the option, the rule and the value:
 * ``Expected `acceptorCount` to be a positive integer, got `"foo"` (string)``.
 */
export class OptionError extends SockerlError {
  /** The option's name, e.g. `"acceptorCount"`. */
  readonly option: string;
  /** The rule it broke, e.g. `"a positive integer"`. */
  readonly rule: string;
  /** The value given. */
  readonly value: unknown;

  constructor(option: string, rule: string, value: unknown, code: SockerlErrorCode = "ERR_OPTION") {
    const message =
      rule === "a known option"
        ? `Unknown option \`${option}\`, got ${describeValue(value)}`
        : `Expected \`${option}\` to be ${rule}, got ${describeValue(value)}`;
    super(message, { code, reason: "bad_option" });
    this.option = option;
    this.rule = rule;
    this.value = value;
  }
}

/** A public function was called with a bad argument (same message form as {@link OptionError}). */
export class ArgumentError extends OptionError {
  constructor(argument: string, rule: string, value: unknown) {
    super(argument, rule, value, "ERR_ARGUMENT");
  }
}
