#!/usr/bin/env node
// streamllm: the command-line entry point. Each subcommand lives in its own
// file and declares its flags; this file only dispatches and turns user
// errors into one line on stderr with exit code 2.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WorkerPoolError } from '../../kernels/pool_error.js';
import { ReportedError, StreamllmError } from '../errors.js';
import { type CommandSpec, helpText, parseFlags } from './args.js';
import { attnCommand } from './attn.js';
import { benchCommand } from './bench.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { initCommand } from './init.js';
import { publishCommand } from './publish.js';
import { reproduceCommand } from './reproduce.js';
import { sinkEmergenceCommand } from './sink_emergence.js';
import { startCommand } from './start.js';
import { trainCommand } from './train.js';
import { trainTokenizerCommand } from './train_tokenizer.js';

/** Every subcommand, in the order of the help (the documentation test checks the commands and flags it shows against these). */
export const COMMANDS: CommandSpec[] = [
  startCommand,
  generateCommand,
  evalCommand,
  attnCommand,
  reproduceCommand,
  sinkEmergenceCommand,
  trainCommand,
  trainTokenizerCommand,
  publishCommand,
  initCommand,
  benchCommand,
];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 4;
  return [
    'streamllm: StreamingLLM (attention sinks + a rolling KV cache) on TensorFlow.js',
    '',
    'usage: streamllm COMMAND [flags]      streamllm COMMAND --help',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (command === undefined) throw new StreamllmError(`unknown command '${name}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
    // (a command that forwards its arguments shows its own help only when asked first: `bench decode --help` is the benchmark's)
    if (command.passThrough ? rest[0] === '--help' || rest[0] === '-h' : rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(helpText(command));
      return 0;
    }
    if (command.passThrough) await command.run({}, rest);
    else await command.run(parseFlags(command, rest));
    return 0;
  } catch (e) {
    // (the worker pool's own error, from kernels/ which imports nothing of src/: a pool used after dispose or broken)
    if (e instanceof StreamllmError || e instanceof WorkerPoolError) {
      if (!(e instanceof ReportedError)) process.stderr.write(`streamllm: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

/** True when this file is the program being run (not imported, e.g. by tests). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  return script !== undefined && realpathSync(script) === fileURLToPath(import.meta.url);
}

if (isEntryPoint()) {
  // Piping into `head` closes stdout early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  process.exitCode = await main(process.argv.slice(2));
}
