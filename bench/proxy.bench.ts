/**
 * PROXY protocol costs.
 *
 * 1. **Header parse** (mitata): `parseProxyHeader` on a v1 TCP4 line, a v1 TCP6 line, a v2 INET
 *    header, and a v2 header with the TLVs HAProxy sends with `proxy-v2-options crc32c,unique-id`
 *    (the CRC32C is checked), each followed by 64 bytes of data in the same chunk, as they arrive.
 * 2. **Connect rate, `proxyProtocol` on vs off** (`--connect`): a library echo server (the PROXY
 *    transport in front of `tcp()`, or `tcp()` alone) pinned to CPU 0, a Bun client pinned to CPU
 *    1 with 50 slots looping connect → (header +) 64 bytes → echo → RST, interleaved cells of
 *    `--dur` seconds (default 4) × `--reps` (default 2). Reports connections/s and the server's CPU
 *    per connection (from /proc). Bounded: about 2 × reps × dur seconds plus start-up.
 *
 * Run: `bun bench/proxy.bench.ts [--filter <regex>]` (parse only), `bun bench/proxy.bench.ts --connect`.
 */
import { join } from "node:path";
import { bench, do_not_optimize, group, run, summary } from "mitata";
import { type Handler, startServer, tcp } from "../src/index.ts";
import { encodeProxyHeader, parseProxyHeader } from "../src/proxy/header.ts";
import { proxyOptions } from "../src/proxy/options.ts";
import { proxyTransport } from "../src/proxy/transport.ts";

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const value = (name: string, fallback: number) => {
  const at = argv.indexOf(name);
  return at === -1 ? fallback : Number(argv[at + 1]);
};

const payload = Buffer.alloc(64, 0x61);
const withData = (header: Uint8Array) => Buffer.concat([header, payload]);
const HEADERS = {
  "v1 TCP4": withData(Buffer.from("PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n")),
  "v1 TCP6": withData(Buffer.from("PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n")),
  "v2 INET": withData(
    encodeProxyHeader({
      version: 2,
      sourceAddress: "203.0.113.7",
      sourcePort: 40000,
      destinationAddress: "198.51.100.1",
      destinationPort: 443,
    }),
  ),
  "v2 INET + unique-id + crc32c": withData(
    encodeProxyHeader({
      version: 2,
      sourceAddress: "203.0.113.7",
      sourcePort: 40000,
      destinationAddress: "198.51.100.1",
      destinationPort: 443,
      tlvs: [[0x05, Buffer.from("7F000001:EDF0_7F000001:AC33_6B0FAE54_0004")]],
      crc32c: true,
    }),
  ),
};

// ---------------------------------------------------------------- child roles

if (argv[0] === "--serve") {
  const on = argv[1] === "on";
  const port = Number(argv[2]);
  const echo: Handler<undefined> = { init: () => undefined, handlePacket: (packet) => ({ send: packet }) };
  const transport = on ? proxyTransport(tcp(), proxyOptions(true)!, () => {}) : tcp();
  const server = await startServer(echo, undefined, port, { hostname: "127.0.0.1", transport });
  console.log(`ready ${server?.port}`);
} else if (argv[0] === "--client") {
  const port = Number(argv[1]);
  const on = argv[2] === "on";
  const seconds = Number(argv[3]);
  const first = on ? HEADERS["v2 INET"] : payload;
  let cycles = 0;
  let errors = 0;
  let running = true;
  const slot = async () => {
    while (running) {
      const { promise, resolve } = Promise.withResolvers<boolean>();
      let got = 0;
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) {
            s.write(first);
          },
          data(s, chunk) {
            got += chunk.length;
            if (got >= payload.length) {
              resolve(true); // first: close fires inside terminate()
              s.terminate();
            }
          },
          close() {
            resolve(false);
          },
          connectError() {
            resolve(false);
          },
        },
      }).catch(() => resolve(false));
      if (await promise) cycles++;
      else errors++;
    }
  };
  const slots = Array.from({ length: 50 }, slot);
  await Bun.sleep(500); // warm-up
  const start = cycles;
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  const done = cycles - start;
  const wall = (performance.now() - t0) / 1000;
  running = false;
  await Promise.all(slots);
  console.log(JSON.stringify({ rate: done / wall, errors, wall }));
  process.exit(0);
} else if (flag("--connect")) {
  await connectCells();
} else {
  for (const [name, bytes] of Object.entries(HEADERS)) {
    group(name, () => {
      summary(() => {
        bench(`parse ${name}`, () => do_not_optimize(parseProxyHeader(bytes)));
      });
    });
  }
  const at = argv.indexOf("--filter");
  await run(at === -1 ? {} : { filter: new RegExp(argv[at + 1]!) });
}

// ---------------------------------------------------------------- orchestration

function cpuTicks(pid: number): number {
  const stat = require("node:fs").readFileSync(`/proc/${pid}/stat`, "utf8") as string;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function connectCells(): Promise<void> {
  const dur = value("--dur", 4);
  const reps = value("--reps", 2);
  const self = join(import.meta.dir, "proxy.bench.ts");
  const pin = (cpu: number, cmd: string[]) =>
    Bun.which("taskset") ? ["taskset", "-c", String(cpu), ...cmd] : cmd;
  const results: Record<string, Array<{ rate: number; cpuUs: number }>> = { off: [], on: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of rep % 2 === 0 ? ["off", "on"] : ["on", "off"]) {
      // Port 0: the server picks a free port and prints it ("ready <port>").
      const server = Bun.spawn(pin(0, [process.execPath, self, "--serve", mode, "0"]), {
        stdout: "pipe",
        stderr: "inherit",
      });
      const { value: line } = await server.stdout.getReader().read();
      const port = Number(new TextDecoder().decode(line).trim().split(" ")[1]);
      const ticks0 = cpuTicks(server.pid);
      const client = Bun.spawn(
        pin(1, [process.execPath, self, "--client", String(port), mode, String(dur)]),
        {
          stdout: "pipe",
          stderr: "inherit",
        },
      );
      const out = JSON.parse((await new Response(client.stdout).text()).trim()) as {
        rate: number;
        wall: number;
      };
      const ticks = cpuTicks(server.pid) - ticks0;
      server.kill();
      await server.exited;
      // Server CPU over the whole client run (warm-up included), per connection served.
      const connections = out.rate * (out.wall + 0.5);
      results[mode]!.push({ rate: out.rate, cpuUs: ((ticks / 100) * 1e6) / connections });
      console.log(
        `${mode.padEnd(3)} rep ${rep + 1}: ${Math.round(out.rate)} conns/s, server ${(((ticks / 100) * 1e6) / connections).toFixed(1)} µs CPU/conn`,
      );
    }
  }
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const mode of ["off", "on"]) {
    const r = results[mode]!;
    console.log(
      `proxyProtocol ${mode}: median ${Math.round(median(r.map((x) => x.rate)))} conns/s, ${median(r.map((x) => x.cpuUs)).toFixed(1)} µs server CPU per connection`,
    );
  }
}
