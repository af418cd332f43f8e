// Debian's spice-html5 in Debian's chromium against a real agent on real KVM: SPICE over the agent's own
// WebSocket endpoint (/spice/VM_ID on --http, no websockify). The canvas must equal the VM's raw screenshot
// taken while paused, the page must never be sent GLZ (it keeps no GLZ window), and text typed in the page
// must reach the guest's i8042.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { VmServiceClient } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ImageCompression, ScreenshotFormat, TicketExpiry } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { attachConsole, createVm, demoSpec, type ConsoleReader } from "./helpers/vm.js";
import { hasSpiceHtml5, openSpiceHtml5, type SpiceHtml5Page } from "./helpers/spice-html5.js";
import { rgbOfBgrx } from "./helpers/rgb-image.js";

describe.skipIf(!hasKvm || !hasSpiceHtml5)("spice-html5 in chromium over the agent's WebSocket endpoint (real KVM)", () => {
  let agent: RunningAgent;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;
  let page: SpiceHtml5Page | undefined;
  let con: ConsoleReader;
  const vmId = "html5-vm";
  const ticket = "html5-ticket-0123";

  beforeAll(async () => {
    agent = await startAgent(["--spice", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    vms = new VmServiceClient(agent.address!, grpc.credentials.createInsecure());
    display = new DisplayServiceClient(agent.address!, grpc.credentials.createInsecure());
    // auto_glz: the agent would send GLZ to a client with a window; spice-html5 announces none.
    await createVm(vms, vmId, demoSpec(vmId, { display: { width: 800, height: 600 }, imageCompression: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ }));
    con = attachConsole(vms, vmId);
    await con.waitFor("qumra demo guest", 60_000);
    await call(display, display.setDisplayTicket, { vmId, ticket, expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
  }, 120_000);

  afterAll(async () => {
    await page?.close();
    con?.close();
    await agent?.stop();
    if (agent) killHelpersOf(agent.runtimeDir);
  });

  it("the canvas equals the paused VM's screen, then typing in the page reaches the guest", async () => {
    const conn = await call(display, display.getDisplayConnection, { vmId });
    expect(conn.websocketPath).toBe(`/spice/${vmId}`);
    await call(vms, vms.pauseVm, { vmId });
    const shot = await call(display, display.screenshot, { vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW });
    const expected = rgbOfBgrx(shot.width, shot.height, shot.data);

    const [host, port] = [agent.http!.split(":")[0], Number(agent.http!.split(":").pop())];
    page = await openSpiceHtml5({ host, port, path: conn.websocketPath, password: ticket });
    await page.waitForFirstDraw(30_000);
    await page.waitForCanvas(() => expected, 30_000);
    console.log(`spice-html5 + qumra (800x600): page load ${page.timings.loadedMs} ms, first canvas draw ${page.timings.firstDrawMs} ms, canvas equal to the screenshot ${page.timings.matchedMs} ms after navigation`);
    expect(page.log()).not.toMatch(/unhandled image type/i);

    const clients = (await call(vms, vms.getVm, { vmId })).spiceClients;
    expect(clients).toHaveLength(1);
    expect(clients[0].transport).toBe("websocket");

    await call(vms, vms.resumeVm, { vmId });
    const mark = con.text().length;
    await page.type("hi");
    // 'h' make 0x23 / break 0xa3, 'i' make 0x17 / break 0x97.
    for (const code of ["0x23", "0xa3", "0x17", "0x97"]) await con.waitFor(new RegExp(`kbd ${code}\\n`, "i"), 30_000, mark);
  }, 120_000);

  it("a wrong ticket in the page gets no screen, and the VM's WebSocket path pins the VM", async () => {
    await page?.close();
    page = undefined;
    const [host, port] = [agent.http!.split(":")[0], Number(agent.http!.split(":").pop())];
    const wrong = await openSpiceHtml5({ host, port, path: `/spice/${vmId}`, password: "not-the-ticket" });
    try {
      await expect(wrong.waitForFirstDraw(3000)).rejects.toThrow();
    } finally {
      await wrong.close();
    }
    // The right ticket on another VM's path is refused too: the path names the VM.
    const other = await openSpiceHtml5({ host, port, path: "/spice/other-vm", password: ticket });
    try {
      await expect(other.waitForFirstDraw(3000)).rejects.toThrow();
    } finally {
      await other.close();
    }
  }, 60_000);
});
