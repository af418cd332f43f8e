// scripts/gen-helper-abi.mjs: the agent's protocol constants, exit statuses, guest ABI and register lists
// come from the C headers; the generator reproduces the built file and stops, naming file and line, on
// anything in those headers it does not understand.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..");
const script = path.join(root, "scripts", "gen-helper-abi.mjs");
const HEADERS = ["proto.h", "control.h", "guest/guest-abi.h", "regs-list.h"];
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Copies the real headers, applies `edit` to one of them and runs the generator on the copy. */
function generate(edit?: { file: string; change: (text: string) => string }): { status: number | null; stderr: string; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qumra-abi-"));
  dirs.push(dir);
  for (const h of HEADERS) cpSync(path.join(root, "native", h), path.join(dir, "native", h));
  if (edit) {
    const file = path.join(dir, "native", edit.file);
    const before = readFileSync(file, "utf8");
    const after = edit.change(before);
    expect(after).not.toBe(before); // the edit must apply
    writeFileSync(file, after);
  }
  const out = path.join(dir, "helper-abi.ts");
  const r = spawnSync(process.execPath, [script, "--native", path.join(dir, "native"), "--out", out], { encoding: "utf8" });
  let output = "";
  try {
    output = readFileSync(out, "utf8");
  } catch {
    /* not written */
  }
  return { status: r.status, stderr: r.stderr, output };
}

function fails(edit: { file: string; change: (text: string) => string }, message: RegExp): void {
  const r = generate(edit);
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toMatch(message);
  expect(r.output).toBe("");
}

describe("gen-helper-abi", () => {
  it("reproduces the file the build generated, one const object per enum", () => {
    const r = generate();
    expect(r.status, r.stderr).toBe(0);
    expect(r.output).toBe(readFileSync(path.join(root, "agent/src/gen/helper-abi.ts"), "utf8"));
    for (const name of ["Proto", "Flags", "MsgType", "EventType", "ErrorCode", "HelperExit", "GuestCommand", "GuestAbi"]) {
      expect(r.output).toContain(`export const ${name} = {`);
    }
  });

  it("follows the headers: a new request, an implicit enum value, a new register", () => {
    const r = generate({ file: "proto.h", change: (t) => t.replace(/(PROTO_RAM_CHECKSUM = 23,.*)\n/, "$1\n\tPROTO_RESIZE,\n") });
    expect(r.status, r.stderr).toBe(0);
    expect(r.output).toMatch(/ {2}RAM_CHECKSUM: 23,\n {2}RESIZE: 24,\n/);
    const regs = generate({ file: "regs-list.h", change: (t) => t.replace("X(efer) X(apic_base)", "X(efer) X(apic_base) X(xcr0)") });
    expect(regs.status, regs.stderr).toBe(0);
    expect(regs.output).toContain(`"efer", "apic_base", "xcr0"] as const`);
  });

  it("stops on a define it cannot evaluate, naming file and line", () => {
    fails({ file: "proto.h", change: (t) => t.replace("#define PROTO_F_TRUNCATED 0x0008", '#define PROTO_F_TRUNCATED "8"') }, /native\/proto\.h:\d+: cannot evaluate "\\?"8\\?""/);
    fails({ file: "guest/guest-abi.h", change: (t) => t.replace("#define QG_CELL_ADDR      0x8000", "#define QG_CELL_ADDR      (QG_NOWHERE + 8)") }, /guest-abi\.h:\d+: "QG_NOWHERE" .* not a constant defined before it/);
    fails({ file: "proto.h", change: (t) => t.replace("#define PROTO_F_REPLY     0x0001", "#define PROTO_F_REPLY     ((uint16_t)1)") }, /cannot evaluate|not a constant/);
  });

  it("stops on a constant outside a define or enum, and on directives it does not know", () => {
    fails({ file: "proto.h", change: (t) => t.replace("/* flags */", "static const int PROTO_F_NEW = 16;") }, /proto\.h:\d+: PROTO_F_NEW is neither a #define nor an enum member/);
    fails({ file: "control.h", change: (t) => t.replace("#define EXIT_USAGE      2", "#if 1\n#define EXIT_USAGE      2\n#endif") }, /control\.h:\d+: cannot parse directive "#if 1"/);
    fails({ file: "control.h", change: (t) => t.replace("#define EXIT_USAGE      2", "#define EXIT_USAGE      2\n#define MAX_CLIENTS 1") }, /control\.h:\d+: define MAX_CLIENTS belongs to no group/);
    fails({ file: "proto.h", change: (t) => t.replace("PROTO_STOP = 6,", "PROTO_STOP : 6,") }, /cannot parse enum member/);
  });

  it("stops on two constants of one enum with the same value", () => {
    fails({ file: "proto.h", change: (t) => t.replace("PROTO_POINTER = 18,", "PROTO_POINTER = 17,") }, /PROTO_POINTER has the value of PROTO_DIRTY/);
    fails({ file: "control.h", change: (t) => t.replace("#define EXIT_INTERNAL   5", "#define EXIT_INTERNAL   4") }, /EXIT_INTERNAL has the value of EXIT_CRASHED/);
  });

  it("stops on register lists that are not plain X(...) entries", () => {
    fails({ file: "regs-list.h", change: (t) => t.replace("X(rax) X(rbx)", "X(rax, 8) X(rbx)") }, /regs-list\.h:\d+: bad entry X\(rax, 8\)/);
    fails({ file: "regs-list.h", change: (t) => t.replace("X(rax) X(rbx)", "X(rax) Y(rbx)") }, /REGS_GENERAL calls Y, not X/);
    fails({ file: "regs-list.h", change: (t) => t.replace("X(seg, dpl, 1, 3)", "X(seg, dpl, 1, 300)") }, /dpl max 300 does not fit 1 bytes/);
    fails({ file: "regs-list.h", change: (t) => t.replace("X(cs) X(ds)", "X(cs) X(cs)") }, /cs twice in REGS_SEGMENTS/);
    fails({ file: "regs-list.h", change: (t) => t.replace(/#define REGS_DTABLES\(X\).*\n/, "") }, /REGS_DTABLES is missing/);
    fails({ file: "regs-list.h", change: (t) => t.replace("#endif", "#define REGS_COUNT 42\n#endif") }, /REGS_COUNT is not one of the register lists/);
  });
});
