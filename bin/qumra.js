#!/usr/bin/env node
// The CLI, from the build output (npm run build).
const { main } = await import("../dist/agent/src/cli/main.js");
await main(process.argv);
