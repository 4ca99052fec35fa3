// Attention maps (src/eval/attention_maps.ts) against the float64 reference
// forward pass of test/hf_reference.ts, on the conformance checkpoint and on
// softmax1 / learned-sink / sink-token variants of it; the sink statistics
// against sums written out here; window offsets; no tensor leaks.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { UsageError } from '../src/errors.js';
import { MAX_WINDOWS } from '../src/eval/attention_defaults.js';
import { attentionMaps, type AttentionMaps, layerMatrix, sinkScores, windowOffsets } from '../src/eval/attention_maps.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { llama2cToHf, llamaConfigJson, randomArray, rng, type TensorMap, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();
const { tokens } = loadConformance();
const base = readLlama2c(`${FIXTURES}tiny-gqa.bin`);
const { layers, heads, dim } = base.shape;

/** The conformance model as an HF directory, in one of the softmax / sink variants. */
function variantDir(variant: 'softmax' | 'softmax1' | 'learned-sink' | 'sink-token'): { dir: string; config: Record<string, unknown>; tensors: TensorMap } {
  const config: Record<string, unknown> = {
    ...llamaConfigJson(base.shape),
    streamllm: { softmax: variant === 'sink-token' ? 'softmax' : variant, sink_token: variant === 'sink-token' },
  };
  const tensors = llama2cToHf(base);
  const r = rng(`attention-maps-${variant}`);
  if (variant === 'learned-sink') {
    for (let l = 0; l < layers; l++) tensors.set(`model.layers.${l}.self_attn.sinks`, { shape: [heads], values: randomArray(r, heads, 2) });
  }
  if (variant === 'sink-token') tensors.set('model.sink_embedding', { shape: [dim], values: randomArray(r, dim) });
  const dir = tempDir('streamllm-attn-');
  writeHfDir(dir, config, tensors);
  return { dir, config, tensors };
}

/** The reference maps: per layer [heads, size, size], averaged over the same windows. */
function referenceMaps(config: Record<string, unknown>, tensors: TensorMap, maps: AttentionMaps): Float64Array[] {
  const { size } = maps;
  const sums = Array.from({ length: layers }, () => new Float64Array(heads * size * size));
  for (const o of maps.offsets) {
    const window = tokens.slice(o, o + maps.length);
    const ids = maps.sinkToken ? [-1, ...window] : window;
    hfReferenceLogits(config, tensors, ids, undefined, (layer, q, h, probs) => {
      const sum = sums[layer]!;
      probs.forEach((p, k) => (sum[(h * size + q) * size + k]! += p));
    });
  }
  for (const s of sums) s.forEach((v, i) => (s[i] = v / maps.offsets.length));
  return sums;
}

function maxDiff(a: Float64Array[], b: Float64Array[]): number {
  let m = 0;
  a.forEach((x, l) => x.forEach((v, i) => (m = Math.max(m, Math.abs(v - b[l]![i]!)))));
  return m;
}

/** Row sums of every (layer, head, query) of the maps. */
function rowSums(maps: AttentionMaps): number[] {
  const { size } = maps;
  const out: number[] = [];
  for (const p of maps.probs) {
    for (let h = 0; h < heads; h++) {
      for (let q = 0; q < size; q++) {
        let s = 0;
        for (let k = 0; k < size; k++) s += p[(h * size + q) * size + k]!;
        out.push(s);
      }
    }
  }
  return out;
}

t.test('conformance checkpoint: maps match the float64 reference, rows sum to 1, upper triangle is 0', async (t) => {
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const before = tf.memory().numTensors;
  const maps = attentionMaps(model, tokens, { samples: 10, length: 12, seed: 3, batchSize: 4 });
  t.equal(tf.memory().numTensors, before, 'no tensors left behind');
  t.equal(maps.size, 12);
  t.equal(maps.offsets.length, 10);
  const { config, tensors } = { config: llamaConfigJson(base.shape), tensors: llama2cToHf(base) };
  const diff = maxDiff(maps.probs, referenceMaps(config, tensors, maps));
  t.ok(diff < 1e-5, `max |engine - reference| = ${diff.toExponential(2)}`);
  t.ok(
    rowSums(maps).every((s) => Math.abs(s - 1) < 1e-5),
    'softmax rows sum to 1',
  );
  let upper = 0;
  for (const p of maps.probs)
    for (let h = 0; h < heads; h++) for (let q = 0; q < 12; q++) for (let k = q + 1; k < 12; k++) upper = Math.max(upper, p[(h * 12 + q) * 12 + k]!);
  t.equal(upper, 0, 'no query attends to a later key');
  // Query 0 has only key 0 to look at.
  t.ok(Math.abs(layerMatrix(maps, 1)[0]![0]! - 1) < 1e-6);
  disposeModel(model);
});

t.test('an observer leaves the logits as they were', async (t) => {
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const { forward } = await import('../src/model/transformer.js');
  const { CausalBlock } = await import('../src/cache/causal_block.js');
  const ids = tokens.slice(0, 20);
  const plain = forward(model, ids, new CausalBlock());
  let calls = 0;
  const observed = forward(model, ids, new CausalBlock(), 'all', { onAttention: () => calls++ });
  // (an observed pass takes the general attention path; a plain causal block may take the batched one)
  t.ok(maxAbsDiff(observed.dataSync(), plain.dataSync()) < 1e-4);
  t.equal(calls, layers, 'one call per layer');
  tf.dispose([plain, observed]);
  disposeModel(model);
});

for (const variant of ['softmax1', 'learned-sink', 'sink-token'] as const) {
  t.test(`${variant}: maps match the reference`, async (t) => {
    const { dir, config, tensors } = variantDir(variant);
    const model = loadModel(dir);
    const maps = attentionMaps(model, tokens, { samples: 6, length: 10, seed: variant });
    t.equal(maps.size, variant === 'sink-token' ? 11 : 10);
    t.equal(maps.sinkToken, variant === 'sink-token');
    const diff = maxDiff(maps.probs, referenceMaps(config, tensors, maps));
    t.ok(diff < 1e-5, `max |engine - reference| = ${diff.toExponential(2)}`);
    const sums = rowSums(maps);
    if (variant === 'sink-token')
      t.ok(
        sums.every((s) => Math.abs(s - 1) < 1e-5),
        'plain softmax: rows sum to 1',
      );
    else
      t.ok(
        sums.every((s) => s < 1 - 1e-4 && s > 0),
        `every row sums to less than 1 (largest ${Math.max(...sums).toFixed(4)})`,
      );
    const scores = sinkScores(maps);
    const mass = scores.layers.flatMap((l) => l.heads.map((h) => h.rowMass));
    if (variant === 'sink-token') t.ok(mass.every((m) => Math.abs(m - 1) < 1e-5));
    else
      t.ok(
        mass.every((m) => m < 1),
        'rowMass < 1',
      );
    disposeModel(model);
  });
}

t.test('sink scores: the averages written out, and the uniform baseline', async (t) => {
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const maps = attentionMaps(model, tokens, { samples: 5, length: 9, seed: 'scores' });
  const scores = sinkScores(maps);
  t.equal(scores.firstQuery, 4);
  // queries 4..8: uniform attention gives key 0 1/(q+1), keys 0..3 4/(q+1)
  const u0 = (1 / 5 + 1 / 6 + 1 / 7 + 1 / 8 + 1 / 9) / 5;
  t.ok(Math.abs(scores.uniform.key0 - u0) < 1e-12);
  t.ok(Math.abs(scores.uniform.keys0to3 - 4 * u0) < 1e-12);
  const layer = 2;
  const head = 5;
  const m = layerMatrix(maps, layer, head);
  let key0 = 0;
  let first4 = 0;
  for (let q = 4; q < 9; q++) {
    key0 += m[q]![0]!;
    first4 += m[q]![0]! + m[q]![1]! + m[q]![2]! + m[q]![3]!;
  }
  const stat = scores.layers[layer]!.heads[head]!;
  t.ok(Math.abs(stat.key0 - key0 / 5) < 1e-12);
  t.ok(Math.abs(stat.keys0to3 - first4 / 5) < 1e-12);
  t.ok(Math.abs(stat.rowMass - 1) < 1e-5);
  const meanKey0 = scores.layers[layer]!.heads.reduce((s, h) => s + h.key0, 0) / heads;
  t.ok(Math.abs(scores.layers[layer]!.mean.key0 - meanKey0) < 1e-12, 'layer mean is the mean over heads');
  const avg = layerMatrix(maps, layer);
  t.ok(Math.abs(avg[6]![2]! - Array.from({ length: heads }, (_, h) => layerMatrix(maps, layer, h)[6]![2]!).reduce((a, b) => a + b) / heads) < 1e-12);
  t.throws(() => sinkScores(attentionMaps(model, tokens, { samples: 1, length: 4 })), UsageError);
  disposeModel(model);
});

t.test('window offsets: seeded, in range, and bad sizes are UsageErrors', async (t) => {
  const a = windowOffsets(100, 50, 16, 7);
  t.same(a, windowOffsets(100, 50, 16, 7), 'same seed, same windows');
  t.not(a.join(), windowOffsets(100, 50, 16, 8).join(), 'another seed, other windows');
  t.ok(a.every((o) => Number.isInteger(o) && o >= 0 && o + 16 <= 100));
  t.ok(new Set(a).size > 20, 'spread over the text');
  t.same(windowOffsets(16, 3, 16), [0, 0, 0], 'a window as long as the text starts at 0');
  t.throws(() => windowOffsets(10, 1, 11), /do not fit in a text of 10 tokens/);
  t.throws(() => windowOffsets(100, 0, 8), UsageError);
  t.throws(() => windowOffsets(100, 2, 2.5), UsageError);
  // a million windows at most (their offsets are kept and returned): 1e12 was a RangeError from Array.from, a stack trace from the CLI
  t.equal(windowOffsets(100, MAX_WINDOWS, 8).length, MAX_WINDOWS);
  t.throws(() => windowOffsets(100, MAX_WINDOWS + 1, 8), new UsageError(`samples: expected an integer in 1..${MAX_WINDOWS}, got ${MAX_WINDOWS + 1}`));
  t.throws(() => windowOffsets(100, 1e12, 8, 0, 'windows'), new UsageError(`windows: expected an integer in 1..${MAX_WINDOWS}, got 1000000000000`));
});
