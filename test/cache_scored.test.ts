// H2O and TOVA against an independent reference: test/hf_reference.ts's
// float64 forward pass, run token by token, with the policy written out as
// the papers describe it in a few plain loops here (held lists, scores, one
// eviction per token once full). The engine, stepwise and blocked, must give
// the same NLLs and keep the same tokens in every layer and kv head.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import t from 'tap';
import { createCache } from '../src/cache/index.js';
import type { ScoredCache } from '../src/cache/scored.js';
import type { KVCachePolicy } from '../src/cache/policies.js';
import { writeLlama2c } from '../src/checkpoint/llama2c.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { cacheShape } from '../src/model/config.js';
import { loadModel } from '../src/model/load.js';
import { forward } from '../src/model/transformer.js';
import { disposeModel } from '../src/model/weights.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, rng, tempDir, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();

const shape = { dim: 24, hiddenDim: 40, layers: 2, heads: 6, kvHeads: 2, vocabSize: 31, maxSeqLen: 32, sharedClassifier: true };
const H = shape.heads;
const group = shape.heads / shape.kvHeads;
const tensors = randomLlama2c(shape, 'scored-caches');
const dir = tempDir();
writeLlama2c(join(dir, 'model.bin'), tensors);
const r = rng('scored-ids');
const ids = Array.from({ length: 48 }, () => 3 + Math.floor(r() * (shape.vocabSize - 3)));

/** A policy as the reference runs it: what each layer and kv head keeps, and what happens after each head's probabilities. */
interface ReferencePolicy {
  held: number[][][]; // [layer][kvHead]: stream indices, in order
  /** The smallest gap between the evicted entry's score and the next candidate's, over the run. */
  margin: number;
  observe(layer: number, t: number, head: number, probs: Float64Array): void;
}

/** H2O: accumulated attention per layer and kv head; the `recent` newest never evicted. */
function referenceH2O(budget: number, recent: number): ReferencePolicy {
  const held = Array.from({ length: shape.layers }, () => Array.from({ length: shape.kvHeads }, () => [] as number[]));
  const score = Array.from({ length: shape.layers }, () => Array.from({ length: shape.kvHeads }, () => new Map<number, number>()));
  const p: ReferencePolicy = {
    held,
    margin: Infinity,
    observe(l, t, h, probs) {
      const g = Math.floor(h / group);
      held[l]![g]!.forEach((j, i) => score[l]![g]!.set(j, (score[l]![g]!.get(j) ?? 0) + probs[i]!));
      if (h !== H - 1) return; // every head of the layer has attended
      for (let kv = 0; kv < shape.kvHeads; kv++) {
        const list = held[l]![kv]!;
        if (list.length < budget) continue;
        const candidates = list.filter((j) => j <= t - recent).sort((a, b) => score[l]![kv]!.get(a)! - score[l]![kv]!.get(b)! || a - b);
        const victim = candidates[0]!;
        if (candidates.length > 1) p.margin = Math.min(p.margin, score[l]![kv]!.get(candidates[1]!)! - score[l]![kv]!.get(victim)!);
        list.splice(list.indexOf(victim), 1);
        score[l]![kv]!.delete(victim);
      }
    },
  };
  return p;
}

/** TOVA: the current query's attention averaged over the layer's heads; one list per layer. */
function referenceTova(budget: number): ReferencePolicy {
  const lists = Array.from({ length: shape.layers }, () => [] as number[]);
  const held = lists.map((list) => Array.from({ length: shape.kvHeads }, () => list)); // every kv head shares the layer's list
  let sums: number[] = [];
  const p: ReferencePolicy = {
    held,
    margin: Infinity,
    observe(l, _t, h, probs) {
      if (h === 0) sums = new Array<number>(probs.length).fill(0);
      probs.forEach((v, i) => (sums[i]! += v / H));
      if (h !== H - 1) return;
      const list = lists[l]!;
      if (list.length < budget) return;
      const order = list.map((j, i) => [j, sums[i]!] as const).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
      p.margin = Math.min(p.margin, order[1]![1] - order[0]![1]);
      list.splice(list.indexOf(order[0]![0]), 1);
    },
  };
  return p;
}

/** Reference NLLs of ids under the policy, and what it keeps at the end. */
function reference(policy: ReferencePolicy): { nll: number[]; held: number[][][]; margin: number } {
  const config = llamaConfigJson(shape);
  const logits = hfReferenceLogits(
    config,
    llama2cToHf(tensors),
    ids,
    (t, l, g) => {
      const list = policy.held[l]![g]!;
      if (list[list.length - 1] !== t) list.push(t); // TOVA's kv heads share one list
      return [...list];
    },
    (l, t, h, probs) => policy.observe(l, t, h, probs),
  );
  const nll = ids.slice(1).map((target, i) => {
    const row = logits[i]!;
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    return -(row[target]! - m - Math.log(z));
  });
  return { nll, held: policy.held.map((layer) => layer.map((list) => [...list])), margin: policy.margin };
}

// writeHfDir is the halves layout; the reference reads HF tensors, the engine the .bin: the same model both ways.
writeHfDir(dir, llamaConfigJson(shape), llama2cToHf(tensors));
const model = loadModel(join(dir, 'model.bin'));

const cases: { policy: Extract<KVCachePolicy, { budget: number }>; ref: () => ReferencePolicy }[] = [
  { policy: { kind: 'h2o', budget: 8, recent: 3 }, ref: () => referenceH2O(8, 3) },
  { policy: { kind: 'h2o', budget: 6, recent: 0 }, ref: () => referenceH2O(6, 0) },
  { policy: { kind: 'tova', budget: 8 }, ref: () => referenceTova(8) },
  { policy: { kind: 'tova', budget: 3 }, ref: () => referenceTova(3) },
];

for (const { policy, ref } of cases) {
  const want = reference(ref());
  const label = JSON.stringify(policy);
  t.test(`${label}: NLLs stepwise and blocked, and the tokens kept, against the reference loop`, async (t) => {
    t.ok(want.margin > 1e-6, `every eviction is decided by a margin the float32 engine resolves (smallest ${want.margin.toExponential(2)})`);
    const window = ids.length - 1 - (policy.budget - 2);
    const onlyRecent = want.held.every((layer) => layer.every((list) => list[0]! >= window));
    t.notOk(onlyRecent, 'the reference keeps something older than a window would: the test tells the policy from a window');
    const before = tf.memory().numTensors;
    for (const [mode, blockSize] of [
      ['stepwise', 1],
      ['blocked', 5],
      ['blocked', 64],
    ] as const) {
      const result = await scoreTokens(model, ids, policy, { mode, blockSize });
      const diff = maxAbsDiff(result.nll, want.nll);
      t.ok(diff < 1e-4, `${mode}${mode === 'blocked' ? ` (blocks of ${blockSize})` : ''}: max |diff| ${diff.toExponential(2)}`);
    }
    // Fed in blocks through forward(), the cache keeps what the reference keeps.
    const cache = createCache(policy, cacheShape(model.config)) as ScoredCache;
    for (const [from, to] of [
      [0, 5],
      [5, 20],
      [20, 21],
      [21, ids.length],
    ] as const)
      forward(model, ids.slice(from, to), cache, 'last').dispose();
    const kept = want.held.map((layer, l) => layer.map((_, g) => cache.kept(l, g)));
    t.same(kept, want.held, 'kept tokens per layer and kv head');
    t.equal(cache.size, policy.budget - 1);
    t.equal(cache.length, ids.length);
    cache.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });
}

t.test('H2O keeps different tokens per kv head; TOVA the same in every kv head', async (t) => {
  const h2o = reference(referenceH2O(6, 0)).held;
  t.ok(
    h2o.some((layer) => JSON.stringify(layer[0]) !== JSON.stringify(layer[1])),
    `h2o: ${JSON.stringify(h2o)}`,
  );
  const tova = reference(referenceTova(8)).held;
  t.ok(tova.every((layer) => JSON.stringify(layer[0]) === JSON.stringify(layer[1])));
});

t.test('the contract: bounded blocks, observed layers, argument errors', async (t) => {
  const cache = createCache({ kind: 'tova', budget: 4 }, cacheShape(model.config));
  t.equal(cache.blockLimit, 4);
  t.throws(() => cache.begin(5), /at most 4 now/);
  forward(model, ids.slice(0, 4), cache).dispose();
  t.equal(cache.blockLimit, 1, 'full: one token per block');
  cache.begin(1);
  cache.end(); // no layer observed
  t.throws(() => cache.begin(1), /without its attention observed/);
  cache.reset();
  t.equal(cache.blockLimit, 4);
  cache.dispose();
  t.throws(() => createCache({ kind: 'h2o', budget: 4, recent: 4 }, cacheShape(model.config)), /^recent: expected an integer in 0\.\.3/);
  t.throws(() => createCache({ kind: 'tova', budget: 0 }, cacheShape(model.config)), /^budget: expected an integer >= 1, got 0/);
});

t.teardown(() => disposeModel(model));
