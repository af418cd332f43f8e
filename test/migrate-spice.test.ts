// A SPICE client follows a migrating VM: spice-gtk (SpiceClientGLib through Debian's python3) watching
// the VM on the source agent gets MIGRATE_SWITCH_HOST and links to the destination agent's SPICE server
// with the ticket it holds (the migration carried the ticket over).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { VmServiceClient, VmEventType, MigrationPhase, type MigrationProgress } from "../agent/src/gen/qumra/v1/vm.js";
import { DisplayServiceClient, TicketExpiry } from "../agent/src/gen/qumra/v1/display.js";
import { startAgent, cleanup, killHelpersOf, type RunningAgent } from "./helpers/agent.js";
import { call, collect } from "./helpers/grpc.js";
import { hasKvm } from "./helpers/kvm.js";
import { hasSpiceGlib } from "./helpers/spice-tools.js";
import { createVm, demoSpec, watch as watchEvents } from "./helpers/vm.js";
import { watch as watchScreen } from "../bench/spice-client.js";
import { Teardown } from "../bench/teardown.js";

if (!hasSpiceGlib) console.warn("SKIPPED: SpiceClientGLib (gir1.2-spiceclientglib-2.0, python3-gi) is not installed");

describe.skipIf(!hasKvm || !hasSpiceGlib)("a SPICE client follows its VM to the destination", () => {
  let a: RunningAgent;
  let b: RunningAgent;
  const teardown = new Teardown();

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgent(["--spice", "127.0.0.1:0"]), startAgent(["--spice", "127.0.0.1:0"])]);
  });
  afterAll(async () => {
    await teardown.run();
    for (const agent of [a, b]) {
      await agent.stop();
      killHelpersOf(agent.runtimeDir);
      cleanup(agent.stateDir, agent.runtimeDir);
    }
  });

  it("spice-gtk gets the switch and links to the destination with the same ticket", async () => {
    const srcVms = new VmServiceClient(`unix:${a.socket}`, grpc.credentials.createInsecure());
    const srcDisplay = new DisplayServiceClient(`unix:${a.socket}`, grpc.credentials.createInsecure());
    const dstVms = new VmServiceClient(`unix:${b.socket}`, grpc.credentials.createInsecure());
    const dstDisplay = new DisplayServiceClient(`unix:${b.socket}`, grpc.credentials.createInsecure());
    teardown.add("clients", () => [srcVms, srcDisplay, dstVms, dstDisplay].forEach((c) => c.close()));
    await createVm(srcVms, "seen", demoSpec("seen", { display: { width: 640, height: 480 } }));
    const ticket = randomBytes(12).toString("base64url");
    await call(srcDisplay, srcDisplay.setDisplayTicket, { vmId: "seen", ticket, expiresInS: 600, onExpiry: TicketExpiry.TICKET_EXPIRY_KEEP });
    const at = await call(srcDisplay, srcDisplay.getDisplayConnection, { vmId: "seen" });
    const viewer = await watchScreen(at.host, at.port, ticket, teardown);
    expect(viewer.ready.width).toBe(640);

    const arrived = watchEvents(dstVms, {}, (evs) => evs.some((e) => e.vmId === "seen" && e.type === VmEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_CONNECTED), 60_000);
    const last = (await collect<MigrationProgress>(srcVms.migrateVm({ vmId: "seen", destination: `unix:${b.socket}`, tls: undefined, maxDowntimeMs: 0, maxBandwidthBytesPerSecond: 0n, maxRounds: 0 }))).at(-1)!;
    expect(last.phase).toBe(MigrationPhase.MIGRATION_PHASE_COMPLETED);
    const there = await call(dstDisplay, dstDisplay.getDisplayConnection, { vmId: "seen" });
    expect(last.destinationDisplay).toMatchObject({ host: there.host, port: there.port });
    // The ticket came along, and the client used it to link there on its own.
    expect(there.ticketSet).toBe(true);
    expect(there.vv).toContain(`password=${ticket}`);
    const connected = (await arrived).find((e) => e.vmId === "seen" && e.type === VmEventType.VM_EVENT_TYPE_DISPLAY_CLIENT_CONNECTED)!;
    expect(connected.reason).toMatch(/127\.0\.0\.1/);
    expect((await call(dstVms, dstVms.getVm, { vmId: "seen" })).spiceClients.length).toBe(1);
    await viewer.close();
    await call(dstVms, dstVms.deleteVm, { vmId: "seen", force: true });
  });
});
