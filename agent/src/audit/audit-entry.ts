// One line of the audit trail (STATE_DIR/audit.log): who called what on which VM, and how it ended.

/** What the authorization layer hands the audit trail; the trail adds the time. */
export interface AuditEntry {
  /** The caller's identity as the agent names it, e.g. "unix:qumra.sock" or "CN=controller-a". */
  identity: string;
  /** The role the caller had for this call ("none" when it had none). */
  role: string;
  /** The transport peer, e.g. "unix" or "10.0.0.7:51234". */
  peer: string;
  /** The full gRPC method path, e.g. "/qumra.v1.VmService/StopVm". */
  method: string;
  vm_id?: string;
  request_id?: string;
  /** The gRPC status name of the reply: "OK", "PERMISSION_DENIED", "NOT_FOUND", … */
  code: string;
  /** The status message of a failed call, for the reader. */
  message?: string;
}

/** Where audit entries go. record() resolves once the entry is on disk (fsynced). */
export interface AuditSink {
  record(entry: AuditEntry): Promise<void>;
}
