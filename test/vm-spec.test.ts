// VM spec validation and guest RAM layout (unit tests, no KVM).
import { describe, it, expect } from "vitest";
import { demoMinimumMemory, guestRamRanges, inGuestRam, validateSpec, validateVmId, type SpecRequest } from "../agent/src/vm/spec.js";
import { QumraError } from "../agent/src/errors.js";

const GIB = 2 ** 30;
const limits = { maxVcpus: 8, availableMemory: 16 * GIB };
const sha = () => "0".repeat(64);
const flat = (over: Partial<{ loadAddress: number; entryAddress: number; mode: "long" | "protected"; size: number }> = {}): SpecRequest => ({
  name: "",
  vcpus: 0,
  memoryBytes: 0,
  boot: { kind: "flat", image: new Uint8Array(over.size ?? 16), loadAddress: over.loadAddress ?? 0, entryAddress: over.entryAddress ?? 0, mode: over.mode ?? "long" },
  labels: {},
});
const fails = (req: SpecRequest) => {
  try {
    validateSpec("vm", req, limits, sha);
  } catch (err) {
    return `${(err as QumraError).kind}: ${(err as Error).message}`;
  }
  return "ok";
};

describe("VM specs", () => {
  it("fills in defaults", () => {
    const { spec, image } = validateSpec("vm1", flat(), limits, sha);
    expect(spec).toMatchObject({ name: "vm1", vcpus: 1, memoryBytes: 64 << 20, display: { width: 1024, height: 768 } });
    expect(spec.boot).toMatchObject({ kind: "flat", loadAddress: 0x100000, entryAddress: 0x100000, mode: "long", imageBytes: 16 });
    expect(image).toHaveLength(16);
  });

  it("lays guest RAM out around the 3–4 GiB hole", () => {
    expect(guestRamRanges(64 << 20)).toEqual([[0, 64 << 20]]);
    expect(guestRamRanges(5 * GIB)).toEqual([[0, 3 * GIB], [4 * GIB, 6 * GIB]]);
    expect(inGuestRam(5 * GIB, 4 * GIB + 100, 8)).toBe(true);
    expect(inGuestRam(5 * GIB, 3.5 * GIB, 8)).toBe(false);
    expect(inGuestRam(5 * GIB, 3 * GIB - 4, 8)).toBe(false);
  });

  it.each([
    [{ ...flat(), vcpus: 9 }, /^resource-exhausted: spec.vcpus 9/],
    [{ ...flat(), memoryBytes: 17 * GIB }, /^resource-exhausted: spec.memory_bytes/],
    [{ ...flat(), memoryBytes: 4097 }, /^invalid-argument: spec.memory_bytes 4097/],
    [{ ...flat(), name: "a b" }, /^invalid-argument: spec.name 'a b'/],
    [{ ...flat(), display: { width: 5000, height: 100 } }, /^invalid-argument: spec.display 5000x100/],
    [{ ...flat(), boot: undefined }, /^invalid-argument: spec.boot is missing/],
    [flat({ size: 0 }), /^invalid-argument: spec.flat_image.image is empty/],
    [flat({ loadAddress: 0x100001 }), /not page-aligned/],
    [flat({ loadAddress: 0x1000 }), /below 0x100000: in long mode/],
    [flat({ loadAddress: 0x1000, mode: "protected" }), /below 0xa0000: the GDT/],
    [flat({ loadAddress: 64 << 20 }), /is not inside guest RAM/],
    [flat({ entryAddress: 0x100010 }), /entry_address 0x100010 is outside the image/],
    [{ ...flat(), labels: { "bad key": "v" } }, /labels key 'bad key'/],
  ])("rejects %#", (req, message) => {
    expect(fails(req as SpecRequest)).toMatch(message);
  });

  it("accepts a protected-mode image at 0xa0000 and validates vm ids", () => {
    expect(fails(flat({ loadAddress: 0xa0000, mode: "protected" }))).toBe("ok");
    expect(() => validateVmId("web-1")).not.toThrow();
    for (const bad of ["", "-x", "Web", "a".repeat(64), "a_b"]) expect(() => validateVmId(bad), bad).toThrow(/vm_id/);
  });
});

describe("demo VM memory", () => {
  const demo = (memoryBytes: number): SpecRequest => ({ name: "", vcpus: 0, memoryBytes, boot: { kind: "demo" }, labels: {} });
  const withDemo = { ...limits, demoImageBytes: 15_480 };
  const result = (req: SpecRequest) => {
    try {
      validateSpec("d", req, withDemo, sha);
      return "ok";
    } catch (err) {
      return `${(err as QumraError).kind}: ${(err as Error).message}`;
    }
  };

  it("must hold the demo image at 1 MiB and its stack: INVALID_ARGUMENT naming the least that does", () => {
    expect(demoMinimumMemory(15_480)).toBe(2 << 20);
    expect(result(demo(1 << 20))).toBe(
      "invalid-argument: spec.memory_bytes 1048576 is too small for the demo guest: its 15480-byte image is loaded at 1 MiB and needs room for its stack; give at least 2097152 (2 MiB)",
    );
    expect(result(demo(2 << 20))).toBe("ok");
  });

  it("is not checked when the image's size is unknown (the helper then decides)", () => {
    expect(() => validateSpec("d", demo(1 << 20), limits, sha)).not.toThrow();
  });
});
