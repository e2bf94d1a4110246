/**
 * `startConnectorPool`: validates the options (routing, plan, addresses), builds the {@link Pool} and
 * makes every initial connect.
 *
 * @module
 */
import { backoff } from "../backoff.ts";
import { connectSpec } from "../connector.ts";
import { ArgumentError, OptionError } from "../errors.ts";
import type { Handler } from "../handler.ts";
import type { CheckedActions, Encoding, PacketFor } from "../handler-check.ts";
import {
  booleanOption,
  checkOptionKeys,
  milliseconds,
  POOL_KEYS,
  type PoolOptions,
  positiveInteger,
  stringOption,
} from "../options.ts";
import { register } from "../registry.ts";
import { RestartPlan } from "../supervisor.ts";
import { Pool } from "./pool.ts";
import type { PoolStrategy, RouterSettings } from "./router.ts";

/**
 * Starts `connectorCount` connectors (default 1) to each `[host, port]`. Resolves once every initial
 * connector is connected; rejects with the first failure (the started ones are stopped). With
 * `watchdog: true` it resolves once each has had its first try, and failed ones follow the plan.
 *
 * Requests go through the pool (`pool.call(request)`), routed by `strategy` (default
 * `"round-robin"`); the default plan `[backoff()]` reconnects forever.
 *
 * @example
 * const pool = await startConnectorPool(handler, undefined, [["127.0.0.1", port]], {
 *   connectorCount: 4, watchdog: true, strategy: "least-busy",
 * });
 * await pool.ready();
 * const reply = await pool.call("ping");
 *
 * As with `startServer`, a handler written as an object literal (or with `satisfies Handler<S>`)
 * has its actions checked for unknown fields and its packet type taken from `encoding`.
 */
export function startConnectorPool<
  S = undefined,
  I = unknown,
  E extends Encoding | undefined = undefined,
  T = Handler<S, I, PacketFor<E>>,
>(
  handler: Handler<S, I, PacketFor<E>> & T & NoInfer<CheckedActions<T>>,
  init: I,
  addresses: ReadonlyArray<readonly [host: string, port: number]>,
  options?: PoolOptions & { encoding?: E },
): Promise<Pool<S, I>>;
export async function startConnectorPool<S, I>(
  handler: Handler<S, I>,
  init: I,
  addresses: ReadonlyArray<readonly [host: string, port: number]>,
  options?: PoolOptions,
): Promise<Pool<S, I>> {
  const record = checkOptionKeys(options, POOL_KEYS);
  if (!Array.isArray(addresses))
    throw new ArgumentError("addresses", "an array of [host, port] pairs", addresses);
  const specs = addresses.map((address, i) => {
    if (!Array.isArray(address) || address.length !== 2) {
      throw new ArgumentError(`addresses[${i}]`, "a [host, port] pair", address);
    }
    return connectSpec(handler, init, address[0], address[1], record);
  });
  const count = positiveInteger("connectorCount", record.connectorCount, 1);
  const watchdog = booleanOption("watchdog", record.watchdog, false);
  const plan = new RestartPlan(
    (record.plan as never) ?? [backoff()],
    (record.planCount as number | undefined) ?? Number.POSITIVE_INFINITY,
  );
  const routing: RouterSettings = {
    strategy: strategyOption(record.strategy),
    maxWaiting: nonNegativeInteger("maxWaiting", record.maxWaiting, 1000),
    waitTimeout: milliseconds("waitTimeout", record.waitTimeout, 5000),
  };
  const name = record.name === undefined ? undefined : stringOption("name", record.name, "");
  const first = specs[0];
  const base = first ?? connectSpec(handler, init, "127.0.0.1", 0, record);
  const pool = new Pool<S, I>(
    {
      handler: base.handler,
      init,
      settings: base.settings,
      transport: base.transport,
      connectTimeout: base.connectTimeout,
      totals: base.totals,
    },
    plan,
    name,
    routing,
  );
  if (name !== undefined) register(name, pool);
  const attempts: Promise<unknown>[] = [];
  for (const spec of specs) {
    for (let i = 0; i < count; i++) attempts.push(pool.startSlot(spec.host, spec.port, watchdog));
  }
  const results = await Promise.allSettled(attempts);
  if (!watchdog) {
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      await pool.stop("shutdown");
      throw (failed as PromiseRejectedResult).reason;
    }
  }
  return pool;
}

function strategyOption(value: unknown): PoolStrategy {
  if (value === undefined) return "round-robin";
  if (value === "round-robin" || value === "least-busy" || typeof value === "function")
    return value as PoolStrategy;
  throw new OptionError(
    "strategy",
    '"round-robin", "least-busy" or a function (live, request) => connection',
    value,
  );
}

function nonNegativeInteger(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new OptionError(option, "an integer >= 0", value);
  }
  return value;
}
