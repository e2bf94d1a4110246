/**
 * The mailbox and the run loop. Events (calls, casts, events, sends, timeouts, disconnect, stop, sys
 * requests) and buffered packets are served one at a time, in order, whenever the gate is open (no
 * callback pending, not suspended, running). An event posted to an idle connection with nothing
 * queued is handled at once, without a queue.
 *
 * @module
 */
import { dispatchEvent, dispatchPacket } from "./dispatch.ts";
import { releaseDecoder, setPause } from "./inbound.ts";
import { exit } from "./lifecycle.ts";
import {
  type ConnectionProcess,
  E_DISCONNECT,
  E_STOP,
  EXITING,
  F_DISCONNECT_QUEUED,
  F_EVENT_TURN,
  F_PASSIVE,
  GATE_MASK,
  Mailbox,
  MailboxEvent,
  P_BACKLOG,
  P_HWM,
  PAUSE_SHIFT,
  phaseOf,
} from "./process.ts";
import { armSrTimer } from "./timers.ts";

/** Queues an event (or handles it now when the connection is idle with nothing queued or buffered). */
export function post(p: ConnectionProcess, kind: number, value: unknown, extra: unknown): void {
  const mailbox = p.mailbox;
  if (mailbox !== undefined) mailbox.events.push(new MailboxEvent(kind, value, extra));
  else if ((p.flags & GATE_MASK) === 0 && (p.rare?.decoder === undefined || p.rare.decoder.buffered === 0)) {
    p.flags &= ~F_EVENT_TURN;
    dispatchEvent(p, kind, value, extra);
    if ((p.flags & GATE_MASK) === 0) run(p);
    return;
  } else p.mailbox = new Mailbox(new MailboxEvent(kind, value, extra));
  if ((p.flags & GATE_MASK) === 0) run(p);
}

/** Puts an event at the head of the mailbox (a stop that must go before anything queued). */
export function postFirst(p: ConnectionProcess, kind: number, value: unknown): void {
  const event = new MailboxEvent(kind, value, undefined);
  const mailbox = p.mailbox;
  if (mailbox === undefined) p.mailbox = new Mailbox(event);
  else mailbox.events.splice(mailbox.head, 0, event);
}

/** Events waiting in the mailbox. */
export function queueLength(p: ConnectionProcess): number {
  const mailbox = p.mailbox;
  return mailbox === undefined ? 0 : mailbox.events.length - mailbox.head;
}

/** Takes every queued event out of the mailbox (on exit). */
export function takeAll(p: ConnectionProcess): MailboxEvent[] {
  const mailbox = p.mailbox;
  p.mailbox = undefined;
  return mailbox === undefined ? [] : mailbox.events.slice(mailbox.head);
}

/** The peer closed: a disconnect event, once, behind the packets already buffered. */
export function queueDisconnect(p: ConnectionProcess): void {
  if ((p.flags & F_DISCONNECT_QUEUED) !== 0 || phaseOf(p) >= EXITING) return;
  p.flags |= F_DISCONNECT_QUEUED;
  post(p, E_DISCONNECT, undefined, undefined);
}

/** Dispatches buffered packets, then queued events, until a callback goes async or nothing is left. */
export function run(p: ConnectionProcess): void {
  while ((p.flags & GATE_MASK) === 0) {
    const decoder = p.rare?.decoder;
    if (decoder !== undefined && decoder.buffered > 0 && !eventFirst(p)) {
      if (((p.flags >> PAUSE_SHIFT) & P_HWM) !== 0) {
        // Above highWaterMark, buffered packets wait for the peer to read: each may be answered, and
        // one chunk can hold thousands of small frames (the queue would grow without bound). A
        // disconnect waits behind them; other events go on.
        const mailbox = p.mailbox;
        if (mailbox === undefined || mailbox.events[mailbox.head]!.kind === E_DISCONNECT) break;
      } else {
        let frame: Uint8Array | undefined;
        const passive = (p.flags & F_PASSIVE) !== 0;
        try {
          frame =
            passive && p.spec.settings.framing === "raw" ? decoder.take(p.rare?.length ?? 0) : decoder.next();
        } catch (error) {
          exit(p, error);
          return;
        }
        if (frame !== undefined) {
          if (passive) p.flags |= F_EVENT_TURN;
          else p.flags &= ~F_EVENT_TURN;
          dispatchPacket(p, frame);
          continue;
        }
      }
    }
    p.flags &= ~F_EVENT_TURN;
    const mailbox = p.mailbox;
    if (mailbox === undefined) break;
    const events = mailbox.events;
    const head = mailbox.head;
    const event = events[head]!;
    if (head + 1 === events.length) p.mailbox = undefined;
    else {
      events[head] = undefined as unknown as MailboxEvent; // let the event go
      mailbox.head = head + 1;
      if (head > 1024 && head * 2 > events.length) {
        mailbox.events = events.slice(head + 1);
        mailbox.head = 0;
        if (mailbox.bytesAfter >= 0) mailbox.bytesAfter = Math.max(0, mailbox.bytesAfter - head - 1);
      }
    }
    dispatchEvent(p, event.kind, event.value, event.extra);
  }
  if ((p.flags & GATE_MASK) === 0) becameIdle(p);
}

/**
 * Whether the next mailbox event goes before the buffered bytes: a stop (server shutdown) always
 * does; so do events posted before those bytes arrived (one arrival order for the socket and the
 * mailbox); in passive mode one event goes between reads (SockErl's loop), so a backlog handled by a
 * slow handler never starves calls, casts and timeouts. A disconnect always waits for the buffered bytes.
 */
function eventFirst(p: ConnectionProcess): boolean {
  const mailbox = p.mailbox;
  if (mailbox === undefined) return false;
  const kind = mailbox.events[mailbox.head]!.kind;
  if (kind === E_STOP) return true;
  if (kind === E_DISCONNECT) return false;
  // Events posted before the buffered bytes arrived go first (arrival order); then the passive turn.
  return mailbox.head < mailbox.bytesAfter || (p.flags & F_EVENT_TURN) !== 0;
}

/** Bytes arrive while events are queued: those events were first, and are served first. */
export function markBytesArrived(p: ConnectionProcess): void {
  const mailbox = p.mailbox;
  if (mailbox !== undefined && mailbox.bytesAfter < 0) mailbox.bytesAfter = mailbox.events.length;
}

/** Nothing left to do: drop an empty decoder, read again, and arm the passive receive timeout. */
function becameIdle(p: ConnectionProcess): void {
  releaseDecoder(p);
  if (((p.flags >> PAUSE_SHIFT) & P_BACKLOG) !== 0) setPause(p, P_BACKLOG, false);
  if ((p.flags & F_PASSIVE) !== 0) armSrTimer(p);
}
