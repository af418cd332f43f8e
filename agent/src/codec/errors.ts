// What the codec module's negative return codes mean: one table for every codec and wrapper. The
// numbers are those of wasm/assembly/errors.ts (ERR_<name>); test/codec-errors.test.ts fails if the
// two drift apart.
import { CodecError } from "./image.js";

export const CODEC_ERRORS = {
  ARGS: { code: -1, message: "invalid arguments (image type, size, stride or window)" },
  OUTPUT: { code: -2, message: "output buffer too small" },
  TRUNCATED: { code: -3, message: "stream is truncated" },
  MAGIC: { code: -4, message: "bad magic (not a stream of this codec)" },
  VERSION: { code: -5, message: "unsupported stream version" },
  TYPE: { code: -6, message: "unknown or unsupported image type" },
  SIZE: { code: -7, message: "invalid width, height or stride in the header" },
  TOO_WIDE: { code: -8, message: "image wider than 65535 pixels" },
  CORRUPT: { code: -9, message: "corrupt stream (an operation runs outside the image)" },
  TRAILING: { code: -10, message: "trailing bytes after the image" },
  STATE: { code: -11, message: "codec state not initialised" },
  WINDOW: { code: -12, message: "image is larger than the GLZ window" },
  MISSING: { code: -13, message: "reference to an image that is not in the window" },
  ORDER: { code: -14, message: "GLZ image id out of order" },
} as const;

export type CodecErrorName = keyof typeof CODEC_ERRORS;

const MESSAGES = new Map<number, string>(Object.values(CODEC_ERRORS).map((e) => [e.code, e.message]));

/** The CodecError for a negative result `code` of a codec export; `what` names the operation. */
export function codecError(what: string, code: number): CodecError {
  return new CodecError(`${what}: ${MESSAGES.get(code) ?? `error ${code}`}`);
}
