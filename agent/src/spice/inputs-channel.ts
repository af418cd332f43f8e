// The inputs channel (spice-server's inputs-channel.cpp): keys as set-1 scancode bytes, the absolute
// pointer in client mouse mode, relative motion in server mode, and MOTION_ACK every 4 pointer messages.
// Events go to the display domain in order through a bounded queue, so a guest that reads its keyboard
// slowly never makes the channel hold more than a few hundred events.
import type { DisplayDomain } from "../display/display-domain.js";
import type { InputEventData } from "../display/input.js";
import { SpiceChannel, type ChannelInit } from "./channel.js";
import { MOUSE_MODE, type Session } from "./session.js";
import { MSG, MSGC, Writer, type Reader } from "./wire.js";

/** spice-gtk stops sending positions after 2 bunches without an ack (SPICE_INPUT_MOTION_ACK_BUNCH). */
export const MOTION_ACK_BUNCH = 4;
/** Events waiting for the guest; beyond this the excess is dropped (and logged). */
export const MAX_QUEUED_INPUT = 256;

const BUTTON = { LEFT: 1, MIDDLE: 2, RIGHT: 3, UP: 4, DOWN: 5 } as const;

/** SPICE's button mask (left 1, middle 2, right 4) → qumra's (bit 0 left, 1 right, 2 middle). */
export function buttonsFromSpice(mask: number): number {
  return (mask & 1) | ((mask & 4) >> 1) | ((mask & 2) << 1);
}

/** KEY_DOWN / KEY_UP's u32: set-1 bytes packed little-endian; a zero byte ends the code. */
export function keyCodeBytes(code: number): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < 4; i++) {
    const b = (code >>> (8 * i)) & 0xff;
    if (b === 0) break;
    bytes.push(b);
  }
  return bytes;
}

export interface InputsChannelInit extends ChannelInit {
  display: DisplayDomain;
  vmId: string;
  session: Session;
}

export class InputsChannel extends SpiceChannel {
  private readonly display: DisplayDomain;
  private readonly vmId: string;
  private readonly session: Session;
  private readonly queue: InputEventData[] = [];
  private pumping = false;
  private dropped = 0;
  private motions = 0;
  private x = 0;
  private y = 0;
  private buttons = 0;
  /** Errors are logged once per kind, so a client cannot flood the log. */
  private readonly reported = new Set<string>();

  constructor(init: InputsChannelInit) {
    super(init);
    this.display = init.display;
    this.vmId = init.vmId;
    this.session = init.session;
    this.send(MSG.INPUTS_INIT, new Writer(2).u16(0).done());
  }

  protected handle(type: number, r: Reader): void {
    switch (type) {
      case MSGC.INPUTS_KEY_DOWN:
      case MSGC.INPUTS_KEY_UP:
        return this.keys(keyCodeBytes(r.u32()));
      case MSGC.INPUTS_KEY_SCANCODE:
        return this.keys([...r.rest()]);
      case MSGC.INPUTS_KEY_MODIFIERS:
        // The client's lock LEDs; the guest keeps its own, and we do not resynchronise them.
        r.u16();
        return;
      case MSGC.INPUTS_MOUSE_POSITION: {
        const x = r.u32();
        const y = r.u32();
        const mask = r.u16();
        r.u8(); // display id: one display
        this.motionAck();
        if (this.session.mouseMode !== MOUSE_MODE.CLIENT) return;
        this.x = x;
        this.y = y;
        this.buttons = buttonsFromSpice(mask);
        return this.pointer();
      }
      case MSGC.INPUTS_MOUSE_MOTION: {
        const dx = r.i32();
        const dy = r.i32();
        const mask = r.u16();
        this.motionAck();
        if (this.session.mouseMode !== MOUSE_MODE.SERVER) return;
        this.buttons = buttonsFromSpice(mask);
        return this.enqueue({ kind: "motion", dx, dy, wheel: 0, buttons: this.buttons });
      }
      case MSGC.INPUTS_MOUSE_PRESS:
      case MSGC.INPUTS_MOUSE_RELEASE: {
        // buttons_state is the state after the event: it has the pressed button, and not the released one.
        const button = r.u8();
        this.buttons = buttonsFromSpice(r.u16());
        const wheel = type === MSGC.INPUTS_MOUSE_PRESS ? (button === BUTTON.UP ? -1 : button === BUTTON.DOWN ? 1 : 0) : 0;
        if (this.session.mouseMode === MOUSE_MODE.SERVER) {
          return this.enqueue({ kind: "motion", dx: 0, dy: 0, wheel, buttons: this.buttons });
        }
        // The absolute pointer has no wheel; wheel "buttons" change nothing there.
        if (button === BUTTON.UP || button === BUTTON.DOWN) return;
        return this.pointer();
      }
      default:
        return;
    }
  }

  private motionAck(): void {
    if (++this.motions % MOTION_ACK_BUNCH === 0) this.send(MSG.INPUTS_MOUSE_MOTION_ACK);
  }

  private keys(bytes: number[]): void {
    if (bytes.length) this.enqueue({ kind: "scancodes", bytes: Uint8Array.from(bytes) });
  }

  /** The latest position replaces a queued one with the same buttons: only where the pointer ends matters. */
  private pointer(): void {
    const last = this.queue.at(-1);
    const e: InputEventData = { kind: "pointer", x: this.x, y: this.y, buttons: this.buttons };
    if (last?.kind === "pointer" && last.buttons === e.buttons) this.queue[this.queue.length - 1] = e;
    else this.enqueue(e);
  }

  private enqueue(e: InputEventData): void {
    if (this.queue.length >= MAX_QUEUED_INPUT) {
      if (this.dropped++ === 0) this.log.warn({ queued: this.queue.length }, "SPICE input dropped: the guest is not taking input as fast as the client sends it");
      return;
    }
    this.queue.push(e);
    if (!this.pumping) void this.pump();
  }

  /** Delivers queued events in order, a batch per call, until the queue is empty or the channel closed. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length && this.closed === undefined) {
        const batch = this.queue.splice(0, this.queue.length);
        try {
          await this.display.sendInput(this.vmId, batch);
        } catch (err) {
          const message = (err as Error).message;
          if (!this.reported.has(message)) {
            this.reported.add(message);
            this.log.warn({ err: message, events: batch.length }, "SPICE input not delivered");
          }
        }
        if (this.dropped) {
          this.log.warn({ dropped: this.dropped }, "SPICE input events were dropped while the guest was busy");
          this.dropped = 0;
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}
