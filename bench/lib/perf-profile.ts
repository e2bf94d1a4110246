/**
 * The pure parts of bench/profile.ts: JavaScriptCore's jitdump files turned into a perf map (so that
 * `perf script` names the JIT-compiled functions), and `perf script` output summed up per part of the
 * process (kernel, Bun's native code, JIT code, libc), per JIT function, and per JavaScript function
 * that called into native code. No processes here: bench/perf-profile.test.ts feeds it made-up input.
 *
 * @module
 */

/** One piece of code JavaScriptCore compiled (a `JIT_CODE_LOAD` record of a jitdump file). */
export interface JitCode {
  /** Address of its first instruction. */
  readonly start: bigint;
  readonly size: number;
  /** As JSC names it: `JSC-FTL: deliverFrames#DLaylB`, `JSC-Thunk: CallTrampoline`, ... */
  readonly name: string;
}

/** The jitdump file's magic number ("JiTD" little-endian) and the record type of a code load. */
const JITDUMP_MAGIC = 0x4a695444;
const JIT_CODE_LOAD = 0;

/**
 * The code-load records of a jitdump file (the format of Linux perf's `tools/perf/util/jitdump.h`:
 * a header whose size is at byte 8, then records of `{ id: u32, total_size: u32, timestamp: u64 }`
 * followed by their body; a code load's body is `pid u32, tid u32, vma u64, code_addr u64, code_size
 * u64, code_index u64`, its name NUL-terminated, then the code bytes). A record cut short at the end
 * (the process was still writing) ends the list.
 *
 * @throws Error when the bytes are not a jitdump file.
 */
export function parseJitDump(bytes: Uint8Array): JitCode[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16 || view.getUint32(0, true) !== JITDUMP_MAGIC) throw new Error("not a jitdump file");
  const codes: JitCode[] = [];
  const decoder = new TextDecoder();
  let at = view.getUint32(8, true);
  while (at + 16 <= bytes.length) {
    const id = view.getUint32(at, true);
    const total = view.getUint32(at + 4, true);
    if (total < 16 || at + total > bytes.length) break;
    if (id === JIT_CODE_LOAD && total >= 16 + 40) {
      const start = view.getBigUint64(at + 16 + 16, true);
      const size = Number(view.getBigUint64(at + 16 + 24, true));
      const nameAt = at + 16 + 40;
      const nul = bytes.indexOf(0, nameAt);
      if (nul === -1 || nul >= at + total) break;
      codes.push({ start, size, name: decoder.decode(bytes.subarray(nameAt, nul)) });
    }
    at += total;
  }
  return codes;
}

/** The text of a `/tmp/perf-<pid>.map` file for `codes` (`START SIZE NAME` per line, in hex). */
export function perfMap(codes: readonly JitCode[]): string {
  return codes.map((c) => `${c.start.toString(16)} ${c.size.toString(16)} ${c.name}\n`).join("");
}

/** Where a sample's instruction was. */
export type Part = "kernel" | "bun" | "jit" | "libc" | "other";

/** `perf script` output summed up. Counts are samples. */
export interface ProfileSummary {
  readonly samples: number;
  /** Samples per part of the process. */
  readonly parts: Map<Part, number>;
  /** Samples in each JIT function's own code (its name without the `#hash` and offset). */
  readonly jitSelf: Map<string, number>;
  /**
   * Samples in Bun's native code, by the nearest JavaScript function on the stack (past the thunks
   * JSC calls through; "(none)": no JavaScript on the stack, the event loop's own work).
   */
  readonly nativeByCaller: Map<string, number>;
}

/** One stack frame of `perf script`: `\t   7f19b7baa0d7 JSC-FTL: deliverFrames#DLaylB+0x610 (/tmp/perf-1.map)`. */
const FRAME = /^\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$/;

/** The part of the process a frame's DSO is. */
function partOf(dso: string): Part {
  if (dso.includes("kernel")) return "kernel";
  if (dso.startsWith("/tmp/perf-") || dso.startsWith("[JIT]")) return "jit";
  if (dso.includes("libc.so")) return "libc";
  if (/\bbun(\.exe)?$/.test(dso)) return "bun";
  return "other";
}

/**
 * A JIT symbol without its offset and hash: `JSC-FTL: deliverFrames#DLaylB+0x610` → `FTL deliverFrames`
 * (an arrow function has no name: `JSC-FTL: #DF9BO4` → `FTL (anonymous)`).
 */
export function jitName(symbol: string): string {
  const name = symbol.replace(/\+0x[0-9a-f]+$/, "").replace(/#\w+$/, "");
  const [tier = "", fn = ""] = name.replace(/^JSC-/, "").split(": ");
  return `${tier} ${fn.trim() || "(anonymous)"}`;
}

/** JIT code that is not a JavaScript function: call thunks, inline-cache stubs, trampolines. */
const STUB = /^JSC-(\w*Thunk|InlineCache)\b|Trampoline/;

function add<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/**
 * Sums up the samples of `perf script` output (recorded with `-g`, its JIT frames named from a perf
 * map): each sample is a header line and its frames, leaf first, then a blank line.
 */
export function summarizePerfScript(text: string): ProfileSummary {
  const parts = new Map<Part, number>();
  const jitSelf = new Map<string, number>();
  const nativeByCaller = new Map<string, number>();
  let samples = 0;
  let frames: { symbol: string; part: Part }[] = [];
  const flush = (): void => {
    const stack = frames;
    frames = [];
    const leaf = stack[0];
    if (leaf === undefined) return;
    samples++;
    add(parts, leaf.part);
    if (leaf.part === "jit") add(jitSelf, jitName(leaf.symbol));
    if (leaf.part === "bun") {
      // the function that called into Bun: past the thunks and stubs JSC calls through
      const js = stack.filter((f) => f.part === "jit");
      const caller = js.find((f) => !STUB.test(f.symbol)) ?? js[0];
      add(nativeByCaller, caller === undefined ? "(none)" : jitName(caller.symbol));
    }
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      flush();
      continue;
    }
    const m = FRAME.exec(line);
    if (m === null) {
      flush(); // a header line starts the next sample
      continue;
    }
    frames.push({ symbol: m[1]!, part: partOf(m[2]!) });
  }
  flush();
  return { samples, parts, jitSelf, nativeByCaller };
}
