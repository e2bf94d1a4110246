/**
 * What a `FrameDecoder` checks of its inputs: its constructor's arguments, and each answer of
 * a codec's `frameLength` (a throw or a non-integer is a {@link FramingError}). Module functions:
 * the first runs once per decoder, the second once per `frameLength` call with no allocation on
 * success, so the per-frame path costs what it did inline.
 *
 * @module
 */
import { ArgumentError, describeValue, FramingError } from "../errors.ts";
import type { Codec } from "./codec.ts";
import { isPacketFraming, type PacketFraming } from "./packet-framing.ts";

/** Throws {@link ArgumentError} unless `framing` is a {@link PacketFraming} and `maxPacketSize` a non-negative integer or `Infinity`. */
export function checkDecoderArguments(
  framing: unknown,
  maxPacketSize: unknown,
): asserts framing is PacketFraming {
  if (!isPacketFraming(framing)) {
    throw new ArgumentError(
      "framing",
      'one of "raw", 1, 2, 4, "line", { delimiter } (non-empty) or a codec { frameLength, encode? }',
      framing,
    );
  }
  if (
    typeof maxPacketSize !== "number" ||
    !(maxPacketSize >= 0) ||
    !(Number.isInteger(maxPacketSize) || maxPacketSize === Number.POSITIVE_INFINITY)
  ) {
    throw new ArgumentError("maxPacketSize", "a non-negative integer or Infinity", maxPacketSize);
  }
}

/**
 * `codec.frameLength(view)`, which must be an integer: a throw (as `cause`) or any other answer
 * becomes a {@link FramingError}. Whether the integer fits what is buffered is the caller's check.
 */
export function frameLengthOf(codec: Codec, view: Uint8Array): number {
  let r: number;
  try {
    r = codec.frameLength(view);
  } catch (error) {
    throw new FramingError(
      `frameLength threw: ${error instanceof Error ? error.message : describeValue(error)}`,
      error,
    );
  }
  if (typeof r !== "number" || !Number.isInteger(r)) {
    throw new FramingError(`frameLength returned ${describeValue(r)}, not an integer`);
  }
  return r;
}
