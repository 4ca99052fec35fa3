// Models trained with BOS first in every sample, evaluated as trained: the
// record (src/zoo/trained_on.ts) from a run's train_state.json, a snapshot's
// run, or a manifest entry; `reproduce curves`, `initial-tokens` and
// `pretraining` add recompute with the BOS kept (each value against a dense
// pass over BOS + the last W-1 tokens), attn puts BOS first in its windows,
// and --bos-first=false turns all of it off.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { FileFormatError } from '../src/errors.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { loadModel } from '../src/model/load.js';
import type { Model } from '../src/model/weights.js';
import { disposeModel } from '../src/model/weights.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { readManifest } from '../src/zoo/manifest.js';
import { trainedOnOf, trainedOnOfDir, trainStateOf } from '../src/zoo/trained_on.js';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { close, model as llama2cModel, reproduce, setUp, textIds, tokenizer } from './reproduce_helpers.js';
import { llama2cToHf, llamaConfigJson, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();
const { dir, text } = setUp();
const W = 64; // the conformance model's trained length
const BOS = loadTokenizer(tokenizer).bosId!;

/** The conformance model as a model directory, with a train_state.json holding `options` when given. */
function modelDir(name: string, options?: Record<string, unknown>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const base = readLlama2c(llama2cModel);
  writeHfDir(d, llamaConfigJson(base.shape), llama2cToHf(base));
  copyFileSync(tokenizer, join(d, 'tokenizer.bin'));
  if (options !== undefined) writeFileSync(join(d, 'train_state.json'), JSON.stringify({ version: 1, options, step: 10 }));
  return d;
}
const bosRun = modelDir('bos-run', { data: 'brown', bosFirst: true, seqLen: 64 });
const plainRun = modelDir('plain-run', { data: 'brown', seqLen: 64 });

/** NLL of the last token of `context` under a dense pass: what recompute must give for the position ending it. */
async function lastNll(m: Model, context: number[]): Promise<number> {
  const r = await scoreTokens(m, context, { kind: 'dense' });
  return r.nll[r.nll.length - 1]!;
}

t.test('the training record: run directories, snapshots, manifest entries, bad files', async (t) => {
  t.same(trainedOnOfDir(bosRun), { data: 'brown', bosFirst: true, from: join(bosRun, 'train_state.json') });
  t.equal(trainedOnOfDir(plainRun)!.bosFirst, false, 'brown windows start anywhere unless --bos-first');
  const mix = modelDir('mix-run', { data: 'mix' });
  t.equal(trainedOnOfDir(mix)!.bosFirst, true, 'mix puts BOS first by default');
  writeFileSync(join(mix, 'train_state.json'), JSON.stringify({ options: { data: 'mix', bosFirst: false } }));
  t.equal(trainedOnOfDir(mix)!.bosFirst, false, '--bos-first=false recorded');
  writeFileSync(join(mix, 'train_state.json'), JSON.stringify({ options: { data: 'backcopy' } }));
  t.same(trainedOnOfDir(mix)!, { data: 'backcopy', bosFirst: true, from: join(mix, 'train_state.json') }, 'Backcopy samples always start with BOS');
  // a snapshot RUN/steps/<step>/ has its run's record
  const snapshot = join(mix, 'steps', '200');
  mkdirSync(snapshot, { recursive: true });
  t.equal(trainStateOf(snapshot), join(mix, 'train_state.json'));
  t.equal(trainedOnOfDir(snapshot)!.data, 'backcopy');
  t.equal(trainedOnOfDir(llama2cModel), undefined, 'a llama2.c file says nothing');
  t.equal(trainedOnOfDir(join(dir, 'nowhere')), undefined);
  // a manifest entry's word comes first
  const file = join(dir, 'manifest-record.json');
  writeFileSync(
    file,
    JSON.stringify({
      models: [
        { name: 'a', path: 'bos-run' },
        { name: 'b', path: 'plain-run', data: 'backcopy' },
        { name: 'c', path: 'plain-run', data: 'mix', bosFirst: false },
      ],
    }),
  );
  const m = readManifest(file);
  const of = (i: number) => trainedOnOf(m.models[i]!.path, { entry: m.models[i]!, manifestFile: file })!;
  t.same(of(0), { data: 'brown', bosFirst: false, from: file }, 'an entry without data trained on plain Brown windows (its folder is not asked)');
  t.same([of(1).data, of(1).bosFirst], ['backcopy', true]);
  t.equal(of(2).bosFirst, false);
  // bad records: one line naming the file and field
  writeFileSync(join(mix, 'train_state.json'), '{"options": {"bosFirst": "yes"}}');
  t.throws(() => trainedOnOfDir(mix), /train_state\.json: options\.bosFirst must be true or false/);
  writeFileSync(join(mix, 'train_state.json'), '[1]');
  t.throws(() => trainedOnOfDir(mix), FileFormatError);
  writeFileSync(join(mix, 'train_state.json'), 'not json');
  t.throws(() => trainedOnOfDir(mix), /train_state\.json: expected a training state, but the file is not valid JSON/);
  for (const [fields, message] of [
    [{ bosFirst: 1 }, /models\[0\]\.bosFirst must be true or false/],
    [{ data: 3 }, /models\[0\]\.data must be a string/],
  ] as const) {
    writeFileSync(file, JSON.stringify({ models: [{ name: 'a', ...fields }] }));
    t.throws(() => readManifest(file), message);
  }
});

t.test('reproduce curves: recompute with the BOS kept beside plain recompute, each as a dense pass computes it', async (t) => {
  const { json } = await reproduce(dir, ['--model', bosRun, '--text', text, '--limit', '200', '--recompute-samples', '20'], 'curves');
  const rows = json.policies as { name: string; label: string; nll: (number | null)[]; pplSampled: number }[];
  t.same(
    rows.map((r) => r.name),
    ['dense', 'window', 'streaming', 'h2o', 'tova', 'recompute', 'recompute-bos'],
  );
  t.equal(json.bosKept, BOS);
  t.equal(rows[6]!.label, `recompute(${W}), BOS kept`);
  const ids = textIds(text).slice(0, 200);
  t.equal(ids[0], BOS, 'the text starts with BOS');
  const m = loadModel(bosRun);
  const before = tf.memory().numTensors;
  const sampled = rows[6]!.nll.map((v, p) => [p, v] as const).filter(([p, v]) => v !== null && p >= W);
  t.ok(sampled.length >= 10, `${sampled.length} sampled positions past the first window`);
  for (const [p, v] of sampled.slice(0, 4)) {
    t.ok(close(v!, await lastNll(m, [ids[0]!, ...ids.slice(p - (W - 2), p + 2)]), 1e-4), `BOS kept at ${p}`);
    t.ok(close(rows[5]!.nll[p]!, await lastNll(m, ids.slice(p - (W - 1), p + 2)), 1e-4), `plain at ${p}`);
    t.not(v, rows[5]!.nll[p], `keeping BOS changes what position ${p} sees`);
  }
  const early = rows[6]!.nll[10]!;
  t.ok(close(early, await lastNll(m, ids.slice(0, 12)), 1e-4) && early === rows[5]!.nll[10], 'inside the first window both are the prefix');
  t.equal(tf.memory().numTensors, before, 'no tensor leaks');
  disposeModel(m);
  // --bos-first=false: plain recompute only (a run trained without BOS first: initial-tokens below)
  const off = await reproduce(dir, ['--model', bosRun, '--bos-first=false', '--text', text, '--limit', '100', '--recompute-samples', '4'], 'curves', [
    '--force',
  ]);
  t.same(
    (off.json.policies as { name: string }[]).map((r) => r.name),
    ['dense', 'window', 'streaming', 'h2o', 'tova', 'recompute'],
  );
  t.equal(off.json.bosKept, null);
});

t.test('reproduce initial-tokens: both recomputes and every cache on the same sampled positions', async (t) => {
  const { out, json } = await reproduce(dir, ['--model', bosRun, '--text', text, '--limit', '200', '--recompute-samples', '8'], 'initial-tokens');
  const recompute = json.recompute as { stride: number; positions: number; ppl: number; bosKeptPpl: number };
  const ids = textIds(text).slice(0, 200);
  const past = Array.from({ length: recompute.positions }, (_, j) => W + j * recompute.stride);
  t.ok(past[past.length - 1]! < 199 && past[past.length - 1]! + recompute.stride >= 199, 'positions up to the end');
  const m = loadModel(bosRun);
  let plain = 0;
  let kept = 0;
  for (const p of past) {
    plain += await lastNll(m, ids.slice(p - (W - 1), p + 2));
    kept += await lastNll(m, [ids[0]!, ...ids.slice(p - (W - 2), p + 2)]);
  }
  t.ok(close(recompute.ppl, Math.exp(plain / past.length), 1e-4), 'plain recompute');
  t.ok(close(recompute.bosKeptPpl, Math.exp(kept / past.length), 1e-4), 'recompute, BOS kept');
  const rows = json.rows as { sinks: number; pplSampled: number }[];
  const one = await scoreTokens(m, ids, { kind: 'streaming', sinkCount: 1, windowSize: W - 1 });
  t.ok(
    close(rows.find((r) => r.sinks === 1)!.pplSampled, Math.exp(past.reduce((s, p) => s + one.nll[p]!, 0) / past.length), 1e-4),
    '1+63 on the same positions',
  );
  disposeModel(m);
  const table = readFileSync(join(out, 'initial-tokens.md'), 'utf8');
  t.match(table, new RegExp(`\\| recompute\\(${W}\\), BOS kept +\\|`));
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /against recompute with BOS kept \(\d+\.\d\d\): 1\+63 [+-]\d/);
  const plainRunResult = await reproduce(dir, ['--model', plainRun, '--text', text, '--limit', '150'], 'initial-tokens', ['--force']);
  t.equal(plainRunResult.json.recompute, undefined, 'no recompute for a model not trained with BOS first');
});

t.test('reproduce pretraining --models RUN,RUN: the BOS-kept column for the BOS-first run only', async (t) => {
  const { json, out } = await reproduce(
    dir,
    ['--models', `${bosRun},${plainRun}`, '--text', text, '--limit', '160', '--recompute-samples', '6'],
    'pretraining',
  );
  const models = json.models as {
    name: string;
    bosFirst: boolean;
    trainedOn: string;
    recompute: { stride: number; positions: number; ppl: number; bosKeptPpl: number | null };
  }[];
  t.same(
    models.map((m) => [m.name, m.bosFirst]),
    [
      ['bos-run', true],
      ['plain-run', false],
    ],
  );
  t.equal(models[0]!.trainedOn, join(bosRun, 'train_state.json'));
  t.equal(models[1]!.recompute.bosKeptPpl, null);
  const ids = textIds(text).slice(0, 160);
  const { stride, positions } = models[0]!.recompute;
  const m = loadModel(bosRun);
  let kept = 0;
  for (let j = 0; j < positions; j++) kept += await lastNll(m, [ids[0]!, ...ids.slice(W + j * stride - (W - 2), W + j * stride + 2)]);
  disposeModel(m);
  t.ok(close(models[0]!.recompute.bosKeptPpl!, Math.exp(kept / positions), 1e-4));
  const comparison = json.comparison as { name: string; recomputeBosKept: number | null }[];
  t.ok(close(comparison[0]!.recomputeBosKept!, models[0]!.recompute.bosKeptPpl!));
  const side = readFileSync(join(out, 'pretraining-vs-paper.md'), 'utf8').split('\n')[0]!;
  t.match(side, /\| recompute\* +\| recompute, BOS kept\* +\|/);
  const snapshot = join(bosRun, 'steps', '7');
  mkdirSync(snapshot, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.bin']) copyFileSync(join(bosRun, f), join(snapshot, f));
  const snap = await reproduce(dir, ['--models', snapshot, '--text', text, '--limit', '100', '--recompute-samples', '4'], 'pretraining', ['--force']);
  const row = (snap.json.models as { name: string; bosFirst: boolean }[])[0]!;
  t.same([row.name, row.bosFirst], ['bos-run@7', true], "a snapshot: named by its run and step, BOS-first by its run's record");
});

t.test("attn: BOS first in every window as the model's run trained, unless --bos-first=false", async (t) => {
  for (const [extra, prefix] of [
    [[], [BOS]],
    [['--bos-first=false'], []],
  ] as const) {
    const out = join(dir, `attn-${prefix.length}`);
    const r = await runCliInProcess([
      'attn',
      '--model',
      bosRun,
      '--text',
      text,
      '--samples',
      '2',
      '--length',
      '8',
      '--sink-windows',
      '2',
      '--out',
      out,
      ...extra,
    ]);
    t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
    const written = JSON.parse(readFileSync(join(out, 'sink-scores.json'), 'utf8')) as { measurement: { prefix: number[] } };
    t.same(written.measurement.prefix, prefix, extra.join(' ') || 'as trained');
    t.match(readFileSync(join(out, 'report.md'), 'utf8'), /^- model: .*trained on brown( with BOS first in every sample)?\)$/m);
  }
});

t.test('sink-emergence: windows start with BOS for a run that trained so, unless the flag says otherwise', async (t) => {
  const run = tempDir('streamllm-bos-run-');
  for (const step of ['5', '9']) {
    const snapshot = join(run, 'steps', step);
    mkdirSync(snapshot, { recursive: true });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.bin']) copyFileSync(join(bosRun, f), join(snapshot, f));
  }
  writeFileSync(join(run, 'train_state.json'), JSON.stringify({ options: { data: 'mix' } }));
  for (const [extra, bosFirst] of [
    [[], true],
    [['--bos-first=false'], false],
  ] as const) {
    const out = join(dir, `emergence-${bosFirst}`);
    const r = await runCliInProcess(['sink-emergence', '--run', run, '--text', text, '--sink-windows', '2', '--window', '16', '--out', out, ...extra]);
    t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
    const json = JSON.parse(readFileSync(join(out, 'sink-emergence.json'), 'utf8')) as { bosFirst: boolean; points: { bosFirst: boolean }[] };
    t.equal(json.bosFirst, bosFirst);
    t.same(
      json.points.map((p) => p.bosFirst),
      [bosFirst, bosFirst],
    );
  }
});
