// The model zoo's manifest, weights/manifest.json: which trained models the
// project ships and which one commands use when no --model is given.
//
//   {
//     "default": "NAME",
//     "demo": "NAME",
//     "models": [
//       { "name": "NAME", "variant": "softmax", "path": "NAME", ...more fields },
//       ...
//     ]
//   }
//
// `path` is relative to the manifest's folder and defaults to the name (a
// model directory weights/NAME/). `variant` (softmax, softmax1,
// learned-sink, sink-token) is optional: readers that need it can take it
// from the model's own config. Other fields (parameters, steps, losses,
// sha256, the command that reproduces the model) are kept as they are;
// "data" (brown, backcopy, mix) and "bosFirst" say what it was trained on
// (src/zoo/trained_on.ts).
//
// "demo" (optional) names the model on which the paper's effect is real: a
// model trained to form an attention sink, whose window attention collapses
// when the first token leaves the cache. `npm start` then shows its
// collapse beside the default (text) model, and `reproduce` and `attn` run
// on it when no --model is given. Without it, everything runs the default.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError } from '../errors.js';
import { readJsonFile } from '../files.js';

export interface ZooEntry {
  name: string;
  variant?: string;
  /** Absolute path of the model (directory or file). */
  path: string;
  /** Every field of the manifest entry, as written. */
  fields: Record<string, unknown>;
}

export interface Manifest {
  file: string;
  /** Name of the default model, when the manifest names one. */
  defaultName?: string;
  /** Name of the demo model (the effect is real on it), when the manifest names one. */
  demoName?: string;
  models: ZooEntry[];
}

/** The package's folder: the nearest one above this file holding package.json (works from src/ and dist/src/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('packageRoot: no package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** weights/manifest.json of this package, wherever the command runs from. */
export function defaultManifestPath(): string {
  return join(packageRoot(), 'weights', 'manifest.json');
}

export function readManifest(file: string): Manifest {
  const json = readJsonFile(file);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FileFormatError(file, 'expected a JSON object with "models"');
  const o = json as Record<string, unknown>;
  if (!Array.isArray(o.models)) throw new FileFormatError(file, 'field "models" must be an array of {"name", ...}');
  const base = dirname(resolve(file));
  const models = o.models.map((m, i): ZooEntry => {
    if (typeof m !== 'object' || m === null || typeof (m as { name?: unknown }).name !== 'string' || (m as { name: string }).name === '') {
      throw new FileFormatError(file, `models[${i}] must be an object with a non-empty "name"`);
    }
    const fields = m as Record<string, unknown>;
    const path = fields.path ?? fields.name;
    if (typeof path !== 'string') throw new FileFormatError(file, `models[${i}].path must be a string`);
    if (fields.variant !== undefined && typeof fields.variant !== 'string') throw new FileFormatError(file, `models[${i}].variant must be a string`);
    if (fields.data !== undefined && typeof fields.data !== 'string')
      throw new FileFormatError(file, `models[${i}].data must be a string (brown, backcopy or mix)`);
    if (fields.bosFirst !== undefined && typeof fields.bosFirst !== 'boolean') throw new FileFormatError(file, `models[${i}].bosFirst must be true or false`);
    return { name: fields.name as string, variant: fields.variant, path: resolve(base, path), fields };
  });
  const names = new Set<string>();
  for (const m of models) {
    if (names.has(m.name)) throw new FileFormatError(file, `model name "${m.name}" appears twice`);
    names.add(m.name);
  }
  const named = (field: 'default' | 'demo'): string | undefined => {
    const name = o[field];
    if (name === undefined) return undefined;
    if (typeof name !== 'string') throw new FileFormatError(file, `field "${field}" must be a model name`);
    if (!names.has(name)) throw new FileFormatError(file, `"${field}" names "${name}", which is not in "models"`);
    return name;
  };
  const defaultName = named('default');
  const demoName = named('demo');
  return { file, models, ...(defaultName !== undefined ? { defaultName } : {}), ...(demoName !== undefined ? { demoName } : {}) };
}

/** The manifest's demo model, when it names one. */
export function demoModel(manifest: Manifest): ZooEntry | undefined {
  return manifest.demoName === undefined ? undefined : manifest.models.find((m) => m.name === manifest.demoName);
}

/** The manifest's default model: the one it names, else its only one. */
export function defaultModel(manifest: Manifest): ZooEntry {
  if (manifest.defaultName !== undefined) return manifest.models.find((m) => m.name === manifest.defaultName)!;
  if (manifest.models.length === 1) return manifest.models[0]!;
  throw new FileFormatError(manifest.file, `names no "default" model among its ${manifest.models.length}`);
}
