// Streaming at length: the ring buffer wraps many times and still gives the
// blocked path's numbers; memory stays flat however long the stream.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { CausalBlock } from '../src/cache/causal_block.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { forward, SINK_TOKEN } from '../src/model/transformer.js';
import { TokenStream } from '../src/stream.js';
import { FIXTURES, initTestBackend, maxAbsDiff } from './helpers.js';

await initTestBackend();
const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));
const rng = seedrandom('streaming');
const ids = Array.from({ length: 240 }, () => 3 + Math.floor(rng() * 93));

t.test('a stream of 30x the cache capacity: stepwise = blocked', async (t) => {
  for (const policy of [
    { kind: 'streaming', sinkCount: 2, windowSize: 6 },
    { kind: 'streaming', sinkCount: 4, windowSize: 3 },
    { kind: 'window', windowSize: 8 },
  ] as const) {
    const stepwise = await scoreTokens(model, ids, policy, { mode: 'stepwise' });
    for (const blockSize of [3, 8, 50]) {
      const blocked = await scoreTokens(model, ids, policy, { mode: 'blocked', blockSize });
      t.ok(maxAbsDiff(stepwise.nll, blocked.nll) < 1e-4, `${JSON.stringify(policy)} blocks of ${blockSize}`);
    }
  }
});

t.test('the ring buffer holds exactly sinks + window, in place', async (t) => {
  const cache = new StreamingCache(4, 28, { layers: 3, kvHeads: 2, headDim: 8 });
  t.equal(cache.size, 0);
  t.equal(cache.byteSize, 2 * 3 * 2 * 32 * 8 * 4);
  cache.dispose();
});

t.test('constant memory: tensors and cache bytes after 1,000 and 5,000 decode steps', async (t) => {
  const before = tf.memory().numTensors;
  const stream = new TokenStream(model, { kind: 'streaming', sinkCount: 4, windowSize: 28 });
  const step = (n: number) => {
    for (let i = 0; i < n; i++) tf.dispose(stream.feed([3 + (i % 90)], 'last'));
  };
  step(1000);
  const at1000 = { tensors: tf.memory().numTensors, bytes: stream.cacheBytes, size: stream.cacheSize };
  step(4000);
  t.equal(stream.length, 5000);
  t.same({ tensors: tf.memory().numTensors, bytes: stream.cacheBytes, size: stream.cacheSize }, at1000);
  t.equal(at1000.size, 32, 'the cache is full at 4 + 28 entries');
  stream.dispose();
  t.equal(tf.memory().numTensors, before, 'nothing left behind');
});

t.test('no tensor leak over 200 dense decode steps', async (t) => {
  const before = tf.memory().numTensors;
  const stream = new TokenStream(model, { kind: 'dense' });
  tf.dispose(stream.feed([1, 5, 9]));
  const during = tf.memory().numTensors;
  for (let i = 0; i < 200; i++) tf.dispose(stream.feed([3 + (i % 90)], 'last'));
  t.equal(tf.memory().numTensors, during, 'steady during the stream');
  stream.dispose();
  t.equal(tf.memory().numTensors, before);
});

t.test("recompute keeps a sink-token model's sink at the front of every window", async (t) => {
  const sinkModel = {
    config: { ...model.config, sinkToken: true },
    weights: { ...model.weights, sinkEmbedding: tf.randomNormal<tf.Rank.R1>([model.config.dim], 0, 1, 'float32', 5) },
  };
  const W = 8;
  const text = ids.slice(0, 30);
  // By hand: the sink, then the last W - 1 tokens, run from scratch for every token.
  const want: number[] = [];
  for (let i = 0; i + 1 < text.length; i++) {
    const context = [SINK_TOKEN, ...text.slice(Math.max(0, i + 1 - (W - 1)), i + 1)];
    const lp = tf.tidy(() => tf.logSoftmax(forward(sinkModel, context, new CausalBlock(), 'last')).dataSync());
    want.push(-lp[text[i + 1]!]!);
  }
  for (const mode of ['stepwise', 'blocked'] as const) {
    const got = await scoreTokens(sinkModel, text, { kind: 'recompute', windowSize: W }, { mode });
    t.ok(maxAbsDiff(got.nll, want) < 1e-4, `${mode}: ${maxAbsDiff(got.nll, want)}`);
  }
  sinkModel.weights.sinkEmbedding.dispose();
});
