// The sink measurement (src/eval/sink_measure.ts): the profile's attention on
// key 0 and logit gaps against the float64 reference forward pass of
// test/hf_reference.ts, whose gap is computed from the scores q·k/sqrt(d)
// themselves (the engine derives it from probabilities); sink-token and
// BOS-first windows; the verdict's ranges, uniform shares and rule on a
// profile written out here; bad sizes; no tensor leaks.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { UsageError } from '../src/errors.js';
import { sinkBatchSize, type SinkProfile, sinkProfile, sinkProfileOf, sinkVerdict, sinkWindowBytes } from '../src/eval/sink_measure.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { llama2cToHf, llamaConfigJson, randomArray, rng, tempDir, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();
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
