// The encode pool: the same requests give the same rects on a worker thread and on the main thread
// (the bytes come back transferred, not shared), lanes spread over the workers, and a closed pool
// refuses work with UNAVAILABLE.
import { describe, it, expect, afterAll } from "vitest";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { EncodePool } from "../agent/src/display/encode-pool.js";
import type { EncodeReply } from "../agent/src/display/encode-host.js";
import type { CodecPolicy, FramebufferInfo } from "../agent/src/display/types.js";
import { QumraError } from "../agent/src/errors.js";
import { generateImage } from "../bench/test-images.js";

const W = 320, H = 200;
const dir = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
const file = path.join(dir, `qumra-test-pool-${randomUUID()}`);
const info: FramebufferInfo = { width: W, height: H, stride: W * 4, path: file };
const policy: CodecPolicy = { compression: "auto_glz", decoder: { codecs: ["raw", "quic", "lz", "glz"], glzWindowPixels: 1 << 20 } };
afterAll(() => rmSync(file, { force: true }));

/** Keyframe of a desktop, then updates after a photo is drawn over part of it: the replies' rects. */
async function run(pool: EncodePool): Promise<EncodeReply[]> {
  writeFileSync(file, generateImage("desktop", W, H));
  const lane = pool.lane();
  const replies: EncodeReply[] = [];
  replies.push(await lane.request({ op: "open", viewer: 1, info, policy }));
  replies.push(await lane.request({ op: "keyframe", viewer: 1 }));
  const changed = generateImage("desktop", W, H);
  changed.set(generateImage("photo", W, 60), W * 4 * 100);
  writeFileSync(file, changed);
  replies.push(await lane.request({ op: "update", viewer: 1, pages: new Uint8Array(Math.ceil((W * H * 4) / 4096 / 8)).fill(0xff) }));
  replies.push(await lane.request({ op: "close", viewer: 1 }));
  lane.release();
  return replies;
}

const strip = (replies: EncodeReply[]) => replies.map((r) => (r.op === "rects" ? r.rects.map((x) => ({ ...x, data: Buffer.from(x.data).toString("base64") })) : r.op));

describe("encode pool", () => {
  it("gives the same rects on a worker thread as on the main thread", async () => {
    const threaded = new EncodePool(1);
    const inline = new EncodePool(0);
    try {
      const a = await run(threaded);
      const b = await run(inline);
      expect(strip(a)).toEqual(strip(b));
      const update = a[2];
      expect(update.op === "rects" && update.rects.length).toBeGreaterThan(0);
      expect(update.op === "rects" && update.rects.some((r) => r.codec === "quic")).toBe(true); // the photo band
      expect(update.op === "rects" && update.work.thread).not.toBe(b[2].op === "rects" && b[2].work.thread);
    } finally {
      await threaded.close();
      await inline.close();
    }
  });

  it("spreads lanes over its workers and refuses work once closed", async () => {
    const pool = new EncodePool(2);
    const threads = new Set<number>();
    const lanes = [pool.lane(), pool.lane()];
    writeFileSync(file, generateImage("desktop", W, H));
    for (const [i, lane] of lanes.entries()) {
      await lane.request({ op: "open", viewer: 10 + i, info, policy });
      const r = await lane.request({ op: "keyframe", viewer: 10 + i });
      if (r.op === "rects") threads.add(r.work.thread);
    }
    expect(threads.size).toBe(2);
    await pool.close();
    await expect(lanes[0].request({ op: "keyframe", viewer: 10 })).rejects.toThrow(QumraError);
  });
});
