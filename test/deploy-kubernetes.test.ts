// deploy/kubernetes: every manifest parses and passes the Kubernetes schema (kubernetes-models), the
// DaemonSet's args are accepted by the agent's real loadConfig, its probes point at --health-listen,
// its hostPath mounts are --state-dir and --runtime-dir at the same paths, /dev/kvm is mounted, and the
// metrics objects scrape the port and scheme the agent serves. Then a real agent runs with the
// container's args (paths and ports moved to temp ones) and its health port answers SERVING.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { Namespace, Service } from "kubernetes-models/v1";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { loadConfig, type AgentConfig } from "../agent/src/config.js";
import { cleanup, repoRoot, startAgent, tempDir, type RunningAgent } from "./helpers/agent.js";
import { makePki, type TestPki } from "./helpers/pki.js";
import { freePort } from "./helpers/ports.js";
import { checkHealth, healthClient } from "./helpers/health.js";

const DIR = path.join(repoRoot, "deploy/kubernetes");
const TLS_DIR = "/etc/qumra/tls";

// Loose shapes of what the checks read; the schema validation is kubernetes-models'.
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: any;
}

function readManifests(): { file: string; doc: Manifest }[] {
  const out: { file: string; doc: Manifest }[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith(".yaml")).sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DIR, file), "utf8"))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      out.push({ file, doc: doc.toJSON() as Manifest });
    }
  }
  return out;
}

const manifests = readManifests();
const only = (kind: string): Manifest => {
  const found = manifests.filter((m) => m.doc.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0].doc;
};
const daemonSet = only("DaemonSet");
const pod = daemonSet.spec.template.spec;
const container = pod.containers.find((c: { name: string }) => c.name === "agent");
const volumeOf = (mountPath: string) => {
  const mount = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === mountPath);
  return mount && pod.volumes.find((v: { name: string }) => v.name === mount.name);
};
const portNamed = (name: string): number => container.ports.find((p: { name: string }) => p.name === name)?.containerPort;

/** The container's args with the TLS Secret's files taken from `pki`. */
const argsWith = (pki: TestPki, args: string[] = container.args): string[] =>
  args.map((a) => a.replace(`${TLS_DIR}/tls.crt`, pki.serverCert).replace(`${TLS_DIR}/tls.key`, pki.serverKey));

describe("deploy/kubernetes manifests", () => {
  let pki: TestPki;
  let config: AgentConfig;
  beforeAll(() => {
    pki = makePki(tempDir("k8s-pki"));
    const loaded = loadConfig(argsWith(pki), {});
    if (loaded === "help") throw new Error("unexpected help");
    config = loaded;
  });
  afterAll(() => cleanup(pki.dir));

  it("are a Namespace, a DaemonSet, a Service and a PodMonitor, all in the namespace, valid by the schema", () => {
    expect(manifests.map((m) => m.doc.kind).sort()).toEqual(["DaemonSet", "Namespace", "PodMonitor", "Service"]);
    const namespace = only("Namespace").metadata.name;
    for (const { file, doc } of manifests.filter((m) => m.doc.kind !== "Namespace")) expect(doc.metadata.namespace, file).toBe(namespace);
    new Namespace(only("Namespace") as any).validate();
    new DaemonSet(daemonSet as any).validate();
    new Service(only("Service") as any).validate();
    new PodMonitor(only("PodMonitor") as any).validate();
  });

  it("the schema check is real: a DaemonSet with a wrongly typed field is refused", () => {
    const broken = structuredClone(daemonSet);
    broken.spec.template.spec.containers[0].ports[0].containerPort = "nine";
    expect(() => new DaemonSet(broken as any).validate()).toThrow();
  });

  it("rolls out only on delete: VMs die with the container", () => {
    expect(daemonSet.spec.updateStrategy).toEqual({ type: "OnDelete" });
    expect(pod.hostPID).toBeUndefined();
    expect(container.resources.requests).toBeDefined();
    expect(container.resources.limits, "a memory limit would OOM-kill VMs").toBeUndefined();
  });

  it("runs the agent with args its loadConfig accepts", () => {
    expect(container.command).toEqual(["node", "/opt/qumra/bin/qumra-agent.js"]);
    expect(config.vmmPath).toBe("/opt/qumra/native/build/qumra-vmm");
    expect(config.unix).toBe(path.join(config.runtimeDir, "qumra.sock"));
  });

  it("mounts --state-dir and --runtime-dir from the host at the same paths, and /dev/kvm as a char device", () => {
    for (const dir of [config.stateDir, config.runtimeDir]) expect(volumeOf(dir)?.hostPath?.path, dir).toBe(dir);
    expect(config.stateDir).toBe("/var/lib/qumra");
    expect(config.runtimeDir).toBe("/run/qumra");
    expect(volumeOf("/dev/kvm")?.hostPath).toEqual({ path: "/dev/kvm", type: "CharDevice" });
    expect(container.securityContext.privileged).toBe(true);
    expect(volumeOf(TLS_DIR)?.secret?.secretName).toBe("qumra-agent-tls");
  });

  it("probes --health-listen with kubelet's gRPC probe (service \"\")", () => {
    expect(config.healthListen).toEqual({ host: "0.0.0.0", port: portNamed("health") });
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe.grpc.port).toBe(config.healthListen!.port);
      expect(probe.grpc.service ?? "").toBe("");
    }
  });

  it("scrapes --metrics where and how the agent serves it (HTTPS: off loopback it needs the certificate)", () => {
    expect(config.metrics?.port).toBe(portNamed("metrics"));
    expect(config.tls).toBeDefined();
    const service = only("Service");
    expect(service.spec.selector).toEqual(daemonSet.spec.selector.matchLabels);
    expect(service.spec.ports).toEqual([{ name: "metrics", port: config.metrics!.port, targetPort: "metrics" }]);
    const monitor = only("PodMonitor");
    expect(monitor.spec.selector.matchLabels).toEqual(daemonSet.spec.selector.matchLabels);
    expect(monitor.spec.podMetricsEndpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics", scheme: "https" })]);
  });
});

describe("a real agent with the DaemonSet's args", () => {
  let pki: TestPki;
  let agent: RunningAgent;
  let ports: { metrics: number; health: number };

  beforeAll(async () => {
    pki = makePki(tempDir("k8s-run-pki"));
    const stateDir = tempDir("state");
    const runtimeDir = tempDir("run");
    ports = { metrics: await freePort(), health: await freePort() };
    const args = argsWith(pki).map((a) =>
      a
        .replace("/var/lib/qumra", stateDir)
        .replace("/run/qumra", runtimeDir)
        .replace("/opt/qumra/", `${repoRoot}/`)
        .replace(":9464", `:${ports.metrics}`)
        .replace(":9465", `:${ports.health}`),
    );
    agent = await startAgent([...args, "--display-workers", "0"], { stateDir, runtimeDir });
  });
  afterAll(async () => {
    await agent?.stop();
    if (agent) cleanup(agent.stateDir, agent.runtimeDir);
    cleanup(pki.dir);
  });

  it("answers SERVING on the health port and serves metrics over HTTPS", async () => {
    const health = healthClient(`127.0.0.1:${ports.health}`);
    expect(await checkHealth(health, "")).toBe("SERVING");
    health.close();
    const status = await new Promise<number>((resolve, reject) =>
      https.get(`https://127.0.0.1:${ports.metrics}/metrics`, { ca: readFileSync(pki.caCert), agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject),
    );
    expect(status).toBe(200);
    expect(agent.socket).toBe(path.join(agent.runtimeDir, "qumra.sock"));
  });
});
