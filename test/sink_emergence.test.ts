// Sink emergence (src/experiments/sink_emergence.ts, streamllm sink-emergence):
// a run folder with two snapshots, each measured as sinkProfile/sinkVerdict
// measure it alone; the steps from folder names; the figures; bad inputs.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { UsageError } from '../src/errors.js';
import { sinkProfile, sinkVerdict } from '../src/eval/sink_measure.js';
import { Report } from '../src/experiments/report.js';
import { listedSnapshots, runSinkEmergence, runSnapshots } from '../src/experiments/sink_emergence.js';
import { loadModel } from '../src/model/load.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { decodePng } from './plot_helpers.js';
import { headsDiff, model, setUp, tokenizer } from './reproduce_helpers.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();
const { dir, text } = setUp();

// A run whose steps/ holds snapshots 50 (random weights of the conformance shape) and 100 (the conformance model),
// and a folder that is not a snapshot.
const run = join(dir, 'run');
const base = readLlama2c(model);
for (const [step, tensors] of [
  [100, base],
  [50, randomLlama2c(base.shape, 'emergence')],
] as const) {
  const d = join(run, 'steps', String(step));
  mkdirSync(d, { recursive: true });
  writeHfDir(d, llamaConfigJson(base.shape), llama2cToHf(tensors));
  copyFileSync(tokenizer, join(d, 'tokenizer.bin'));
}
mkdirSync(join(run, 'steps', '75.tmp'), { recursive: true });
const silent = { update() {}, finish() {} };

t.test('every snapshot measured as sinkProfile alone measures it, in step order', async (t) => {
  const snapshots = runSnapshots(run);
  t.same(
    snapshots.map((s) => s.step),
    [50, 100],
    'sorted by step; the .tmp folder is not a snapshot',
  );
  const before = tf.memory().numTensors;
  const out = join(dir, 'emergence');
  const report = new Report(out);
  const source = { kind: 'file' as const, file: text, text: readFileSync(text, 'utf8') };
  const result = await runSinkEmergence(snapshots, source, { windows: 6, size: 20, seed: 4, bosFirst: true }, report, () => silent);
  t.equal(tf.memory().numTensors, before, 'no tensors left behind');
  report.finish('sink emergence', []); // the report's files appear when it is finished
  const tok = loadTokenizer(tokenizer);
  const ids = tok.encode(source.text, { bos: true });
  for (const [i, p] of result.points.entries()) {
    const want = sinkVerdict(sinkProfile(loadModel(snapshots[i]!.dir), ids, { windows: 6, size: 20, seed: 4, bosId: tok.bosId }));
    t.equal(p.step, snapshots[i]!.step);
    t.ok(headsDiff(p.verdict, want, 'key0') < 1e-9);
    t.ok(headsDiff(p.verdict, want, 'gapLong') < 1e-9);
  }
  t.not(result.points[0]!.verdict.strongest.key0, result.points[1]!.verdict.strongest.key0, 'different weights, different numbers');
  const json = JSON.parse(readFileSync(join(out, 'sink-emergence.json'), 'utf8')) as { points: { step: number }[]; windows: number; bosFirst: boolean };
  t.same(
    json.points.map((p) => p.step),
    [50, 100],
  );
  t.equal(json.bosFirst, true);
  const table = readFileSync(join(out, 'sink-emergence.md'), 'utf8').trim().split('\n');
  t.equal(table.length, 2 + 2 * 3, 'a row per snapshot and layer');
  for (const f of result.figures) {
    const png = decodePng(readFileSync(join(out, f.file)));
    t.same([png.width, png.height], [f.width, f.height]);
  }
  t.same(
    result.figures.map((f) => f.file),
    ['sink-emergence-key0.png', 'sink-emergence-gap.png'],
  );
});

t.test('model directories in order: steps from their names, else their place', async (t) => {
  t.same(
    listedSnapshots([join(run, 'steps', '100'), join(run, 'steps', '50')]).map((s) => s.step),
    [100, 50],
  );
  t.same(
    listedSnapshots([model, join(run, 'steps', '50')]).map((s) => s.step),
    [0, 50],
    'tiny-gqa.bin ends in no number',
  );
  t.throws(() => listedSnapshots([join(dir, 'nope')]), /--models: .*nope: no such file or directory/);
  t.throws(() => runSnapshots(dir), UsageError);
  mkdirSync(join(dir, 'empty', 'steps'), { recursive: true });
  t.throws(() => runSnapshots(join(dir, 'empty')), /holds no snapshots/);
});

t.test('streamllm sink-emergence: the table, the verdicts and the files; bad flags', async (t) => {
  const out = join(dir, 'cli');
  const r = await runCliInProcess(['sink-emergence', '--run', run, '--text', text, '--sink-windows', '4', '--window', '16', '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  t.match(r.stdout, /^\| step \| layer \| strongest head \| key 0, long range \|/);
  t.match(r.stdout, /^step 50: Sink: (yes|no)/m);
  t.match(r.stdout, /^step 100: Sink: (yes|no)/m);
  t.match(r.stdout, /wrote .*sink-emergence\.json, .*sink-emergence-key0\.png, .*sink-emergence-gap\.png and .*report\.md\n$/);
  for (const [args, message] of [
    [['--text', text], /^streamllm: sink-emergence: give --run DIR or --models DIR,DIR,\.\.\. \(one of them\)$/m],
    [['--run', dir, '--text', text], /^streamllm: --run .*: no steps\/ folder of snapshots/m],
  ] as const) {
    const bad = await runCliInProcess(['sink-emergence', ...args, '--out', join(dir, 'bad')]);
    t.equal(bad.status, 2);
    t.match(bad.stderr, message);
  }
});
