// The Linux boot milestones `qumra bench boot` times on a serial console, and the clock that notes when
// each first shows up in a console stream that arrives in arbitrary chunks.

export interface Milestone {
  name: string;
  /** Matches within one console line (a milestone never spans a line break). */
  pattern: RegExp;
}

/** In the order a stock x86-64 kernel prints them, ending with the test initramfs's own marker. */
export const BOOT_MILESTONES: readonly Milestone[] = [
  { name: "banner", pattern: /Linux version / },
  // Case matters: "Kernel command line: " (lower-case c) is the later milestone.
  { name: "command line", pattern: /Command line: / },
  { name: "kernel command line", pattern: /Kernel command line: / },
  { name: "memory", pattern: /Memory: \d+K\/\d+K available/ },
  { name: "console", pattern: /printk: console \[ttyS0\] enabled/ },
  { name: "fpu", pattern: /x86\/fpu: x87 FPU will use/ },
  { name: "smp", pattern: /smp: Brought up / },
  { name: "init marker", pattern: /QUMRA-INIT-OK/ },
];

/** The marker the test initramfs (qumra-init.cpio) prints once its /init runs. */
export const INIT_MARKER = BOOT_MILESTONES[BOOT_MILESTONES.length - 1];

/** After a guest halts, how long its last console bytes may still be on their way (another pipe or stream). */
export const CONSOLE_SETTLE_MS = 500;

export class MilestoneClock {
  private buffered = "";
  /** Where the line that was still incomplete at the last feed starts: matching resumes there. */
  private scanFrom = 0;
  private readonly at = new Map<string, number>();

  constructor(private readonly t0: number = Date.now()) {}

  /** Appends console output seen at `now` (ms, same clock as t0) and notes milestones it completes. */
  feed(chunk: string, now: number = Date.now()): void {
    if (!chunk) return;
    this.buffered += chunk;
    const rest = this.buffered.slice(this.scanFrom);
    for (const m of BOOT_MILESTONES) {
      if (!this.at.has(m.name) && m.pattern.test(rest)) this.at.set(m.name, now - this.t0);
    }
    // A pattern that ends in the unfinished last line may still complete with the next chunk.
    const lastBreak = this.buffered.lastIndexOf("\n");
    if (lastBreak >= this.scanFrom) this.scanFrom = lastBreak + 1;
  }

  /** ms since t0 at first sight, per milestone name, in boot order. */
  reached(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of BOOT_MILESTONES) {
      const ms = this.at.get(m.name);
      if (ms !== undefined) out[m.name] = ms;
    }
    return out;
  }

  /** The reached milestone latest in boot order. */
  furthest(): string | undefined {
    let last: string | undefined;
    for (const m of BOOT_MILESTONES) if (this.at.has(m.name)) last = m.name;
    return last;
  }

  has(name: string): boolean {
    return this.at.has(name);
  }

  text(): string {
    return this.buffered;
  }
}
