// qumra: the command-line client. `qumra [--host H:P]… [--json] NOUN VERB`.
import { Command, Option } from "commander";
import { DEFAULT_HOST_TEXT, defaultHost, targetOf, type GlobalOptions } from "./connection.js";
import { registerHost } from "./host.js";
import { registerVm } from "./vm.js";
import { registerCodec } from "./codec.js";
import { registerDisplay } from "./display.js";
import { registerAudit } from "./audit.js";
import { VERSION } from "../version.js";
import { useNodeCodecModule } from "../codec/node-codec-module.js";

import { collect } from "./parse.js";
import { endQuietlyWhenStdoutCloses } from "./closed-stdout.js";

/** Adds a noun to the CLI (the benchmarks add `bench`; see bin/qumra.js). */
export type RegisterNoun = (program: Command, globals: () => GlobalOptions) => void;

export function buildProgram(extraNouns: RegisterNoun[] = []): Command {
  const program = new Command("qumra")
    .description("Drive qumra agents: hosts, VMs, displays, codecs and benchmarks")
    .version(VERSION)
    .addOption(new Option("--host <host:port>", `agent address (HOST:PORT or unix:PATH), repeatable: the command runs on every host in parallel (default $QUMRA_HOST, else ${DEFAULT_HOST_TEXT})`).argParser(collect))
    .option("--json", "machine-readable output", false)
    .option("--timeout <seconds>", "deadline of each call", "30")
    .option("--tls-ca <file>", "CA certificate (PEM) to verify the agent")
    .option("--tls-cert <file>", "client certificate (PEM) for mutual TLS")
    .option("--tls-key <file>", "client private key (PEM)")
    .option("--tls-server-name <name>", "name expected in the agent's certificate")
    .showHelpAfterError()
    .configureOutput({ outputError: (text, write) => write(`qumra: ${text.replace(/^error: /, "")}`) });

  const globals = (): GlobalOptions => {
    const o = program.opts<{ host?: string[]; json: boolean; timeout: string; tlsCa?: string; tlsCert?: string; tlsKey?: string; tlsServerName?: string }>();
    o.host?.forEach(targetOf);
    const timeout = Number(o.timeout);
    if (!(timeout > 0)) throw new Error(`--timeout ${o.timeout}: expected a positive number of seconds`);
    // The local socket is looked for only by commands that talk to an agent (codec commands do not).
    let hosts = o.host;
    const options = { ...o, timeout } as Omit<GlobalOptions, "host"> & { host?: string[] };
    delete options.host;
    return Object.defineProperty(options, "host", { enumerable: true, get: () => (hosts ??= [defaultHost()]) }) as GlobalOptions;
  };

  registerHost(program, globals);
  registerVm(program, globals);
  registerDisplay(program, globals);
  registerAudit(program, globals);
  for (const register of extraNouns) register(program, globals);
  registerCodec(program, globals);
  return program;
}

export async function main(argv: string[], extraNouns: RegisterNoun[] = []): Promise<void> {
  useNodeCodecModule();
  endQuietlyWhenStdoutCloses();
  try {
    await buildProgram(extraNouns).parseAsync(argv);
  } catch (err) {
    process.stderr.write(`qumra: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
