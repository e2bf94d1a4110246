/**
 * A line-based chat room: every line a client types goes to everyone else, as `<nick> text`.
 * `/nick name` renames, `/who` lists the room, `/quit` leaves.
 *
 * Each connection is a process: one never writes to another's socket. A line is broadcast as a
 * `cast` to the other connections, and each one sends it from its own `handleCast`, so every
 * client's output stays in order with what its own process sends.
 *
 *     bun examples/chat.ts [port]        # default 7777
 *     nc 127.0.0.1 7777                  # in two terminals
 *
 * @module
 */

import { type Connection, type Handler, type Server, type ServerOptions, startServer } from "../src/index.ts";

/** Who is in the room: every live connection and its nick. */
export type Room = Map<Connection, string>;

interface Member {
  room: Room;
  nick: string;
}

/** A message another connection asked this one to deliver. */
interface Say {
  line: string;
}

/** Sends `line` to everyone in the room but `self`. */
function broadcast(room: Room, self: Connection, line: string): void {
  const message: Say = { line };
  for (const conn of room.keys()) if (conn !== self) conn.cast(message);
}

const chat: Handler<Member, Room> = {
  init(room, meta) {
    const nick = `guest${meta.connection.id}`;
    broadcast(room, meta.connection, `* ${nick} joined\n`);
    room.set(meta.connection, nick);
    return { state: { room, nick }, send: `* welcome ${nick}; ${room.size} here; /nick name, /who, /quit\n` };
  },

  handlePacket(packet, member, meta) {
    const text = String(packet).replace(/\r?\n$/, "");
    const self = meta.connection;
    if (text.startsWith("/nick ")) {
      const nick = text.slice(6).trim();
      if (!/^[\w.-]{1,32}$/.test(nick)) return { send: "* nicks are 1-32 letters, digits, _ . -\n" };
      broadcast(member.room, self, `* ${member.nick} is now ${nick}\n`);
      member.room.set(self, nick);
      return { state: { ...member, nick }, send: `* you are ${nick}\n` };
    }
    if (text === "/who") return { send: `* here: ${[...member.room.values()].join(", ")}\n` };
    if (text === "/quit") return { send: "* bye\n", close: true };
    if (text !== "") broadcast(member.room, self, `<${member.nick}> ${text}\n`);
    return undefined;
  },

  handleCast: (message) => ({ send: (message as Say).line }),

  handleDisconnect: () => undefined,

  // Every exit (quit, peer gone, server stop) leaves the room exactly once.
  terminate(_reason, member, meta) {
    if (member === undefined || !member.room.delete(meta.connection)) return;
    broadcast(member.room, meta.connection, `* ${member.nick} left\n`);
  },
};

/**
 * Starts the chat server on `port` (0 = pick one) with an empty room.
 *
 * @example
 * ```ts
 * const server = await startChat(0);
 * // connect two clients to server.port; a line from one arrives at the other as "<guestN> line"
 * ```
 */
export async function startChat(port = 7777, options: ServerOptions = {}): Promise<Server<Member, Room>> {
  const server = await startServer(chat, new Map(), port, {
    hostname: "127.0.0.1",
    encoding: "utf8",
    maxPacketSize: 4096, // a longer line drops that client, not the room
    ...options,
    packet: "line",
  });
  if (server === undefined) throw new Error("the chat server did not start");
  return server;
}

if (import.meta.main) {
  const server = await startChat(Number(process.argv[2] ?? 7777));
  console.log(`chat on 127.0.0.1:${server.port} (try: nc 127.0.0.1 ${server.port})`);
}
