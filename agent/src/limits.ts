// The agent's per-VM caps on what clients may hold open, and the bounds on what it buffers for them.
// The caps are flags (config.ts); the buffer sizes are constants here.

export interface ClientLimits {
  /** Console attachments (AttachConsole streams) per VM: --max-consoles-per-vm. */
  maxConsolesPerVm: number;
  /** Display viewers per VM, gRPC StreamDisplay, SPICE and WebSocket together: --max-viewers-per-vm. */
  maxViewersPerVm: number;
  /** Console output kept for one attachment whose reader is behind: --console-backlog. */
  consoleBacklogBytes: number;
}

/** Console output kept for one attachment whose reader is behind; older output is dropped past it. */
export const CONSOLE_BACKLOG_BYTES = 1 << 20;

export const DEFAULT_CLIENT_LIMITS: ClientLimits = { maxConsolesPerVm: 16, maxViewersPerVm: 16, consoleBacklogBytes: CONSOLE_BACKLOG_BYTES };

/** Console messages handed to one attachment's transport and not yet taken by it. */
export const CONSOLE_MESSAGES_IN_FLIGHT = 4;

/** Largest console message sent to an attachment (output waiting is joined up to this, and to a quarter of the backlog). */
export const CONSOLE_MESSAGE_BYTES = 64 << 10;
