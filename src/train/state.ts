// A training run's directory, resumable at every checkpoint:
//
//   config.json, model.safetensors   the model so far, as a Hugging Face Llama
//                                    (src/model/to_hf.ts): what --model reads
//   tokenizer.json                   the tokenizer it was trained with
//   optimizer.safetensors            AdamW's state, float32, by parameter name
//                                    (src/train/params.ts): `param.NAME` the
//                                    master weights, `m.NAME` and `v.NAME` the
//                                    moments; metadata {"step": N}
//   train_state.json                 everything else: options, step, sampler
//                                    state, tokens seen, wall time, last losses
//   train_log.jsonl                  one JSON line per logged step
//
// train_state.json is written last and names the step that
// optimizer.safetensors must carry, so a checkpoint cut short by a crash is
// detected rather than resumed from a mix of two steps.
import { existsSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../outputs.js';
import { join } from 'node:path';
import type seedrandom from 'seedrandom';
import { SafetensorsReader, type TensorToWrite, writeSafetensors } from '../checkpoint/safetensors.js';
import { FileFormatError } from '../errors.js';
import type { AdamW } from './adamw.js';
import type { TrainOptions } from './options.js';
import { readJsonFile } from '../files.js';

export const STATE_FILE = 'train_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const LOG_FILE = 'train_log.jsonl';
export const STATE_VERSION = 1;

export interface TrainState {
  version: number;
  options: TrainOptions;
  /** Updates done. */
  step: number;
  /** Planned updates (fixed once the run starts, so the schedule is reproducible). */
  totalSteps: number;
  samplerState: seedrandom.State.Arc4;
  tokensSeen: number;
  /** Seconds spent training (across resumptions). */
  wallSeconds: number;
  trainLoss?: number;
  /** The latest validation loss; once `done`, the final one over the held-out stream. */
  valLoss?: number;
  /** Every step ran and the final validation is in. */
  done?: boolean;
  parameterCount: number;
}

export function saveOptimizer(dir: string, optimizer: AdamW): void {
  const tensors: TensorToWrite[] = [];
  optimizer.params.forEach((p, i) => {
    const s = optimizer.state[i]!;
    tensors.push(
      { name: `param.${p.name}`, shape: p.variable.shape, values: s.value },
      { name: `m.${p.name}`, shape: p.variable.shape, values: s.m },
      { name: `v.${p.name}`, shape: p.variable.shape, values: s.v },
    );
  });
  writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { metadata: { step: String(optimizer.step) } });
}

/** Restore AdamW's state (and so the master weights) saved at `step`. */
export function loadOptimizer(dir: string, optimizer: AdamW, step: number): void {
  const file = join(dir, OPTIMIZER_FILE);
  const reader = SafetensorsReader.open(file);
  if (reader.metadata.step !== String(step)) {
    throw new FileFormatError(file, `holds step ${reader.metadata.step ?? '?'} but ${STATE_FILE} says ${step}: the checkpoint was cut short`);
  }
  optimizer.params.forEach((p, i) => {
    const s = optimizer.state[i]!;
    s.value.set(reader.read(`param.${p.name}`, p.variable.shape));
    s.m.set(reader.read(`m.${p.name}`, p.variable.shape));
    s.v.set(reader.read(`v.${p.name}`, p.variable.shape));
  });
  optimizer.step = step;
}

/** The files of a run directory; a checkpoint is only whole when every one is there. */
export const RUN_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', OPTIMIZER_FILE, STATE_FILE, LOG_FILE] as const;

/** Refuse a run directory whose checkpoint has lost a file (naming it), rather than resume or publish what is left. */
export function checkRunFiles(dir: string): void {
  for (const name of RUN_FILES) {
    const file = join(dir, name);
    if (!existsSync(file)) throw new FileFormatError(file, `missing: the run's checkpoint is incomplete (restore the file, or start the run again)`);
    if (!statSync(file).isFile()) throw new FileFormatError(file, 'expected a file, found a folder');
  }
}

export function readTrainState(dir: string): TrainState {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) throw new FileFormatError(file, 'no training state here (was the run started with --out this directory?)');
  const state = readJsonFile(file) as TrainState;
  if (state.version !== STATE_VERSION) throw new FileFormatError(file, `version ${state.version}, expected ${STATE_VERSION}`);
  return state;
}

export function writeTrainState(dir: string, state: TrainState): void {
  writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
}
