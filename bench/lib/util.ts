/**
 * Small helpers shared by the load-benchmark modules: messages, time, number formatting, medians.
 * @module
 */

/** Print `msg` on stderr and exit with status 2 (a usage or setup error, not a slow number). */
export function die(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

/** A progress line on stderr (stdout carries only the table). */
export function log(msg: string): void {
  console.error(`bench: ${msg}`);
}

/** Sleep `s` seconds (negative: not at all). */
export const sleep = (s: number): Promise<void> => Bun.sleep(Math.max(0, s * 1000));

/** Monotonic time in seconds. */
export const now = (): number => performance.now() / 1000;

/** `n` with thousands separators and `digits` decimals; "–" when it is not a finite number. */
export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Median of the finite values, or undefined when there are none. */
export function median(xs: number[]): number | undefined {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return undefined;
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

/** Output of a short helper command, or `fallback` (bounded: 5 s). */
export function cmdOut(argv: string[], fallback: string): string {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "ignore", timeout: 5000 });
    const s = r.stdout.toString().trim();
    return r.exitCode === 0 && s !== "" ? s : fallback;
  } catch {
    return fallback;
  }
}
