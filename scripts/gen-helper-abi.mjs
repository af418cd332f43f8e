#!/usr/bin/env node
// Generates agent/src/gen/helper-abi.ts from qumra-vmm's C headers: the control protocol
// (native/proto.h), the helper's exit statuses (native/control.h), the guest ABI
// (native/guest/guest-abi.h) and the register names (native/regs-list.h). The agent's constants are
// these and no hand copies, so the two sides cannot drift.
//
// It understands only what those headers use: object-like `#define NAME <integer expression>`, enums
// with integer members, the include guard, #include, and (regs-list.h) X-macro lists. Anything else
// that could hold a constant (another directive, a define it cannot evaluate, a constant of the
// protocol's prefixes outside a define or enum) stops it with the file and line, exit status 1.
//
// Usage: node scripts/gen-helper-abi.mjs [--native DIR] [--out FILE]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

class HeaderError extends Error {}

// ---- reading a header ----

/** The text without comments (newlines kept, so offsets keep their line) and each line's first comment. */
function stripComments(text, file) {
  const comments = new Map();
  let out = "";
  let line = 1;
  for (let i = 0; i < text.length; ) {
    const block = text.startsWith("/*", i);
    if (block || text.startsWith("//", i)) {
      let end = block ? text.indexOf("*/", i + 2) : text.indexOf("\n", i);
      if (block && end < 0) throw new HeaderError(`${file}:${line}: unterminated comment`);
      if (end < 0) end = text.length;
      const body = text.slice(i + 2, end);
      if (!comments.has(line)) comments.set(line, body.replace(/^[\s*]+|[\s*]+$/gm, "").replace(/\s*\n\s*/g, " ").trim());
      out += body.replace(/[^\n]/g, " ") + (block ? "    " : "  ");
      line += body.split("\n").length - 1;
      i = end + (block ? 2 : 0);
    } else {
      if (text[i] === "\n") line++;
      out += text[i++];
    }
  }
  return { code: out, comments };
}

/**
 * A header as its directives and its other code. Defines are {name, params?, body, line, comment};
 * `code` is the text with every directive blanked (offsets still map to lines).
 */
export function readHeader(text, file) {
  const { code: stripped, comments } = stripComments(text, file);
  const defines = [];
  let guard;
  let code = "";
  const lines = stripped.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1;
    let logical = lines[i];
    let span = 1;
    while (/\\\s*$/.test(logical) && i + 1 < lines.length) {
      logical = logical.replace(/\\\s*$/, " ") + lines[++i];
      span++;
    }
    const blank = "\n".repeat(span);
    const trimmed = logical.trim();
    if (!trimmed.startsWith("#")) {
      code += logical + "\n".repeat(span - 1) + "\n";
      continue;
    }
    code += blank;
    const where = `${file}:${first}`;
    let m;
    if ((m = /^#\s*ifndef\s+(\w+)$/.exec(trimmed))) {
      if (guard !== undefined || defines.length) throw new HeaderError(`${where}: only the include guard may be an #ifndef`);
      guard = m[1];
    } else if ((m = /^#\s*define\s+(\w+)$/.exec(trimmed))) {
      if (m[1] !== guard) throw new HeaderError(`${where}: #define ${m[1]} has no value`);
    } else if ((m = /^#\s*define\s+(\w+)\(([^)]*)\)\s*(.*)$/.exec(trimmed))) {
      defines.push({ name: m[1], params: m[2].split(",").map((p) => p.trim()), body: m[3].trim(), line: first, comment: comments.get(first) });
    } else if ((m = /^#\s*define\s+(\w+)\s+(.+)$/.exec(trimmed))) {
      defines.push({ name: m[1], body: m[2].trim(), line: first, comment: comments.get(first) });
    } else if (!/^#\s*(endif|include\s*[<"][^>"]+[>"])$/.test(trimmed)) {
      throw new HeaderError(`${where}: cannot parse directive "${trimmed}"`);
    }
  }
  return { file, defines, code, comments };
}

const lineAt = (text, offset) => text.slice(0, offset).split("\n").length;

/** Enum members {name, expr, block, line, comment} of every `enum { ... };` in the code, and the code without them. */
export function readEnums(header) {
  const members = [];
  let block = 0;
  const rest = header.code.replace(/\benum\s*\w*\s*\{([^}]*)\}\s*;/g, (whole, body, offset) => {
    block++;
    let at = offset + whole.indexOf("{") + 1;
    for (const part of body.split(",")) {
      const line = lineAt(header.code, at + part.search(/\S|$/));
      at += part.length + 1;
      if (!part.trim()) continue;
      const m = /^\s*(\w+)\s*(?:=\s*([^]+?))?\s*$/.exec(part);
      if (!m) throw new HeaderError(`${header.file}:${line}: cannot parse enum member "${part.trim()}"`);
      members.push({ name: m[1], expr: m[2], block, line, comment: header.comments.get(line) });
    }
    return whole.replace(/[^\n]/g, " ");
  });
  if (/\benum\b/.test(rest)) throw new HeaderError(`${header.file}:${lineAt(rest, rest.search(/\benum\b/))}: cannot parse this enum`);
  return { members, rest };
}

// ---- integer expressions ----

const LIMITS = { UINT8_MAX: 0xffn, UINT16_MAX: 0xffffn, UINT32_MAX: 0xffffffffn, UINT64_MAX: 0xffffffffffffffffn };

/** The value of a C integer constant expression (literals, earlier constants, ( ) ~ * + - << >> & |). */
export function evaluate(expr, known, where) {
  const tokens = [];
  const re = /\s*(?:(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|([A-Za-z_]\w*)|(<<|>>|[()+\-*|&~]))/y;
  let m;
  while (re.lastIndex < expr.length && (m = re.exec(expr))) {
    if (m[1] !== undefined) tokens.push({ value: BigInt(m[1]) });
    else if (m[2] !== undefined) {
      const value = known.get(m[2]) ?? LIMITS[m[2]];
      if (value === undefined) throw new HeaderError(`${where}: "${m[2]}" in "${expr}" is not a constant defined before it`);
      tokens.push({ value });
    } else tokens.push({ op: m[3] });
    if (/^\s*$/.test(expr.slice(re.lastIndex))) break;
  }
  if (!/^\s*$/.test(expr.slice(re.lastIndex)) || tokens.length === 0) throw new HeaderError(`${where}: cannot evaluate "${expr}"`);
  let pos = 0;
  const peek = () => tokens[pos]?.op;
  const binary = (ops, next, apply) => () => {
    let left = next();
    while (ops.includes(peek())) left = apply(tokens[pos++].op, left, next());
    return left;
  };
  const primary = () => {
    const t = tokens[pos++];
    if (t?.value !== undefined) return t.value;
    if (t?.op === "-") return -primary();
    if (t?.op === "~") return ~primary();
    if (t?.op === "(") {
      const v = or();
      if (tokens[pos++]?.op !== ")") throw new HeaderError(`${where}: unbalanced parentheses in "${expr}"`);
      return v;
    }
    throw new HeaderError(`${where}: cannot evaluate "${expr}"`);
  };
  const mul = binary(["*"], primary, (_, a, b) => a * b);
  const add = binary(["+", "-"], mul, (op, a, b) => (op === "+" ? a + b : a - b));
  const shift = binary(["<<", ">>"], add, (op, a, b) => (op === "<<" ? a << b : a >> b));
  const and = binary(["&"], shift, (_, a, b) => a & b);
  const or = binary(["|"], and, (_, a, b) => a | b);
  const value = or();
  if (pos !== tokens.length) throw new HeaderError(`${where}: cannot evaluate "${expr}"`);
  if (value < 0n) throw new HeaderError(`${where}: "${expr}" is negative`);
  return value;
}

// ---- the constant headers ----

/**
 * Every constant of a header, sorted into the groups that claim its prefix (first match wins). A
 * constant no group claims, a define that is not a constant, or a claimed prefix appearing in other
 * code is an error.
 */
export function readConstants(header, groups) {
  const { members, rest } = readEnums(header);
  const known = new Map();
  const byGroup = new Map(groups.map((g) => [g.name, []]));
  const place = (c, expr) => {
    const where = `${header.file}:${c.line}`;
    const group = groups.find((g) => g.kind === c.kind && c.name.startsWith(g.prefix));
    if (!group) throw new HeaderError(`${where}: ${c.kind} ${c.name} belongs to no group the generator knows: add one to scripts/gen-helper-abi.mjs`);
    const value = evaluate(expr, known, where);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new HeaderError(`${where}: ${c.name} does not fit a JavaScript number`);
    known.set(c.name, value);
    byGroup.get(group.name).push({ key: c.name.slice(group.prefix.length), value, expr: expr.trim(), comment: c.comment, where });
    return value;
  };
  for (const d of header.defines) {
    if (d.params) throw new HeaderError(`${header.file}:${d.line}: function-like macro ${d.name} is not a constant`);
  }
  // In source order, so an expression may use any constant above it; an enum member without a
  // value is its predecessor's plus one, as in C.
  const items = [...header.defines.map((d) => ({ ...d, kind: "define", expr: d.body })), ...members.map((m) => ({ ...m, kind: "enum" }))];
  items.sort((a, b) => a.line - b.line);
  const lastOfEnum = new Map();
  for (const item of items) {
    const implicit = item.kind === "enum" && item.expr === undefined;
    const expr = implicit ? String(lastOfEnum.has(item.block) ? lastOfEnum.get(item.block) + 1n : 0n) : item.expr;
    const value = place(item, expr);
    if (item.kind === "enum") lastOfEnum.set(item.block, value);
  }
  for (const g of groups) {
    const found = byGroup.get(g.name);
    if (found.length === 0) throw new HeaderError(`${header.file}: no ${g.kind} ${g.prefix}* found for ${g.name}`);
    if (g.distinct) {
      const seen = new Map();
      for (const c of found) {
        if (seen.has(c.value)) throw new HeaderError(`${c.where}: ${g.prefix}${c.key} has the value of ${g.prefix}${seen.get(c.value)}`);
        seen.set(c.value, c.key);
      }
    }
  }
  const prefixes = [...new Set(groups.map((g) => g.prefix))];
  const stray = new RegExp(`\\b(?:${prefixes.join("|")})\\w*`).exec(rest);
  if (stray) throw new HeaderError(`${header.file}:${lineAt(rest, stray.index)}: ${stray[0]} is neither a #define nor an enum member`);
  return byGroup;
}

// ---- regs-list.h ----

const REGISTER_LISTS = {
  REGS_GENERAL: "names",
  REGS_CONTROL: "names",
  REGS_SEGMENTS: "names",
  REGS_SEGMENT_FIELDS: "fields",
  REGS_DTABLES: "names",
  REGS_DTABLE_FIELDS: "fields",
};

/** The X-macro lists of regs-list.h: names, or fields {name, bytes, max}. */
export function readRegisterLists(header) {
  if (header.code.trim()) throw new HeaderError(`${header.file}:${lineAt(header.code, header.code.search(/\S/))}: only X-macro lists belong here`);
  const lists = new Map();
  for (const d of header.defines) {
    const where = `${header.file}:${d.line}`;
    const shape = REGISTER_LISTS[d.name];
    if (!shape || !d.params) throw new HeaderError(`${where}: ${d.name} is not one of the register lists ${Object.keys(REGISTER_LISTS).join(", ")}`);
    if (d.params.length !== (shape === "names" ? 1 : 2)) throw new HeaderError(`${where}: ${d.name} has parameters (${d.params.join(", ")})`);
    const entries = [];
    const re = /\s*(\w+)\s*\(([^()]*)\)/y;
    let m;
    while ((m = re.exec(d.body))) {
      const args = m[2].split(",").map((a) => a.trim());
      if (m[1] !== d.params[0]) throw new HeaderError(`${where}: ${d.name} calls ${m[1]}, not ${d.params[0]}`);
      if (shape === "names") {
        if (args.length !== 1 || !/^[a-z_][a-z0-9_]*$/.test(args[0])) throw new HeaderError(`${where}: bad entry ${m[0].trim()}`);
        entries.push(args[0]);
      } else {
        if (args.length !== 4 || args[0] !== d.params[1] || !/^[a-z_][a-z0-9_]*$/.test(args[1])) throw new HeaderError(`${where}: bad entry ${m[0].trim()}`);
        const bytes = Number(args[2]);
        if (![1, 2, 4, 8].includes(bytes) || args[2] !== String(bytes)) throw new HeaderError(`${where}: ${args[1]} is ${args[2]} bytes: 1, 2, 4 or 8`);
        const max = evaluate(args[3], new Map(), where);
        if (max < 1n || max >= 1n << BigInt(bytes * 8)) throw new HeaderError(`${where}: ${args[1]} max ${args[3]} does not fit ${bytes} bytes`);
        entries.push({ name: args[1], bytes, max });
      }
      if (re.lastIndex === d.body.length) break;
    }
    if (re.lastIndex !== d.body.length || entries.length === 0) throw new HeaderError(`${where}: cannot parse ${d.name} past "${d.body.slice(re.lastIndex).trim().slice(0, 40)}"`);
    const names = entries.map((e) => (typeof e === "string" ? e : e.name));
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new HeaderError(`${where}: ${dup} twice in ${d.name}`);
    lists.set(d.name, entries);
  }
  for (const name of Object.keys(REGISTER_LISTS)) if (!lists.has(name)) throw new HeaderError(`${header.file}: ${name} is missing`);
  return lists;
}

// ---- the TypeScript ----

const doc = (text, indent = "") => (text ? `${indent}/** ${text.replace(/\*\//g, "* /")} */\n` : "");

function constObject(name, summary, constants) {
  let out = doc(summary) + `export const ${name} = {\n`;
  for (const c of constants) {
    const hex = /^0[xX]([0-9a-fA-F]+)[uUlL]*$/.exec(c.expr);
    const literal = hex ? `0x${c.value.toString(16).padStart(hex[1].length, "0")}` : c.value.toString();
    const note = /^\d+[uUlL]*$/.test(c.expr) || hex ? c.comment : [c.comment, `= ${c.expr}`].filter(Boolean).join(" ");
    out += doc(note, "  ") + `  ${c.key}: ${literal},\n`;
  }
  return out + "} as const;\n";
}

const stringList = (name, summary, names) => doc(summary) + `export const ${name} = [${names.map((n) => JSON.stringify(n)).join(", ")}] as const;\n`;

function fieldList(name, summary, fields) {
  const rows = fields.map((f) => `  { name: ${JSON.stringify(f.name)}, bytes: ${f.bytes}, max: 0x${f.max.toString(16)}n },\n`);
  return doc(summary) + `export const ${name} = [\n${rows.join("")}] as const;\n`;
}

const PROTO_GROUPS = [
  { name: "Flags", prefix: "PROTO_F_", kind: "define", distinct: true },
  { name: "EventType", prefix: "PROTO_EV_", kind: "enum", distinct: true },
  { name: "ErrorCode", prefix: "PROTO_E_", kind: "enum", distinct: true },
  { name: "MsgType", prefix: "PROTO_", kind: "enum", distinct: true },
  { name: "Proto", prefix: "PROTO_", kind: "define" },
];
const CONTROL_GROUPS = [{ name: "HelperExit", prefix: "EXIT_", kind: "define", distinct: true }];
const GUEST_GROUPS = [
  { name: "GuestCommand", prefix: "QG_CMD_", kind: "define", distinct: true },
  { name: "GuestAbi", prefix: "QG_", kind: "define" },
];

/** helper-abi.ts for the headers under nativeDir. */
export function generate(nativeDir) {
  const read = (rel) => readHeader(readFileSync(path.join(nativeDir, rel), "utf8"), `native/${rel}`);
  const proto = readConstants(read("proto.h"), PROTO_GROUPS);
  const control = readConstants(read("control.h"), CONTROL_GROUPS);
  const guest = readConstants(read("guest/guest-abi.h"), GUEST_GROUPS);
  const regs = readRegisterLists(read("regs-list.h"));
  return [
    "// Generated by scripts/gen-helper-abi.mjs from native/proto.h, native/control.h,",
    "// native/guest/guest-abi.h and native/regs-list.h (npm run build:abi). Do not edit.",
    "",
    constObject("Proto", "The control protocol's version and sizes (native/proto.h, PROTO_*).", proto.get("Proto")),
    constObject("Flags", "Header flags (PROTO_F_*).", proto.get("Flags")),
    constObject("MsgType", "Request types (PROTO_*); a reply carries its request's type.", proto.get("MsgType")),
    constObject("EventType", "Event types (PROTO_EV_*).", proto.get("EventType")),
    constObject("ErrorCode", "Error reply codes (PROTO_E_*); the reply's `name` is the key.", proto.get("ErrorCode")),
    constObject("HelperExit", "qumra-vmm's exit statuses (native/control.h, EXIT_*).", control.get("HelperExit")),
    constObject("GuestCommand", "Demo guest commands (native/guest/guest-abi.h, QG_CMD_*): the low byte of a command word (arg << 8) | op.", guest.get("GuestCommand")),
    constObject("GuestAbi", "Ports, IRQ and addresses of the guest ABI (native/guest/guest-abi.h, QG_*).", guest.get("GuestAbi")),
    stringList("GP_REGS", "GET_REGS/SET_REGS names of the 64-bit struct kvm_regs members (native/regs-list.h).", regs.get("REGS_GENERAL")),
    stringList("CONTROL_REGS", "Names of the 64-bit struct kvm_sregs members.", regs.get("REGS_CONTROL")),
    stringList("SEGMENTS", "Segments, each named \"<segment>.<field>\" for every SEGMENT_FIELDS entry.", regs.get("REGS_SEGMENTS")),
    fieldList("SEGMENT_FIELDS", "struct kvm_segment: field, size in bytes, largest value.", regs.get("REGS_SEGMENT_FIELDS")),
    stringList("DTABLES", "Descriptor tables, each named \"<table>.<field>\" for every DTABLE_FIELDS entry.", regs.get("REGS_DTABLES")),
    fieldList("DTABLE_FIELDS", "struct kvm_dtable: field, size in bytes, largest value.", regs.get("REGS_DTABLE_FIELDS")),
  ].join("\n");
}

function main(argv) {
  const arg = (flag, fallback) => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] ? path.resolve(argv[i + 1]) : fallback;
  };
  const nativeDir = arg("--native", path.join(repoRoot, "native"));
  const out = arg("--out", path.join(repoRoot, "agent/src/gen/helper-abi.ts"));
  const text = generate(nativeDir);
  let old;
  try {
    old = readFileSync(out, "utf8");
  } catch {
    /* first build */
  }
  if (old !== text) {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, text);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`gen-helper-abi: ${err instanceof HeaderError ? err.message : err.stack}`);
    process.exit(1);
  }
}
