// qumra audit [--follow] [--vm ID] [--tail N]: the agent's audit trail, one line per record.
import type { Command } from "commander";
import { AuditServiceClient, type AuditRecord } from "../gen/qumra/v1/audit.js";
import { clientFor, deadline, describeError, type GlobalOptions } from "./connection.js";
import { fanOut, toJson } from "./fan-out.js";

export function registerAudit(program: Command, globals: () => GlobalOptions): void {
  program
    .command("audit")
    .description("who changed what, and every refused call (admin only)")
    .option("--follow", "keep printing new records as they are written", false)
    .option("--vm <id>", "only the records of this VM")
    .option("--tail <n>", "only the last N retained records", "0")
    .action(async (opts: { follow: boolean; vm?: string; tail: string }) => {
      const options = globals();
      const tail = Number(opts.tail);
      if (!Number.isInteger(tail) || tail < 0) throw new Error(`--tail ${opts.tail}: expected a whole number`);
      const multi = options.host.length > 1;
      await fanOut(
        options,
        (h) =>
          readAudit(h, options, { vmId: opts.vm ?? "", follow: opts.follow, tail }, (r) => {
            console.log(options.json ? toJson(multi ? { host: h, ...r } : r, 0) : `${multi ? `${h}  ` : ""}${renderRecord(r)}`);
          }),
        () => "",
      );
    });
}

function readAudit(host: string, options: GlobalOptions, request: { vmId: string; follow: boolean; tail: number }, onRecord: (r: AuditRecord) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = clientFor(AuditServiceClient, host, options);
    const stream = client.readAudit(request, { deadline: request.follow ? undefined : deadline(options) });
    stream.on("data", onRecord);
    stream.on("error", (err) => {
      client.close();
      reject(Object.assign(err, { message: describeError(err).message }));
    });
    stream.on("end", () => {
      client.close();
      resolve();
    });
  });
}

function renderRecord(r: AuditRecord): string {
  const method = r.method.split("/").pop() ?? r.method;
  const vm = r.vmId ? ` ${r.vmId}` : "";
  const outcome = r.code === "OK" ? "OK" : `${r.code}${r.message ? `: ${r.message}` : ""}`;
  return `${r.time}  ${r.identity} (${r.role})  ${method}${vm}  ${outcome}`;
}
