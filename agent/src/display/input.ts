// SendInput's domain side: validates a batch of key, text and pointer events, turns keys and text into
// set-1 scancode bytes, and delivers everything to the guest's input devices in order.
import { QumraError, invalidArgument, unimplemented } from "../errors.js";
import { keyEventBytes, textToScancodes } from "./input-keys.js";
import type { InputTarget } from "./types.js";

export const MAX_INPUT_EVENTS = 1024;
/** Raw scancode bytes per event (a SPICE KEY_SCANCODE message carries a few keys). */
export const MAX_SCANCODE_BYTES = 64;

export type InputEventData =
  | { kind: "key"; scancode: number; pressed: boolean }
  | { kind: "text"; text: string }
  | { kind: "pointer"; x: number; y: number; buttons: number }
  /** Set-1 bytes as a client sent them (SPICE's KEY_DOWN/KEY_UP/KEY_SCANCODE), passed to the i8042 as they are. */
  | { kind: "scancodes"; bytes: Uint8Array }
  /** Relative motion and wheel (SPICE's server mouse mode), for a PS/2 mouse. */
  | { kind: "motion"; dx: number; dy: number; wheel: number; buttons: number };

export type InputStep = { kind: "keys"; bytes: Uint8Array } | { kind: "pointer"; x: number; y: number; buttons: number };

/** Validates the events and groups consecutive keyboard bytes; pointer positions are clamped to the screen. */
export function planInput(events: InputEventData[], screen: { width: number; height: number }): InputStep[] {
  if (events.length > MAX_INPUT_EVENTS) throw invalidArgument(`events has ${events.length} entries: at most ${MAX_INPUT_EVENTS} per call`);
  const steps: InputStep[] = [];
  let keys: number[] = [];
  const flush = (): void => {
    if (keys.length) steps.push({ kind: "keys", bytes: Uint8Array.from(keys) });
    keys = [];
  };
  events.forEach((e, i) => {
    try {
      switch (e.kind) {
        case "key":
          keys.push(...keyEventBytes(e.scancode, e.pressed));
          break;
        case "text":
          keys.push(...textToScancodes(e.text));
          break;
        case "scancodes":
          if (e.bytes.length > MAX_SCANCODE_BYTES) throw invalidArgument(`scancodes has ${e.bytes.length} bytes: at most ${MAX_SCANCODE_BYTES} per event`);
          keys.push(...e.bytes);
          break;
        case "motion":
          throw unimplemented("relative pointer motion needs the PS/2 mouse");
        case "pointer":
          if (e.buttons > 7) throw invalidArgument(`pointer.buttons ${e.buttons} has bits above 2 (bit 0 left, 1 right, 2 middle)`);
          flush();
          steps.push({ kind: "pointer", x: Math.min(e.x, screen.width - 1), y: Math.min(e.y, screen.height - 1), buttons: e.buttons });
          break;
      }
    } catch (err) {
      if (err instanceof QumraError) throw new QumraError(err.kind, `events[${i}]: ${err.message}`);
      throw err;
    }
  });
  flush();
  return steps;
}

/** Delivers the steps in order; keyboard bytes are fed as the i8042 queue accepts them. */
export async function deliverInput(target: InputTarget, steps: InputStep[]): Promise<void> {
  for (const step of steps) {
    if (step.kind === "pointer") {
      await target.pointer(step.x, step.y, step.buttons);
      continue;
    }
    let offset = 0;
    for (let idle = 0; offset < step.bytes.length; ) {
      const accepted = await target.keyboard(step.bytes.subarray(offset));
      offset += accepted;
      if (accepted > 0) idle = 0;
      else if (++idle > 200) {
        throw new QumraError("resource-exhausted", `the guest is not reading its keyboard: ${step.bytes.length - offset} of ${step.bytes.length} scancode bytes not delivered`);
      }
      if (offset < step.bytes.length) await new Promise((r) => setTimeout(r, accepted > 0 ? 1 : 10));
    }
  }
}
