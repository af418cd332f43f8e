// Per-VM display series (labels vm_id, name): updates, rects and encoded bytes by codec over every
// viewer the VM's display had (gRPC, SPICE, WebSocket), the frame rate now and the viewers attached.
// Rebuilt at each scrape from the domain's totals, which go when the VM is deleted.
import { Counter, Gauge, type Registry } from "prom-client";
import type { DisplayTotals } from "../display/display-totals.js";
import { RECT_CODECS } from "../display/types.js";
import type { VmReading } from "./vm-readings.js";

type VmLabel = "vm_id" | "name";

export class DisplayMetrics {
  private readonly viewers: Gauge<VmLabel>;
  private readonly updates: Counter<VmLabel>;
  private readonly rects: Counter<VmLabel | "codec">;
  private readonly bytes: Counter<VmLabel | "codec">;
  private readonly fps: Gauge<VmLabel>;

  constructor(registry: Registry, private readonly totalsOf: (vmId: string) => DisplayTotals | undefined) {
    const registers = [registry];
    this.viewers = new Gauge({ name: "qumra_vm_display_viewers", help: "Display viewers attached to the VM now (gRPC StreamDisplay, SPICE display channels, WebSocket)", labelNames: ["vm_id", "name"], registers });
    this.updates = new Counter({ name: "qumra_vm_display_updates_total", help: "Display updates sent to the VM's viewers, all viewers together", labelNames: ["vm_id", "name"], registers });
    this.rects = new Counter({ name: "qumra_vm_display_rects_total", help: "Display rectangles sent, by codec (raw, quic, lz, glz)", labelNames: ["vm_id", "name", "codec"], registers });
    this.bytes = new Counter({ name: "qumra_vm_display_encoded_bytes_total", help: "Encoded display bytes sent, by codec (raw, quic, lz, glz)", labelNames: ["vm_id", "name", "codec"], registers });
    this.fps = new Gauge({ name: "qumra_vm_display_fps", help: "Display updates per second over the last 5 s, all viewers together", labelNames: ["vm_id", "name"], registers });
  }

  update(readings: readonly VmReading[]): void {
    for (const m of [this.viewers, this.updates, this.rects, this.bytes, this.fps]) m.reset();
    for (const { record } of readings) {
      const vm = { vm_id: record.vmId, name: record.spec.name };
      const t = this.totalsOf(record.vmId);
      this.viewers.set(vm, t?.viewers ?? 0);
      this.updates.inc(vm, t?.updates ?? 0);
      this.fps.set(vm, t ? t.fps() : 0);
      for (const codec of RECT_CODECS) {
        this.rects.inc({ ...vm, codec }, t?.rects[codec] ?? 0);
        this.bytes.inc({ ...vm, codec }, t?.bytes[codec] ?? 0);
      }
    }
  }
}
