/**
 * Invariant: examples/chat.ts relays every line a client sends to every other client, in order, and
 * never back to its sender; joins, renames and leaves are announced (a leave exactly once, however the
 * client went); a client sending an over-long line is dropped alone and the room goes on. Driven by
 * raw TCP clients (Bun sockets, no sockerl code on the client side).
 */

import { afterEach, expect, test } from "bun:test";
import { startChat } from "../../examples/chat.ts";
import type { Server } from "../../src/index.ts";
import { closeAllClients, RawClient } from "../helpers/client.ts";
import { captureSink, restoreSink } from "../helpers/trace.ts";

let server: Server<unknown, unknown> | undefined;

afterEach(async () => {
  restoreSink();
  closeAllClients();
  await server?.stop();
  server = undefined;
});

async function room(): Promise<number> {
  const s = await startChat(0);
  server = s as unknown as Server<unknown, unknown>;
  return s.port;
}

/** Connects a client and waits for its welcome line. */
async function join(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.waitForText("* welcome ");
  return c;
}

test("lines go to the others, not back; joins, renames and leaves are announced", async () => {
  const port = await room();
  const alice = await join(port);
  const bob = await join(port);
  await alice.waitForText("joined\n");
  alice.write("/nick alice\n");
  await alice.waitForText("* you are alice\n");
  await bob.waitForText("is now alice\n");
  bob.write("/nick bob\n");
  await alice.waitForText("is now bob\n");

  alice.write("hello bob\n");
  await bob.waitForText("<alice> hello bob\n");
  bob.write("hi alice\r\n"); // CRLF clients (telnet) read the same
  await alice.waitForText("<bob> hi alice\n");
  bob.write("/who\n");
  await bob.waitForText("* here: alice, bob\n");
  expect(alice.text()).not.toContain("<alice>");
  expect(bob.text()).not.toContain("<bob>");

  bob.write("/quit\n");
  await bob.waitForText("* bye\n");
  await bob.waitForEnd();
  await alice.waitForText("* bob left\n");
  expect(alice.text().split("* bob left\n").length).toBe(2); // once
});

test("many lines in one write, and a line cut across writes, arrive whole and in order", async () => {
  const port = await room();
  const a = await join(port);
  const b = await join(port);
  await a.waitForText("joined\n");
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`);
  a.write(`${lines.slice(0, 100).join("\n")}\nhalf of `);
  a.write(`a line\n${lines.slice(100).join("\n")}\n`);
  await b.waitForText("line 199\n", 5000);
  const got = b
    .text()
    .split("\n")
    .filter((l) => l.startsWith("<"));
  const nick = got[0]!.slice(0, got[0]!.indexOf(">") + 1);
  expect(got).toEqual(
    [...lines.slice(0, 100), "half of a line", ...lines.slice(100)].map((l) => `${nick} ${l}`),
  );
});

test("a client that resets is announced as gone; an over-long line drops only its sender", async () => {
  const sink = captureSink(); // the dropped client's termination report
  const port = await room();
  const a = await join(port);
  const b = await join(port);
  const c = await join(port);
  await a.until(() => a.text().split(" joined\n").length === 3, 2000, "two joins");
  b.terminate(); // a reset, no /quit
  await a.waitForText(" left\n");
  c.write(`${"x".repeat(5000)}\n`); // over maxPacketSize (4096)
  await c.waitForEnd();
  await a.until(() => a.text().split(" left\n").length === 3, 2000, "two leaves");
  expect(sink.lines.join("\n")).toContain("FrameTooLargeError");
  // The room still works for the one left, and a newcomer.
  const d = await join(port);
  d.write("still here?\n");
  await a.waitForText("> still here?\n");
});
