// Promisified gRPC calls for tests.
import * as grpc from "@grpc/grpc-js";

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

export function call<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, request: Req, timeoutMs = 20_000): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

/** Resolves with the gRPC error of a call that must fail. */
export async function callError<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, request: Req): Promise<grpc.ServiceError> {
  try {
    await call(client, method, request);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("the call succeeded but was expected to fail");
}

export function collect<T>(stream: grpc.ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const items: T[] = [];
    stream.on("data", (item: T) => items.push(item));
    stream.on("error", reject);
    stream.on("end", () => resolve(items));
  });
}
