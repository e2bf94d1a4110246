/**
 * Transport swap (STARTTLS): `{ transport: tls(...) }` returned from a callback upgrades the live
 * socket. Plain bytes sent before the swap go out first, in plain text; bytes sent after it are held for
 * the new transport (until its handshake); bytes that arrived behind the command (a pipelined
 * ClientHello) are handed to the new transport, not to the handler.
 *
 * A failed or timed-out upgrade is the peer's doing (garbage, FIN, reset, silence, a client that
 * rejects our certificate): it ends that connection only, with `TlsHandshakeError` or
 * `HandshakeTimeoutError`, and `meta.secure` stays false.
 *
 * @module
 */
import { BadReturnError, TlsHandshakeError } from "../errors.ts";
import { TRACING } from "../trace.ts";
import type { Transport, TransportSocket } from "../transport/transport.ts";
import { flushNow } from "./cork.ts";
import { DETACHED, EVENTS } from "./events.ts";
import { spillUnread } from "./inbound.ts";
import { exit, trace } from "./lifecycle.ts";
import { run } from "./mailbox.ts";
import { type ConnectionProcess, F_WRITE_HELD, G_UPGRADING, GATE_MASK, rareOf } from "./process.ts";
import { armHandshakeTimer } from "./timers.ts";
import { enqueue, flushQueue, takeAfterUpgrade, takeQueued } from "./writer.ts";

/** The `transport` action: swap now, or once the plain bytes already queued are written. */
export function swapTransport(p: ConnectionProcess, next: Transport): Error | undefined {
  if (next.upgrade === undefined) {
    return new BadReturnError("transport", next, `transport ${next.name} cannot upgrade a live connection`);
  }
  if (p.socket === undefined) return new BadReturnError("transport", next, "no socket to upgrade");
  // Plain bytes sent before the swap go out first, in plain text.
  flushNow(p);
  rareOf(p).pendingUpgrade = next;
  if (p.out === undefined || p.out.empty || (p.flags & F_WRITE_HELD) !== 0) doUpgrade(p);
  else {
    // Plain bytes are still queued: flush them first (drain), then upgrade. Until then no packet is
    // dispatched (bytes behind the command belong to the new transport).
    p.flags |= G_UPGRADING;
  }
  return undefined;
}

/** Upgrades the socket (the plain queue is empty). */
export function doUpgrade(p: ConnectionProcess): void {
  const rare = rareOf(p);
  const next = rare.pendingUpgrade!;
  rare.pendingUpgrade = undefined;
  const old = p.socket!;
  // Bytes sent behind the swap: queued for the new transport (held until its handshake).
  const after = takeAfterUpgrade(p);
  const held = takeQueued(p);
  spillUnread(p); // bytes behind the command in the chunk being delivered
  const decoder = rare.decoder;
  const rest = decoder !== undefined && decoder.buffered > 0 ? decoder.drain() : undefined;
  if (p.spec.settings.framing === "raw") rare.decoder = undefined;
  let socket: TransportSocket;
  // Detach the old socket *before* the upgrade: Bun's upgradeTLS returns [raw, tls], and the raw
  // twin copies the old socket's `data` at that moment and keeps receiving the ciphertext.
  old.data = DETACHED;
  try {
    socket = next.upgrade!(old, { isServer: p.spec.isServer, events: EVENTS, data: p, initialData: rest });
  } catch (error) {
    old.data = p;
    exit(p, new TlsHandshakeError(`upgrade to ${next.name} failed`, error));
    return;
  }
  p.socket = socket;
  socket.data = p;
  p.spec = { ...p.spec, transport: next, scratch: undefined };
  if (TRACING && p.rare?.dbg !== undefined) trace(p, `transport swapped to ${next.name}`);
  if (held !== undefined) enqueue(p, held);
  if (after !== undefined) for (const bytes of after) enqueue(p, bytes);
  if (next.secure) {
    p.flags |= F_WRITE_HELD;
    armHandshakeTimer(p);
  } else {
    p.flags &= ~F_WRITE_HELD;
    flushQueue(p);
  }
  if ((p.flags & G_UPGRADING) !== 0) {
    p.flags &= ~G_UPGRADING;
    if ((p.flags & GATE_MASK) === 0) run(p);
  }
}
