// The SPICE server against the stock client on real KVM: a real agent (plaintext and TLS SPICE ports),
// demo guests drawing their screens, spicy-screenshot (spice-gtk) linking with the VM's ticket. Each
// PPM must equal, pixel for pixel, the raw screenshot taken while the VM is paused.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VmServiceClient, VmEventType } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, ImageCompression, ScreenshotFormat, TicketExpiry } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, tempDir, runCli, waitForLog, type RunningAgent } from "./helpers/agent.js";
import { call } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { makePki, type TestPki } from "./helpers/pki.js";
import { attachConsole, createVm, demoSpec, watch } from "./helpers/vm.js";
import { hasSpicy, hasSpiceGlib, runSpicy, runSpiceInput } from "./helpers/spice-tools.js";
import { firstRgbDifference, readPpm, rgbOfBgrx } from "./helpers/rgb-image.js";
import { link, type TestChannel } from "./helpers/spice-client.js";
import { CHANNEL, MAIN_CAP, MSG, MSGC, Writer, capsWords } from "../agent/src/spice/wire.js";

interface Case {
  vmId: string;
  width: number;
  height: number;
  /** The VM's spec; unspecified = the agent's --spice-image-compression (quic here). */
  compression: ImageCompression;
}

const CASES: Case[] = [
  { vmId: "sp-quic", width: 1024, height: 768, compression: ImageCompression.IMAGE_COMPRESSION_UNSPECIFIED },
  { vmId: "sp-lz", width: 800, height: 600, compression: ImageCompression.IMAGE_COMPRESSION_LZ },
  { vmId: "sp-glz", width: 1024, height: 768, compression: ImageCompression.IMAGE_COMPRESSION_GLZ },
  { vmId: "sp-auto", width: 1024, height: 768, compression: ImageCompression.IMAGE_COMPRESSION_AUTO_GLZ },
  { vmId: "sp-off", width: 640, height: 480, compression: ImageCompression.IMAGE_COMPRESSION_OFF },
];

describe.skipIf(!hasKvm || !hasSpicy)("spicy-screenshot against the agent's SPICE server on real KVM", () => {
  let agent: RunningAgent;
  let pki: TestPki;
  let vms: VmServiceClient;
  let display: DisplayServiceClient;
  let port = 0;
  let tlsPort = 0;
  const work = tempDir("spice-e2e");
  const shots = new Map<string, Buffer>();
  const ticketOf = (vmId: string) => `ticket-${vmId}-0123`;
  const out = (name: string) => path.join(work, `${name}.ppm`);

  beforeAll(async () => {
    pki = makePki(tempDir("pki"));
    // The certificate file carries its chain, so the agent can hand out the CA (GetDisplayConnection).
    const chain = path.join(pki.dir, "server-chain.crt");
    writeFileSync(chain, Buffer.concat([readFileSync(pki.serverCert), readFileSync(pki.caCert)]));
    agent = await startAgent([
      "--tls-cert", chain, "--tls-key", pki.serverKey, "--tls-ca", pki.caCert,
      "--spice", "127.0.0.1:0", "--spice-tls-port", "0", "--spice-image-compression", "quic",
    ]);
    const creds = grpc.credentials.createSsl(readFileSync(pki.caCert), readFileSync(pki.clientKey), readFileSync(pki.clientCert));
    vms = new VmServiceClient(agent.address!, creds);
    display = new DisplayServiceClient(agent.address!, creds);
    await Promise.all(
      CASES.map(async (c) => {
        await createVm(vms, c.vmId, demoSpec(c.vmId, { display: { width: c.width, height: c.height }, imageCompression: c.compression }));
        const con = attachConsole(vms, c.vmId);
        await con.waitFor("qumra demo guest", 60_000);
        con.close();
        await call(vms, vms.pauseVm, { vmId: c.vmId });
        const shot = await call(display, display.screenshot, { vmId: c.vmId, format: ScreenshotFormat.SCREENSHOT_FORMAT_RAW });
        expect([shot.width, shot.height]).toEqual([c.width, c.height]);
        shots.set(c.vmId, Buffer.from(shot.data));
        // A screen of one colour would prove little about the codecs.
        expect(new Set(new Uint32Array(shot.data.buffer, shot.data.byteOffset, shot.data.byteLength / 4)).size).toBeGreaterThan(2);
        await call(display, display.setDisplayTicket, { vmId: c.vmId, ticket: ticketOf(c.vmId), expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
      }),
    );
    const conn = await call(display, display.getDisplayConnection, { vmId: CASES[0].vmId });
    port = conn.port;
    tlsPort = conn.tlsPort;
    expect(port).toBeGreaterThan(0);
    expect(tlsPort).toBeGreaterThan(0);
    expect(conn.caPem).toContain("BEGIN CERTIFICATE");
  }, 180_000);

  afterAll(async () => {
    if (vms) await Promise.all(CASES.map((c) => call(vms, vms.deleteVm, { vmId: c.vmId, force: true }).catch(() => undefined)));
    vms?.close();
    display?.close();
    await agent?.stop();
    if (agent) cleanup(agent.stateDir, agent.runtimeDir);
    cleanup(work);
    if (pki) cleanup(pki.dir);
  });

  const expectSame = (vmId: string, file: string, c: Case) => {
    const ppm = readPpm(file);
    expect([ppm.width, ppm.height]).toEqual([c.width, c.height]);
    expect(firstRgbDifference(ppm, rgbOfBgrx(c.width, c.height, shots.get(vmId)!))).toBeUndefined();
  };

  it.each(CASES.map((c) => ({ ...c, mode: ImageCompression[c.compression] })))("$vmId ($width x $height, $mode): the PPM equals the raw screenshot", async (c) => {
    const r = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", ticketOf(c.vmId), "-o", out(c.vmId)]);
    expect(r.code, r.output).toBe(0);
    console.log(`spicy-screenshot ${c.vmId}: ${r.ms.toFixed(0)} ms`);
    expectSame(c.vmId, out(c.vmId), c);
  });

  it("through the TLS port, trusting the agent's CA", async () => {
    const c = CASES[2];
    const r = await runSpicy(["-h", "127.0.0.1", "-s", String(tlsPort), "-w", ticketOf(c.vmId), "-o", out("tls")], { SSL_CERT_FILE: pki.caCert });
    expect(r.code, r.output).toBe(0);
    expectSame(c.vmId, out("tls"), c);
    // Without the CA the handshake fails: the client verifies the agent's certificate.
    const untrusted = await runSpicy(["-h", "127.0.0.1", "-s", String(tlsPort), "-w", ticketOf(c.vmId), "-o", out("tls-untrusted")], { SSL_CERT_FILE: "/nonexistent" });
    expect(untrusted.code).not.toBe(0);
  });

  it("a wrong ticket is refused, with a DISPLAY_CLIENT_REFUSED event naming the reason", async () => {
    const c = CASES[0];
    const events = watch(vms, { vmId: c.vmId }, (es) => es.some((e) => e.type === VmEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_REFUSED));
    // A wrong ticket names no VM (the ticket is what picks it), so it is refused with a log line only.
    const r = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", "not-the-ticket", "-o", out("wrong")]);
    expect(r.code).not.toBe(0);
    await waitForLog(agent, /"reason":"wrong ticket".*"SPICE client refused"|"SPICE client refused".*"reason":"wrong ticket"/);
    // An expired ticket names its VM: that VM gets the event.
    await call(display, display.setDisplayTicket, { vmId: c.vmId, ticket: "short-lived-1", expiresInS: 1, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
    await new Promise((res) => setTimeout(res, 1200));
    const expired = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", "short-lived-1", "-o", out("expired")]);
    expect(expired.code).not.toBe(0);
    const seen = await events;
    expect(seen.find((e) => e.type === VmEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_REFUSED)?.reason).toMatch(/ticket expired/);
    await call(display, display.setDisplayTicket, { vmId: c.vmId, ticket: ticketOf(c.vmId), expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
  });

  it("a cleared ticket refuses new links", async () => {
    const c = CASES[1];
    await call(display, display.setDisplayTicket, { vmId: c.vmId, ticket: "", expiresInS: 0, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
    const r = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", ticketOf(c.vmId), "-o", out("cleared")]);
    expect(r.code).not.toBe(0);
    await call(display, display.setDisplayTicket, { vmId: c.vmId, ticket: ticketOf(c.vmId), expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
    const again = await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", ticketOf(c.vmId), "-o", out("cleared-again")]);
    expect(again.code, again.output).toBe(0);
  });

  /** A Node client's session: main channel linked, INIT read; returns the channel and the session id. */
  const openSession = async (vmId: string): Promise<{ main: TestChannel; sessionId: number }> => {
    const main = await link({ port, channelType: CHANNEL.main, ticket: ticketOf(vmId), channelCaps: capsWords([MAIN_CAP.NAME_AND_UUID]) });
    expect(main.linkResult).toBe(0);
    const init = await main.until(MSG.MAIN_INIT);
    return { main, sessionId: init.body.readUInt32LE(0) };
  };
  /** The image types of the DRAW_COPYs of a display channel's first frame (up to its MARK). */
  const firstFrameImageTypes = async (vmId: string, sessionId: number, glzWindow: number): Promise<number[]> => {
    const d = await link({ port, channelType: CHANNEL.display, connectionId: sessionId, ticket: ticketOf(vmId) });
    expect(d.linkResult).toBe(0);
    d.send(MSGC.DISPLAY_INIT, new Writer(14).u8(1).u64(0n).u8(0).i32(glzWindow).done());
    const types: number[] = [];
    for (;;) {
      const m = await d.next();
      if (m.type === MSG.DISPLAY_DRAW_COPY) types.push(m.body[57 + 8]);
      if (m.type === MSG.DISPLAY_MARK) break;
    }
    d.close();
    return types;
  };

  it("GLZ only to a client that keeps a GLZ window: a zero window (spice-html5) gets LZ", async () => {
    const { main, sessionId } = await openSession("sp-glz");
    expect(await firstFrameImageTypes("sp-glz", sessionId, 0)).toEqual([101]);
    expect(await firstFrameImageTypes("sp-glz", sessionId, 3_145_728)).toEqual([102]);
    main.close();
  });

  it("a connected client shows in GetVm's spice_clients; NAME and UUID, PING and the channel list on the main channel", async () => {
    const { main, sessionId } = await openSession("sp-off");
    const name = await main.until(MSG.MAIN_NAME);
    expect(name.body.subarray(4).toString()).toBe("sp-off\0");
    main.send(MSGC.MAIN_ATTACH_CHANNELS);
    const list = await main.until(MSG.MAIN_CHANNELS_LIST);
    expect([...list.body]).toEqual([3, 0, 0, 0, 2, 0, 3, 0, 4, 0]);
    const vm = await call(vms, vms.getVm, { vmId: "sp-off" });
    expect(vm.spiceClients).toHaveLength(1);
    expect(vm.spiceClients[0]).toMatchObject({ sessionId, transport: "tcp", channels: ["main"] });
    expect(vm.spiceClients[0].peer).toMatch(/^127\.0\.0\.1:\d+$/);
    const cli = await runCli(["--host", agent.address!, "--tls-ca", pki.caCert, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "vm", "get", "sp-off"]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(new RegExp(`spice clients: +127\\.0\\.0\\.1:\\d+ tcp session ${sessionId} since \\S+ \\[main\\]`));
    main.close();
    await main.closed();
    await expect.poll(async () => (await call(vms, vms.getVm, { vmId: "sp-off" })).spiceClients.length).toBe(0);
  });

  it("a second client of a VM replaces the first (DISCONNECTING, then closed); the second keeps working", async () => {
    const first = await openSession("sp-lz");
    const second = await openSession("sp-lz");
    await first.main.until(MSG.DISCONNECTING);
    await first.main.closed();
    expect(await firstFrameImageTypes("sp-lz", second.sessionId, 3_145_728)).toEqual([101]);
    const vm = await call(vms, vms.getVm, { vmId: "sp-lz" });
    expect(vm.spiceClients.map((c) => c.sessionId)).toEqual([second.sessionId]);
    // The replaced session's id no longer links channels.
    const stale = await link({ port, channelType: CHANNEL.display, connectionId: first.sessionId, ticket: ticketOf("sp-lz") });
    expect(stale.linkResult).toBe(8);
    second.main.close();
  });

  it.skipIf(!hasSpiceGlib)("spice-gtk's inputs channel drives the guest: keys as set-1 bytes, the absolute pointer with buttons, relative motion through the PS/2 mouse in server mode", async () => {
    const vmId = "sp-auto";
    await call(vms, vms.resumeVm, { vmId });
    const con = attachConsole(vms, vmId);
    try {
      const mark = con.text().length;
      // 'a', then Up (0x148: spice-gtk's extended-key form, sent as E0 48 / E0 C8), then pointer moves.
      const r = await runSpiceInput("127.0.0.1", port, ticketOf(vmId), ["key:0x1e", "key:0x148", "position:100,50,0", "press:1,1", "release:1,0", "mode:1", "sleep:500", "motion:5,-3,0", "motion:-600,20,1"]);
      expect(r.code, r.output).toBe(0);
      for (const code of ["0x1e", "0x9e", "0xe0", "0x48", "0xc8"]) await con.waitFor(new RegExp(`kbd ${code}`, "i"), 20_000, mark);
      expect([...con.text().slice(mark).matchAll(/kbd (0x[0-9a-f]+)/gi)].map((m) => m[1].toLowerCase())).toEqual(["0x1e", "0x9e", "0xe0", "0x48", "0xe0", "0xc8"]);
      // The absolute pointer (client mode) with the left button pressed and released, then relative
      // motion through the PS/2 mouse (a large one split into packets: the guest sees their sum).
      await con.waitFor(/mouse -\d+ 20 1\n/, 20_000, mark);
      const after = con.text().slice(mark);
      expect([...after.matchAll(/ptr (\d+) (\d+) (\d+)/g)].map((m) => m[0]).slice(-3)).toEqual(["ptr 100 50 0", "ptr 100 50 1", "ptr 100 50 0"]);
      const motions = [...after.matchAll(/mouse (-?\d+) (-?\d+) (\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
      expect(motions[0]).toEqual([5, -3, 0]);
      const big = motions.slice(1);
      expect([big.reduce((n, m) => n + m[0], 0), big.reduce((n, m) => n + m[1], 0), big.length > 1, big.every((m) => m[2] === 1)]).toEqual([-600, 20, true, true]);
    } finally {
      con.close();
      await call(vms, vms.pauseVm, { vmId });
    }
  });

  it("the CLI sets a random ticket and hands out the connection: spice+tls:// and a .vv that spicy can use", async () => {
    const vmId = "sp-lz";
    const cli = (...args: string[]) => runCli(["--host", agent.address!, "--tls-ca", pki.caCert, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "--json", ...args]);
    const set = await cli("display", "ticket", vmId, "--random", "--ttl", "600");
    expect(set.code, set.stderr).toBe(0);
    const { ticket } = JSON.parse(set.stdout) as { ticket: string };
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const vv = path.join(work, "sp-lz.vv");
    const conn = await cli("display", "connect", vmId, "--vv", vv);
    expect(conn.code, conn.stderr).toBe(0);
    expect(JSON.parse(conn.stdout)).toMatchObject({ uri: `spice+tls://127.0.0.1:${tlsPort}`, port, tlsPort, ticketSet: true, vvFile: vv });
    const file = readFileSync(vv, "utf8");
    expect(file).toContain(`password=${ticket}\n`);
    expect(file).toContain(`tls-port=${tlsPort}\n`);
    // The .vv's ticket is the one the server takes.
    expect((await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", ticket, "-o", out("cli-ticket")])).code).toBe(0);
    // Clearing it: the CLI says so and new links are refused.
    const cleared = await runCli(["--host", agent.address!, "--tls-ca", pki.caCert, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "display", "ticket", vmId]);
    expect(cleared.stdout).toMatch(/ticket cleared/);
    expect((await runSpicy(["-h", "127.0.0.1", "-p", String(port), "-w", ticket, "-o", out("cli-cleared")])).code).not.toBe(0);
    await call(display, display.setDisplayTicket, { vmId, ticket: ticketOf(vmId), expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
  });

  it("a session ends when its VM stops: DISCONNECTING, then a DISPLAY_CLIENT_DISCONNECTED event", async () => {
    const vmId = "sp-off";
    const { main } = await openSession(vmId);
    const events = watch(vms, { vmId }, (es) => es.some((e) => e.type === VmEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_DISCONNECTED && /stopped/.test(e.reason)));
    await call(vms, vms.stopVm, { vmId, force: true, timeoutMs: 0 });
    await main.until(MSG.DISCONNECTING);
    await main.closed();
    expect((await events).at(-1)?.reason).toMatch(/the VM is stopped/);
  });
});
