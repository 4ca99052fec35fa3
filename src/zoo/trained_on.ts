// What a model was trained on, as far as evaluating it needs: the data kind
// (brown, backcopy, mix: src/train/data.ts) and whether every training
// sample started with BOS. A model that always saw BOS at position 0 is
// evaluated as it was trained: its attention windows start with BOS, its
// text starts with BOS, and recompute keeps that BOS at the front of every
// window (the "recompute (BOS kept)" baseline; plain recompute beside it).
//
// Read from the model's manifest entry (fields "data" and "bosFirst", which
// `streamllm publish` writes), else from its run's train_state.json: in the
// model directory itself (a run directory) or two folders up for a snapshot
// (RUN/steps/<step>/). A model with neither (a llama2.c file, a Hugging Face
// download) says nothing, and is evaluated without BOS first unless a
// command's --bos-first says otherwise.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FileFormatError } from '../errors.js';
import { readJsonFile } from '../files.js';
import { samplesStartWithBos } from '../train/options.js';
import { STATE_FILE } from '../train/state.js';
import type { ZooEntry } from './manifest.js';

/** Where `train --snapshots` keeps its copies: RUN/steps/<step>/ (as src/train/trainer.ts writes them). */
export const SNAPSHOTS_DIR = 'steps';

export interface TrainedOn {
  /** brown, backcopy or mix (entries and runs from before data kinds: brown). */
  data: string;
  /** Every training sample started with BOS (after a sink-token model's sink). */
  bosFirst: boolean;
  /** Where this was read: the manifest or the train_state.json. */
  from: string;
}

/** From a run's options (train_state.json "options", or TrainOptions). */
function fromFields(fields: Record<string, unknown>, file: string, where: string): TrainedOn {
  const { data, bosFirst } = fields;
  if (data !== undefined && typeof data !== 'string') throw new FileFormatError(file, `${where}.data must be a string (brown, backcopy or mix)`);
  if (bosFirst !== undefined && typeof bosFirst !== 'boolean') throw new FileFormatError(file, `${where}.bosFirst must be true or false`);
  return { data: data ?? 'brown', bosFirst: samplesStartWithBos(data, bosFirst), from: file };
}

/** From a manifest entry (its "data" and "bosFirst" fields; an entry with neither trained on plain Brown windows). */
export function trainedOnOfEntry(entry: ZooEntry, manifestFile: string): TrainedOn {
  return fromFields(entry.fields, manifestFile, `model "${entry.name}"`);
}

/** The train_state.json that describes a model directory: its own, or its run's for a snapshot RUN/steps/<step>/. */
export function trainStateOf(dir: string): string | undefined {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory()) return undefined;
  const own = join(path, STATE_FILE);
  if (existsSync(own)) return own;
  const parent = dirname(path);
  if (basename(parent) === SNAPSHOTS_DIR && /^\d+$/.test(basename(path))) {
    const run = join(dirname(parent), STATE_FILE);
    if (existsSync(run)) return run;
  }
  return undefined;
}

/** From the run's train_state.json, when the model directory has one. */
export function trainedOnOfDir(dir: string): TrainedOn | undefined {
  const file = trainStateOf(dir);
  if (file === undefined) return undefined;
  const state = readJsonFile(file, 'a training state');
  const options = typeof state === 'object' && state !== null ? (state as { options?: unknown }).options : undefined;
  if (typeof options !== 'object' || options === null) throw new FileFormatError(file, 'expected an object with "options" (a streamllm train state)');
  return fromFields(options as Record<string, unknown>, file, 'options');
}

/** The manifest entry's word when the model is a zoo model, else its run's. */
export function trainedOnOf(path: string, entry?: { entry: ZooEntry; manifestFile: string }): TrainedOn | undefined {
  return entry !== undefined ? trainedOnOfEntry(entry.entry, entry.manifestFile) : trainedOnOfDir(path);
}
