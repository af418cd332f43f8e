// SendInput's domain side: validates a batch of key, text, raw scancode, pointer and relative motion
// events, turns keys and text into set-1 scancode bytes, and delivers everything to the guest's input
// devices in order.
import { QumraError, invalidArgument } from "../errors.js";
import { keyEventBytes, textToScancodes } from "./input-keys.js";
import type { InputTarget } from "./types.js";

export const MAX_INPUT_EVENTS = 1024;
/** Raw scancode bytes per event (a SPICE KEY_SCANCODE message carries a few keys). */
export const MAX_SCANCODE_BYTES = 64;
/** Bounds of one relative motion (the helper's MOUSE request has the same; a test keeps them equal). */
export const MAX_MOTION_DELTA = 4096;
export const MAX_MOTION_WHEEL = 127;

export type InputEventData =
  | { kind: "key"; scancode: number; pressed: boolean }
  | { kind: "text"; text: string }
  | { kind: "pointer"; x: number; y: number; buttons: number }
  /** Set-1 bytes as a client sent them (SPICE's KEY_DOWN/KEY_UP/KEY_SCANCODE), passed to the i8042 as they are. */
  | { kind: "scancodes"; bytes: Uint8Array }
  /** Relative mouse motion: dx, dy in screen coordinates (dy positive down), wheel positive towards the user. */
  | { kind: "motion"; dx: number; dy: number; wheel: number; buttons: number };

type Motion = Extract<InputEventData, { kind: "motion" }>;

export type InputStep = { kind: "keys"; bytes: Uint8Array } | { kind: "pointer"; x: number; y: number; buttons: number } | Motion;

function checkButtons(what: string, buttons: number): void {
  if (!Number.isInteger(buttons) || buttons < 0 || buttons > 7) throw invalidArgument(`${what}.buttons ${buttons} has bits above 2 (bit 0 left, 1 right, 2 middle)`);
}

function checkMotion(e: Motion): Motion {
  const within = (name: string, v: number, max: number): void => {
    if (!Number.isInteger(v) || Math.abs(v) > max) throw invalidArgument(`motion.${name} ${v} is not an integer in -${max}..${max}`);
  };
  within("dx", e.dx, MAX_MOTION_DELTA);
  within("dy", e.dy, MAX_MOTION_DELTA);
  within("wheel", e.wheel, MAX_MOTION_WHEEL);
  checkButtons("motion", e.buttons);
  return { kind: "motion", dx: e.dx, dy: e.dy, wheel: e.wheel, buttons: e.buttons };
}

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
        case "pointer":
          checkButtons("pointer", e.buttons);
          flush();
          steps.push({ kind: "pointer", x: Math.min(e.x, screen.width - 1), y: Math.min(e.y, screen.height - 1), buttons: e.buttons });
          break;
        case "motion": {
          const m = checkMotion(e);
          flush();
          steps.push(m);
          break;
        }
      }
    } catch (err) {
      if (err instanceof QumraError) throw new QumraError(err.kind, `events[${i}]: ${err.message}`);
      throw err;
    }
  });
  flush();
  return steps;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One motion: retried while the mouse's queue is full; dropped if the guest's mouse is not reporting. */
async function deliverMotion(target: InputTarget, m: Motion): Promise<void> {
  for (let tries = 0; ; tries++) {
    const { packets, reporting } = await target.motion(m.dx, m.dy, m.wheel, m.buttons);
    if (packets > 0 || !reporting) return;
    if (tries >= 200) throw new QumraError("resource-exhausted", `the guest is not reading its mouse: motion ${m.dx},${m.dy} not delivered`);
    await sleep(10);
  }
}

/** Delivers the steps in order; keyboard bytes are fed as the i8042 queue accepts them, motions as the mouse's does. */
export async function deliverInput(target: InputTarget, steps: InputStep[]): Promise<void> {
  for (const step of steps) {
    if (step.kind === "pointer") {
      await target.pointer(step.x, step.y, step.buttons);
      continue;
    }
    if (step.kind === "motion") {
      await deliverMotion(target, step);
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
      if (offset < step.bytes.length) await sleep(accepted > 0 ? 1 : 10);
    }
  }
}
