// grpc.health.v1 calls for tests, with grpc-js's generic client over the health package's own proto.
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

export const HealthClient = grpc.makeGenericClientConstructor(healthService, "Health");
export type HealthClientInstance = InstanceType<typeof HealthClient>;

export function healthClient(address: string): HealthClientInstance {
  return new HealthClient(address, grpc.credentials.createInsecure());
}

/** Check(service) → "SERVING" | "NOT_SERVING" | …; rejects with the call's error. */
export function checkHealth(client: HealthClientInstance, service = "", timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
}

/** Watch(service): every status it reports, and how the stream ended. */
export function watchHealth(client: HealthClientInstance, service = ""): { statuses: string[]; ended: Promise<grpc.ServiceError | undefined>; cancel: () => void } {
  const statuses: string[] = [];
  const call = client.watch({ service }) as grpc.ClientReadableStream<{ status: string }>;
  call.on("data", (res: { status: string }) => statuses.push(res.status));
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on("error", (err: grpc.ServiceError) => resolve(err));
    call.on("end", () => resolve(undefined));
  });
  return { statuses, ended, cancel: () => call.cancel() };
}

/** Polls until `pred(statuses)` holds or `timeoutMs` passes. */
export async function waitUntil(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
