// The main channel (spice-server's main-channel-client.cpp): INIT with the session id and mouse modes,
// the channel list on ATTACH_CHANNELS, mouse mode changes, the VM's name and UUID, and a PING every few
// seconds whose PONG gives the session's latency.
import { createHash } from "node:crypto";
import { SpiceChannel, type ChannelInit } from "./channel.js";
import { MOUSE_MODE, type Session } from "./session.js";
import { CHANNEL, MAIN_CAP, MSG, MSGC, Writer, hasCap, type Reader } from "./wire.js";

export const PING_INTERVAL_MS = 5000;
/** The channels every session offers, in spice-server's order. */
const OFFERED = [CHANNEL.display, CHANNEL.inputs, CHANNEL.cursor];
const SUPPORTED_MOUSE_MODES = MOUSE_MODE.SERVER | MOUSE_MODE.CLIENT;

export interface MainChannelInit extends ChannelInit {
  session: Session;
  vmName: string;
  /** The client's main-channel caps. */
  clientCaps: number[];
  pingIntervalMs?: number;
}

export class MainChannel extends SpiceChannel {
  private readonly session: Session;
  private readonly pings = new Map<number, bigint>();
  private nextPing = 1;
  private readonly pinger: NodeJS.Timeout;

  constructor(init: MainChannelInit) {
    super(init);
    this.session = init.session;
    this.send(
      MSG.MAIN_INIT,
      new Writer(32)
        .u32(this.session.id)
        .u32(1) // display channels hint
        .u32(SUPPORTED_MOUSE_MODES)
        .u32(this.session.mouseMode)
        .u32(0) // no guest agent
        .u32(0) // agent tokens
        .u32(multimediaTime())
        .u32(0) // ram hint
        .done(),
    );
    if (hasCap(init.clientCaps, MAIN_CAP.NAME_AND_UUID)) {
      const name = Buffer.from(`${init.vmName}\0`, "utf8");
      this.send(MSG.MAIN_NAME, new Writer(4 + name.length).u32(name.length).bytes(name).done());
      this.send(MSG.MAIN_UUID, vmUuid(this.session.vmId));
    }
    this.pinger = setInterval(() => this.ping(), init.pingIntervalMs ?? PING_INTERVAL_MS);
    this.pinger.unref();
  }

  /**
   * MIGRATE_SWITCH_HOST: the client reconnects every channel to `host` (the VM moved there). Body:
   * u16 port, u16 TLS port, then two (u32 size, u32 offset) strings — the NUL-terminated host, and
   * the TLS certificate's subject (size 0, offset 0: none) — with the offsets from the body's start.
   */
  switchHost(host: string, port: number, tlsPort: number, certSubject = ""): void {
    const h = Buffer.from(`${host}\0`, "utf8");
    const c = certSubject ? Buffer.from(`${certSubject}\0`, "utf8") : Buffer.alloc(0);
    const fixed = 20;
    this.send(
      MSG.MAIN_MIGRATE_SWITCH_HOST,
      new Writer(fixed + h.length + c.length)
        .u16(port)
        .u16(tlsPort)
        .u32(h.length)
        .u32(fixed)
        .u32(c.length)
        .u32(c.length ? fixed + h.length : 0)
        .bytes(h)
        .bytes(c)
        .done(),
    );
  }

  protected handle(type: number, r: Reader): void {
    switch (type) {
      case MSGC.MAIN_ATTACH_CHANNELS: {
        const w = new Writer(4 + 2 * OFFERED.length).u32(OFFERED.length);
        for (const c of OFFERED) w.u8(c).u8(0);
        return this.send(MSG.MAIN_CHANNELS_LIST, w.done());
      }
      case MSGC.MAIN_MOUSE_MODE_REQUEST: {
        const mode = r.u16();
        if (mode === MOUSE_MODE.SERVER || mode === MOUSE_MODE.CLIENT) this.session.mouseMode = mode;
        else this.log.debug({ mode }, "mouse mode request ignored: not a single supported mode");
        return this.send(MSG.MAIN_MOUSE_MODE, new Writer(4).u16(SUPPORTED_MOUSE_MODES).u16(this.session.mouseMode).done());
      }
      // Client info, agent start and tokens: there is no guest agent, so nothing to do.
      default:
        return;
    }
  }

  private ping(): void {
    // Unanswered pings do not pile up: a client that never answers keeps at most a few.
    if (this.pings.size >= 4) this.pings.delete(this.pings.keys().next().value!);
    const id = this.nextPing++;
    const now = process.hrtime.bigint();
    this.pings.set(id, now);
    this.send(MSG.PING, new Writer(12).u32(id).u64(now / 1000n).done());
  }

  protected override pong(id: number, _timestamp: bigint): void {
    const sent = this.pings.get(id);
    if (sent === undefined) return;
    this.pings.delete(id);
    this.session.latencyMs = Number(process.hrtime.bigint() - sent) / 1e6;
  }

  protected override release(): void {
    clearInterval(this.pinger);
  }
}

/** Milliseconds of a monotonic clock, as SPICE's multimedia time (wraps at 2^32). */
function multimediaTime(): number {
  return Math.floor(performance.timeOrigin + performance.now()) >>> 0;
}

/** A stable UUID (version 5 layout) derived from the VM id, so a client sees the same VM as the same machine. */
export function vmUuid(vmId: string): Buffer {
  const b = createHash("sha1").update(`qumra-vm:${vmId}`).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x50;
  b[8] = (b[8] & 0x3f) | 0x80;
  return b;
}
