#!/usr/bin/env node
// The agent, from the build output (npm run build).
const { main } = await import("../dist/agent/src/main.js");
await main();
