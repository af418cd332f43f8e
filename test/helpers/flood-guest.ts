// A flat 64-bit guest that floods COM1 for ever: `rep outsb` of a 4 KiB block of text lines (one exit
// per block), then a busy loop of `delay` iterations, again and again. For tests of the console's bounds.

const BLOCK = 4096;
const LINE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.\n"; // 64 bytes

export function floodGuest(delay = 1): Buffer {
  if (!Number.isInteger(delay) || delay < 1 || delay > 0xffffffff) throw new RangeError(`delay ${delay}: 1 to 2^32-1`);
  const code = Buffer.from([
    0x66, 0xba, 0xf8, 0x03, // 0: mov dx, 0x3f8
    0x48, 0x8d, 0x35, 18, 0, 0, 0, // 4: lea rsi, [rip + 18] (the text at 29)
    0xb9, 0x00, 0x10, 0x00, 0x00, // 11: mov ecx, 4096
    0xf3, 0x6e, // 16: rep outsb
    0xb8, 0, 0, 0, 0, // 18: mov eax, delay
    0xff, 0xc8, // 23: dec eax
    0x75, 0xfc, // 25: jnz 23
    0xeb, 0xe7, // 27: jmp 4
  ]);
  code.writeUInt32LE(delay, 19);
  return Buffer.concat([code, Buffer.from(LINE.repeat(BLOCK / LINE.length), "latin1")]);
}
