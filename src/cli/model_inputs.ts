// The model and text that attn, reproduce and start run on: --model or the
// zoo's default model (weights/manifest.json), and --text or --tokens.
import { existsSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { TextSource } from '../experiments/text_source.js';
import { loadModel } from '../model/load.js';
import type { Model } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defaultManifestPath, defaultModel, readManifest } from '../zoo/manifest.js';
import { readTextFile } from '../files.js';
import type { ExperimentFlags } from './experiment_flags.js';
import { readTokenIds, resolveTokenizer } from './inputs.js';

export interface OpenedModel {
  model: Model;
  path: string;
  /** The zoo name, or the path as given. */
  label: string;
  tokenizer?: Tokenizer;
}

export function manifestFile(flags: ExperimentFlags): string {
  return flags.manifest ?? defaultManifestPath();
}

/** --model, else the manifest's default model. */
export function openModel(flags: ExperimentFlags, command: string): OpenedModel {
  const { path, label } = flags.model !== undefined ? { path: flags.model, label: flags.model } : zooDefault(flags, command);
  const model = loadModel(path);
  const tokenizer = resolveTokenizer(flags.tokenizer, path, model.config.vocabSize);
  return { model, path, label, tokenizer };
}

/** The manifest's default model: its path and its zoo name. */
function zooDefault(flags: ExperimentFlags, command: string): { path: string; label: string } {
  const file = manifestFile(flags);
  if (!existsSync(file)) throw new UsageError(`${command}: give --model PATH (there is no model zoo manifest at ${file} to take a default from)`);
  const entry = defaultModel(readManifest(file));
  return { path: entry.path, label: entry.name };
}

/** --text FILE or --tokens IDS.json, else the held-out Brown texts. */
export function textSource(flags: ExperimentFlags, command: string): TextSource {
  const { text, tokens } = flags;
  if (text !== undefined && tokens !== undefined) throw new UsageError(`${command}: give either --text FILE or --tokens IDS.json, not both`);
  if (tokens !== undefined) return { kind: 'ids', file: tokens, ids: readTokenIds(tokens, Number.MAX_SAFE_INTEGER) };
  if (text !== undefined) return { kind: 'file', file: text, text: readTextFile(text) };
  return { kind: 'heldout' };
}
