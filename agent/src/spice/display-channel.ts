// The display channel: a viewer of the display domain whose sink writes SPICE messages. DISPLAY_INIT
// gives the client's GLZ window, so what it decodes; each update becomes SURFACE_DESTROY/CREATE on a
// new surface, one DRAW_COPY per rect, and MARK after a surface's first frame. SET_ACK flow control and
// the socket's drain pace the viewer, which merges the changes of a slow client instead of queueing.
import type { DisplayDomain } from "../display/display-domain.js";
import type { DecoderCaps, DisplayUpdateData, EncodedRectData, ImageCompression, RectCodec } from "../display/types.js";
import type { UpdateSink } from "../display/viewer.js";
import { MAX_VIEWER_GLZ_WINDOW } from "../codec/glz.js";
import { SpiceChannel, type ChannelInit } from "./channel.js";
import { MSG, MSGC, Writer, type Reader } from "./wire.js";

/** Messages per client ACK (spice-server's client window). */
export const ACK_WINDOW = 20;
export const MAX_FPS = 30;

/** SpiceImage types (spice-protocol enums.h). */
export const IMAGE_TYPE: Record<RectCodec, number> = { raw: 0, quic: 1, lz: 101, glz: 102 };
const SURFACE_FMT_32_XRGB = 32;
const SURFACE_FLAGS_PRIMARY = 1;
const BITMAP_FMT_32BIT = 8;
const BITMAP_FLAGS_TOP_DOWN = 4;
const ROPD_OP_PUT = 8;
/** DRAW_COPY's fixed part: base (surface, box, clip), src pointer, src area, rop, scale mode, mask. */
const DRAW_COPY_FIXED = 57;
const IMAGE_DESCRIPTOR = 18;
const BITMAP_HEADER = 18;

export interface DisplayChannelInit extends ChannelInit {
  display: DisplayDomain;
  vmId: string;
  compression: ImageCompression;
  /** The display ended or could not be watched (the VM stopped, or is not running). */
  onDisplayEnd: (reason: string) => void;
}

/** What a client decodes, from its DISPLAY_INIT's GLZ window (spice-html5 asks for 0: never GLZ). */
export function decoderFor(glzWindowPixels: number): DecoderCaps {
  const window = Math.min(Math.max(0, glzWindowPixels), MAX_VIEWER_GLZ_WINDOW);
  return window > 0 ? { codecs: ["raw", "quic", "lz", "glz"], glzWindowPixels: window } : { codecs: ["raw", "quic", "lz"], glzWindowPixels: 0 };
}

export class DisplayChannel extends SpiceChannel {
  private readonly deps: DisplayChannelInit;
  private readonly stop = new AbortController();
  private watching = false;
  private hasSurface = false;
  private nextImageId = 1n;
  /** The decoder caps the client announced (tests and logs). */
  decoder: DecoderCaps | undefined;

  constructor(init: DisplayChannelInit) {
    super(init);
    this.deps = init;
    this.startAck(ACK_WINDOW);
  }

  protected handle(type: number, r: Reader): void {
    if (type !== MSGC.DISPLAY_INIT) return; // stream reports, preferences: nothing we act on
    if (this.watching) return;
    r.u8(); // pixmap cache id
    r.i64(); // pixmap cache size: we send no cached images
    r.u8(); // GLZ dictionary id: one dictionary per channel
    const glzWindow = r.i32();
    this.decoder = decoderFor(glzWindow);
    this.watching = true;
    this.log.debug({ glz_window: glzWindow, codecs: this.decoder.codecs, compression: this.deps.compression }, "display channel initialised");
    const sink: UpdateSink = { send: (u) => this.sendUpdate(u) };
    this.deps.display
      .watch(this.deps.vmId, { policy: { compression: this.deps.compression, decoder: this.decoder }, maxFps: MAX_FPS }, sink, this.stop.signal)
      .then(
        () => "the VM's display ended",
        (err: Error) => `display unavailable: ${err.message}`,
      )
      .then((reason) => {
        // A watch we stopped (the channel closed) ends quietly; one that ended by itself ends the session.
        if (this.closed === undefined) this.deps.onDisplayEnd(reason);
      });
  }

  private async sendUpdate(u: DisplayUpdateData): Promise<void> {
    if (u.surfaceChanged) {
      if (this.hasSurface) this.send(MSG.DISPLAY_SURFACE_DESTROY, new Writer(4).u32(0).done());
      this.send(MSG.DISPLAY_SURFACE_CREATE, new Writer(20).u32(0).u32(u.width).u32(u.height).u32(SURFACE_FMT_32_XRGB).u32(SURFACE_FLAGS_PRIMARY).done());
      this.hasSurface = true;
    }
    for (const rect of u.rects) this.send(MSG.DISPLAY_DRAW_COPY, ...drawCopy(rect, this.nextImageId++));
    if (u.surfaceChanged) this.send(MSG.DISPLAY_MARK);
    await this.writable();
  }

  protected override release(): void {
    this.stop.abort();
  }
}

/** DRAW_COPY of one rect onto surface 0: the fixed part, the image descriptor and payload header, then the pixels as they are. */
export function drawCopy(r: EncodedRectData, imageId: bigint): Buffer[] {
  const raw = r.codec === "raw";
  const w = new Writer(DRAW_COPY_FIXED + IMAGE_DESCRIPTOR + (raw ? BITMAP_HEADER : 4));
  w.u32(0) // surface
    .i32(r.y).i32(r.x).i32(r.y + r.height).i32(r.x + r.width) // box: top, left, bottom, right
    .u8(0) // clip: none
    .u32(DRAW_COPY_FIXED) // the source image follows the fixed part
    .i32(0).i32(0).i32(r.height).i32(r.width) // source area
    .u16(ROPD_OP_PUT)
    .u8(0) // scale mode
    .u8(0).i32(0).i32(0).u32(0); // no mask
  w.u64(imageId).u8(IMAGE_TYPE[r.codec]).u8(0).u32(r.width).u32(r.height);
  if (raw) w.u8(BITMAP_FMT_32BIT).u8(BITMAP_FLAGS_TOP_DOWN).u32(r.width).u32(r.height).u32(r.width * 4).u32(0);
  else w.u32(r.data.length);
  return [w.done(), r.data];
}
