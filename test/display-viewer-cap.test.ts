// The cap on display viewers per VM is the display domain's, so gRPC StreamDisplay, SPICE display
// channels and the WebSocket bridge (all adapters over DisplayDomain.watch) count against one limit.
import { describe, it, expect } from "vitest";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { DisplayDomain } from "../agent/src/display/display-domain.js";
import { EncodePool } from "../agent/src/display/encode-pool.js";
import { ScriptedFramebuffer } from "../agent/src/display/scripted-source.js";
import { DEFAULT_DECODER } from "../agent/src/api/display-service.js";
import { QumraError } from "../agent/src/errors.js";
import type { ViewerOptions } from "../agent/src/display/viewer.js";

const shmDir = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();

describe("display viewers per VM", () => {
  it("refuses a viewer past --max-viewers-per-vm with resource-exhausted, and frees the place when one leaves", async () => {
    const fb = new ScriptedFramebuffer(path.join(shmDir, `qumra-test-fb-${randomUUID()}`), 64, 32);
    const domain = new DisplayDomain(() => fb, new EncodePool(0), undefined, 2);
    const options: ViewerOptions = { policy: { compression: "off", decoder: DEFAULT_DECODER }, maxFps: 30 };
    const stops = [new AbortController(), new AbortController()];
    const firsts: Promise<void>[] = [];
    const runs = stops.map((stop) => {
      let first!: () => void;
      firsts.push(new Promise<void>((resolve) => (first = resolve)));
      return domain.watch("vm", options, { send: async () => first() }, stop.signal);
    });
    await Promise.all(firsts);
    const refused = await domain.watch("vm", options, { send: async () => undefined }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(QumraError);
    expect((refused as QumraError).kind).toBe("resource-exhausted");
    expect((refused as QumraError).message).toMatch(/already has 2 display viewers \(gRPC, SPICE and WebSocket together\).*--max-viewers-per-vm/);
    stops[0].abort();
    await runs[0];
    const again = new AbortController();
    let seen!: () => void;
    const third = new Promise<void>((resolve) => (seen = resolve));
    const run = domain.watch("vm", options, { send: async () => seen() }, again.signal);
    await third;
    again.abort();
    stops[1].abort();
    await Promise.all([run, runs[1]]);
    await domain.close();
    fb.close();
  });
});
