// Flags and helpers shared by the subcommands.
import { BACKENDS, type BackendName, initBackend } from '../backend.js';
import { defineFlag } from './args.js';

export const backendFlag = defineFlag({
  name: 'backend',
  type: 'string',
  value: 'NAME',
  choices: BACKENDS,
  help: 'tensor backend (default: tensorflow if installed, else wasm, else cpu)',
});

/** Every command that writes a file or folder takes --force (src/outputs.ts). */
export const forceFlag = defineFlag({
  name: 'force',
  type: 'bool',
  help: 'replace an existing output (without it an existing file, folder or model is never replaced)',
});

/** Start the backend the flags ask for and say on stderr which one runs. */
export async function startBackend(flags: { backend?: BackendName | undefined }): Promise<BackendName> {
  const name = await initBackend(flags.backend);
  process.stderr.write(`backend: ${name}\n`);
  return name;
}

/** Write to stdout, resolving once the data is handed to the OS (so exit does not cut it off). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.write(text)) resolve();
    else process.stdout.once('drain', () => resolve());
  });
}
