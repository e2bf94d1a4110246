/**
 * Framing: pure byte codecs, no socket code. Erlang-style `{packet, N}` (length prefixes of 1, 2 or
 * 4 bytes, big-endian), `"\n"` lines, `{ delimiter }` frames and user codecs `{ frameLength, encode? }`.
 *
 * {@link FrameDecoder} turns the chunks a socket delivers into frames; {@link encodeFrame} does the
 * reverse for one outbound packet. The pieces live in files of their own (`packet-framing.ts`,
 * `codec.ts`, `frame-decoder.ts`, `encode-frame.ts`); this module is the one the rest of the library
 * imports.
 *
 * @module
 */

export {
  type Codec,
  type DelimiterFraming,
  delimiterBytes,
  isCodec,
  isDelimiterFraming,
} from "./codec.ts";
export { checkPrefixed, encodeFrame, prefixLimit, writePrefix } from "./encode-frame.ts";
export { FrameCutter, K_PREFIX, prefixAt } from "./frame-cutter.ts";
export { FrameDecoder } from "./frame-decoder.ts";
export { headerSize, isPacketFraming, type PacketFraming } from "./packet-framing.ts";
