/**
 * bench/lib/perf-profile.ts on made-up input: a jitdump file as JavaScriptCore writes it (the Linux
 * perf format), and `perf script` output with kernel, native, JIT and libc frames.
 */
import { describe, expect, test } from "bun:test";
import { jitName, parseJitDump, perfMap, summarizePerfScript } from "./lib/perf-profile.ts";

/** A jitdump file: the 40-byte header, then `records` (each a full record, header included). */
function jitdump(records: Uint8Array[]): Uint8Array {
  const header = new Uint8Array(40);
  const h = new DataView(header.buffer);
  h.setUint32(0, 0x4a695444, true); // "JiTD"
  h.setUint32(4, 1, true); // version
  h.setUint32(8, 40, true); // header size
  return Buffer.concat([header, ...records]);
}

/** A JIT_CODE_LOAD record of `code` bytes at `address`. */
function codeLoad(address: bigint, name: string, code: number): Uint8Array {
  const nameBytes = Buffer.from(`${name}\0`);
  const total = 16 + 40 + nameBytes.length + code;
  const r = new Uint8Array(total);
  const v = new DataView(r.buffer);
  v.setUint32(0, 0, true); // JIT_CODE_LOAD
  v.setUint32(4, total, true);
  v.setBigUint64(16 + 8, address, true); // vma
  v.setBigUint64(16 + 16, address, true); // code_addr
  v.setBigUint64(16 + 24, BigInt(code), true); // code_size
  r.set(nameBytes, 16 + 40);
  return r;
}

/** A record of another kind (JIT_CODE_CLOSE, 3), which carries no code. */
function otherRecord(): Uint8Array {
  const r = new Uint8Array(16);
  new DataView(r.buffer).setUint32(0, 3, true);
  new DataView(r.buffer).setUint32(4, 16, true);
  return r;
}

describe("parseJitDump", () => {
  test("reads each code load's address, size and name, and skips other records", () => {
    const file = jitdump([
      codeLoad(0x7f0000001000n, "JSC-FTL: deliverFrames#DLaylB", 0xe00),
      otherRecord(),
      codeLoad(0x7f0000002000n, "JSC-Thunk: CallTrampoline", 0x40),
    ]);
    expect(parseJitDump(file)).toEqual([
      { start: 0x7f0000001000n, size: 0xe00, name: "JSC-FTL: deliverFrames#DLaylB" },
      { start: 0x7f0000002000n, size: 0x40, name: "JSC-Thunk: CallTrampoline" },
    ]);
  });

  test("a record cut short at the end (still being written) ends the list", () => {
    const whole = codeLoad(0x1000n, "JSC-DFG: a#AAAAAA", 8);
    const cut = codeLoad(0x2000n, "JSC-DFG: b#BBBBBB", 8).subarray(0, 30);
    expect(parseJitDump(jitdump([whole, cut])).map((c) => c.name)).toEqual(["JSC-DFG: a#AAAAAA"]);
  });

  test("bytes that are not a jitdump file are refused", () => {
    expect(() => parseJitDump(new Uint8Array(64))).toThrow("not a jitdump file");
  });
});

test("perfMap writes START SIZE NAME lines in hex", () => {
  expect(perfMap([{ start: 0x7f19b7ba5dc0n, size: 0xb40, name: "JSC-DFG: deliverFrames#DLaylB" }])).toBe(
    "7f19b7ba5dc0 b40 JSC-DFG: deliverFrames#DLaylB\n",
  );
});

test("jitName keeps the tier and the function name, without the hash and the offset", () => {
  expect(jitName("JSC-FTL: deliverFrames#DLaylB+0x610")).toBe("FTL deliverFrames");
  expect(jitName("JSC-FTLThunk: unspecified+0xe")).toBe("FTLThunk unspecified");
  expect(jitName("JSC-FTL: #DF9BO4+0x242")).toBe("FTL (anonymous)");
});

describe("summarizePerfScript", () => {
  const script = [
    "bun 123 45821.657866:     250000 cpu-clock: ",
    "\t         18d2723 [unknown] (/work/node_modules/bun/bin/bun.exe)",
    "\t    7fa77f868fee JSC-FTLThunk: unspecified+0xe (/tmp/perf-123.map)",
    "\t    7fa77f864c09 JSC-FTL: dispatchPacket#CK4vhh+0x249 (/tmp/perf-123.map)",
    "",
    "bun 123 45821.658114:     250000 cpu-clock: ",
    "\tffffffff81a2b3c4 tcp_sendmsg_locked+0x10 ([kernel.kallsyms])",
    "\tffffffff81a2b000 __sys_sendto+0x20 ([kernel.kallsyms])",
    "",
    "bun 123 45821.658364:     250000 cpu-clock: ",
    "\t    7fa77f869970 JSC-FTL: deliverFrames#DLaylB+0x610 (/tmp/perf-123.map)",
    "\t    7fa77f86af92 JSC-FTL: onData#DHxUP8+0x1d2 (/tmp/perf-123.map)",
    "",
    "bun 123 45821.658614:     250000 cpu-clock: ",
    "\t           9a8b7 __memmove_avx512_unaligned_erms+0x27 (/usr/lib/x86_64-linux-gnu/libc.so.6)",
    "",
    "bun 123 45821.658864:     250000 cpu-clock: ",
    "\t         1bfe5fd [unknown] (/work/node_modules/bun/bin/bun.exe)",
    "\t         1843101 [unknown] (/work/node_modules/bun/bin/bun.exe)",
    "",
  ].join("\n");
  const s = summarizePerfScript(script);

  test("counts each sample once, by the part its leaf frame is in", () => {
    expect(s.samples).toBe(5);
    expect(Object.fromEntries(s.parts)).toEqual({ bun: 2, kernel: 1, jit: 1, libc: 1 });
  });

  test("JIT samples go to their function; native samples to the nearest JavaScript caller, past thunks", () => {
    expect(Object.fromEntries(s.jitSelf)).toEqual({ "FTL deliverFrames": 1 });
    expect(Object.fromEntries(s.nativeByCaller)).toEqual({ "FTL dispatchPacket": 1, "(none)": 1 });
  });

  test("empty output is no samples", () => {
    expect(summarizePerfScript("").samples).toBe(0);
  });
});
