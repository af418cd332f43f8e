#!/usr/bin/env node
// The agent, from the build output (npm run build).
await import("../dist/agent/src/main.js");
