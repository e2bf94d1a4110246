/**
 * The worker side of `cluster()`: runs `main`, tells the primary it is ready, answers its info
 * requests, and stops every server gracefully when asked (or on a signal, or when the primary is
 * gone), then exits.
 *
 * @module
 */
import type { FromWorker, ToWorker } from "./ipc.ts";
import type { Settings } from "./settings.ts";

/** The library's `runningServers()`, when the build has it. */
async function runningServers(): Promise<Array<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }>> {
  try {
    const lib = (await import("../index.ts")) as Record<string, unknown>;
    if (typeof lib.runningServers !== "function") return [];
    return [
      ...(lib.runningServers as () => Iterable<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }>)(),
    ];
  } catch {
    return [];
  }
}

function stoppables(value: unknown): Array<{ stop(o?: unknown): Promise<unknown>; info?(): unknown }> {
  const list = Array.isArray(value) ? value : [value];
  return list.filter(
    (v): v is { stop(o?: unknown): Promise<unknown> } =>
      v !== null && typeof v === "object" && typeof (v as { stop?: unknown }).stop === "function",
  );
}

/** Runs `main` in this worker process (slot `id`) and serves the primary's requests. */
export async function runWorker(
  id: number,
  settings: Settings,
  main: () => Promise<unknown> | unknown,
): Promise<void> {
  let result: unknown;
  let stopping = false;
  const servers = async () => {
    const all = new Set([...(await runningServers()), ...stoppables(result)]);
    return [...all];
  };
  const gracefulStop = async (drainMs: number) => {
    if (stopping) return;
    stopping = true;
    const list = await servers();
    await Promise.allSettled(list.map((s) => s.stop({ drainMs })));
    process.exit(0);
  };
  process.on("message", async (message: ToWorker) => {
    if (message?.t === "stop") await gracefulStop(message.drainMs);
    else if (message?.t === "info") {
      const infos: Array<Record<string, unknown>> = [];
      for (const s of await servers()) {
        if (typeof s.info !== "function") continue;
        try {
          infos.push(jsonSafe(s.info()) as Record<string, unknown>);
        } catch {
          // a server that cannot report is left out
        }
      }
      process.send?.({ t: "info", ref: message.ref, servers: infos } satisfies FromWorker);
    }
  });
  // Ctrl-C reaches the whole process group: a worker drains like on the primary's request.
  process.on("SIGTERM", () => void gracefulStop(settings.drainMs));
  process.on("SIGINT", () => void gracefulStop(settings.drainMs));
  // The primary is gone (killed hard): nobody supervises this worker any more.
  process.on("disconnect", () => void gracefulStop(settings.drainMs));
  try {
    result = await main();
  } catch (error) {
    console.error(`sockerl cluster: worker ${id} (pid ${process.pid}): main failed:`, error);
    process.exit(1);
  }
  process.send?.({ t: "ready" } satisfies FromWorker);
}

/** Dates as ISO strings, so the info survives any IPC serialisation. */
function jsonSafe(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}
