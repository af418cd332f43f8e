// Register conversion between the helper's flat names and the domain's structs (agent/src/vm/registers.ts).
import { describe, expect, it } from "vitest";
import { HELPER_REGISTER_NAMES, type Registers } from "../agent/src/vm/helper-protocol.js";
import { camelCase, registersFromHelper, registersToHelper } from "../agent/src/vm/registers.js";

/** Every register with a distinct value that fits it (flags alternate 0/1, small fields stay small). */
function sampleFlat(): Registers {
  const flat: Registers = {};
  HELPER_REGISTER_NAMES.forEach((name, i) => {
    const field = name.split(".")[1];
    if (["present", "db", "s", "l", "g", "avl", "unusable"].includes(field)) flat[name] = BigInt(i & 1);
    else if (field === "type") flat[name] = BigInt(i % 16);
    else if (field === "dpl") flat[name] = BigInt(i % 4);
    else if (field === "limit" || field === "selector") flat[name] = BigInt(i + 1);
    else flat[name] = 0x1_0000_0000_0000n + BigInt(i);
  });
  return flat;
}

describe("register conversion", () => {
  it("builds the domain structs from the helper's flat names", () => {
    const flat = sampleFlat();
    const { regs, sregs } = registersFromHelper(flat);
    expect(regs.rax).toBe(flat.rax);
    expect(regs.rflags).toBe(flat.rflags);
    expect(Object.keys(regs)).toHaveLength(18);
    expect(sregs.apicBase).toBe(flat.apic_base);
    expect(sregs.efer).toBe(flat.efer);
    expect(sregs.cs.base).toBe(flat["cs.base"]);
    expect(sregs.cs.limit).toBe(Number(flat["cs.limit"]));
    expect(sregs.tr.selector).toBe(Number(flat["tr.selector"]));
    expect(sregs.ldt.type).toBe(Number(flat["ldt.type"]));
    expect(sregs.ss.present).toBe(flat["ss.present"] === 1n);
    expect(typeof sregs.ss.present).toBe("boolean");
    expect(sregs.idt).toEqual({ base: flat["idt.base"], limit: Number(flat["idt.limit"]) });
  });

  it("gives back exactly the helper's names and values", () => {
    const flat = sampleFlat();
    const back = registersToHelper(registersFromHelper(flat));
    expect(Object.keys(back).sort()).toEqual([...HELPER_REGISTER_NAMES].sort());
    expect(back).toEqual(flat);
  });

  it("names only the structs given", () => {
    const { regs, sregs } = registersFromHelper(sampleFlat());
    expect(registersToHelper({})).toEqual({});
    expect(Object.keys(registersToHelper({ regs }))).toEqual(["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"]);
    const special = registersToHelper({ sregs });
    expect(special.rax).toBeUndefined();
    expect(special["gdt.limit"]).toBe(BigInt(sregs.gdt.limit));
    expect(special.apic_base).toBe(sregs.apicBase);
  });

  it("spells the helper's names in camel case", () => {
    expect(camelCase("apic_base")).toBe("apicBase");
    expect(camelCase("cr0")).toBe("cr0");
    expect(camelCase("a_b_c")).toBe("aBC");
  });
});
