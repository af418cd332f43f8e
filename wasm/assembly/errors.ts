// The error codes every codec export returns (QUIC, LZ, GLZ, encoders and decoders alike): one
// number, one meaning. agent/src/codec/errors.ts holds a message for each, and a test checks that its
// names and numbers are exactly these.

export const ERR_ARGS: i32 = -1; // invalid arguments: image type, size, stride or window
export const ERR_OUTPUT: i32 = -2; // output buffer too small
export const ERR_TRUNCATED: i32 = -3; // the stream ends too early
export const ERR_MAGIC: i32 = -4; // not a stream of this codec
export const ERR_VERSION: i32 = -5; // unknown stream version
export const ERR_TYPE: i32 = -6; // image type unknown or not supported
export const ERR_SIZE: i32 = -7; // width, height or stride in the header invalid or too large
export const ERR_TOO_WIDE: i32 = -8; // wider than 65535 pixels (QUIC's row buffers)
export const ERR_CORRUPT: i32 = -9; // an operation runs past the image (or row) or before its start
export const ERR_TRAILING: i32 = -10; // bytes left after the image
export const ERR_STATE: i32 = -11; // encoder or decoder not initialised
export const ERR_WINDOW: i32 = -12; // image larger than the GLZ window
export const ERR_MISSING: i32 = -13; // reference to an image the GLZ decoder does not hold
export const ERR_ORDER: i32 = -14; // GLZ image id out of order
