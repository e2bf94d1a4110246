/**
 * Invariant: a connection's list of pending calls (CallList, threaded through the calls) holds each
 * call at most once, removes any member in O(1) from any position, ignores calls it does not hold
 * (one settled twice, or held by another connection's list), and empties in insertion-independent
 * order with its size always right. A call moved to another connection (a pool re-routing it) leaves
 * the first list when it joins the second.
 */
import { expect, test } from "bun:test";
import { CallFrom, CallList } from "../../src/call.ts";

const owner = {};
const call = (): CallFrom =>
  new CallFrom(
    owner,
    () => undefined,
    () => undefined,
    Number.POSITIVE_INFINITY,
  );

test("add, remove from the middle, the head and the tail; size follows", () => {
  const list = new CallList();
  const calls = Array.from({ length: 5 }, call);
  for (const c of calls) list.add(c);
  expect(list.size).toBe(5);
  list.remove(calls[2]!); // middle
  list.remove(calls[4]!); // head (added last)
  list.remove(calls[0]!); // tail
  expect(list.size).toBe(2);
  expect(new Set(list.takeAll())).toEqual(new Set([calls[1]!, calls[3]!]));
  expect(list.size).toBe(0);
  expect(list.takeAll()).toEqual([]);
});

test("removing a call twice, or one held by another list, changes nothing", () => {
  const a = new CallList();
  const b = new CallList();
  const x = call();
  const y = call();
  a.add(x);
  b.add(y);
  a.remove(y);
  expect([a.size, b.size]).toEqual([1, 1]);
  a.remove(x);
  a.remove(x);
  expect(a.size).toBe(0);
  // moved: out of one list, into the other
  b.remove(y);
  a.add(y);
  expect([a.size, b.size]).toEqual([1, 0]);
  expect(a.takeAll()).toEqual([y]);
});

test("10,000 calls added and removed in random order leave an empty list", () => {
  const list = new CallList();
  const calls = Array.from({ length: 10_000 }, call);
  for (const c of calls) list.add(c);
  let seed = 42;
  const order = calls.map((c) => ({ c, k: (seed = (seed * 1103515245 + 12345) & 0x7fffffff) }));
  order.sort((p, q) => p.k - q.k);
  for (const { c } of order.slice(0, 9_000)) list.remove(c);
  expect(list.size).toBe(1_000);
  expect(list.takeAll().length).toBe(1_000);
});
