/**
 * Invariant: a RestartPlan turns each exit of one child into exactly one Decision, walking the plan
 * round-robin on that child's own PlanTrack. On every exit, in order: an empty plan stops with
 * RestartLimitError("empty_plan_child_terminated"); a child that has made `planCount` full passes stops
 * with RestartLimitError("reached_max_restart_plan"); otherwise the next element decides, and a plan
 * function gets (reason, restartCount, id) with restartCount counting this child's exits, this one
 * included. A plan function that throws or returns a non-element stops everything with CallbackError /
 * BadReturnError; nothing in decide() ever throws. Bad plans and counts are refused at construction with
 * an OptionError that names the option, the rule and the value.
 */

import { describe, expect, test } from "bun:test";
import { BadReturnError, CallbackError, OptionError, RestartLimitError } from "../../src/errors.ts";
import {
  DEFAULT_PLAN,
  type Decision,
  type ExitReason,
  type Plan,
  type PlanElement,
  RestartPlan,
} from "../../src/supervisor.ts";
import { thrown } from "../helpers/errors.ts";

/** Runs `reasons` as consecutive exits of one child (id `id`) and returns the decisions. */
function exits(plan: RestartPlan, reasons: readonly ExitReason[], id = 1): Decision[] {
  const track = plan.track();
  return reasons.map((reason) => plan.decide(track, reason, id));
}

/** The reason of a stop decision (fails the test when it is not a stop). */
function stopReason(decision: Decision): unknown {
  if (decision.action !== "stop") throw new Error(`expected a stop, got ${JSON.stringify(decision)}`);
  return decision.reason;
}

describe("plan elements", () => {
  test('"restart" restarts at once (delayMs 0)', () => {
    expect(exits(new RestartPlan(["restart"]), ["boom"])).toEqual([{ action: "restart", delayMs: 0 }]);
  });

  test("{ restart: ms } restarts after ms", () => {
    expect(exits(new RestartPlan([{ restart: 250 }]), ["boom"])).toEqual([
      { action: "restart", delayMs: 250 },
    ]);
    expect(exits(new RestartPlan([{ restart: 0 }]), ["boom"])).toEqual([{ action: "restart", delayMs: 0 }]);
    expect(exits(new RestartPlan([{ restart: 1.5 }]), ["boom"])).toEqual([
      { action: "restart", delayMs: 1.5 },
    ]);
  });

  test('"delete" forgets the child', () => {
    expect(exits(new RestartPlan(["delete"]), ["boom"])).toEqual([{ action: "delete" }]);
  });

  test('"wait" keeps the child, not running', () => {
    expect(exits(new RestartPlan(["wait"]), ["boom"])).toEqual([{ action: "wait" }]);
  });

  test('"stop" ends everything with the child\'s own reason', () => {
    const error = new Error("crashed");
    expect(exits(new RestartPlan(["stop"]), ["boom"])).toEqual([{ action: "stop", reason: "boom" }]);
    expect(stopReason(exits(new RestartPlan(["stop"]), [error])[0]!)).toBe(error);
    expect(exits(new RestartPlan(["stop"]), ["normal"])).toEqual([{ action: "stop", reason: "normal" }]);
  });

  test("{ stop: r } ends everything with r, not the child's reason", () => {
    const r = { why: "enough" };
    expect(stopReason(exits(new RestartPlan([{ stop: r }]), ["boom"])[0]!)).toBe(r);
    expect(exits(new RestartPlan([{ stop: "shutdown" }]), ["boom"])).toEqual([
      { action: "stop", reason: "shutdown" },
    ]);
    expect(exits(new RestartPlan([{ stop: undefined }]), ["boom"])).toEqual([
      { action: "stop", reason: undefined },
    ]);
  });

  test('{ stop: "reason" } stops with the string "reason" (no director quirk)', () => {
    expect(exits(new RestartPlan([{ stop: "reason" }]), ["boom"])).toEqual([
      { action: "stop", reason: "reason" },
    ]);
  });

  test("shared constant decisions are frozen", () => {
    const [restart, del, wait] = exits(new RestartPlan(["restart", "delete", "wait"]), ["a", "b", "c"]);
    expect(Object.isFrozen(restart)).toBe(true);
    expect(Object.isFrozen(del)).toBe(true);
    expect(Object.isFrozen(wait)).toBe(true);
  });

  test("the plan is kept as a frozen copy: later edits to the caller's array change nothing", () => {
    const given: PlanElement[] = ["delete"];
    const plan = new RestartPlan(given);
    given[0] = "stop";
    expect(plan.plan).toEqual(["delete"]);
    expect(Object.isFrozen(plan.plan)).toBe(true);
    expect(exits(plan, ["boom"])).toEqual([{ action: "delete" }]);
  });
});

describe("plan functions", () => {
  test("get (reason, restartCount, id), restartCount counting 1, 2, 3 … including this exit", () => {
    const calls: [ExitReason, number, number][] = [];
    const plan = new RestartPlan(
      [
        (reason, count, id) => {
          calls.push([reason, count, id]);
          return "restart";
        },
      ],
      Infinity,
    );
    const error = new Error("x");
    exits(plan, ["a", error, "normal", 4], 42);
    expect(calls).toEqual([
      ["a", 1, 42],
      [error, 2, 42],
      ["normal", 3, 42],
      [4, 4, 42],
    ]);
    expect(calls[1]![0]).toBe(error);
  });

  test("restartCount keeps counting across elements and passes of a mixed plan", () => {
    const counts: number[] = [];
    const fn = (_: ExitReason, count: number) => {
      counts.push(count);
      return "restart" as const;
    };
    exits(new RestartPlan([fn, "restart", fn], 3), [1, 2, 3, 4, 5, 6]);
    expect(counts).toEqual([1, 3, 4, 6]);
  });

  test("every returned element decides like the same element in the plan", () => {
    const cases: [Exclude<PlanElement, Function>, Decision][] = [
      ["restart", { action: "restart", delayMs: 0 }],
      [{ restart: 30 }, { action: "restart", delayMs: 30 }],
      ["delete", { action: "delete" }],
      ["wait", { action: "wait" }],
      ["stop", { action: "stop", reason: "boom" }],
      [{ stop: "r" }, { action: "stop", reason: "r" }],
    ];
    for (const [element, decision] of cases) {
      expect(exits(new RestartPlan([() => element]), ["boom"])).toEqual([decision]);
    }
  });

  test("a function that throws stops everything with CallbackError (callback plan, cause the throw)", () => {
    const thrown = new Error("plan bug");
    const plan = new RestartPlan([
      () => {
        throw thrown;
      },
    ]);
    const reason = stopReason(exits(plan, ["boom"])[0]!);
    expect(reason).toBeInstanceOf(CallbackError);
    const error = reason as CallbackError;
    expect(error.code).toBe("ERR_CALLBACK");
    expect(error.callback).toBe("plan");
    expect(error.cause).toBe(thrown);
  });

  test("a function that throws a non-Error is reported too", () => {
    const plan = new RestartPlan([
      () => {
        throw "oops";
      },
    ]);
    const reason = stopReason(exits(plan, ["boom"])[0]!) as CallbackError;
    expect(reason).toBeInstanceOf(CallbackError);
    expect(reason.cause).toBe("oops");
  });

  const badReturns: [string, unknown][] = [
    ["a function", () => "restart"],
    ["an unknown string", "reboot"],
    ["undefined", undefined],
    ["null", null],
    ["a number", 3],
    ["an array", ["restart"]],
    ["an empty object", {}],
    ["an object with an unknown key", { restart_after: 5 }],
    ["an object with two keys", { restart: 5, stop: "x" }],
    ["a negative delay", { restart: -1 }],
    ["a NaN delay", { restart: Number.NaN }],
    ["an infinite delay", { restart: Infinity }],
    ["a string delay", { restart: "5" }],
    ["a Promise", Promise.resolve("restart")],
  ];
  test.each(badReturns)("returning %s stops everything with BadReturnError", (_, value) => {
    const plan = new RestartPlan([() => value as never]);
    const reason = stopReason(exits(plan, ["boom"])[0]!);
    expect(reason).toBeInstanceOf(BadReturnError);
    const error = reason as BadReturnError;
    expect(error.code).toBe("ERR_BAD_RETURN");
    expect(error.callback).toBe("plan");
    expect(error.returned).toBe(value);
  });
});

describe("walking the plan", () => {
  test("round-robin over a 3-element plan, one element per exit", () => {
    const plan = new RestartPlan(["restart", { restart: 10 }, "wait"], 3);
    expect(exits(plan, [1, 2, 3, 4, 5, 6, 7, 8, 9])).toEqual([
      { action: "restart", delayMs: 0 },
      { action: "restart", delayMs: 10 },
      { action: "wait" },
      { action: "restart", delayMs: 0 },
      { action: "restart", delayMs: 10 },
      { action: "wait" },
      { action: "restart", delayMs: 0 },
      { action: "restart", delayMs: 10 },
      { action: "wait" },
    ]);
  });

  test("the track records position, passes and exits", () => {
    const plan = new RestartPlan(["restart", "restart", "restart"], Infinity);
    const track = plan.track();
    expect(track).toEqual({ position: 0, passes: 0, restartCount: 0 });
    plan.decide(track, "a", 1);
    expect(track).toEqual({ position: 1, passes: 0, restartCount: 1 });
    plan.decide(track, "a", 1);
    plan.decide(track, "a", 1);
    expect(track).toEqual({ position: 0, passes: 1, restartCount: 3 });
    plan.decide(track, "a", 1);
    expect(track).toEqual({ position: 1, passes: 1, restartCount: 4 });
  });

  test("each child has its own track: one child's exits do not use up another's plan", () => {
    const plan = new RestartPlan(["restart", "delete"], 1);
    const a = plan.track();
    const b = plan.track();
    expect(plan.decide(a, "x", 1)).toEqual({ action: "restart", delayMs: 0 });
    expect(plan.decide(a, "x", 1)).toEqual({ action: "delete" });
    expect(plan.decide(b, "y", 2)).toEqual({ action: "restart", delayMs: 0 });
    const stopA = stopReason(plan.decide(a, "x", 1)) as RestartLimitError;
    expect(stopA.childId).toBe(1);
    expect(plan.decide(b, "y", 2)).toEqual({ action: "delete" });
    expect(b.restartCount).toBe(2);
  });

  test("plan functions see each child's own restartCount and id", () => {
    const seen: [number, number][] = [];
    const plan = new RestartPlan(
      [
        (_, count, id) => {
          seen.push([id, count]);
          return "restart";
        },
      ],
      Infinity,
    );
    const a = plan.track();
    const b = plan.track();
    plan.decide(a, "x", 1);
    plan.decide(a, "x", 1);
    plan.decide(b, "x", 2);
    plan.decide(a, "x", 1);
    expect(seen).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
      [1, 3],
    ]);
  });
});

describe("planCount", () => {
  test("Infinity is the default (a finite count is an explicit limit)", () => {
    expect(new RestartPlan(["restart"]).planCount).toBe(Infinity);
  });

  test("1: one pass, then RestartLimitError", () => {
    const plan = new RestartPlan(["restart"], 1);
    expect(plan.planCount).toBe(1);
    const [first, second] = exits(plan, ["a", "b"], 9);
    expect(first).toEqual({ action: "restart", delayMs: 0 });
    const error = stopReason(second!) as RestartLimitError;
    expect(error).toBeInstanceOf(RestartLimitError);
    expect(error.code).toBe("ERR_RESTART_LIMIT");
    expect(error.reason).toBe("reached_max_restart_plan");
    expect(error.childReason).toBe("b");
    expect(error.childId).toBe(9);
  });

  test("2: two passes over a 2-element plan, the 5th exit stops", () => {
    const decisions = exits(new RestartPlan(["restart", { restart: 5 }], 2), [1, 2, 3, 4, 5]);
    expect(decisions.slice(0, 4).map((d) => d.action)).toEqual(["restart", "restart", "restart", "restart"]);
    const error = stopReason(decisions[4]!) as RestartLimitError;
    expect(error).toBeInstanceOf(RestartLimitError);
    expect(error.childReason).toBe(5);
  });

  test("a pass ends only after the last element has run", () => {
    const decisions = exits(new RestartPlan(["restart", "wait", "restart"], 1), [1, 2, 3, 4]);
    expect(decisions.map((d) => d.action)).toEqual(["restart", "wait", "restart", "stop"]);
  });

  test("0: the first exit stops, and the plan is not run", () => {
    let called = false;
    const plan = new RestartPlan(
      [
        () => {
          called = true;
          return "restart";
        },
      ],
      0,
    );
    const error = stopReason(exits(plan, ["normal"], 3)[0]!) as RestartLimitError;
    expect(error).toBeInstanceOf(RestartLimitError);
    expect(error.reason).toBe("reached_max_restart_plan");
    expect(error.childReason).toBe("normal");
    expect(error.childId).toBe(3);
    expect(called).toBe(false);
  });

  test("Infinity never runs out (1000 exits)", () => {
    const plan = new RestartPlan(["restart", { restart: 1 }], Infinity);
    const track = plan.track();
    for (let i = 0; i < 1000; i++) {
      expect(plan.decide(track, "boom", 1).action).toBe("restart");
    }
    expect(track.restartCount).toBe(1000);
    expect(track.passes).toBe(500);
  });

  test("the RestartLimitError keeps an Error reason as is", () => {
    const crash = new Error("crash");
    const [, second] = exits(new RestartPlan(["restart"], 1), ["a", crash]);
    expect((stopReason(second!) as RestartLimitError).childReason).toBe(crash);
  });
});

describe("empty plan", () => {
  test("the first exit stops with RestartLimitError empty_plan_child_terminated", () => {
    const error = stopReason(exits(new RestartPlan([]), ["boom"], 5)[0]!) as RestartLimitError;
    expect(error).toBeInstanceOf(RestartLimitError);
    expect(error.code).toBe("ERR_RESTART_LIMIT");
    expect(error.reason).toBe("empty_plan_child_terminated");
    expect(error.childReason).toBe("boom");
    expect(error.childId).toBe(5);
  });

  test("an empty plan is checked before planCount (count 0 too)", () => {
    const error = stopReason(exits(new RestartPlan([], 0), ["boom"])[0]!) as RestartLimitError;
    expect(error.reason).toBe("empty_plan_child_terminated");
  });

  test("… and with Infinity", () => {
    const error = stopReason(exits(new RestartPlan([], Infinity), ["normal"])[0]!) as RestartLimitError;
    expect(error.reason).toBe("empty_plan_child_terminated");
  });
});

describe("the default plan", () => {
  test("is one function, with planCount Infinity", () => {
    expect(DEFAULT_PLAN).toHaveLength(1);
    expect(typeof DEFAULT_PLAN[0]).toBe("function");
    expect(RestartPlan.DEFAULT.plan).toEqual(DEFAULT_PLAN);
    expect(RestartPlan.DEFAULT.planCount).toBe(Infinity);
    expect(new RestartPlan().plan).toEqual(DEFAULT_PLAN);
    expect(new RestartPlan(undefined, 4).planCount).toBe(4);
  });

  test('"normal" deletes the child', () => {
    expect(exits(RestartPlan.DEFAULT, ["normal"])).toEqual([{ action: "delete" }]);
  });

  test("any other reason stops everything with that reason", () => {
    expect(exits(RestartPlan.DEFAULT, ["boom"])).toEqual([{ action: "stop", reason: "boom" }]);
    expect(exits(RestartPlan.DEFAULT, ["shutdown"])).toEqual([{ action: "stop", reason: "shutdown" }]);
    const error = new Error("crash");
    expect(stopReason(exits(RestartPlan.DEFAULT, [error])[0]!)).toBe(error);
  });

  test("returns the same frozen delete decision every time (no allocation per exit)", () => {
    const a = RestartPlan.DEFAULT.track();
    const b = RestartPlan.DEFAULT.track();
    const first = RestartPlan.DEFAULT.decide(a, "normal", 1);
    expect(RestartPlan.DEFAULT.decide(b, "normal", 2)).toBe(first);
  });
});

describe("validation", () => {
  function optionError(make: () => unknown, option: string): OptionError {
    const caught = thrown(make);
    expect(caught).toBeInstanceOf(OptionError);
    const error = caught as OptionError;
    expect(error.code).toBe("ERR_OPTION");
    expect(error.option).toBe(option);
    return error;
  }

  test.each([
    ["a string", "restart"],
    ["an object", { restart: 1 }],
    ["null", null],
    ["a number", 1],
  ])("a non-array plan (%s) is refused", (_, value) => {
    const error = optionError(() => new RestartPlan(value as unknown as Plan), "plan");
    expect(error.value).toBe(value);
    expect(error.message).toStartWith("Expected `plan` to be an array of plan elements, got ");
  });

  test("an unknown element is refused, naming its index, the rule and the value", () => {
    const error = optionError(() => new RestartPlan(["restart", "delete", "foo" as never]), "plan[2]");
    expect(error.value).toBe("foo");
    expect(error.message).toBe(
      'Expected `plan[2]` to be "restart", { restart: ms }, "delete", "wait", "stop", { stop: reason } or a function, got `"foo"` (string)',
    );
  });

  test.each([
    ["null", null],
    ["undefined", undefined],
    ["a number", 5],
    ["an array", ["restart"]],
    ["an empty object", {}],
    ["an object with an unknown key", { wait: 1 }],
    ["an object with two keys", { restart: 1, stop: 2 }],
    ["a misspelt string", "Restart"],
  ])("a bad element (%s) is refused", (_, value) => {
    const error = optionError(() => new RestartPlan(["wait", value as never]), "plan[1]");
    expect(error.value).toBe(value);
  });

  test("a hole in a sparse array is refused", () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is what is tested
    optionError(() => new RestartPlan([, "restart"] as unknown as Plan), "plan[0]");
  });

  test.each([
    ["negative", -1],
    ["NaN", Number.NaN],
    ["Infinity", Infinity],
    ["past the timer limit", 2 ** 31],
    ["a string", "10"],
  ])("a bad restart delay (%s) is refused, naming plan[i].restart", (_, ms) => {
    const error = optionError(() => new RestartPlan([{ restart: ms as number }]), "plan[0].restart");
    expect(error.value).toBe(ms);
    expect(error.message).toStartWith("Expected `plan[0].restart` to be a number of milliseconds from 0 to ");
  });

  test("the largest timer delay is accepted", () => {
    expect(exits(new RestartPlan([{ restart: 2 ** 31 - 1 }]), ["x"])).toEqual([
      { action: "restart", delayMs: 2 ** 31 - 1 },
    ]);
  });

  test.each([
    ["-1", -1],
    ["1.5", 1.5],
    ['"x"', "x"],
    ["NaN", Number.NaN],
    ["-Infinity", -Infinity],
    ["null", null],
  ])("planCount %s is refused", (_, count) => {
    const error = optionError(() => new RestartPlan(["restart"], count as number), "planCount");
    expect(error.value).toBe(count);
    expect(error.rule).toBe("an integer >= 0 or Infinity");
  });

  test("planCount 0, large integers and Infinity are accepted", () => {
    expect(new RestartPlan(["restart"], 0).planCount).toBe(0);
    expect(new RestartPlan(["restart"], 1_000_000).planCount).toBe(1_000_000);
    expect(new RestartPlan(["restart"], Infinity).planCount).toBe(Infinity);
  });

  test("functions are accepted as they are, without being called", () => {
    let called = false;
    new RestartPlan([
      () => {
        called = true;
        return "stop";
      },
    ]);
    expect(called).toBe(false);
  });
});
