// A seeded, bounded fuzz of the SPICE server on real KVM: mutated and random link messages, then, on
// properly linked channels of every type, every client→server message with random, truncated, oversized
// and lying bodies, and unknown types. Meanwhile a good client of the same VM keeps its channels: every
// bad client must be dropped alone, the agent must live with bounded memory, and the VM stay RUNNING.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { VmServiceClient, VmState } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ScreenshotFormat, TicketExpiry } from "../agent/src/gen/qumra/v1/display.js";
import { CHANNEL, CLIENT_MESSAGE_BOUNDS, MSG, MSGC, capsWords, linkHeader, linkMess, messageHeader, MAIN_CAP } from "../agent/src/spice/wire.js";
import path from "node:path";
import { startAgent, tempDir, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { hasSpicy, runSpicy } from "./helpers/spice-tools.js";
import { firstRgbDifference, readPpm, rgbOfBgrx } from "./helpers/rgb-image.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec } from "./helpers/vm.js";
import { connect, link, type TestChannel } from "./helpers/spice-client.js";
import { rssBytes } from "./helpers/proc.js";
import { seededRandom } from "./helpers/random.js";

const SEED = 0x5eed_2026;
const LINK_CASES = 120;
const MESSAGE_CASES = 160;
const TICKET = "fuzz-ticket-0123";

describe.skipIf(!hasKvm)("SPICE server with --spice-multi-client under a seeded fuzz (real agent, real KVM)", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;
  let port = 0;
  const vmId = "fuzz-vm";
  const random = seededRandom(SEED);
  const int = (n: number) => Math.floor(random() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

  beforeAll(async () => {
    agent = await startAgent(["--spice", "127.0.0.1:0", "--spice-multi-client", "--display-workers", "1"]);
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    await createVm(vms, vmId, demoSpec(vmId, { display: { width: 320, height: 200 } }));
    const con = attachConsole(vms, vmId);
    await con.waitFor("qumra demo guest", 60_000);
    con.close();
    await call(display, display.setDisplayTicket, { vmId, ticket: TICKET, expiresInS: 3600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
    port = (await call(display, display.getDisplayConnection, { vmId })).port;
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    if (agent) killHelpersOf(agent.runtimeDir);
  });

  /** Sends `data`, then waits until the server closes the connection or `ms` passes; true when it closed. */
  async function sendAndWatch(ch: TestChannel, data: Buffer, ms: number): Promise<boolean> {
    ch.socket.write(data);
    try {
      await ch.closed(ms);
      return true;
    } catch {
      return false;
    } finally {
      ch.close();
    }
  }

  it("drops every bad client alone; the good session, the agent and the VM carry on", async () => {
    // The good client: a linked main and display channel of the same VM.
    const goodMain = await link({ port, channelType: CHANNEL.main, ticket: TICKET, channelCaps: capsWords([MAIN_CAP.NAME_AND_UUID]) });
    expect(goodMain.linkResult).toBe(0);
    const init = await goodMain.until(MSG.MAIN_INIT);
    const sessionId = init.body.readUInt32LE(0);
    const goodDisplay = await link({ port, channelType: CHANNEL.display, connectionId: sessionId, ticket: TICKET });
    expect(goodDisplay.linkResult).toBe(0);
    goodDisplay.send(MSGC.DISPLAY_INIT, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    await goodDisplay.until(MSG.DISPLAY_SURFACE_CREATE, 30_000);
    const rssBefore = rssBytes(agent.process.pid!) / 1024;

    // 1. The link stage: a valid link message, mutated; or random bytes; or a header that lies.
    const valid = linkMess({ connectionId: 0, channelType: CHANNEL.main, channelId: 0, commonCaps: capsWords([0, 1, 3]), channelCaps: [] });
    const validLink = Buffer.concat([linkHeader(valid.length), valid]);
    let linkClosed = 0;
    for (let i = 0; i < LINK_CASES; i++) {
      const ch = await connect({ port });
      let data: Buffer;
      switch (i % 4) {
        case 0: // flip a few bytes of a valid link
          data = Buffer.from(validLink);
          for (let k = 0; k <= int(4); k++) data[int(data.length)] = int(256);
          break;
        case 1: // random bytes
          data = bytes(1 + int(200));
          break;
        case 2: // a valid header whose size lies (up to 4 GiB)
          data = Buffer.concat([linkHeader(int(2) ? 0xffffffff - int(1000) : 1 + int(1 << 20)), bytes(int(64))]);
          break;
        default: // caps counts that lie
          data = Buffer.from(validLink);
          data.writeUInt32LE(int(2) ? 0xffffffff : 1 + int(100_000), 16 + 6 + int(2) * 4);
      }
      if (await sendAndWatch(ch, data, 2000)) linkClosed++;
    }
    // Most link garbage is refused at once; the rest is held only until the link timeout.
    expect(linkClosed).toBeGreaterThan(LINK_CASES / 2);

    // 2. Linked channels of every type, then one hostile message each. The secondary channels join a fuzz
    // session of their own (a new one whenever the server has dropped it).
    const types = [CHANNEL.main, CHANNEL.display, CHANNEL.inputs, CHANNEL.cursor];
    let fuzzMain: TestChannel | undefined;
    let fuzzSession = 0;
    let dropped = 0;
    for (let i = 0; i < MESSAGE_CASES; i++) {
      const channelType = types[i % types.length];
      if (channelType !== CHANNEL.main && (!fuzzMain || fuzzMain.ended)) {
        fuzzMain?.close();
        fuzzMain = await link({ port, channelType: CHANNEL.main, ticket: TICKET });
        fuzzSession = (await fuzzMain.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
      }
      const ch = await link({ port, channelType, connectionId: channelType === CHANNEL.main ? 0 : fuzzSession, ticket: TICKET });
      expect(ch.linkResult).toBe(0);
      const known = Object.entries(CLIENT_MESSAGE_BOUNDS[channelType]).map(([t, bound]) => [Number(t), bound] as const);
      const [type, bound] = known[int(known.length)];
      let data: Buffer;
      let mustDrop = false;
      switch (int(4)) {
        case 0: // a known type with a body over its bound, claimed but not sent
          data = messageHeader(true, 0n, type, bound + 1 + int(1 << 30));
          mustDrop = true;
          break;
        case 1: // an unknown type
          data = Buffer.concat([messageHeader(true, 0n, 1000 + int(60000), 4), bytes(4)]);
          mustDrop = true;
          break;
        case 2: // a known type with random bytes within its bound (may be valid: then it stays)
          data = Buffer.concat([messageHeader(true, 0n, type, int(bound + 1)), bytes(bound)]).subarray(0, 6 + int(bound + 1));
          break;
        default: // random bytes after the link
          data = bytes(1 + int(64));
      }
      const closed = await sendAndWatch(ch, data, mustDrop ? 5000 : 300);
      if (mustDrop) expect(closed, `case ${i}: type ${type} on channel ${channelType} was not dropped`).toBe(true);
      if (closed) dropped++;
    }
    expect(dropped).toBeGreaterThanOrEqual(MESSAGE_CASES / 2);
    fuzzMain?.close();

    // The good session noticed nothing: its channels are open and the display still answers.
    expect(goodMain.ended).toBe(false);
    expect(goodDisplay.ended).toBe(false);
    const vm = await call(vms, vms.getVm, { vmId });
    expect(vm.state).toBe(VmState.VM_STATE_RUNNING);
    expect(vm.spiceClients.some((c) => c.sessionId === sessionId)).toBe(true);
    const after = await link({ port, channelType: CHANNEL.main, ticket: TICKET });
    expect(after.linkResult).toBe(0);
    after.close();
    // No unbounded allocation: a lying size never made the agent buffer it.
    expect(rssBytes(agent.process.pid!) / 1024 - rssBefore).toBeLessThan(200 * 1024);
    goodMain.close();
    goodDisplay.close();
  }, 240_000);

  it.skipIf(!hasSpicy)("with --spice-multi-client a second stock client watches the same screen while the first stays", async () => {
    const first = await link({ port, channelType: CHANNEL.main, ticket: TICKET });
    const sessionId = (await first.until(MSG.MAIN_INIT)).body.readUInt32LE(0);
    await call(vms, vms.pauseVm, { vmId });
    try {
      const shot = await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW });
      const out = path.join(tempDir("spice-multi"), "second.ppm");
      const second = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", TICKET, "-o", out]);
      expect(second.code, second.output).toBe(0);
      const ppm = readPpm(out);
      expect([ppm.width, ppm.height]).toEqual([shot.width, shot.height]);
      expect(firstRgbDifference(ppm, rgbOfBgrx(shot.width, shot.height, shot.data))).toBeUndefined();
      expect(first.ended).toBe(false);
      expect((await call(vms, vms.getVm, { vmId })).spiceClients.some((c) => c.sessionId === sessionId)).toBe(true);
    } finally {
      first.close();
      await call(vms, vms.resumeVm, { vmId });
    }
  }, 60_000);
});
