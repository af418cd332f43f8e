// The --http WebSocket bridge with a real SPICE peer: qemu's own SPICE server behind the listener (each
// WebSocket piped to a TCP connection to qemu's port), Debian's spice-html5 in chromium in front. The
// canvas must show what spicy-screenshot reads from qemu directly. This proves the bridge and the browser
// harness independently of qumra's SPICE server.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import net from "node:net";
import { pipeline, Writable, type Duplex } from "node:stream";
import { HttpListener } from "../agent/src/http/http-server.js";
import { spiceWebSocketPath, type SpiceAcceptor, type SpiceTransport } from "../agent/src/http/spice-acceptor.js";
import { createLogger } from "../agent/src/logger.js";
import { hasSpiceHtml5, openSpiceHtml5, type SpiceHtml5Page } from "./helpers/spice-html5.js";
import { hasQemuSpice, startQemuSpice, type QemuSpice } from "./helpers/qemu-spice.js";

/** The throwaway acceptor: every SPICE WebSocket becomes a TCP connection to qemu's SPICE port. */
function tcpProxy(port: number, seen: SpiceTransport[]): SpiceAcceptor {
  return {
    accept(stream: Duplex, transport: SpiceTransport) {
      seen.push(transport);
      const tcp = net.connect(port, "127.0.0.1");
      pipeline(stream, tcp, stream, () => {});
    },
  };
}

describe.skipIf(!hasSpiceHtml5 || !hasQemuSpice)("spice-html5 through the --http bridge, qemu as the SPICE peer", () => {
  let qemu: QemuSpice;
  let listener: HttpListener;
  let page: SpiceHtml5Page | undefined;
  let logs = "";
  const transports: SpiceTransport[] = [];

  beforeAll(async () => {
    qemu = await startQemuSpice();
    const sink = new Writable({ write: (chunk, _e, cb) => ((logs += chunk.toString()), cb()) });
    listener = await HttpListener.start({ host: "127.0.0.1", port: 0, spice: tcpProxy(qemu.port, transports), logger: createLogger("debug", sink) });
  });
  afterAll(async () => {
    await page?.close();
    await listener?.close();
    await qemu?.stop();
  });

  it("spice-html5 draws qemu's screen, pixel for pixel what spicy-screenshot reads from qemu", async () => {
    // qemu serves one SPICE client at a time (a new one replaces the old), so the reference screenshot comes
    // first: once SeaBIOS has written text in VGA text mode (720x400), pause (the virtual clock stops, so
    // does the text cursor's blink).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const early = await qemu.screenshot();
      if (early.width === 720 && early.rgb.some((v) => v !== 0)) break;
      if (Date.now() > deadline) throw new Error(`qemu's screen stayed black:\n${qemu.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await qemu.pause();
    const shot = await qemu.screenshot();
    expect([shot.width, shot.height]).toEqual([720, 400]);

    const port = Number(listener.address.split(":").pop());
    page = await openSpiceHtml5({ host: "127.0.0.1", port, path: spiceWebSocketPath("qemu") });
    await page.waitForFirstDraw();
    await page.waitForCanvas(() => shot, 20_000);
    console.log(`spice-html5 + qemu: page load ${page.timings.loadedMs} ms, first canvas draw ${page.timings.firstDrawMs} ms, canvas equal to the screenshot ${page.timings.matchedMs} ms after navigation`);

    // Each channel came over its own WebSocket, pinned to the path's vm id.
    expect(transports.length).toBeGreaterThanOrEqual(2);
    for (const t of transports) expect(t).toEqual({ kind: "websocket", peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/), vmId: "qemu" });
    await qemu.resume();
  });

  it("closing the page closes its WebSockets, and the bridge logs each with its byte counts", async () => {
    await page!.close();
    page = undefined;
    const deadline = Date.now() + 10_000;
    const closedLines = () => logs.split("\n").filter((l) => l.includes('"SPICE WebSocket closed"'));
    while (closedLines().length < transports.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(closedLines()).toHaveLength(transports.length);
    const display = closedLines().map((l) => JSON.parse(l) as { bytes_out: number; vm_id: string }).sort((a, b) => b.bytes_out - a.bytes_out)[0];
    expect(display.vm_id).toBe("qemu");
    expect(display.bytes_out).toBeGreaterThan(1000); // the display channel carried the screen
  });
});
