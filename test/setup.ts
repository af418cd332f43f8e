// Runs before every test file: codec instances in the test processes compile the built module.
import { useNodeCodecModule } from "../agent/src/codec/node-codec-module.js";

useNodeCodecModule();

// Removes the cgroup subtrees of the agents this test file started, once their helpers are gone.
import { afterAll } from "vitest";
import { readdirSync, rmdirSync } from "node:fs";
import path from "node:path";
import { findCgroup2Mount } from "../agent/src/vm/cgroups.js";
import { TEST_CGROUP_PREFIX } from "./helpers/agent.js";

afterAll(async () => {
  const mount = findCgroup2Mount();
  if (!mount) return;
  const mine = (() => {
    try {
      return readdirSync(mount).filter((n) => n.startsWith(`${TEST_CGROUP_PREFIX}${process.pid}-`));
    } catch {
      return [];
    }
  })();
  // A helper killed a moment ago may still be exiting: a few tries.
  for (let attempt = 0; attempt < 10 && mine.length; attempt++) {
    for (const name of [...mine]) {
      const dir = path.join(mount, name);
      try {
        for (const vm of readdirSync(dir).filter((n) => n.startsWith("vm-"))) rmdirSync(path.join(dir, vm));
        rmdirSync(dir);
        mine.splice(mine.indexOf(name), 1);
      } catch {
        /* still populated, or gone */
      }
    }
    if (mine.length) await new Promise((r) => setTimeout(r, 100));
  }
});
