// EventLog.since: which resume points it can serve (unit tests over a real state dir, no KVM).
import { describe, it, expect, afterAll } from "vitest";
import { EventLog } from "../agent/src/vm/event-log.js";
import { cleanup, tempDir } from "./helpers/agent.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const fresh = () => {
  const dir = tempDir("events");
  dirs.push(dir);
  return dir;
};
const event = { type: "NOTICE" as const, vmId: "a", state: "RUNNING" as const, reason: "x" };

describe("EventLog.since", () => {
  it("serves a number it has, and nothing for the last one", () => {
    const log = new EventLog(fresh());
    for (let i = 0; i < 3; i++) log.append(event);
    expect(log.since(1)?.map((e) => e.sequence)).toEqual([2, 3]);
    expect(log.since(3)).toEqual([]);
  });

  it("cannot serve a number beyond the last one (another instance's): undefined, so the watcher resyncs", () => {
    const log = new EventLog(fresh());
    log.append(event);
    expect(log.since(2)).toBeUndefined();
    expect(log.since(1_000_000)).toBeUndefined();
  });

  it("cannot serve numbers of an earlier process; each process has its own instance id", () => {
    const dir = fresh();
    const before = new EventLog(dir);
    before.append(event);
    before.append(event);
    const after = new EventLog(dir);
    expect(after.lastSequence).toBe(2);
    expect(after.since(1)).toBeUndefined();
    expect(after.since(2)).toEqual([]);
    expect(after.instanceId).not.toBe(before.instanceId);
  });
});
