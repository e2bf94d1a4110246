/**
 * A server's start options, read once: what the connections share, the listener's settings, the plan
 * and the admission limits (each default chosen for a hostile peer: see admission.ts).
 *
 * @module
 */
import type { ConnectionSettings } from "../connection/process.ts";
import { OptionError } from "../errors.ts";
import {
  type AcceptorMode,
  checkOptionKeys,
  connectionSettings,
  positiveInteger,
  SERVER_KEYS,
  type ServerOptions,
  stringOption,
  transportOption,
} from "../options.ts";
import { RestartPlan } from "../supervisor.ts";
import { type DebugOption, parseDebugOptions } from "../trace.ts";
import type { Transport } from "../transport/transport.ts";

/** The default server plan: every ending deletes that connection; the server serves on. */
const DELETE_PLAN = ["delete"] as const;

/** A server's validated options. */
export interface ServerConfig {
  readonly settings: ConnectionSettings;
  readonly transport: Transport;
  /** The raw `proxyProtocol` option (validated where the listen transport is built). */
  readonly proxyProtocol: unknown;
  readonly hostname: string;
  readonly name: string | undefined;
  readonly plan: RestartPlan;
  readonly acceptorCount: number;
  readonly acceptorMode: AcceptorMode;
  readonly acceptorDebug: readonly DebugOption[];
  readonly reusePort: boolean;
  readonly maxConnections: number;
  readonly maxWaiting: number;
  readonly maxHandshakes: number;
}

/** Validates a server's options; throws `OptionError` naming the option, the rule and the value. */
export function serverConfig(options: ServerOptions | undefined): ServerConfig {
  const record = checkOptionKeys(options, SERVER_KEYS);
  const acceptorCount = positiveInteger("acceptorCount", record.acceptorCount, 1);
  const reusePort = record.reusePort;
  if (reusePort !== undefined && typeof reusePort !== "boolean") {
    throw new OptionError("reusePort", "a boolean", reusePort);
  }
  const acceptorMode = record.acceptorMode ?? "accept";
  if (acceptorMode !== "accept" && acceptorMode !== "sleep") {
    throw new OptionError("acceptorMode", '"accept" or "sleep"', acceptorMode);
  }
  return {
    settings: connectionSettings(record),
    transport: transportOption(record.transport),
    proxyProtocol: record.proxyProtocol,
    hostname: stringOption("hostname", record.hostname, "0.0.0.0"),
    name: record.name === undefined ? undefined : stringOption("name", record.name, ""),
    plan: new RestartPlan(
      (record.plan as never) ?? DELETE_PLAN,
      (record.planCount as number | undefined) ?? Number.POSITIVE_INFINITY,
    ),
    acceptorCount,
    acceptorMode,
    acceptorDebug: parseDebugOptions("acceptorDebug", record.acceptorDebug),
    reusePort: reusePort === true || acceptorCount > 1,
    maxConnections: countOption("maxConnections", record.maxConnections, Number.POSITIVE_INFINITY),
    maxWaiting: countOption("maxWaiting", record.maxWaiting, 1024),
    maxHandshakes: countOption("maxHandshakes", record.maxHandshakes, 1024),
  };
}

/** A positive integer or Infinity, or `fallback`. */
function countOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return value;
  return positiveInteger(option, value, fallback);
}
