// AuditService: the audit trail's retained records, then (with follow) new ones as they are written.
import type * as grpc from "@grpc/grpc-js";
import type { AuditServiceServer, AuditRecord as AuditRecordPb, ReadAuditRequest } from "../gen/qumra/v1/audit.js";
import type { AuditLog, AuditRecord } from "../audit/audit-log.js";
import { invalidArgument } from "../errors.js";
import { serverStream } from "./status.js";

const MAX_TAIL = 1_000_000;

export function auditService(audit: AuditLog): AuditServiceServer {
  return {
    readAudit: serverStream(async (request: ReadAuditRequest, call: grpc.ServerWritableStream<ReadAuditRequest, AuditRecordPb>) => {
      if (request.tail > MAX_TAIL) throw invalidArgument(`tail ${request.tail} is over ${MAX_TAIL}`);
      const filter = { vmId: request.vmId || undefined, tail: request.tail || undefined };
      if (!request.follow) {
        for (const r of audit.read(filter)) call.write(toPb(r));
        return;
      }
      const { retained, stop } = audit.readThenFollow(filter, (r) => {
        if (!filter.vmId || r.vm_id === filter.vmId) call.write(toPb(r));
      });
      try {
        for (const r of retained) call.write(toPb(r));
        await new Promise<void>((resolve) => {
          call.once("cancelled", resolve);
          call.once("close", resolve);
        });
      } finally {
        stop();
      }
    }),
  };
}

function toPb(r: AuditRecord): AuditRecordPb {
  return {
    time: r.time,
    identity: r.identity,
    role: r.role,
    peer: r.peer,
    method: r.method,
    vmId: r.vm_id ?? "",
    requestId: r.request_id ?? "",
    code: r.code,
    message: r.message ?? "",
  };
}
