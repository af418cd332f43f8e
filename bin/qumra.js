#!/usr/bin/env node
// The CLI, from the build output (npm run build), with the benchmarks' `bench` noun.
const { main } = await import("../dist/agent/src/cli/main.js");
const { registerBench } = await import("../dist/bench/cli.js");
await main(process.argv, [registerBench]);
