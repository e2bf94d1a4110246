/**
 * Invariant: examples/smtp-server.ts receives mail from real SMTP clients over STARTTLS. `openssl
 * s_client -starttls smtp` (which does EHLO and STARTTLS itself, then verifies our self-signed
 * certificate) sends a transaction typed on its stdin, and the server gets exactly that message, from
 * and to as given, over TLS; `swaks --tls` (plain EHLO, STARTTLS, EHLO again, MAIL, RCPT, DATA, QUIT)
 * delivers its message, dot-stuffed lines unstuffed, and ten swaks runs at once all deliver.
 *
 * Over plain TCP (a raw client): only CRLF "." CRLF ends a message (a bare LF "." LF stays in it, so
 * SMTP smuggling has nothing to split on), and a 101st recipient is refused.
 *
 * The certificate is made by the test with `openssl req -x509`; the clients are the real programs
 * (apt packages openssl, swaks). Where one is absent its tests skip with a warning.
 */

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ReceivedMail, startSmtpServer } from "../../examples/smtp-server.ts";
import { type Server, tls } from "../../src/index.ts";
import { closeAllClients, RawClient } from "../helpers/client.ts";
import { have, run } from "./run.ts";

const HAVE_OPENSSL = have("openssl");
const HAVE_SWAKS = have("swaks");

let dir = "";
let cert = "";
let key = "";
let server: Server<unknown, unknown> | undefined;
let inbox: ReceivedMail[] = [];

beforeAll(async () => {
  if (!HAVE_OPENSSL) return;
  dir = mkdtempSync(join(tmpdir(), "sockerl-smtp-"));
  cert = join(dir, "cert.pem");
  key = join(dir, "key.pem");
  const made = await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ]);
  expect(made.exitCode).toBe(0);
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  closeAllClients();
  await server?.stop();
  server = undefined;
  inbox = [];
});

async function start(): Promise<number> {
  const s = await startSmtpServer(0, {
    starttls: tls({ certFile: cert, keyFile: key }),
    onMessage: (mail) => inbox.push(mail),
  });
  server = s as unknown as Server<unknown, unknown>;
  return s.port;
}

describe.skipIf(!HAVE_OPENSSL)("openssl s_client -starttls smtp", () => {
  test("a transaction typed after STARTTLS is received, over TLS, exactly", async () => {
    const port = await start();
    const body = ["Subject: over s_client", "", "first line", "..leading dot (stuffed)", "last line"];
    const input = [
      "EHLO s-client.test",
      "MAIL FROM:<alice@example.org>",
      "RCPT TO:<bob@example.org>",
      "RCPT TO:<carol@example.org>",
      "DATA",
      ...body,
      ".",
      "QUIT",
      "",
    ].join("\n");
    const r = await run(
      [
        "openssl",
        "s_client",
        "-connect",
        `127.0.0.1:${port}`,
        "-starttls",
        "smtp",
        "-CAfile",
        cert,
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
        "-crlf", // our "\n" become the CRLF SMTP wants
        "-quiet", // no command letters (an "R" line would renegotiate), and wait for our close after QUIT
      ],
      { stdin: input },
    );
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("250 2.1.5 OK");
    expect(r.stdout).toContain("354 End data");
    expect(r.stdout).toMatch(/250 2\.0\.0 OK: \d+ bytes queued/);
    expect(r.stdout).toContain("221 2.0.0");
    expect(r.stderr).toContain("verify return:1"); // our certificate verified
    expect(inbox.length).toBe(1);
    const mail = inbox[0]!;
    expect(mail.secure).toBe(true);
    expect(mail.helo).toBe("s-client.test");
    expect(mail.from).toBe("alice@example.org");
    expect(mail.to).toEqual(["bob@example.org", "carol@example.org"]);
    const unstuffed = body.map((l) => (l.startsWith(".") ? l.slice(1) : l));
    expect(mail.data.toString()).toBe(`${unstuffed.join("\r\n")}\r\n`);
  }, 20_000);
});

describe.skipIf(!HAVE_OPENSSL || !HAVE_SWAKS)("swaks --tls", () => {
  const swaks = (port: number, ...args: string[]) =>
    run([
      "swaks",
      "--server",
      `127.0.0.1:${port}`,
      "--tls",
      "--tls-verify",
      "--tls-ca-path",
      cert,
      "--ehlo",
      "swaks.test",
      ...args,
    ]);

  test("delivers its message after STARTTLS; dot-stuffed lines are unstuffed", async () => {
    const port = await start();
    const r = await swaks(
      port,
      "--from",
      "sender@example.org",
      "--to",
      "rcpt@example.org",
      "--header",
      "Subject: via swaks",
      "--body",
      "hello from swaks\n.a line that starts with a dot\n..two dots\nend",
    );
    expect(r.exitCode).toBe(0);
    // swaks marks plain-text lines "->" / "<-" and encrypted ones "~>" / "<~".
    expect(r.stdout).toContain("<-  250-STARTTLS");
    expect(r.stdout).toContain("<-  220 2.0.0 Ready to start TLS");
    expect(r.stdout).toContain("=== TLS started");
    expect(r.stdout).toContain(" ~> EHLO swaks.test");
    expect(r.stdout).not.toContain("<~  250-STARTTLS"); // not offered again once secure
    expect(r.stdout).toContain("<~  250 2.0.0 OK");
    expect(inbox.length).toBe(1);
    const mail = inbox[0]!;
    expect(mail.secure).toBe(true);
    expect(mail.helo).toBe("swaks.test");
    expect(mail.from).toBe("sender@example.org");
    expect(mail.to).toEqual(["rcpt@example.org"]);
    const data = mail.data.toString();
    expect(data).toContain("Subject: via swaks\r\n");
    expect(data).toContain(
      "\r\n\r\nhello from swaks\r\n.a line that starts with a dot\r\n..two dots\r\nend\r\n",
    );
  }, 20_000);

  test("ten swaks runs at once all deliver", async () => {
    const port = await start();
    const runs = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        swaks(port, "--to", `user${i}@example.org`, "--body", `message ${i}`),
      ),
    );
    for (const r of runs) expect(r.exitCode).toBe(0);
    expect(inbox.length).toBe(10);
    expect(inbox.map((m) => m.to[0]).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `user${i}@example.org`).sort(),
    );
    for (const m of inbox) {
      expect(m.secure).toBe(true);
      expect(m.data.toString()).toContain(`message ${m.to[0]!.slice(4, m.to[0]!.indexOf("@"))}\r\n`);
    }
  }, 30_000);
});

describe("plain SMTP, a raw client", () => {
  test('only CRLF "." CRLF ends the message; a 101st recipient is refused', async () => {
    const s = await startSmtpServer(0, { onMessage: (mail) => inbox.push(mail) });
    server = s as unknown as Server<unknown, unknown>;
    const c = await RawClient.connect(s.port);
    await c.waitForText("220 ");
    c.write("EHLO raw\r\nMAIL FROM:<a@example.org>\r\n");
    for (let i = 0; i < 101; i++) c.write(`RCPT TO:<r${i}@example.org>\r\n`);
    c.write("DATA\r\n");
    await c.waitForText("354 ");
    expect(c.text()).toContain("452 4.5.3 Too many recipients");
    c.write("first\n.\nMAIL FROM:<smuggled@example.org>\r\nlast\r\n.\r\nQUIT\r\n");
    await c.waitForEnd();
    expect(inbox.length).toBe(1);
    expect(inbox[0]!.to.length).toBe(100);
    expect(inbox[0]!.secure).toBe(false);
    expect(inbox[0]!.data.toString()).toBe("first\n.\nMAIL FROM:<smuggled@example.org>\r\nlast\r\n");
  });
});
