// The drawer thread of the display-load agent: on "draw" it repaints every framebuffer file with a new
// full-screen picture `fps` times a second (the desktop image scrolled up by 8 more rows each frame);
// "stop" pauses it.
import { closeSync, openSync, writeSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { generateImage } from "./test-images.js";

const { files, width, height, fps } = workerData as { files: string[]; width: number; height: number; fps: number };
const desktop = generateImage("desktop", width, height);
const rowBytes = width * 4;
const fds = files.map((f) => openSync(f, "r+"));
let frame = 0;
let timer: NodeJS.Timeout | undefined;

function paint(): void {
  const dy = ((++frame * 8) % height) * rowBytes;
  for (const fd of fds) {
    writeAll(fd, desktop.subarray(dy), 0);
    writeAll(fd, desktop.subarray(0, dy), desktop.length - dy);
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

parentPort!.on("message", (command: string) => {
  if (command === "draw" && !timer) {
    paint();
    timer = setInterval(paint, 1000 / fps);
  } else if (command === "stop" && timer) {
    clearInterval(timer);
    timer = undefined;
  }
});
process.on("exit", () => fds.forEach((fd) => closeSync(fd)));
