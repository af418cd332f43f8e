// The cursor channel: CURSOR_INIT with a visible default arrow, so clients that draw the guest's cursor
// (remote-viewer hides its own in client mouse mode) still show a pointer. The guest has no hardware
// cursor, so nothing follows.
import { SpiceChannel, type ChannelInit } from "./channel.js";
import { MSG, Writer, type Reader } from "./wire.js";

const CURSOR_TYPE_ALPHA = 0;
/** SpiceCursor flags: 0 = a cursor follows (not NONE), not cached. */
const CURSOR_FLAGS = 0;

/** A 12x19 arrow: '#' black, '.' white, ' ' transparent. */
const ARROW = [
  "#           ",
  "##          ",
  "#.#         ",
  "#..#        ",
  "#...#       ",
  "#....#      ",
  "#.....#     ",
  "#......#    ",
  "#.......#   ",
  "#........#  ",
  "#.........# ",
  "#......#####",
  "#...#..#    ",
  "#..# #..#   ",
  "#.#  #..#   ",
  "##    #..#  ",
  "#     #..#  ",
  "       #..# ",
  "       ###  ",
];

/** The arrow as 32-bit ARGB pixels, little-endian (B, G, R, A). */
export function arrowPixels(): { width: number; height: number; data: Buffer } {
  const width = ARROW[0].length;
  const height = ARROW.length;
  const data = Buffer.alloc(width * height * 4);
  ARROW.forEach((row, y) => {
    for (let x = 0; x < width; x++) {
      const argb = row[x] === "#" ? 0xff000000 : row[x] === "." ? 0xffffffff : 0;
      data.writeUInt32LE(argb >>> 0, (y * width + x) * 4);
    }
  });
  return { width, height, data };
}

export class CursorChannel extends SpiceChannel {
  constructor(init: ChannelInit) {
    super(init);
    const arrow = arrowPixels();
    const w = new Writer(2 + 2 + 2 + 2 + 1 + 2 + 17 + arrow.data.length);
    w.i16(0).i16(0) // position
      .u16(0).u16(0) // trail length, frequency
      .u8(1) // visible
      .u16(CURSOR_FLAGS)
      .u64(1n).u8(CURSOR_TYPE_ALPHA).u16(arrow.width).u16(arrow.height).u16(0).u16(0) // header: unique, type, size, hot spot
      .bytes(arrow.data);
    this.send(MSG.CURSOR_INIT, w.done());
  }

  protected handle(_type: number, _r: Reader): void {}
}
