/**
 * A receiving SMTP server (RFC 5321) with STARTTLS (RFC 3207): EHLO/HELO, STARTTLS, MAIL FROM,
 * RCPT TO, DATA, RSET, NOOP, QUIT. Each accepted message goes to `onMessage`.
 *
 * Every command is one CRLF line thanks to `packet: { delimiter: "\r\n" }`, so the handler never
 * keeps a buffer of its own; DATA lines arrive the same way until the lone ".". STARTTLS is one
 * action, `{ send: "220 ...", transport: tls(...) }`: the reply leaves in plain text, then the live
 * connection is upgraded, and the client's next EHLO arrives encrypted.
 *
 *     bun examples/smtp-server.ts [port] [cert.pem key.pem]     # default 2525, the test certificate
 *     swaks --server 127.0.0.1:2525 --tls --to you@example.org
 *
 * @module
 */

import { join } from "node:path";
import {
  type Handler,
  type Server,
  type ServerOptions,
  startServer,
  type Transport,
  tls,
} from "../src/index.ts";

/** A message the server accepted. */
export interface ReceivedMail {
  /** The name the client gave in EHLO/HELO. */
  helo: string;
  /** The reverse path of MAIL FROM (without `<>`; empty for bounces). */
  from: string;
  /** Every RCPT TO path. */
  to: string[];
  /** The message (headers and body), dot-unstuffed, CRLF line ends, without the final ".". */
  data: Buffer;
  /** Whether it came over TLS (after STARTTLS). */
  secure: boolean;
}

/** What every connection of one server shares. */
export interface SmtpConfig {
  /** Our name in the greeting and EHLO reply. */
  hostname: string;
  /** The transport STARTTLS upgrades to (a `tls({ cert, key })`); no STARTTLS when absent. */
  starttls?: Transport;
  /** Largest message in bytes (advertised as SIZE; bigger ones get 552). */
  maxMessageSize: number;
  /** Called with every accepted message, before the client gets its 250. */
  onMessage(mail: ReceivedMail): void;
}

type Phase = "greeted" | "ready" | "mail" | "rcpt" | "data";

/** Recipients per message: RFC 5321 asks servers to take at least 100. */
const MAX_RECIPIENTS = 100;

interface Session {
  config: SmtpConfig;
  phase: Phase;
  helo: string;
  from: string;
  to: string[];
  /** DATA lines so far (views of the received chunks), joined once at the final ".". */
  lines: Uint8Array[];
  size: number;
  tooBig: boolean;
}

/** Fresh session state: after connect, after STARTTLS (RFC 3207: forget everything) and per transaction. */
const session = (config: SmtpConfig, phase: Phase = "greeted", helo = ""): Session => ({
  config,
  phase,
  helo,
  from: "",
  to: [],
  lines: [],
  size: 0,
  tooBig: false,
});

const latin1 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
/** `<path>` of a MAIL FROM / RCPT TO argument, or undefined when malformed. */
const path = (arg: string): string | undefined => /^\s*<([^<>]*)>/.exec(arg)?.[1];

const smtp: Handler<Session, SmtpConfig> = {
  init: (config) => ({ state: session(config), send: `220 ${config.hostname} ESMTP sockerl\r\n` }),

  handlePacket(packet, s, meta) {
    const line = packet as Uint8Array;
    if (s.phase === "data") return dataLine(line, s, meta.secure);
    const text = latin1(line.subarray(0, line.length - 2)); // without "\r\n"
    const space = text.indexOf(" ");
    const verb = (space === -1 ? text : text.slice(0, space)).toUpperCase();
    const arg = space === -1 ? "" : text.slice(space + 1);
    const { config } = s;
    switch (verb) {
      case "EHLO": {
        const tlsOffer = config.starttls !== undefined && !meta.secure ? "250-STARTTLS\r\n" : "";
        return {
          state: session(config, "ready", arg),
          send: `250-${config.hostname} greets ${arg}\r\n250-8BITMIME\r\n250-SIZE ${config.maxMessageSize}\r\n${tlsOffer}250 HELP\r\n`,
        };
      }
      case "HELO":
        return { state: session(config, "ready", arg), send: `250 ${config.hostname}\r\n` };
      case "STARTTLS":
        if (config.starttls === undefined) return { send: "502 5.5.1 STARTTLS not offered\r\n" };
        if (meta.secure) return { send: "503 5.5.1 TLS already active\r\n" };
        // The reply goes out in plain text, then the connection upgrades; the client starts over with EHLO.
        return {
          state: session(config),
          send: "220 2.0.0 Ready to start TLS\r\n",
          transport: config.starttls,
        };
      case "MAIL": {
        if (s.phase !== "ready") return { send: "503 5.5.1 EHLO first, one transaction at a time\r\n" };
        const from = /^FROM:/i.test(arg) ? path(arg.slice(5)) : undefined;
        if (from === undefined) return { send: "501 5.5.4 Syntax: MAIL FROM:<address>\r\n" };
        return { state: { ...session(config, "mail", s.helo), from }, send: "250 2.1.0 OK\r\n" };
      }
      case "RCPT": {
        if (s.phase !== "mail" && s.phase !== "rcpt") return { send: "503 5.5.1 MAIL first\r\n" };
        const to = /^TO:/i.test(arg) ? path(arg.slice(3)) : undefined;
        if (to === undefined || to === "") return { send: "501 5.5.4 Syntax: RCPT TO:<address>\r\n" };
        if (s.to.length >= MAX_RECIPIENTS) return { send: "452 4.5.3 Too many recipients\r\n" };
        return { state: { ...s, phase: "rcpt", to: [...s.to, to] }, send: "250 2.1.5 OK\r\n" };
      }
      case "DATA":
        if (s.phase !== "rcpt") return { send: "503 5.5.1 RCPT first\r\n" };
        return { state: { ...s, phase: "data" }, send: "354 End data with <CR><LF>.<CR><LF>\r\n" };
      case "RSET":
        return {
          state: session(config, s.phase === "greeted" ? "greeted" : "ready", s.helo),
          send: "250 2.0.0 OK\r\n",
        };
      case "NOOP":
        return { send: "250 2.0.0 OK\r\n" };
      case "QUIT":
        return { send: `221 2.0.0 ${config.hostname} closing\r\n`, close: true };
      default:
        return { send: "500 5.5.2 Command not recognized\r\n" };
    }
  },

  handleDisconnect: () => undefined,
};

/**
 * One line of DATA: the final "." delivers the message, a leading "." is unstuffed (RFC 5321
 * 4.5.2). The session is updated in place: it is this connection's alone, and a message may have
 * many thousand lines.
 */
function dataLine(line: Uint8Array, s: Session, secure: boolean) {
  // Only "\r\n" ends a line, so only "\r\n.\r\n" ends the message: a bare "\n.\n" stays inside it
  // (the ambiguity that SMTP smuggling exploits never arises).
  if (line.length === 3 && line[0] === 0x2e) {
    const { config } = s;
    const next = session(config, "ready", s.helo);
    if (s.tooBig) return { state: next, send: "552 5.3.4 Message too big\r\n" };
    const data = Buffer.concat(s.lines, s.size);
    config.onMessage({ helo: s.helo, from: s.from, to: s.to, data, secure });
    return { state: next, send: `250 2.0.0 OK: ${data.length} bytes queued\r\n` };
  }
  if (s.tooBig) return undefined; // read on to the "." and store nothing more
  const body = line[0] === 0x2e ? line.subarray(1) : line;
  s.size += body.length;
  if (s.size > s.config.maxMessageSize) {
    s.tooBig = true;
    s.lines = [];
  } else {
    // A view of a socket chunk, kept only until the message is joined.
    s.lines.push(body);
  }
  return undefined;
}

/** Options of {@link startSmtpServer}. */
export interface SmtpServerOptions {
  /** The transport STARTTLS upgrades to, e.g. `tls({ certFile, keyFile })`; no STARTTLS when absent. */
  starttls?: Transport;
  /** Receives every accepted message. @default prints a summary */
  onMessage?: (mail: ReceivedMail) => void;
  /** Largest message in bytes. @default 10 MiB */
  maxMessageSize?: number;
  /** Our name in replies. @default "localhost" */
  name?: string;
  /** Server options (hostname to bind, ...). @default { hostname: "127.0.0.1" } */
  server?: ServerOptions;
}

/**
 * Starts the SMTP server on `port` (0 = pick one).
 *
 * @example
 * ```ts
 * const inbox: ReceivedMail[] = [];
 * const server = await startSmtpServer(2525, {
 *   starttls: tls({ certFile: "cert.pem", keyFile: "key.pem" }),
 *   onMessage: (mail) => inbox.push(mail),
 * });
 * ```
 */
export async function startSmtpServer(
  port = 2525,
  options: SmtpServerOptions = {},
): Promise<Server<Session, SmtpConfig>> {
  const config: SmtpConfig = {
    hostname: options.name ?? "localhost",
    starttls: options.starttls,
    maxMessageSize: options.maxMessageSize ?? 10 * 1024 * 1024,
    onMessage:
      options.onMessage ??
      ((m) =>
        console.log(
          `mail from <${m.from}> to ${m.to.map((t) => `<${t}>`).join(", ")}: ${m.data.length} bytes`,
        )),
  };
  const server = await startServer(smtp, config, port, {
    hostname: "127.0.0.1",
    // RFC 5321 allows 1000-byte lines; a peer sending a far longer one is dropped (FrameTooLargeError).
    maxPacketSize: 64 * 1024,
    ...options.server,
    packet: { delimiter: "\r\n" },
  });
  if (server === undefined) throw new Error("the SMTP server did not start");
  return server;
}

if (import.meta.main) {
  const [portArg, certFile, keyFile] = process.argv.slice(2);
  const fixtures = join(import.meta.dir, "..", "test", "fixtures");
  const server = await startSmtpServer(Number(portArg ?? 2525), {
    starttls: tls({
      certFile: certFile ?? join(fixtures, "server.pem"),
      keyFile: keyFile ?? join(fixtures, "server-key.pem"),
    }),
  });
  console.log(`SMTP server on 127.0.0.1:${server.port} (try: swaks --server 127.0.0.1:${server.port} --tls)`);
}
