/** The `sockerl/testing` subpath, as a user's test would use it: a handler on the memory network. */
import type { Handler } from "sockerl";
import { testKit } from "sockerl/testing";

const upper = {
  init: () => undefined,
  handlePacket: (line) => ({ send: line.toUpperCase() }),
} satisfies Handler<undefined, unknown, string>;

/** Resolves with what the handler answered to "hello\n", cut in two chunks. */
export async function kitRoundTrip(): Promise<string> {
  await using kit = testKit();
  const server = await kit.startServer(upper, undefined, { packet: "line", encoding: "utf8" });
  const peer = await kit.connect(server);
  await peer.write("hello\n", { splitAt: [2] });
  return (await peer.read(6)).toString();
}
