// The qemu yardstick of `qumra bench migrate`, for real: two Debian qemu processes, a 64 MiB firmware-only
// guest migrated over loopback, and qemu's figures checked for plausibility (no timed assertions).
import { describe, expect, it } from "vitest";
import { measureQemuMigration } from "../bench/migrate-qemu.js";
import { qemuMissing } from "../bench/spice-qemu.js";
import { Teardown, withTeardown } from "../bench/teardown.js";

const MiB = 1024 * 1024;
const PAGE = 4096;
const missing = qemuMissing();
if (missing) console.warn(`\n*** ${missing}: the qemu migration yardstick test is SKIPPED ***\n`);

describe("measureQemuMigration", () => {
  it("refuses a memory size qemu would not take as it is, before starting anything", async () => {
    const teardown = new Teardown();
    await expect(measureQemuMigration(1000, teardown)).rejects.toThrow(/whole number of MiB, at least 16 MiB/);
    await expect(measureQemuMigration(64 * MiB + 1, teardown)).rejects.toThrow(RangeError);
    await expect(measureQemuMigration(Number.NaN, teardown)).rejects.toThrow(RangeError);
    await teardown.run();
  });

  it.skipIf(missing !== undefined)("migrates a 64 MiB SeaBIOS guest between two qemu processes and reports qemu's figures", async () => {
    const memoryBytes = 64 * MiB;
    const r = await withTeardown((teardown) => measureQemuMigration(memoryBytes, teardown));
    expect(["kvm", "tcg"]).toContain(r.accel);
    expect(r.memoryBytes).toBe(memoryBytes);
    expect(r.totalMs).toBeGreaterThan(0);
    expect(r.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(r.downtimeMs).toBeLessThanOrEqual(r.totalMs);
    expect(r.setupMs).toBeGreaterThanOrEqual(0);
    expect(r.wallMs).toBeGreaterThan(0);
    expect(r.mbps).toBeGreaterThan(0);
    // qemu's RAM is the guest's plus a little firmware and option ROM space.
    expect(r.ramTotalBytes).toBeGreaterThanOrEqual(memoryBytes);
    expect(r.ramTotalBytes).toBeLessThan(memoryBytes + 16 * MiB);
    // Every page went at least once, whole (SeaBIOS wrote some) or as a zero page (the rest).
    expect(r.normalBytes).toBeGreaterThan(0);
    expect(r.duplicatePages).toBeGreaterThan(0);
    expect(r.duplicatePages * PAGE + r.normalBytes).toBeGreaterThanOrEqual(r.ramTotalBytes);
    // Zero pages cost a few bytes each, so an idle guest sends far less than its memory, never much more.
    expect(r.transferredBytes).toBeGreaterThanOrEqual(r.normalBytes);
    expect(r.transferredBytes).toBeLessThanOrEqual(memoryBytes * 1.1);
  });
});
