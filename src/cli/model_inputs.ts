// The model and text that attn, reproduce and start run on: --model or the
// zoo's default model (weights/manifest.json), and --text or --tokens.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { TextSource } from '../experiments/text_source.js';
import { loadModel } from '../model/load.js';
import type { Model } from '../model/weights.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defaultManifestPath, defaultModel, readManifest, type ZooEntry } from '../zoo/manifest.js';
import type { FlagSpec, Flags } from './args.js';
import { checkReadable } from '../text_file.js';
import { readTokenIds, resolveTokenizer } from './inputs.js';

export const modelInputFlags: FlagSpec[] = [
  { name: 'model', type: 'string', value: 'PATH', help: "llama2.c checkpoint or model directory (default: the zoo's default model)" },
  { name: 'manifest', type: 'string', value: 'FILE', help: 'model zoo manifest (default: weights/manifest.json of this package)' },
  { name: 'text', type: 'string', value: 'FILE', help: 'text file to run on (default: the held-out Brown corpus texts)' },
  { name: 'tokens', type: 'string', value: 'IDS.json', help: 'or a JSON array of token ids' },
  { name: 'backcopy', type: 'bool', help: 'or a held-out Bigram-Backcopy stream (the default for models the zoo trained on Backcopy)' },
  { name: 'tokenizer', type: 'string', value: 'TOK', help: 'tokenizer (default: the one in the model directory)' },
];

export interface OpenedModel {
  model: Model;
  path: string;
  /** The zoo name, or the path as given. */
  label: string;
  tokenizer?: Tokenizer;
  /** What the zoo says the model was trained on (manifest "data"), when it is a zoo model. */
  data?: string;
}

export function manifestFile(flags: Flags): string {
  return (flags.manifest as string | undefined) ?? defaultManifestPath();
}

/** --model, else the manifest's default model. */
export function openModel(flags: Flags, command: string): OpenedModel {
  let path = flags.model as string | undefined;
  let label = path;
  const file = manifestFile(flags);
  const manifest = existsSync(file) ? readManifest(file) : undefined;
  let entry: ZooEntry | undefined;
  if (path === undefined) {
    if (manifest === undefined) throw new UsageError(`${command}: give --model PATH (there is no model zoo manifest at ${file} to take a default from)`);
    entry = defaultModel(manifest);
    path = entry.path;
    label = entry.name;
  } else {
    const given = resolve(path);
    entry = manifest?.models.find((m) => m.path === given);
  }
  const model = loadModel(path);
  const tokenizer = resolveTokenizer(flags.tokenizer as string | undefined, path, model.config.vocabSize);
  const data = entry?.fields.data;
  return { model, path, label: label!, tokenizer, ...(typeof data === 'string' ? { data } : {}) };
}

/** --text FILE, --tokens IDS.json or --backcopy, else the held-out Brown texts (see defaultSource). */
export function textSource(flags: Flags, command: string): TextSource {
  const text = flags.text as string | undefined;
  const tokens = flags.tokens as string | undefined;
  const given = [text !== undefined && '--text FILE', tokens !== undefined && '--tokens IDS.json', flags.backcopy === true && '--backcopy'].filter((x) => x !== false);
  if (given.length > 1) throw new UsageError(`${command}: give one of ${given.join(', ')}, not several`);
  if (flags.backcopy === true) return { kind: 'backcopy' };
  if (tokens !== undefined) return { kind: 'ids', file: tokens, ids: readTokenIds(tokens, Number.MAX_SAFE_INTEGER) };
  if (text !== undefined) {
    checkReadable(text);
    return { kind: 'file', file: text };
  }
  return { kind: 'heldout' };
}

/** With no text given, a zoo model trained on Backcopy runs on the held-out Backcopy stream: the data it knows. */
export function defaultSource(source: TextSource, opened: OpenedModel): TextSource {
  return source.kind === 'heldout' && opened.data === 'backcopy' ? { kind: 'backcopy' } : source;
}
