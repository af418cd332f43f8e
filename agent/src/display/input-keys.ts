// Keyboard input as PC scancode set 1 bytes for the i8042: key events, and text typed on a US layout.
import { invalidArgument } from "../errors.js";

export const MAX_TEXT_CHARS = 1024;
const LSHIFT = 0x2a;

/** Unshifted and shifted characters of each key, US layout, by set-1 make code. */
const US_KEYS: [number, string, string][] = [
  [0x02, "1", "!"], [0x03, "2", "@"], [0x04, "3", "#"], [0x05, "4", "$"], [0x06, "5", "%"],
  [0x07, "6", "^"], [0x08, "7", "&"], [0x09, "8", "*"], [0x0a, "9", "("], [0x0b, "0", ")"],
  [0x0c, "-", "_"], [0x0d, "=", "+"],
  [0x10, "q", "Q"], [0x11, "w", "W"], [0x12, "e", "E"], [0x13, "r", "R"], [0x14, "t", "T"],
  [0x15, "y", "Y"], [0x16, "u", "U"], [0x17, "i", "I"], [0x18, "o", "O"], [0x19, "p", "P"],
  [0x1a, "[", "{"], [0x1b, "]", "}"],
  [0x1e, "a", "A"], [0x1f, "s", "S"], [0x20, "d", "D"], [0x21, "f", "F"], [0x22, "g", "G"],
  [0x23, "h", "H"], [0x24, "j", "J"], [0x25, "k", "K"], [0x26, "l", "L"],
  [0x27, ";", ":"], [0x28, "'", '"'], [0x29, "`", "~"], [0x2b, "\\", "|"],
  [0x2c, "z", "Z"], [0x2d, "x", "X"], [0x2e, "c", "C"], [0x2f, "v", "V"], [0x30, "b", "B"],
  [0x31, "n", "N"], [0x32, "m", "M"], [0x33, ",", "<"], [0x34, ".", ">"], [0x35, "/", "?"],
  [0x39, " ", " "],
];

const KEYMAP = new Map<string, { code: number; shift: boolean }>();
for (const [code, plain, shifted] of US_KEYS) {
  KEYMAP.set(plain, { code, shift: false });
  if (!KEYMAP.has(shifted)) KEYMAP.set(shifted, { code, shift: true });
}
KEYMAP.set("\n", { code: 0x1c, shift: false });

/** Make and break bytes for one key event; `scancode` above 0xff is an 0xe0-prefixed code (0xe0XX). */
export function keyEventBytes(scancode: number, pressed: boolean): number[] {
  if (!Number.isInteger(scancode) || scancode < 1) throw invalidArgument(`key.scancode ${scancode} is not a set-1 make code`);
  if (scancode <= 0xff) {
    if (scancode >= 0x80) throw invalidArgument(`key.scancode 0x${scancode.toString(16)} is a break code: send the make code with pressed=false`);
    return [pressed ? scancode : scancode | 0x80];
  }
  const low = scancode & 0xff;
  if (scancode >> 8 !== 0xe0 || low === 0 || low >= 0x80) {
    throw invalidArgument(`key.scancode 0x${scancode.toString(16)} is not an extended make code (0xe001..0xe07f)`);
  }
  return [0xe0, pressed ? low : low | 0x80];
}

/** Scancode bytes that type `text` on a US keyboard (press and release per character, shift as needed). */
export function textToScancodes(text: string): number[] {
  if (text.length > MAX_TEXT_CHARS) throw invalidArgument(`text is ${text.length} characters: at most ${MAX_TEXT_CHARS} per event`);
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    const key = KEYMAP.get(ch);
    if (!key) {
      throw invalidArgument(`text: character ${JSON.stringify(ch)} (U+${ch.charCodeAt(0).toString(16).padStart(4, "0")}) at index ${i} cannot be typed (printable ASCII and \\n only)`);
    }
    if (key.shift) out.push(LSHIFT);
    out.push(key.code, key.code | 0x80);
    if (key.shift) out.push(LSHIFT | 0x80);
  }
  return out;
}
