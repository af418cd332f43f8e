// systemd readiness (Type=notify): READY=1 once every listener is up, STOPPING=1 when shutdown begins.
//
// The protocol is one datagram on the unix socket named by NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket). Node has no unix datagram sockets, so the datagram is sent by systemd's own
// `systemd-notify`, which is installed wherever the unit runs and handles both address kinds. It is
// another process, so the unit says NotifyAccess=all and the message carries MAINPID= (this process):
// systemd then knows the agent is the main process whoever sent it. The classic race — systemd-notify
// exiting before systemd has read the datagram, so its pid no longer maps to the unit — is gone since
// systemd 246: systemd-notify waits on a BARRIER=1 (it passes a pipe and waits until the manager closes
// it) unless given --no-block, and this code waits for systemd-notify to exit before going on.
import { spawn } from "node:child_process";
import type { Logger } from "./logger.js";

/** systemd-notify waits for the manager; a manager that never answers must not hold the agent up. */
const NOTIFY_TIMEOUT_MS = 5000;

export interface SystemdNotifier {
  /** READY=1 with MAINPID= and a STATUS= line. */
  ready(status: string): Promise<void>;
  /** STOPPING=1 with a STATUS= line. */
  stopping(status: string): Promise<void>;
}

/**
 * The notifier for this process: a no-op without NOTIFY_SOCKET. The variable is taken out of the
 * environment, so helpers and other children never see (or talk to) the agent's notify socket.
 */
export function systemdNotifier(logger: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier {
  const socket = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  if (!socket) return { ready: async () => {}, stopping: async () => {} };
  const log = logger.child({ component: "sd-notify", notify_socket: socket });
  const send = (args: string[]): Promise<void> =>
    new Promise((resolve) => {
      const child = spawn("systemd-notify", args, { env: { ...env, NOTIFY_SOCKET: socket }, stdio: ["ignore", "ignore", "pipe"], timeout: NOTIFY_TIMEOUT_MS });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("error", (err) => {
        log.warn({ err }, "cannot run systemd-notify (package systemd): systemd is not told the agent's state");
        resolve();
      });
      child.once("exit", (code, signal) => {
        if (code === 0) log.debug({ args }, "systemd notified");
        else log.warn({ args, code, signal, stderr: stderr.trim() }, "systemd-notify failed");
        resolve();
      });
    });
  return {
    ready: (status) => send(["--ready", `--pid=${process.pid}`, `--status=${status}`]),
    // Plain assignments: --stopping exists only in newer systemd-notify versions.
    stopping: (status) => send([`STATUS=${status}`, "STOPPING=1"]),
  };
}
