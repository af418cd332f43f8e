// One log line per RPC: method, peer, status and duration.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../logger.js";

export function loggingInterceptor(logger: Logger): grpc.ServerInterceptor {
  return (method, call) => {
    const started = process.hrtime.bigint();
    const responder = new grpc.ResponderBuilder()
      .withSendStatus((status, next) => {
        const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
        const fields = {
          method: method.path,
          peer: call.getPeer(),
          status: grpc.status[status.code] ?? status.code,
          duration_ms: Math.round(durationMs * 1000) / 1000,
        };
        if (status.code === grpc.status.OK) logger.info(fields, "rpc");
        else logger.info({ ...fields, details: status.details }, "rpc");
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
