// The model and text that attn, reproduce and start run on: --model or the
// zoo's default model (weights/manifest.json), and --text or --tokens.
import { existsSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { TextSource } from '../experiments/text_source.js';
import { loadModel } from '../model/load.js';
import type { Model } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defaultManifestPath, defaultModel, readManifest } from '../zoo/manifest.js';
import type { FlagSpec, Flags } from './args.js';
import { checkReadable } from '../text_file.js';
import { readTokenIds, resolveTokenizer } from './inputs.js';

export const modelInputFlags: FlagSpec[] = [
  { name: 'model', type: 'string', value: 'PATH', help: "llama2.c checkpoint or model directory (default: the zoo's default model)" },
  { name: 'manifest', type: 'string', value: 'FILE', help: 'model zoo manifest (default: weights/manifest.json of this package)' },
  { name: 'text', type: 'string', value: 'FILE', help: 'text file to run on (default: the held-out Brown corpus texts)' },
  { name: 'tokens', type: 'string', value: 'IDS.json', help: 'or a JSON array of token ids' },
  { name: 'tokenizer', type: 'string', value: 'TOK', help: 'tokenizer (default: the one in the model directory)' },
];

export interface OpenedModel {
  model: Model;
  path: string;
  /** The zoo name, or the path as given. */
  label: string;
  tokenizer?: Tokenizer;
}

export function manifestFile(flags: Flags): string {
  return (flags.manifest as string | undefined) ?? defaultManifestPath();
}

/** --model, else the manifest's default model. */
export function openModel(flags: Flags, command: string): OpenedModel {
  let path = flags.model as string | undefined;
  let label = path;
  if (path === undefined) {
    const file = manifestFile(flags);
    if (!existsSync(file)) throw new UsageError(`${command}: give --model PATH (there is no model zoo manifest at ${file} to take a default from)`);
    const entry = defaultModel(readManifest(file));
    path = entry.path;
    label = entry.name;
  }
  const model = loadModel(path);
  const tokenizer = resolveTokenizer(flags.tokenizer as string | undefined, path, model.config.vocabSize);
  return { model, path, label: label!, tokenizer };
}

/** --text FILE or --tokens IDS.json, else the held-out Brown texts. */
export function textSource(flags: Flags, command: string): TextSource {
  const text = flags.text as string | undefined;
  const tokens = flags.tokens as string | undefined;
  if (text !== undefined && tokens !== undefined) throw new UsageError(`${command}: give either --text FILE or --tokens IDS.json, not both`);
  if (tokens !== undefined) return { kind: 'ids', file: tokens, ids: readTokenIds(tokens, Number.MAX_SAFE_INTEGER) };
  if (text !== undefined) {
    checkReadable(text);
    return { kind: 'file', file: text };
  }
  return { kind: 'heldout' };
}
