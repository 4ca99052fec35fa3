// The model and text that attn, reproduce and start run on: --model or the
// zoo's default model (weights/manifest.json; its demo model where a command
// asks for it and the manifest names one), and --text or --tokens.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { sourceForTrainedData, type TextSource } from '../experiments/text_source.js';
import { loadModelPlaced } from '../model/load.js';
import type { Placement } from '../model/pooled.js';
import { disposeModel, type Model } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defaultManifestPath, defaultModel, demoModel, type Manifest, readManifest, type ZooEntry } from '../zoo/manifest.js';
import { type TrainedOn, trainedOnOf } from '../zoo/trained_on.js';
import { checkReadable } from '../text_file.js';
import type { ExperimentFlags } from './experiment_flags.js';
import { readTokenIds, resolveTokenizer } from './inputs.js';

export interface OpenedModel {
  model: Model;
  path: string;
  /** The zoo name, or the path as given. */
  label: string;
  tokenizer?: Tokenizer;
  /** What it was trained on: its manifest entry's word, else its run's train_state.json; undefined when neither says. */
  trainedOn?: TrainedOn;
}

/** Which zoo model a command runs without --model: the default, or the demo when the manifest names one. */
export type ZooChoice = 'default' | 'demo';

export function manifestFile(flags: ExperimentFlags): string {
  return flags.manifest ?? defaultManifestPath();
}

/**
 * --model, else the manifest's default model (or its demo, with zoo 'demo'), its products where `placement` says
 * (placementOf's answer; undefined: the tfjs path); disposed if its tokenizer is refused.
 */
export async function openModel(flags: ExperimentFlags, command: string, zoo: ZooChoice = 'default', placement?: Placement): Promise<OpenedModel> {
  const file = manifestFile(flags);
  const manifest = existsSync(file) ? readManifest(file) : undefined;
  const { path, label, entry } = flags.model !== undefined ? givenModel(flags.model, manifest) : zooDefault(manifest, file, command, zoo);
  const trainedOn = trainedOnOf(path, entry !== undefined ? { entry, manifestFile: file } : undefined);
  const model = loadModelPlaced(path, placement, `${command}: ${path} with --weights ${placement?.weights ?? 'f32'}`);
  let tokenizer: Tokenizer | undefined;
  try {
    tokenizer = resolveTokenizer(flags.tokenizer, path, model.config.vocabSize);
  } catch (e) {
    await disposeModel(model);
    throw e;
  }
  return { model, path, label, tokenizer, ...(trainedOn !== undefined ? { trainedOn } : {}) };
}

/** The demo model's name, when no --model is given and the manifest names one (for commands that show it). */
export function zooDemo(flags: ExperimentFlags): string | undefined {
  if (flags.model !== undefined) return undefined;
  const file = manifestFile(flags);
  return existsSync(file) ? readManifest(file).demoName : undefined;
}

interface ChosenModel {
  path: string;
  label: string;
  /** Its manifest entry, when the zoo lists it. */
  entry: ZooEntry | undefined;
}

/** --model PATH, and its entry if the manifest lists that path. */
function givenModel(path: string, manifest: Manifest | undefined): ChosenModel {
  const given = resolve(path);
  return { path, label: path, entry: manifest?.models.find((m) => m.path === given) };
}

/** The manifest's default model, or its demo model when asked for and named. */
function zooDefault(manifest: Manifest | undefined, file: string, command: string, zoo: ZooChoice): ChosenModel {
  if (manifest === undefined) throw new UsageError(`${command}: give --model PATH (there is no model zoo manifest at ${file} to take a default from)`);
  const entry = (zoo === 'demo' ? demoModel(manifest) : undefined) ?? defaultModel(manifest);
  return { path: entry.path, label: entry.name, entry };
}

/** --text FILE, --tokens IDS.json or --backcopy, else the held-out Brown texts (see defaultSource). */
export function textSource(flags: ExperimentFlags, command: string): TextSource {
  const { text, tokens } = flags;
  const given = [text !== undefined && '--text FILE', tokens !== undefined && '--tokens IDS.json', flags.backcopy === true && '--backcopy'].filter(
    (x) => x !== false,
  );
  if (given.length > 1) throw new UsageError(`${command}: give one of ${given.join(', ')}, not several`);
  if (flags.backcopy === true) return { kind: 'backcopy' };
  if (tokens !== undefined) return { kind: 'ids', file: tokens, ids: readTokenIds(tokens) };
  if (text !== undefined) {
    checkReadable(text);
    return { kind: 'file', file: text };
  }
  return { kind: 'heldout' };
}

/** With no text given, a model trained on Backcopy (its manifest entry or its run says) runs on the held-out Backcopy stream: the data it knows. */
export function defaultSource(source: TextSource, opened: OpenedModel): TextSource {
  return sourceForTrainedData(source, opened.trainedOn?.data);
}
