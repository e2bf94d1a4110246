/**
 * Invariant: every example runs as a script, `bun examples/<name>.ts <port>`: the servers print the
 * address they listen on (and are then stopped by the test), and examples/rpc.ts runs its calls and
 * exits 0 by itself.
 */

import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { within } from "../helpers/wait.ts";

const EXAMPLES = join(import.meta.dir, "..", "..", "examples");
const started: Subprocess[] = [];

afterEach(async () => {
  for (const proc of started.splice(0)) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
});

/** Starts `bun examples/<name>.ts 0` and resolves with its first line of output. */
async function firstLine(name: string): Promise<string> {
  const proc = Bun.spawn([process.execPath, join(EXAMPLES, `${name}.ts`), "0"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  started.push(proc);
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of proc.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (text.includes("\n")) break;
  }
  return text.slice(0, text.indexOf("\n"));
}

for (const [name, says] of [
  ["resp-server", /^RESP server on 127\.0\.0\.1:\d+/],
  ["smtp-server", /^SMTP server on 127\.0\.0\.1:\d+/],
  ["chat", /^chat on 127\.0\.0\.1:\d+/],
] as const) {
  test(`bun examples/${name}.ts 0 listens and says where`, async () => {
    expect(await within(firstLine(name), 10_000, `${name} to start`)).toMatch(says);
  });
}

test("bun examples/rpc.ts 0 makes its calls and exits 0", async () => {
  const proc = Bun.spawn([process.execPath, join(EXAMPLES, "rpc.ts"), "0"], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 10_000,
  });
  started.push(proc);
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  expect(out.trim().split("\n")).toEqual([
    "5",
    '"SOCKERL"',
    "10",
    '{"nested":[true,null]}',
    '"RpcError: on purpose"',
  ]);
});
