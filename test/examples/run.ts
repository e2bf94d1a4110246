/**
 * Running the real clients the example tests drive (redis-cli, openssl, swaks, ...): asynchronously,
 * so the server under test keeps serving in this process, and bounded by a timeout that kills the
 * client. A client that is not installed makes its tests skip with a visible warning.
 *
 * @module
 */

/** What a finished client printed. */
export interface RunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` with `stdin` (bytes or text) and waits for it to exit, killing it after `timeoutMs`.
 * Never throws on a non-zero exit: tests assert `exitCode` themselves, with the output at hand.
 */
export async function run(
  cmd: string[],
  { stdin, timeoutMs = 20_000 }: { stdin?: string | Uint8Array; timeoutMs?: number } = {},
): Promise<RunResult> {
  const proc = Bun.spawn(cmd, {
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  const exitCode = await proc.exited;
  return { exitCode, stdout, stderr };
}

/**
 * Whether `program` is installed; when it is not, warns once so the skip is visible in the test
 * output (CI installs them: see .ci/run).
 */
export function have(program: string, pkg = program): boolean {
  if (Bun.which(program) !== null) return true;
  console.warn(`SKIP: ${program} is not installed (apt-get install ${pkg}); its example tests are skipped`);
  return false;
}
