// The engine against ../shared/conformance (float64, independently computed,
// checked against llama2.c): dense logits, and per-token NLLs of every cache
// policy, stepwise and in blocks.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { forward } from '../src/model/transformer.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';

await initTestBackend();
const expected = loadConformance();
const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));
const shape = { layers: 3, kvHeads: 2, headDim: 8 };

t.test('dense logits of the first 64 positions', async (t) => {
  const cache = new DenseCache(shape);
  const logits = forward(model, expected.tokens.slice(0, 64), cache);
  t.ok(maxAbsDiff(logits.dataSync(), expected.dense_logits.flat()) < 1e-4);
  logits.dispose();
  cache.dispose();
});

for (const c of expected.cases.filter((c) => c.policy.kind !== 'recompute')) {
  for (const block of [1, 5, 64]) {
    t.test(`${c.name}: NLLs in blocks of ${block}`, async (t) => {
      const before = tf.memory().numTensors;
      const cache =
        c.policy.kind === 'dense' ? new DenseCache(shape, 4) : new StreamingCache(c.policy.sinks!, c.policy.window!, shape);
      const ids = expected.tokens.slice(0, c.tokens);
      const nll: number[] = [];
      for (let s = 0; s < ids.length - 1; s += block) {
        const chunk = ids.slice(s, Math.min(s + block, ids.length - 1));
        const lp = tf.tidy(() => tf.logSoftmax(forward(model, chunk, cache)).arraySync() as number[][]);
        chunk.forEach((_, i) => nll.push(-lp[i]![ids[s + i + 1]!]!));
      }
      t.ok(maxAbsDiff(nll, c.nll) < 1e-4, `max |diff| ${maxAbsDiff(nll, c.nll)}`);
      cache.dispose();
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    });
  }
}
