/**
 * The `packet` option's values and their guards: pure data, no socket code.
 *
 * @module
 */

import { type Codec, type DelimiterFraming, isCodec, isDelimiterFraming } from "./codec.ts";

/**
 * How a byte stream is cut into packets (Erlang `{packet, N}`, plus codecs):
 * - `"raw"`: no framing, whatever has arrived is a packet;
 * - `1 | 2 | 4`: each frame is preceded by its payload length in bytes, big-endian, on 1, 2 or 4 bytes;
 * - `"line"`: each packet is one line, including its terminating `"\n"` (a `"\r"` before it is kept);
 * - `{ delimiter }`: each packet ends with the delimiter, included (see {@link DelimiterFraming});
 * - a {@link Codec}: each packet is the frame its `frameLength` announces.
 *
 * Line and delimiter sends are written as they are: the terminator is not added.
 */
export type PacketFraming = "raw" | 1 | 2 | 4 | "line" | DelimiterFraming | Codec;

/**
 * True when `v` is a {@link PacketFraming}: `"raw"`, `1`, `2`, `4`, `"line"`, `{ delimiter }` with a
 * non-empty delimiter, or a codec (a `frameLength` function, an optional `encode` function); for
 * option checks.
 */
export function isPacketFraming(v: unknown): v is PacketFraming {
  return v === "raw" || v === 4 || v === "line" || v === 2 || v === 1 || isCodec(v) || isDelimiterFraming(v);
}

/**
 * Header size in bytes for a framing: 1, 2 or 4 for the length prefixes, 0 for every other framing
 * (a codec's header is part of its frame).
 */
export function headerSize(framing: PacketFraming): number {
  return typeof framing === "number" ? framing : 0;
}
