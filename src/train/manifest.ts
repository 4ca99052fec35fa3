// weights/manifest.json: the models this project trains and ships.
//
//   {
//     "default": "NAME",                         the model `npm start` runs
//     "demo": "NAME",                            the model with a sink it shows first (optional)
//     "tokenizer": { file, sha256, command },    shared by every model
//     "corpus": "...",                           the data and its split
//     "models": [ { name, variant, parameters, steps, tokensSeen,
//                   wallSeconds, trainLoss, valLoss, dtype,
//                   files: { "config.json": sha256, ... }, command }, ... ]
//   }
//
// trainLoss is the mean of the last LAST_STEPS steps' batch losses (one
// batch is noisy); valLoss is the mean NLL over every window of the held-out
// stream, measured on the shipped weights. Losses are nats per token.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError } from '../errors.js';
import { readTextFile } from '../files.js';
import type { TrainOptions } from './options.js';
import { LOG_FILE } from './state.js';

export const MANIFEST_FILE = 'manifest.json';
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'] as const;
/** Steps averaged for the final training loss. */
export const LAST_STEPS = 50;

export interface ModelEntry {
  name: string;
  variant: string;
  /** What it was trained on (src/train/data.ts); absent in entries from before data kinds: brown. */
  data?: string;
  /** Every training sample started with BOS (absent in entries from before it was recorded: see src/zoo/trained_on.ts). */
  bosFirst?: boolean;
  parameters: number;
  steps: number;
  tokensSeen: number;
  wallSeconds: number;
  trainLoss: number;
  valLoss: number;
  /** Storage dtype of model.safetensors. */
  dtype: string;
  files: Record<string, string>;
  command: string;
}

export interface Manifest {
  default?: string;
  demo?: string;
  tokenizer?: { file: string; sha256: string; command: string };
  corpus?: string;
  models: ModelEntry[];
}

export function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export function readManifest(file: string): Manifest {
  if (!existsSync(file)) return { models: [] };
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    if (!Array.isArray(m.models)) throw new Error('"models" must be an array');
    return m;
  } catch (e) {
    throw new FileFormatError(file, `not a model manifest (${(e as Error).message})`);
  }
}

/** The mean batch loss of a run's last LAST_STEPS steps, from its train_log.jsonl. */
export function finalTrainLoss(runDir: string): number {
  const file = join(runDir, LOG_FILE);
  const losses = readTextFile(file)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as { step: number; loss?: number };
      } catch {
        throw new FileFormatError(file, `line ${i + 1} is not JSON`);
      }
    })
    .filter((e) => e.loss !== undefined);
  if (losses.length === 0) throw new FileFormatError(file, 'holds no training steps');
  // A resumed run may have logged steps twice (after its last checkpoint): keep the last of each.
  const byStep = new Map(losses.map((e) => [e.step, e.loss!]));
  const steps = [...byStep.keys()].sort((a, b) => a - b).slice(-LAST_STEPS);
  return steps.reduce((s, k) => s + byStep.get(k)!, 0) / steps.length;
}

/** The `streamllm train` command line that reproduces a run (every setting spelled out). */
export function trainCommandLine(o: TrainOptions, steps: number, out: string): string {
  const flags: [string, string | number | boolean | undefined][] = [
    ['variant', o.variant],
    ['data', o.data],
    ['triggers', o.triggers],
    ['bos-first', o.bosFirst],
    ['seed', o.seed],
    ['steps', steps],
    ['tokenizer', o.tokenizer],
    ['dim', o.shape.dim],
    ['layers', o.shape.layers],
    ['heads', o.shape.heads],
    ['hidden', o.shape.hiddenDim],
    ['seq-len', o.seqLen],
    ['batch', o.batchSize],
    ['lr', o.peakLr],
    ['min-lr', o.minLr],
    ['warmup', o.warmupSteps],
    ['weight-decay', o.weightDecay],
    ['clip', o.clip],
    ['eval-every', o.evalEvery],
    ['eval-windows', o.evalWindows],
    ['final-eval-windows', o.finalEvalWindows],
    ['checkpoint-every', o.checkpointEvery],
    ['snapshots', o.snapshots],
    ['out', out],
  ];
  const flag = ([k, v]: [string, string | number | boolean]) => (v === true ? `--${k}` : v === false ? `--${k}=false` : `--${k} ${v}`);
  return ['streamllm train', ...flags.filter((f): f is [string, string | number | boolean] => f[1] !== undefined).map(flag)].join(' ');
}
