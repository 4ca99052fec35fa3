// The engine against the conformance data in test/fixtures (float64, independently
// computed, checked against llama2.c): dense logits, greedy decoding, and per-token NLLs
// of every cache policy, token by token and in blocks.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import type { CachePolicy } from '../src/cache/policies.js';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { generate } from '../src/generate.js';
import { argmax } from '../src/sample/sampler.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { forward } from '../src/model/transformer.js';
import { type ConformanceCase, FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';

await initTestBackend();
const expected = loadConformance();
const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));

function policyOf(c: ConformanceCase): CachePolicy {
  const { kind, sinks, window } = c.policy;
  switch (kind) {
    case 'dense':
      return { kind };
    case 'window':
    case 'recompute':
      return { kind, windowSize: window! };
    case 'streaming':
      return { kind, sinkCount: sinks!, windowSize: window! };
  }
}

t.test('dense logits of the first 64 positions', async (t) => {
  const cache = new DenseCache({ layers: 3, kvHeads: 2, headDim: 8 });
  const logits = forward(model, expected.tokens.slice(0, 64), cache);
  t.ok(maxAbsDiff(logits.dataSync(), expected.dense_logits.flat()) < 1e-4);
  logits.dispose();
  cache.dispose();
});

t.test('40 greedy steps from BOS, token for token', async (t) => {
  const ids = [...expected.greedy.prompt];
  for await (const step of generate(model, { kind: 'dense' }, expected.greedy.prompt, argmax, { steps: expected.greedy.steps })) {
    ids.push(step.id);
  }
  t.same(ids, expected.greedy.tokens);
});

for (const c of expected.cases) {
  for (const [mode, blockSize] of [
    ['stepwise', 1],
    ['blocked', 5],
    ['blocked', 64],
  ] as const) {
    t.test(`${c.name}: NLLs ${mode}${mode === 'blocked' ? ` in blocks of ${blockSize}` : ''}`, async (t) => {
      const before = tf.memory().numTensors;
      const result = await scoreTokens(model, expected.tokens.slice(0, c.tokens), policyOf(c), { mode, blockSize });
      t.equal(result.nll.length, c.nll.length);
      const diff = maxAbsDiff(result.nll, c.nll);
      t.ok(diff < 1e-4, `max |diff| ${diff.toExponential(2)}`);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    });
  }
}
