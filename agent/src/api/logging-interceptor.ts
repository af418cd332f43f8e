// One log line per RPC: method, peer, caller identity and role, status and duration.
import * as grpc from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import type { Logger } from "../logger.js";

export type DescribeCaller = (call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate }; getPeer(): string }) => { identity: string; role?: string };

/** Told of every answered call (the metrics' RPC counters): its path, status code and duration. */
export type RpcObserver = (path: string, code: number, seconds: number) => void;

export function loggingInterceptor(logger: Logger, describeCaller?: DescribeCaller, observe?: RpcObserver): grpc.ServerInterceptor {
  return (method, call) => {
    const started = process.hrtime.bigint();
    const caller = describeCaller?.(call);
    const responder = new grpc.ResponderBuilder()
      .withSendStatus((status, next) => {
        const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
        const fields = {
          method: method.path,
          // grpc-js names no peer on a unix socket; the identity already says which socket it was.
          peer: caller?.identity.startsWith("unix:") ? "unix" : call.getPeer(),
          ...(caller ? { identity: caller.identity, role: caller.role ?? "none" } : {}),
          status: grpc.status[status.code] ?? status.code,
          duration_ms: Math.round(durationMs * 1000) / 1000,
        };
        if (status.code === grpc.status.OK) logger.info(fields, "rpc");
        else logger.info({ ...fields, details: status.details }, "rpc");
        observe?.(method.path, status.code, durationMs / 1000);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
