/**
 * Invariant: the shared behaviour table (test/common/behaviour-table.ts) gives the same results on
 * real loopback TCP as on the testing kit's memory transport (test/unit/behaviour-memory.test.ts).
 * Here it runs on 127.0.0.1 port 0 with a plain Bun.connect client; timers run in real time.
 */

import { afterEach, describe, expect, test } from "bun:test";
import {
  type Connection,
  type Handler,
  type Server,
  type ServerOptions,
  startServer,
} from "../../src/index.ts";
import { splitBytes, type WriteOptions } from "../../src/testing/index.ts";
import { CASES, type Harness, REPEAT, type TablePeer } from "../common/behaviour-table.ts";

const READ_TIMEOUT_MS = 3000;

/** A Bun.connect client with the table's peer surface. */
class LoopbackPeer implements TablePeer {
  readonly closed: Promise<{ reset: boolean }>;
  #socket: Bun.Socket<undefined> | undefined;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;
  #resolveClosed!: (v: { reset: boolean }) => void;

  constructor() {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  async open(port: number): Promise<void> {
    this.#socket = await Bun.connect<undefined>({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_s, chunk) => {
          this.#buffer = Buffer.concat([this.#buffer, chunk]);
          this.#wake?.();
        },
        end: (s) => {
          this.#ended = true;
          s.end(); // answer FIN with FIN, as the kit's peer does by default
          this.#wake?.();
        },
        close: (_s, error) => {
          this.#ended = true;
          this.#resolveClosed({ reset: error !== undefined });
          this.#wake?.();
        },
      },
    });
  }

  async write(data: string | Uint8Array, options?: WriteOptions): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    for (const chunk of splitBytes(bytes, options)) {
      let rest = chunk;
      while (rest.byteLength > 0) {
        const n = this.#socket!.write(rest);
        if (n < 0) return;
        rest = rest.subarray(n);
        if (rest.byteLength > 0) await Bun.sleep(1);
      }
      // A turn between chunks, so they tend to travel as separate segments.
      if (options !== undefined) await new Promise((r) => setImmediate(r));
    }
  }

  async #until(take: () => number | undefined, what: string): Promise<Buffer> {
    const deadline = performance.now() + READ_TIMEOUT_MS;
    for (;;) {
      const n = take();
      if (n !== undefined) {
        const out = this.#buffer.subarray(0, n);
        this.#buffer = this.#buffer.subarray(n);
        return out;
      }
      if (this.#ended) throw new Error(`${what}: ended with ${JSON.stringify(this.#buffer.toString())}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${what}: timed out with ${JSON.stringify(this.#buffer.toString())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  read(length: number): Promise<Buffer> {
    return this.#until(() => (this.#buffer.byteLength >= length ? length : undefined), `read(${length})`);
  }

  readUntil(needle: string): Promise<Buffer> {
    return this.#until(
      () => {
        const at = this.#buffer.indexOf(needle);
        return at < 0 ? undefined : at + Buffer.byteLength(needle);
      },
      `readUntil(${JSON.stringify(needle)})`,
    );
  }

  async readToEnd(): Promise<Buffer> {
    const deadline = performance.now() + READ_TIMEOUT_MS;
    while (!this.#ended && performance.now() < deadline) {
      await this.#until(() => (this.#ended ? 0 : undefined), "readToEnd()").catch(() => undefined);
    }
    const out = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return out;
  }

  end(): void {
    this.#socket?.shutdown();
  }

  reset(): void {
    this.#socket?.terminate();
  }

  close(): void {
    this.#socket?.terminate();
  }
}

function loopbackHarness(): Harness {
  const servers: Server<unknown, undefined>[] = [];
  const peers: LoopbackPeer[] = [];
  return {
    name: "loopback",
    async start<S>(handler: Handler<S, undefined>, options?: Omit<ServerOptions, "transport">) {
      const server = await startServer(handler, undefined, 0, { hostname: "127.0.0.1", ...options });
      servers.push(server as Server<unknown, undefined>);
      return server!;
    },
    async connect<S>(server: Server<S, undefined>): Promise<[TablePeer, Connection]> {
      const before = new Set(server.connections().map(([id]) => id));
      const peer = new LoopbackPeer();
      peers.push(peer);
      await peer.open(server.port);
      const deadline = performance.now() + READ_TIMEOUT_MS;
      for (;;) {
        const fresh = server.connections().find(([id]) => !before.has(id));
        if (fresh !== undefined) return [peer, fresh[1]];
        if (performance.now() > deadline) throw new Error("the server never listed the connection");
        await Bun.sleep(1);
      }
    },
    elapse: async () => {},
    async close() {
      for (const p of peers) p.close();
      for (const s of servers) await s.stop();
    },
  };
}

let current: Harness | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

describe("behaviour table on loopback", () => {
  for (const c of CASES) {
    for (let i = 0; i < REPEAT; i++) {
      test(REPEAT === 1 ? c.name : `${c.name} #${i + 1}`, async () => {
        current = loopbackHarness();
        expect(await c.run(current)).toEqual(c.expected);
      });
    }
  }
});
