// Shared by the tests of refused outputs and runs (test/bad_input_outputs.test.ts,
// issue 9 classes 5 and 6):
// every file under a folder with its bytes, to show that a refused command
// changed nothing and left nothing behind, and a finished tiny training run
// to publish and resume.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { assertRefused } from './bad_input.js';
import { runCliInProcess } from './helpers.js';
import { WEIGHTS } from './paths.js';

/** Every file under `dir` (hidden ones too), relative path -> contents as hex. */
export function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = join(rel, name);
      if (statSync(join(dir, path)).isDirectory()) walk(path);
      else out[path] = readFileSync(join(dir, path)).toString('hex');
    }
  };
  walk('');
  return out;
}

/** The CLI in this process, refused (test/bad_input.ts): exactly "streamllm: `message`" when a string, and nothing else on stderr but the backend and products lines. */
export async function refused(t: Test, args: string[], message: string | RegExp): Promise<void> {
  const r = await runCliInProcess(args);
  const pattern = typeof message === 'string' ? new RegExp(`^streamllm: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message;
  assertRefused(t, r, pattern);
  t.same(
    r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('backend: ') && !l.startsWith('products: ') && !l.startsWith('streamllm: ')),
    [],
    `${args.join(' ')}: nothing else on stderr`,
  );
  t.equal(r.stdout, '', 'nothing on stdout');
}

const ZOO_TOKENIZER = join(WEIGHTS, 'tokenizer.json');

/** A finished two-step run of a tiny model into `out` (a few seconds). */
export async function finishedRun(out: string): Promise<void> {
  const shape = ['--dim', '16', '--layers', '1', '--heads', '2', '--seq-len', '16', '--batch', '2', '--warmup', '1'];
  const r = await runCliInProcess([
    'train',
    '--variant',
    'softmax',
    '--tokenizer',
    ZOO_TOKENIZER,
    ...shape,
    '--eval-windows',
    '2',
    '--final-eval-windows',
    '4',
    '--steps',
    '2',
    '--out',
    out,
  ]);
  if (r.status !== 0) throw new Error(`training the tiny run failed: ${r.stderr}`);
}
