// `streamllm train`, `train-tokenizer` and `publish`, in this process: a
// short run end to end, and every bad input as one line on stderr with exit
// code 2 and nothing written (test/cli_smoke.test.ts runs the executable).
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseFlags } from '../src/cli/args.js';
import { trainCommand } from '../src/cli/train.js';
import { StreamllmError } from '../src/errors.js';
import { type Manifest, sha256 } from '../src/train/manifest.js';
import { readManifest } from '../src/zoo/manifest.js';
import { runCliInProcess } from './helpers.js';

// No initTestBackend: the commands start their backend as the executable does, without tfjs's
// per-op leak check, which counts customGrad's saved copies as leaks (see test/train.test.ts).

const dir = mkdtempSync(join(tmpdir(), 'streamllm-train-cli-'));
const tokenizer = join(dir, 'tok.json');

t.test('train-tokenizer writes a BPE of the requested size', async (t) => {
  const r = await runCliInProcess(['train-tokenizer', '--vocab', '300', '--out', tokenizer]);
  t.equal(r.status, 0, r.stderr);
  const json = JSON.parse(readFileSync(tokenizer, 'utf8')) as { model: { vocab: Record<string, number> } };
  t.equal(Object.keys(json.model.vocab).length, 300);
});

t.test('a short run writes a resumable model directory', async (t) => {
  const out = join(dir, 'run');
  const args = [
    '--variant',
    'sink-token',
    '--tokenizer',
    tokenizer,
    '--dim',
    '16',
    '--layers',
    '1',
    '--heads',
    '2',
    '--seq-len',
    '16',
    '--batch',
    '2',
    '--warmup',
    '1',
    '--eval-windows',
    '2',
    '--final-eval-windows',
    '4',
  ];
  const r = await runCliInProcess(['train', ...args, '--steps', '3', '--out', out, '--checkpoint-every', '2']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /train sink-token: done, 3 steps, 90 tokens/);
  t.same(readdirSync(out).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'train_log.jsonl', 'train_state.json']);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { streamllm: object; vocab_size: number };
  t.same(config.streamllm, { softmax: 'softmax', sink_token: true });
  t.equal(config.vocab_size, 300);
  const state = JSON.parse(readFileSync(join(out, 'train_state.json'), 'utf8')) as { step: number; valLoss: number };
  t.equal(state.step, 3);
  t.ok(state.valLoss > 0);
  const again = await runCliInProcess(['train', '--resume', out]);
  t.equal(again.status, 0, again.stderr);
  t.match(again.stderr, /train sink-token: already finished \(step 3, held-out loss \d\.\d{4}\)/, 'a finished run has nothing more to do');
});

/** Run `streamllm train ARGS` in this process up to its first error: the message, or undefined. */
async function trainError(args: string[]): Promise<string | undefined> {
  try {
    await trainCommand.run(parseFlags(trainCommand, args));
    return undefined;
  } catch (e) {
    if (!(e instanceof StreamllmError)) throw e; // anything else would be a stack trace, not exit 2
    return e.message;
  }
}

t.test('bad inputs: exit 2 with one line, nothing written', async (t) => {
  const out = join(dir, 'never');
  // Through main once: the exit code and the one line.
  const r = await runCliInProcess(['train', '--variant', 'softmax2', '--out', out, '--steps', '1']);
  t.equal(r.status, 2);
  t.equal(r.stderr, "streamllm: train --variant: expected one of softmax, softmax1, learned-sink, sink-token, got 'softmax2'\n");
  // The rest straight through the command: each must be a StreamllmError, which main prints as one line, exit 2.
  const base = ['--tokenizer', tokenizer, '--out', out, '--steps', '1'];
  const readOnly = join(dir, 'readonly');
  mkdirSync(readOnly);
  chmodSync(readOnly, 0o500);
  const cases: [string[], RegExp][] = [
    [['--out', out, '--steps', '1'], /--variant is required/],
    [['--variant', 'softmax', '--steps', '1'], /--out is required/],
    [[...base, '--variant', 'softmax', '--lr', 'fast'], /--lr: expected a number, got 'fast'/],
    [[...base, '--variant', 'softmax', '--batch', '0'], /--batch: must be >= 1, got 0/],
    [[...base, '--variant', 'softmax', '--dim', '12.5'], /--dim: expected an integer, got '12.5'/],
    [[...base, '--variant', 'softmax', '--dim', '30', '--heads', '4'], /--heads: 4 must divide --dim 30/],
    [[...base, '--variant', 'softmax', '--seed', '-1'], /--seed: must be >= 0, got -1/],
    [[...base, '--variant', 'softmax', '--minutes', '5'], /give --steps or --minutes, not both/],
    [['--variant', 'softmax', '--out', out, '--tokenizer', tokenizer], /give --steps N or --minutes M/],
    [[...base, '--variant', 'softmax', '--min-lr', '1', '--lr', '0.1'], /--min-lr: 1 exceeds the peak --lr 0.1/],
    [['--variant', 'softmax', '--out', out, '--steps', '1', '--tokenizer', join(dir, 'missing.json')], /--tokenizer .*missing.json: no such file/],
    [
      ['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', join(readOnly, 'run')],
      /--out .*readonly\/run: cannot write in .*readonly \(EACCES\)/,
    ],
    [['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', tokenizer], /--out .*tok.json: is a file, expected a folder/],
    [['--resume', join(dir, 'nothing')], /--resume .*nothing: no such directory/],
    [['--resume', join(dir, 'run'), '--lr', '1'], /--resume: --lr cannot change a run/],
    [['--variant', 'softmax', '--steps', '1', '--stpes', '2'], /unknown flag --stpes/],
  ];
  const root = process.getuid?.() === 0; // root writes anywhere: the read-only case cannot fail there
  for (const [args, message] of cases) {
    if (root && args.some((a) => a.includes('readonly'))) continue;
    const error = await trainError(args);
    t.match(error, message, args.join(' '));
    t.notMatch(error ?? '', /\n/, 'one line');
  }
  t.notOk(existsSync(out), 'no run directory was created');
});

t.test('publish copies a finished run into a weights directory and records it', async (t) => {
  const run = join(dir, 'run'); // finished by the test above
  const weights = join(dir, 'weights');
  const r = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--weights', weights]);
  t.equal(r.status, 0, r.stderr);
  t.same(readdirSync(join(weights, 'tiny')).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  const manifest = JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest;
  t.equal(manifest.default, 'tiny', 'the first model published becomes the default');
  t.equal(manifest.models.length, 1);
  const entry = manifest.models[0]!;
  const state = JSON.parse(readFileSync(join(run, 'train_state.json'), 'utf8')) as { valLoss: number; tokensSeen: number };
  t.match(entry, { name: 'tiny', variant: 'sink-token', data: 'brown', bosFirst: false, steps: 3, tokensSeen: state.tokensSeen, dtype: 'F32' });
  t.equal(manifest.demo, undefined, 'no demo model unless --demo');
  t.ok(Math.abs(entry.valLoss - state.valLoss) < 1e-4, `held-out loss of the shipped weights ${entry.valLoss} = the run's ${state.valLoss}`);
  for (const [file, hash] of Object.entries(entry.files)) t.equal(hash, sha256(join(weights, 'tiny', file)), `sha256 of ${file}`);
  t.match(
    entry.command,
    /^streamllm train --variant sink-token --data brown --seed 0 --steps 3 --tokenizer .*tok\.json --dim 16 --layers 1 --heads 2 .* && streamllm publish --run .*run --name tiny$/,
  );
  // Published in F16, under a second name and as the demo: half the bytes, the first model stays the default.
  const half = await runCliInProcess(['publish', '--run', run, '--name', 'tiny-f16', '--dtype', 'F16', '--demo', '--weights', weights]);
  t.equal(half.status, 0, half.stderr);
  const again = JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest;
  t.same(
    again.models.map((m) => m.name),
    ['tiny', 'tiny-f16'],
  );
  t.equal(again.default, 'tiny');
  t.equal(again.demo, 'tiny-f16');
  t.same(readManifest(join(weights, 'manifest.json')).demoName, 'tiny-f16', 'the zoo reader takes the demo');
  t.equal(again.models[1]!.dtype, 'F16');
  t.ok(Math.abs(again.models[1]!.valLoss - state.valLoss) < 0.05, 'F16 weights give nearly the same loss');
  const replaced = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--force', '--weights', weights]);
  t.equal(replaced.status, 0, replaced.stderr);
  t.equal((JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest).demo, 'tiny-f16', 'publishing another model keeps the demo');
  t.same(
    readdirSync(weights).filter((f) => f.startsWith('.')),
    [],
    'no temporary directory left behind',
  );
});

t.test('publish: bad inputs are one line, exit 2, nothing written', async (t) => {
  const run = join(dir, 'run');
  const weights = join(dir, 'weights-bad');
  const unfinished = join(dir, 'unfinished');
  cpSync(run, unfinished, { recursive: true });
  const statePath = join(unfinished, 'train_state.json');
  writeFileSync(statePath, JSON.stringify({ ...JSON.parse(readFileSync(statePath, 'utf8')), step: 2 }));
  const cases: [string[], RegExp][] = [
    [['publish', '--name', 'x', '--weights', weights], /publish: --run is required/],
    [['publish', '--run', run, '--name', 'no/slash', '--weights', weights], /publish --name: expected letters, digits, - and _, got 'no\/slash'/],
    [['publish', '--run', unfinished, '--name', 'x', '--weights', weights], /the run stopped at step 2 of 3 \(finish it with streamllm train --resume /],
    [['publish', '--run', run, '--name', 'x', '--dtype', 'F8', '--weights', weights], /--dtype: expected one of F32, F16, got 'F8'/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCliInProcess(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, pattern, args.join(' '));
    t.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('backend:')).length,
      1,
      `one line: ${r.stderr}`,
    );
  }
  t.notOk(existsSync(weights), 'no weights directory was created');
});

t.test('train --help', async (t) => {
  const r = await runCliInProcess(['train', '--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /--variant V\s+attention-sink variant \(one of: softmax, softmax1, learned-sink, sink-token\)/);
});
