// Flags and helpers shared by the subcommands.
import * as tf from '@tensorflow/tfjs';
import { defaultThreads } from '../../kernels/pool.js';
import { matrixBytes, WEIGHT_FORMATS, type WeightFormat } from '../../kernels/split_products.js';
import { BACKENDS, type BackendName, initBackend } from '../backend.js';
import { UsageError } from '../errors.js';
import { placeWeights } from '../model/pooled.js';
import type { Model } from '../model/weights.js';
import type { FlagSpec, Flags } from './args.js';

export const backendFlag: FlagSpec = {
  name: 'backend',
  type: 'string',
  value: 'NAME',
  choices: BACKENDS,
  help: 'tensor backend (default: tensorflow if installed, else wasm, else cpu)',
};

/** Every command that writes a file or folder takes --force (src/outputs.ts). */
export const forceFlag: FlagSpec = {
  name: 'force',
  type: 'bool',
  help: 'replace an existing output (without it an existing file, folder or model is never replaced)',
};

/** Start the backend the flags ask for and say on stderr which one runs. */
export async function startBackend(flags: Flags): Promise<BackendName> {
  const name = await initBackend(flags.backend as BackendName | undefined);
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

/** --threads and --weights: where the weight products run and how the matrices are held. */
export const placementFlags: FlagSpec[] = [
  {
    name: 'threads',
    type: 'int',
    value: 'N',
    min: 1,
    max: 1024,
    help: `threads for the weight products (default: every core, ${defaultThreads()} here, for q8; 1 for f32, whose pooled loop is still slower than the backend's one-thread path: bench/RESULTS.md); 1 keeps float32 products on the backend's one thread`,
  },
  {
    name: 'weights',
    type: 'string',
    value: 'FORMAT',
    choices: WEIGHT_FORMATS,
    default: 'f32',
    help: 'weight matrices as f32, or q8: blocks of 32 int8 with a float32 scale, 1.125 bytes a weight (accuracy: README)',
  },
];

/**
 * Put the model's matrices where --threads and --weights ask (the worker
 * pool on wasm and cpu; the tensorflow backend runs its own threads) and say
 * on stderr how the products run.
 */
export function placeModel(model: Model, flags: Flags, command: string): Model {
  const weights = (flags.weights as WeightFormat | undefined) ?? 'f32';
  // f32 stays on the backend unless asked: the pooled f32 loop runs the classifier's short rows at half XNNPACK's speed
  const threads = (flags.threads as number | undefined) ?? (weights === 'q8' ? defaultThreads() : 1);
  if (tf.getBackend() === 'tensorflow') {
    if (weights === 'q8') throw new UsageError(`${command} --weights q8: runs on the wasm and cpu backends only, not on tensorflow`);
    return model;
  }
  placeWeights(model, { threads, weights });
  const pooled = [...model.weights.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { pooled: model.weights.pooledClassifier }]
    .map((l) => l.pooled)
    .filter((m) => m !== undefined);
  if (pooled.length > 0) {
    const mib = pooled.reduce((n, m) => n + matrixBytes(m.format, m.rows, m.cols), 0) / 2 ** 20;
    process.stderr.write(`products: ${weights} weights (${mib.toFixed(1)} MiB) on ${threads} thread${threads === 1 ? '' : 's'}\n`);
  }
  return model;
}
