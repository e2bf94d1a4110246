/**
 * Compile-time checks of a handler passed to `startServer`, `startConnector` or
 * `startConnectorPool`, beyond what the {@link Handler} interface alone can say.
 *
 * TypeScript does not check a function's returned object literal for unknown properties once the
 * function is assigned to a callback type, so `handlePacket: (p, n) => ({ state: n, sned: p })`
 * satisfies `Handler<number>` (every action field is optional) and only fails at run time with a
 * `BadReturnError`. The start functions therefore also capture the handler's own type `T` (inferred
 * from the object literal, or kept by `satisfies Handler<S>`) and intersect their parameter with
 * {@link CheckedActions}`<T>`, which turns every callback that returns an unknown action field into
 * a type whose error names the field. A handler annotated as `Handler<S>` has lost its literal
 * type, so it is not checked (its actions are still checked at run time).
 *
 * The same captured type tells whether `listenInit` can return `"ignore"` (only then may
 * `startServer` resolve to `undefined`) and whether `init` can (only then may `startConnector`).
 *
 * @module
 */
import type { ActionObject, Packet } from "./handler.ts";

/** The field names an action object may have. */
export type ActionField = keyof ActionObject<unknown>;

/** The callbacks whose result is an action (and so is checked for unknown fields). */
export type ActionCallback =
  | "init"
  | "handlePacket"
  | "handleCall"
  | "handleCast"
  | "handleEvent"
  | "handleDrain"
  | "handleDisconnect"
  | "timeout"
  | "srtimeout";

/**
 * The unknown fields of one action object. Arrays are looked into one level deep (an action array,
 * in {@link ExtraFields}), which keeps the type finite for the recursive `Action<S>` of an
 * annotated handler.
 */
export type ExtraFieldsOfObject<R> = R extends readonly unknown[]
  ? never
  : R extends object
    ? Exclude<keyof R, ActionField>
    : never;
/** The fields of an action `R` (an object or an array of them) that are not action fields. */
export type ExtraFields<R> = R extends readonly (infer E)[] ? ExtraFieldsOfObject<E> : ExtraFieldsOfObject<R>;

/** The type an action with unknown fields is compared against: each unknown field must be this message. */
export type UnknownActionField<R> = { [F in ExtraFields<Awaited<R>>]: "is not an action field" };

/**
 * `T` with every action callback that returns unknown action fields replaced by one whose result
 * cannot match, so the handler fails to type-check at that callback, naming the field.
 *
 * @example
 * // error: Types of property 'sned' are incompatible ... not assignable to type '"is not an action field"'
 * await startServer({ init: () => ({ state: 0 }), handlePacket: (p, n) => ({ state: n, sned: p }) }, undefined, 0);
 */
export type CheckedActions<T> = {
  [K in keyof T]: K extends ActionCallback
    ? T[K] extends (...args: infer A) => infer R
      ? [ExtraFields<Awaited<R>>] extends [never]
        ? T[K]
        : (
            ...args: A
          ) => R extends PromiseLike<unknown> ? Promise<UnknownActionField<R>> : UnknownActionField<R>
      : T[K]
    : T[K];
};

/** The option `encoding`: `"utf8"` delivers strings, `"binary"` (the default) bytes. */
export type Encoding = "binary" | "utf8";

/**
 * The packet type a handler gets for an `encoding` option: `string` for `"utf8"`, `Uint8Array` for
 * `"binary"` or none, {@link Packet} when the encoding is not known at compile time.
 */
export type PacketFor<E extends Encoding | undefined> = [E] extends ["utf8"]
  ? string
  : [E] extends ["binary" | undefined]
    ? Uint8Array
    : Packet;

/** What a function type returns (`never` for anything else, so optional callbacks drop out). */
export type ReturnOf<F> = F extends (...args: never[]) => infer V ? V : never;

/**
 * `R`, or `R | undefined` when the handler `T`'s callback `K` may return `"ignore"`: what a start
 * resolves to. A handler without `K` cannot ignore; one whose type does not say (an annotated
 * `Handler<S>`, whose optional `listenInit` may return anything) keeps the `undefined`.
 */
export type UnlessIgnored<T, K extends "listenInit" | "init", R> = K extends keyof T
  ? "ignore" extends Awaited<ReturnOf<T[K]>>
    ? R | undefined
    : R
  : R;
