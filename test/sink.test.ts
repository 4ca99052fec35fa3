// Attention sinks, measured: the measurement itself (sinkProfile and
// sinkVerdict against a float64 reference), sink emergence over a run's
// snapshots, and `streamllm attn`'s measurement flags. A section each, in a
// block of its own.
import * as tf from '@tensorflow/tfjs';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { UsageError } from '../src/errors.js';
import { sinkBatchSize, type SinkProfile, sinkProfile, sinkProfileOf, type SinkVerdict, sinkVerdict, sinkWindowBytes } from '../src/eval/sink_measure.js';
import { Report } from '../src/experiments/report.js';
import { listedSnapshots, runSinkEmergence, runSnapshots } from '../src/experiments/sink_emergence.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff, runCliInProcess } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { decodePng } from './plot_helpers.js';
import { headsDiff, model, setUp, tokenizer } from './reproduce_helpers.js';
import { llama2cToHf, llamaConfigJson, randomArray, randomLlama2c, rng, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();

// The sink measurement (src/eval/sink_measure.ts): the profile's attention on
// key 0 and logit gaps against the float64 reference forward pass of
// test/hf_reference.ts, whose gap is computed from the scores q·k/sqrt(d)
// themselves (the engine derives it from probabilities); sink-token and
// BOS-first windows; the verdict's ranges, uniform shares and rule on a
// profile written out here; bad sizes; no tensor leaks.
{
  const { tokens } = loadConformance();
  const base = readLlama2c(`${FIXTURES}tiny-gqa.bin`);
  const { layers, heads, dim } = base.shape;

  /** The reference profile: per layer [heads * size] of key-0 probability and score gap, averaged over the windows. */
  function referenceProfile(
    config: Record<string, unknown>,
    tensors: ReturnType<typeof llama2cToHf>,
    windows: number[][],
  ): { key0: Float64Array[]; gap: Float64Array[] } {
    const size = windows[0]!.length;
    const key0 = Array.from({ length: layers }, () => new Float64Array(heads * size));
    const gap = Array.from({ length: layers }, () => new Float64Array(heads * size));
    for (const ids of windows) {
      hfReferenceLogits(config, tensors, ids, undefined, (layer, q, h, probs, scores) => {
        const k = key0[layer]!;
        k[h * size + q] = k[h * size + q]! + probs[0]! / windows.length;
        if (q === 0) return;
        let content = 0;
        for (let k = 1; k <= q; k++) content += scores[k]!;
        const g = gap[layer]!;
        g[h * size + q] = g[h * size + q]! + (scores[0]! - content / q) / windows.length;
      });
    }
    return { key0, gap };
  }

  function flat(a: Float64Array[]): number[] {
    return a.flatMap((x) => Array.from(x));
  }

  t.test('conformance checkpoint: key-0 attention and logit gaps match the reference', async (t) => {
    const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
    const before = tf.memory().numTensors;
    const profile = sinkProfile(model, tokens, { windows: 5, size: 14, seed: 'gaps', batchSize: 2 });
    t.equal(tf.memory().numTensors, before, 'no tensors left behind');
    t.equal(profile.size, 14);
    t.same(profile.prefix, []);
    t.equal(profile.offsets.length, 5);
    const windows = profile.offsets.map((o) => tokens.slice(o, o + 14));
    const ref = referenceProfile(llamaConfigJson(base.shape), llama2cToHf(base), windows);
    const d0 = maxAbsDiff(flat(profile.key0), flat(ref.key0));
    const dg = maxAbsDiff(flat(profile.logitGap), flat(ref.gap));
    t.ok(d0 < 1e-5, `key 0: max |engine - reference| = ${d0.toExponential(2)}`);
    t.ok(dg < 1e-3, `logit gap: max |engine - reference| = ${dg.toExponential(2)}`);
    // the gaps are real numbers of some size, not all zero
    t.ok(Math.max(...flat(ref.gap).map(Math.abs)) > 0.1, 'the reference gaps are not trivial');
    t.equal(profile.underflow, 0);
    // query 0 sees key 0 only
    t.ok(Math.abs(profile.key0[1]![3 * 14]! - 1) < 1e-6);
    t.equal(profile.windows, 5);
    // the default window is the trained length
    const full = sinkProfile(model, tokens, { windows: 1 });
    t.equal(full.size, model.config.maxSeqLen);
    disposeModel(model);
  });

  t.test('sink-token model, BOS first: the windows start as its training samples', async (t) => {
    const config = { ...llamaConfigJson(base.shape), streamllm: { softmax: 'softmax', sink_token: true } };
    const tensors = llama2cToHf(base);
    tensors.set('model.sink_embedding', { shape: [dim], values: randomArray(rng('sink-measure'), dim) });
    const dir = tempDir('streamllm-sink-');
    writeHfDir(dir, config, tensors);
    const model = loadModel(dir);
    const bos = 1;
    const profile = sinkProfile(model, tokens, { windows: 4, size: 12, seed: 3, bosId: bos });
    t.same(profile.prefix, [-1, bos], 'the sink, then BOS');
    const windows = profile.offsets.map((o) => [-1, bos, ...tokens.slice(o, o + 10)]);
    const ref = referenceProfile(config, tensors, windows);
    t.ok(maxAbsDiff(flat(profile.key0), flat(ref.key0)) < 1e-5);
    t.ok(maxAbsDiff(flat(profile.logitGap), flat(ref.gap)) < 1e-3);
    const verdict = sinkVerdict(profile);
    t.same(verdict.longRange, [6, 12]);
    t.same(verdict.shortRange, [4, 6]);
    const h = verdict.layers[2]!.heads[4]!;
    const want = (from: number, to: number) => {
      let s = 0;
      for (let q = from; q < to; q++) s += ref.key0[2]![4 * 12 + q]!;
      return s / (to - from);
    };
    t.ok(Math.abs(h.key0 - want(6, 12)) < 1e-5);
    t.ok(Math.abs(h.key0Short - want(4, 6)) < 1e-5);
    // the same windows given by the caller give the same profile
    const given = sinkProfileOf(model, windows, { batchSize: 3 });
    t.ok(maxAbsDiff(flat(given.key0), flat(profile.key0)) < 1e-9);
    t.ok(maxAbsDiff(flat(given.logitGap), flat(profile.logitGap)) < 1e-9);
    t.same(given.prefix, [-1]);
    t.equal(given.windows, 4);
    t.throws(() => sinkProfileOf(model, [windows[0]!, windows[1]!.slice(1)]), /equal length/);
    t.throws(() => sinkProfileOf(model, []), UsageError);
    disposeModel(model);
  });

  /** A profile of one layer and three heads whose key-0 attention and gaps are set by hand. */
  function handProfile(size: number, key0: (h: number, t: number) => number, gap: (h: number, t: number) => number): SinkProfile {
    const heads = 3;
    const k = new Float64Array(heads * size);
    const g = new Float64Array(heads * size);
    for (let h = 0; h < heads; h++) {
      for (let q = 0; q < size; q++) {
        k[h * size + q] = key0(h, q);
        g[h * size + q] = gap(h, q);
      }
    }
    return { layers: 1, heads, size, windows: 64, sinkToken: false, softmax: 'softmax', prefix: [], offsets: [], key0: [k], logitGap: [g], underflow: 0 };
  }

  t.test('verdict: ranges, uniform shares and the rule', async (t) => {
    // head 0: 0.5 on key 0 everywhere (a sink); head 1: 0.25 (above 5x uniform at long range, below 0.3);
    // head 2: 0.31 only at long range but uniform there is 1/(t+1) ~ 0.04, so 0.31 >= 5x: a sink too
    const size = 40;
    const profile = handProfile(
      size,
      (h, q) => (h === 0 ? 0.5 : h === 1 ? 0.25 : q >= 20 ? 0.31 : 0.01),
      (h, q) => (h === 0 ? Math.log(q) : q / 10),
    );
    const v = sinkVerdict(profile);
    t.same(v.shortRange, [4, 16]);
    t.same(v.longRange, [20, 40]);
    let u = 0;
    for (let q = 20; q < 40; q++) u += 1 / (q + 1);
    t.ok(Math.abs(v.uniformLong - u / 20) < 1e-12);
    let us = 0;
    for (let q = 4; q < 16; q++) us += 1 / (q + 1);
    t.ok(Math.abs(v.uniformShort - us / 12) < 1e-12);
    const [h0, h1, h2] = v.layers[0]!.heads;
    t.equal(h0!.sink, true);
    t.equal(h1!.sink, false, '0.25 is below the 0.3 share');
    t.equal(h2!.sink, true);
    t.ok(Math.abs(h2!.key0Short - 0.01) < 1e-12);
    t.ok(Math.abs(h0!.overUniform - 0.5 / v.uniformLong) < 1e-9);
    // gap of head 1 is t/10: mean over 4..15 is 0.95, over 20..39 is 2.95
    t.ok(Math.abs(h1!.gapShort - 0.95) < 1e-12);
    t.ok(Math.abs(h1!.gapLong - 2.95) < 1e-12);
    t.equal(v.sinkHeads, 2);
    t.equal(v.sink, true);
    t.equal(v.strongest.head, 0);
    t.equal(v.layers[0]!.strongest, 0);
    t.match(v.rule, /t in \[20, 40\).*at least 0\.3 .*at least 5x/);
    // a stricter rule: share 0.4 leaves head 0 alone
    const strict = sinkVerdict(profile, { share: 0.4, ratio: 5 });
    t.equal(strict.sinkHeads, 1);
    // the ratio binds where the share does not: uniform at long range in a window of 10 is ~0.14, 5x that is 0.7
    const small = sinkVerdict(
      handProfile(
        10,
        () => 0.5,
        () => 0,
      ),
    );
    t.same(small.shortRange, [4, 5]);
    t.equal(small.sink, false, `0.5 < 5 x ${small.uniformLong.toFixed(3)}`);
    t.equal(
      sinkVerdict(
        handProfile(
          40,
          () => 0.02,
          () => 0,
        ),
      ).sink,
      false,
      'uniform-like attention: no sink',
    );
  });

  t.test('windows per batch keep the attention tensors within 1 GiB', async (t) => {
    t.equal(sinkWindowBytes(4, 8, 256), 12 * 4 * 8 * 256 * 256);
    t.equal(sinkBatchSize(4, 8, 256), 32, '100 MiB a window: the default 32 fit');
    t.equal(sinkBatchSize(4, 8, 1024), 2, `${sinkWindowBytes(4, 8, 1024) / 2 ** 20} MiB a window: 2 fit`);
    t.equal(sinkBatchSize(4, 8, 256, 5), 5);
    t.throws(() => sinkBatchSize(4, 8, 2048), /above the 1 GiB limit; expected at most 1672/);
    t.throws(() => sinkBatchSize(4, 8, 9), UsageError);
  });

  t.test('bad sizes are UsageErrors', async (t) => {
    const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
    t.throws(() => sinkProfile(model, tokens, { windows: 2, size: 9 }), UsageError);
    t.throws(() => sinkProfile(model, tokens, { windows: 2, size: 12.5 }), UsageError);
    t.throws(() => sinkProfile(model, tokens.slice(0, 20), { windows: 2, size: 30 }), /need 30 text tokens; the text has 20/);
    t.throws(() => sinkProfile(model, tokens, { windows: 0, size: 12 }), UsageError);
    t.throws(
      () =>
        sinkVerdict(
          handProfile(
            9,
            () => 0,
            () => 0,
          ),
        ),
      UsageError,
    );
    disposeModel(model);
  });
}

// Sink emergence (src/experiments/sink_emergence.ts, streamllm sink-emergence):
// a run folder with two snapshots, each measured as sinkProfile/sinkVerdict
// measure it alone; the steps from folder names; the figures; bad inputs.
{
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
}

// The sink measurement and the cache flags from the command line: attn
// --window / --sink-windows / --bos-first against sinkProfile in process, and
// their bad values (one line, exit 2).
{
  const { dir, text } = setUp();
  const inputs = ['--model', model, '--tokenizer', tokenizer, '--text', text];

  t.test('attn --window, --sink-windows, --bos-first: the measurement on BOS-first windows of W positions', async (t) => {
    const out = join(dir, 'attn-bos');
    const settings = '--samples 4 --length 8 --window 24 --sink-windows 6 --bos-first --seed 2'.split(' ');
    const r = await runCliInProcess(['attn', ...inputs, ...settings, '--out', out]);
    t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
    t.match(r.stdout, /^Sink measurement: 6 windows of 24 positions; per layer, its strongest head$/m);
    const written = (JSON.parse(readFileSync(join(out, 'sink-scores.json'), 'utf8')) as { measurement: SinkVerdict & { prefix: number[] } }).measurement;
    const tok = loadTokenizer(tokenizer);
    t.same(written.prefix, [tok.bosId], 'BOS first');
    const allIds = tok.encode(readFileSync(text, 'utf8'), { bos: true });
    const want = sinkVerdict(sinkProfile(loadModel(model), allIds, { windows: 6, size: 24, seed: 2, bosId: tok.bosId }));
    t.ok(headsDiff(written, want, 'key0') < 1e-6);
    t.ok(headsDiff(written, want, 'gapShort') < 1e-5);
    t.match(readFileSync(join(out, 'report.md'), 'utf8'), /every window starts with BOS \(\d+\)/);
    for (const [args, message] of [
      [['--window', '9'], /^streamllm: window: sink scores need windows of at least 10 positions, got 9$/m],
      [['--window', '5000'], /window: a sink measurement window of 5000 positions holds 5\.0 GiB of attention tensors .* expected at most 2229$/m],
      [['--window', '2000'], /window: windows of 2000 positions need 2000 text tokens; the text has \d+$/m],
      [['--window', 'x'], /attn --window: expected an integer, got 'x'/],
    ] as const) {
      const bad = await runCliInProcess(['attn', ...inputs, '--samples', '2', ...args, '--out', join(dir, 'attn-bad')]);
      t.equal(bad.status, 2, args.join(' '));
      t.match(bad.stderr, message);
      t.equal(bad.stderr.split('\n').filter((l) => l.startsWith('streamllm:')).length, 1, 'one error line');
      t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  t.test('reproduce --window W --sinks S: every cache holds W entries, streaming keeps S', async (t) => {
    const out = join(dir, 'curves-w32');
    const settings = '--limit 150 --recompute-samples 10 --window 32 --sinks 2'.split(' ');
    const r = await runCliInProcess(['reproduce', 'curves', ...inputs, ...settings, '--out', out]);
    t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
    const json = JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8')) as {
      windowSize: number;
      sinkCount: number;
      policies: { name: string; policy: Record<string, unknown>; ppl: number | null }[];
    };
    t.equal(json.windowSize, 32);
    t.equal(json.sinkCount, 2);
    const by = (name: string) => json.policies.find((p) => p.name === name)!;
    t.same(by('streaming').policy, { kind: 'streaming', sinkCount: 2, windowSize: 30 });
    t.same(by('window').policy, { kind: 'window', windowSize: 32 });
    t.same(by('recompute').policy, { kind: 'recompute', windowSize: 32 });
    const ids = loadTokenizer(tokenizer).encode(readFileSync(text, 'utf8'), { bos: true }).slice(0, 150);
    const { scoreTokens } = await import('../src/eval/perplexity.js');
    const want = await scoreTokens(loadModel(model), ids, { kind: 'streaming', sinkCount: 2, windowSize: 30 });
    t.ok(Math.abs(by('streaming').ppl! - want.ppl) <= 1e-5 * want.ppl, `streaming 2+30: ${by('streaming').ppl} vs ${want.ppl}`);
    t.match(
      readFileSync(join(out, 'report.md'), 'utf8'),
      /Every cache lets a query see 32 entries \(trained length 64\); streaming keeps 2 initial tokens and 30 recent ones/,
    );
  });

  t.test('reproduce pretraining --models DIR,DIR --window W: those models, caches of W, beside the paper', async (t) => {
    // two model directories: the conformance model as a softmax and a sink-token variant
    const { mkdirSync, writeFileSync, copyFileSync } = await import('node:fs');
    const { readLlama2c } = await import('../src/checkpoint/llama2c.js');
    const { writeSafetensors } = await import('../src/checkpoint/safetensors.js');
    const { llama2cToHf, llamaConfigJson, randomArray, rng } = await import('./tiny_checkpoints.js');
    const base = readLlama2c(model);
    const dirs = ['softmax', 'sink-token'].map((variant) => {
      const tensors = llama2cToHf(base);
      if (variant === 'sink-token') tensors.set('model.sink_embedding', { shape: [base.shape.dim], values: randomArray(rng('models-flag'), base.shape.dim) });
      const d = join(dir, 'models', `mini-${variant}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(
        join(d, 'config.json'),
        JSON.stringify({ ...llamaConfigJson(base.shape), streamllm: { softmax: 'softmax', sink_token: variant === 'sink-token' } }),
      );
      writeSafetensors(
        join(d, 'model.safetensors'),
        [...tensors].map(([name, v]) => ({ name, shape: v.shape, values: v.values })),
      );
      copyFileSync(tokenizer, join(d, 'tokenizer.bin'));
      return d;
    });
    const out = join(dir, 'pretraining-models');
    const settings = '--window 24 --limit 120 --recompute-samples 6'.split(' ');
    const r = await runCliInProcess(['reproduce', 'pretraining', '--models', dirs.join(','), '--text', text, ...settings, '--out', out]);
    t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
    const json = JSON.parse(readFileSync(join(out, 'pretraining.json'), 'utf8')) as {
      models: { name: string; trainedLength: number; streaming: { sinks: number; window: number }[] }[];
      comparison: { verdict: string }[];
    };
    t.same(
      json.models.map((m) => m.name),
      ['mini-softmax', 'mini-sink-token'],
    );
    t.same(
      json.models[0]!.streaming.map((s) => `${s.sinks}+${s.window}`),
      ['0+24', '1+23', '2+22', '4+20'],
    );
    t.equal(json.comparison.length, 2);
    // printed: the side-by-side table, then where the report is
    t.match(r.stdout, /^\| model +\| +0\+W \|/);
    t.match(r.stdout, /^\| mini-sink-token \(sink-token\) +\|.*\| (agrees|partly|disagrees) +\|$/m);
    t.match(r.stdout, /^\| paper: learnable sink token +\| +1235 \| +18\.01 \|/m);
    t.match(r.stdout, /wrote .*report\.md\n$/);
    const missing = await runCliInProcess([
      'reproduce',
      'pretraining',
      '--models',
      `${dirs[0]},${join(dir, 'nope')}`,
      '--text',
      text,
      '--out',
      join(dir, 'bad'),
    ]);
    t.equal(missing.status, 2);
    t.match(missing.stderr, /^streamllm: pretraining --models: .*nope: no such file or directory$/m);
  });

  t.test('reproduce: bad --window and --sinks are one line and exit 2', async (t) => {
    const common = ['--model', model, '--tokenizer', tokenizer, '--text', text, '--limit', '100', '--out', join(dir, 'bad')];
    for (const [args, message] of [
      [['curves', '--window', '1'], /^streamllm: reproduce --window: must be >= 2, got 1$/m],
      [['curves', '--sinks', '-1'], /^streamllm: reproduce --sinks: must be >= 0, got -1$/m],
      [
        ['curves', '--window', '16', '--sinks', '16'],
        /^streamllm: reproduce --sinks: 16 initial tokens leave no room for recent ones in a cache of --window 16; expected S < W$/m,
      ],
      [
        ['cache-size', '--sinks', '64'],
        /^streamllm: reproduce --sinks: 64 initial tokens leave no room for recent ones in a cache of the trained length 64 \(the default --window\); expected S < W$/m,
      ],
      [['curves', '--models', 'a,b'], /^streamllm: reproduce curves --models: only pretraining compares several models$/m],
      [
        ['initial-tokens', '--sinks', '2'],
        /^streamllm: reproduce initial-tokens --sinks: does not apply \(it sets the initial tokens of curves, cache-size, latency; initial-tokens varies or fixes them by design\)$/m,
      ],
    ] as const) {
      const r = await runCliInProcess(['reproduce', ...args, ...common]);
      t.equal(r.status, 2, args.join(' '));
      t.match(r.stderr, message);
      t.equal(r.stderr.split('\n').filter((l) => l.startsWith('streamllm:')).length, 1, 'one error line');
    }
  });
}
