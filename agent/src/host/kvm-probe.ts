// KVM facts read from /dev/kvm by the native helper (`qumra-vmm --probe` prints JSON).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync } from "node:fs";

const run = promisify(execFile);

export interface KvmFacts {
  available: boolean;
  error: string;
  device: string;
  apiVersion: number;
  maxVcpus: number;
  recommendedVcpus: number;
  module: string;
  capabilities: { name: string; id: number; value: number }[];
  /** The VM state format the helper writes and reads (0 from helpers before it). */
  stateFormat: number;
  /** The host KVM's CPU feature summary (native/vmstate.h), checked against a snapshot's. */
  cpuFeatures: number[];
}

export async function probeKvm(vmmPath: string, device = "/dev/kvm"): Promise<KvmFacts> {
  const absent = (error: string): KvmFacts => ({
    available: false, error, device, apiVersion: 0, maxVcpus: 0, recommendedVcpus: 0, module: "", capabilities: [], stateFormat: 0, cpuFeatures: [],
  });
  if (!existsSync(vmmPath)) return absent(`the qumra-vmm helper is not built (${vmmPath} missing): run npm run build`);
  try {
    const { stdout } = await run(vmmPath, ["--probe", "--device", device], { timeout: 10_000 });
    const facts = JSON.parse(stdout) as Partial<KvmFacts>;
    return { ...absent(""), ...facts, capabilities: facts.capabilities ?? [], cpuFeatures: facts.cpuFeatures ?? [] };
  } catch (err) {
    return absent(`probing ${device} with ${vmmPath} failed: ${(err as Error).message}`);
  }
}
