/**
 * Restart plans: what a server or pool does each time one of its children (a connection or a
 * connector) exits. This is director 17.9.10's plan logic (SockErl's supervisor), without sockets and
 * without its bugs, so the server and pool code only has to act on a {@link Decision}.
 *
 * A plan is a list walked round-robin, one element per exit of one child. Every child has its own
 * {@link PlanTrack} (position in the list, full passes made, exits so far), so one crashing child never
 * uses up another child's plan. `planCount` is the number of full passes a child may make.
 *
 * Life of one child under a plan:
 *
 * ```text
 *                  plan.track()  (first start)
 *                       │
 *                       ▼
 *   ┌──────────────► running ◄─────────────────────────────────────┐
 *   │                   │ exits with reason R                      │
 *   │                   ▼                                          │
 *   │                exited                                        │
 *   │                   │ plan.decide(track, R, id)                │
 *   │     ┌─────────────┼───────────────┬──────────────┐           │ manual restart,
 *   │     │ "restart"   │ "delete"      │ stop cases ¹ │ "wait"    │ same track
 *   │     │ {restart:ms}│               │              ▼           │
 *   │     ▼             ▼               ▼            waiting ──────┘
 *   └─ restarting    deleted          stop           (kept, not running)
 *      (timer: ms,   (track dropped)  (the whole server or pool
 *       same track)                    ends with the reason)
 *
 *   ¹ "stop" (reason R), { stop: r } (reason r), an empty plan or used-up passes
 *     (RestartLimitError), a plan function that threw (CallbackError) or returned garbage
 *     (BadReturnError). The other children then get "shutdown" and do not run the plan.
 * ```
 *
 * Differences from director 17.9.10: `{ stop: r }` always ends with `r` (director documented
 * `{stop, reason}` as "use the child's reason" but ended with the literal atom `reason`; here `"stop"` is
 * the way to say "the child's reason"), and a plan function that throws or returns garbage ends with a
 * {@link CallbackError} / {@link BadReturnError} instead of a `run_plan_element` tuple.
 *
 * @module
 */

import { BadReturnError, CallbackError, OptionError, RestartLimitError } from "./errors.ts";

import type { ExitReason } from "./handler.ts";

export { type BackoffOptions, backoff } from "./backoff.ts";

export type { ExitReason };

/**
 * One step of a {@link Plan}:
 * - `"restart"`: start the child again now;
 * - `{ restart: ms }`: start it again after `ms` milliseconds (a connector reconnects and runs `init` again);
 * - `"delete"`: forget the child;
 * - `"wait"`: keep the child, not running (a manual restart brings it back);
 * - `"stop"`: end the whole server or pool with the child's exit reason;
 * - `{ stop: reason }`: end the whole server or pool with `reason`;
 * - a {@link PlanFunction} that picks one of the above per exit.
 */
export type PlanElement =
  | "restart"
  | { restart: number }
  | "delete"
  | "wait"
  | "stop"
  | { stop: unknown }
  | PlanFunction;

/**
 * Called per exit; `restartCount` counts this child's exits INCLUDING this one (starts at 1); `id` is the
 * child's id. Must return a non-function element. A throw ends the server or pool with a
 * {@link CallbackError} (`callback: "plan"`), a bad return with a {@link BadReturnError}.
 */
export type PlanFunction = (
  reason: ExitReason,
  restartCount: number,
  id: number,
) => Exclude<PlanElement, PlanFunction>;

/** A restart plan: elements walked round-robin, one per exit of a child. */
export type Plan = readonly PlanElement[];

/**
 * What to do with a child that exited. The `restart` (0 ms), `delete` and `wait` decisions are shared
 * frozen constants: compare `action`, never identity, and do not mutate them.
 */
export type Decision =
  | { readonly action: "restart"; readonly delayMs: number }
  | { readonly action: "delete" }
  | { readonly action: "wait" }
  | { readonly action: "stop"; readonly reason: ExitReason };

/**
 * Per-child bookkeeping, created by {@link RestartPlan.track} when a child first starts and kept across
 * its restarts. Three numbers, so 10k connections cost next to nothing.
 */
export interface PlanTrack {
  /** Index of the plan element the next exit runs. */
  position: number;
  /** Full passes through the plan so far (goes up each time the last element has run). */
  passes: number;
  /** Exits so far, the one being decided included once {@link RestartPlan.decide} has run. */
  restartCount: number;
}

const RESTART_NOW: Decision = Object.freeze({ action: "restart", delayMs: 0 });
const DELETE: Decision = Object.freeze({ action: "delete" });
const WAIT: Decision = Object.freeze({ action: "wait" });

/** Stands for `"stop"` in a compiled plan: the decision needs the child's reason, known only per exit. */
const STOP_WITH_CHILD_REASON = 0;

/** A compiled plan element: a ready decision, "stop with the child's reason", or a function to call. */
type Step = Decision | typeof STOP_WITH_CHILD_REASON | PlanFunction;

/** Largest delay a timer can honour: Bun/Node fire longer `setTimeout`s after 1 ms instead. */
const MAX_DELAY_MS = 2_147_483_647;

const ELEMENT_RULE = '"restart", { restart: ms }, "delete", "wait", "stop", { stop: reason } or a function';
const RETURN_RULE = 'expected "restart", { restart: ms }, "delete", "wait", "stop" or { stop: reason }';
const DELAY_RULE = `a number of milliseconds from 0 to ${MAX_DELAY_MS}`;
const PLAN_COUNT_RULE = "an integer >= 0 or Infinity";

function isDelay(ms: unknown): ms is number {
  return typeof ms === "number" && ms >= 0 && ms <= MAX_DELAY_MS; // NaN fails both comparisons
}

/** The single key of `{ restart: ms }` or `{ stop: reason }`, else `undefined`. */
function objectElementKey(value: object): "restart" | "stop" | undefined {
  if (Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const key = keys[0];
  return key === "restart" || key === "stop" ? key : undefined;
}

/**
 * Turns a non-function element into a step. `undefined`: not an element; `"bad-delay"`: the shape is
 * `{ restart }` but the delay is wrong (so the caller can name `plan[i].restart`).
 */
function compileElement(value: unknown): Decision | typeof STOP_WITH_CHILD_REASON | "bad-delay" | undefined {
  switch (value) {
    case "restart":
      return RESTART_NOW;
    case "delete":
      return DELETE;
    case "wait":
      return WAIT;
    case "stop":
      return STOP_WITH_CHILD_REASON;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const key = objectElementKey(value);
  if (key === "stop")
    return Object.freeze({ action: "stop" as const, reason: (value as { stop: unknown }).stop });
  if (key === "restart") {
    const ms = (value as { restart: unknown }).restart;
    if (!isDelay(ms)) return "bad-delay";
    return ms === 0 ? RESTART_NOW : Object.freeze({ action: "restart" as const, delayMs: ms });
  }
  return undefined;
}

/** SockErl's default plan element: a `"normal"` exit deletes the child, any other reason stops everything. */
function defaultPlanElement(reason: ExitReason): "delete" | "stop" {
  return reason === "normal" ? "delete" : "stop";
}

/** SockErl's default plan: one function, `reason === "normal" ? "delete" : "stop"`. */
export const DEFAULT_PLAN: Plan = Object.freeze([defaultPlanElement]);

/**
 * A validated restart plan plus its pass limit. Immutable and shareable: one instance serves every child
 * of a server or pool; the per-child state lives in the {@link PlanTrack} each child gets from
 * {@link RestartPlan.track}.
 *
 * @example
 * ```ts
 * // Reconnect a pool member after 1 s, forever; give up on the pool only on an explicit stop.
 * const plan = new RestartPlan([{ restart: 1000 }], Infinity);
 * const track = plan.track();                  // when the connector first starts
 * const d = plan.decide(track, "econnreset", 7); // when it exits
 * if (d.action === "restart") setTimeout(() => startAgain(7), d.delayMs);
 *
 * // Let a crashing connection go, but end the server after 3 crashes of the same connection.
 * new RestartPlan([(reason, n) => (reason === "normal" || n < 3 ? "delete" : "stop")]);
 * ```
 */
export class RestartPlan {
  /** The default plan ({@link DEFAULT_PLAN}) with `planCount` Infinity. */
  static readonly DEFAULT: RestartPlan = new RestartPlan();

  /** The plan as given (a frozen shallow copy). */
  readonly plan: Plan;
  /** How many full passes through the plan a child may make; `Infinity` never runs out. */
  readonly planCount: number;

  /** The plan compiled: constant elements turned into ready decisions once, here. */
  readonly #steps: readonly Step[];

  /**
   * Validates the plan and count; throws {@link OptionError} naming `plan`, `plan[i]`, `plan[i].restart`
   * or `planCount`, with the rule and the value.
   *
   * @param plan The elements, walked round-robin. @default {@link DEFAULT_PLAN}
   * @param planCount Full passes a child may make: an integer >= 0 or `Infinity`; 0 means a child's
   *   first exit ends the server or pool. A finite count is an explicit limit. @default Infinity
   */
  constructor(plan: Plan = DEFAULT_PLAN, planCount = Number.POSITIVE_INFINITY) {
    if (!Array.isArray(plan)) throw new OptionError("plan", "an array of plan elements", plan);
    if (!(planCount === Number.POSITIVE_INFINITY || (Number.isInteger(planCount) && planCount >= 0))) {
      throw new OptionError("planCount", PLAN_COUNT_RULE, planCount);
    }
    const steps: Step[] = [];
    // An index loop, not for-of/map: holes in a sparse array must be reported, not skipped.
    for (let i = 0; i < plan.length; i++) {
      const element: unknown = plan[i];
      if (typeof element === "function") {
        steps.push(element as PlanFunction);
        continue;
      }
      const step = compileElement(element);
      if (step === "bad-delay") {
        throw new OptionError(`plan[${i}].restart`, DELAY_RULE, (element as { restart: unknown }).restart);
      }
      if (step === undefined) throw new OptionError(`plan[${i}]`, ELEMENT_RULE, element);
      steps.push(step);
    }
    this.plan = Object.freeze(plan.slice());
    this.planCount = planCount;
    this.#steps = steps;
  }

  /** Fresh bookkeeping for a child that starts for the first time (keep it across its restarts). */
  track(): PlanTrack {
    return { position: 0, passes: 0, restartCount: 0 };
  }

  /**
   * One exit of one child: advances its track and says what to do. Call it only for exits the
   * server or pool did not cause itself (not for children it shuts down).
   *
   * @param track The child's {@link PlanTrack}; updated in place.
   * @param reason The child's exit reason.
   * @param id The child's id (passed to plan functions and put in errors).
   */
  decide(track: PlanTrack, reason: ExitReason, id: number): Decision {
    const steps = this.#steps;
    track.restartCount++;
    // Cases, checked in director's order:
    //   1. the plan is empty             → stop: RestartLimitError "empty_plan_child_terminated"
    //   2. passes used up (=== planCount) → stop: RestartLimitError "reached_max_restart_plan"
    //                                       (planCount 0: the first exit; Infinity: never)
    //   3. run the element at `position`, then step on (wrapping to 0 and counting a pass after the last):
    //      a. ready decision ("restart", { restart: ms }, "delete", "wait", { stop: r }) → it, as is
    //      b. "stop"                     → stop with the child's own reason
    //      c. function                   → call (reason, restartCount, id), then:
    //         - it throws                → stop: CallbackError("plan", thrown)
    //         - returns an element       → as in a./b. (a returned { restart: ms } is checked like a plan's)
    //         - returns anything else    → stop: BadReturnError("plan", value)
    //           (a function, a Promise, an unknown string, a wrong shape, a bad delay)
    if (steps.length === 0) {
      return { action: "stop", reason: new RestartLimitError(id, reason, "empty_plan_child_terminated") };
    }
    if (track.passes >= this.planCount) {
      return { action: "stop", reason: new RestartLimitError(id, reason) };
    }
    let position = track.position;
    if (position >= steps.length) position = 0; // a track from a longer plan: start over, don't crash
    const step = steps[position]!;
    if (position + 1 === steps.length) {
      track.position = 0;
      track.passes++;
    } else {
      track.position = position + 1;
    }

    if (step === STOP_WITH_CHILD_REASON) return { action: "stop", reason };
    if (typeof step !== "function") return step;

    let returned: unknown;
    try {
      returned = step(reason, track.restartCount, id);
    } catch (thrown) {
      return { action: "stop", reason: new CallbackError("plan", thrown) };
    }
    const decided = typeof returned === "function" ? undefined : compileElement(returned);
    if (decided === undefined || decided === "bad-delay") {
      return { action: "stop", reason: new BadReturnError("plan", returned, RETURN_RULE) };
    }
    if (decided === STOP_WITH_CHILD_REASON) return { action: "stop", reason };
    return decided;
  }
}
