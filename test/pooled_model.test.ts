// A model whose matrices live in the worker pool (src/model/pooled.ts): on
// the conformance model, float32 on several threads gives the one-thread
// (tfjs) result bit for bit on wasm (within float32 rounding on cpu); q8 gives
// the same numbers on any number of threads, and perplexity close to
// float32's; nothing leaks, and the CLI flags reach it.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname, join } from 'node:path';
import t from 'tap';
import { createCache } from '../src/cache/index.js';
import type { CachePolicy, KVCachePolicy } from '../src/cache/policies.js';
import type { KVCache, PlacedEntries } from '../src/cache/types.js';
import { DenseCache } from '../src/cache/dense.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { CausalBlock } from '../src/cache/causal_block.js';
import { ArgumentError } from '../src/errors.js';
import { attentionMaps } from '../src/eval/attention_maps.js';
import { recomputeNllAt } from '../src/eval/recompute_sampled.js';
import { sinkProfile, sinkProfileOf } from '../src/eval/sink_measure.js';
import { setSimdKernels } from '../kernels/simd/instance.js';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { generate } from '../src/generate.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { type Placement, placeWeights } from '../src/model/pooled.js';
import { loadModel, loadModelPlaced } from '../src/model/load.js';
import { pooledDecodeProgram, setDecodePrograms } from '../src/model/decode_program.js';
import { cacheMemory, residualInPool } from '../src/model/pooled_layers.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { pooledArgmax } from '../kernels/logits_argmax.js';
import { embedTokens, forward, forwardBatch, forwardLastValues, SINK_TOKEN } from '../src/model/transformer.js';
import { cacheShape } from '../src/model/config.js';
import { disposeModel, type Model, parameterCount } from '../src/model/weights.js';
import { argmax } from '../src/sample/sampler.js';
import { writeRow } from '../kernels/split_products.js';
import { FUSED_MAX_QUERIES, wasmBackendMemory } from '../kernels/paths.js';
import { TokenStream } from '../src/stream.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff, runCliInProcess } from './helpers.js';
import { tempDir, WEIGHTS } from './paths.js';
import { randomLlama2c } from './tiny_checkpoints.js';

const backend = await initTestBackend();
const expected = loadConformance();
const dense = expected.cases.find((c) => c.name === 'dense')!;
const tokens = expected.tokens.slice(0, 64);

async function loaded(p?: Placement): Promise<Model> {
  const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));
  if (p === undefined) return model;
  placeWeights(model, p);
  await model.pool?.ready(); // so that products are split from the first
  return model;
}

function logits(model: Model): Float32Array {
  const cache = new DenseCache({ layers: 3, kvHeads: 2, headDim: 8 });
  const out = forward(model, tokens, cache);
  const values = out.dataSync() as Float32Array;
  out.dispose();
  cache.dispose();
  return values;
}

const meanNll = (nll: ArrayLike<number>) => Array.from(nll).reduce((a, b) => a + b, 0) / nll.length;

/** This process's worker threads (a pool of several threads has one, its keeper, which makes and ends the workers). */
const workerThreads = () => (process.report.getReport() as { workers: unknown[] }).workers.length;

t.test('float32 in the pool: equal on 1, 2 and 3 threads; the tfjs result bit for bit on wasm; no worker left', async (t) => {
  const plain = await loaded();
  const want = logits(plain);
  const params = parameterCount(plain, true);
  disposeModel(plain);
  const idle = workerThreads();
  let first: number[] | undefined;
  for (const threads of [1, 2, 3]) {
    // a pool of N threads with every product split (the conformance matrices are small); one thread: the caller alone
    const model = await loaded({ threads, weights: 'f32', splitMinBytes: 0 });
    t.ok(model.pool !== undefined && model.weights.layers[0]!.qkv.weight === undefined, 'the matrices left tfjs');
    t.equal(workerThreads(), idle + (threads > 1 ? 1 : 0), `${threads} threads: ${threads > 1 ? 'a keeper thread' : 'no worker thread'}`);
    t.equal(parameterCount(model, true), params, 'parameters counted wherever they live');
    const got = Array.from(logits(model));
    // the pool's products sum in XNNPACK's order, and the loops between them compute the kernels' bits;
    // the cpu backend's products sum in another order (relative to the largest logit)
    if (backend === 'wasm') t.same(got, Array.from(want), `${threads} threads: the tfjs logits bit for bit`);
    const relative = maxAbsDiff(got, want) / Math.max(...Array.from(want, Math.abs));
    t.ok(relative < 4e-6, `${threads} threads: the tfjs logits within ${relative.toExponential(2)} of the largest`);
    t.ok(maxAbsDiff(got, expected.dense_logits.flat()) < 1e-4, 'and the conformance logits');
    if (first === undefined) first = got;
    else t.same(got, first, `bit for bit the same on ${threads} threads as on 1`);
    const before = tf.memory().numTensors;
    const scored = await scoreTokens(model, expected.tokens.slice(0, dense.tokens), { kind: 'dense' }, { mode: 'stepwise' });
    t.ok(maxAbsDiff(scored.nll, dense.nll) < 1e-4, 'stepwise NLLs: the conformance values');
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    await disposeModel(model);
    t.equal(workerThreads(), idle, `${threads} threads: no worker thread left once the pool is disposed`);
  }
});

t.test('a pooled Llama model keeps its residual stream out of tfjs (pooled_layers.ts); a plain one does not', async (t) => {
  const plain = await loaded();
  t.notOk(residualInPool(plain), 'tfjs matrices: the tensor path');
  const want = logits(plain);
  disposeModel(plain);
  const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
  t.ok(residualInPool(model), 'pooled: the residual stream in a Float32Array');
  const before = tf.memory().numTensors;
  const got = logits(model);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  // the tensor path's numbers: bit for bit on wasm (the same sums in the same order), within rounding on cpu
  if (backend === 'wasm') t.same(Array.from(got), Array.from(want), 'the tfjs logits bit for bit');
  t.ok(maxAbsDiff(Array.from(got), want) / Math.max(...Array.from(want, Math.abs)) < 4e-6, 'the tfjs logits');
  await disposeModel(model);
});

t.test('a token id outside the vocabulary: one ArgumentError naming the argument and element, at every entry, on every placement', async (t) => {
  const text = tokens.slice(0, 24);
  const bad = (i: number, id: number, vocab: number) => `element ${i} is ${id}, expected a token id in 0..${vocab - 1}`;
  for (const p of [
    undefined,
    { threads: 1, weights: 'q8' },
    { threads: 2, weights: 'q8', splitMinBytes: 0 },
    { threads: 2, weights: 'f32', splitMinBytes: 0 },
  ] as const) {
    const model = await loaded(p);
    const vocab = model.config.vocabSize;
    const where = p === undefined ? 'tfjs' : `${p.weights} ${p.threads}t`;
    const before = tf.memory().numTensors;
    // each entry: what it is given, and the one line it must refuse it with (an ArgumentError, no work done)
    const refuses = async (what: string, call: () => unknown, message: string) => {
      let error: unknown;
      try {
        await call();
      } catch (e) {
        error = e;
      }
      t.ok(error instanceof ArgumentError, `${where}, ${what}: an ArgumentError (got ${String(error)})`);
      t.equal((error as Error | undefined)?.message, message, `${where}, ${what}: the message`);
    };
    const cache = new DenseCache({ layers: 3, kvHeads: 2, headDim: 8 });
    for (const id of [vocab, -2, 1.5, NaN, SINK_TOKEN]) {
      await refuses(`forward, id ${id}`, () => forward(model, [1, id], cache), `ids: ${bad(1, id, vocab)}`);
      await refuses(`forwardLastValues, id ${id}`, () => forwardLastValues(model, [id], cache), `ids: ${bad(0, id, vocab)}`);
    }
    await refuses(
      'forwardBatch',
      () =>
        forwardBatch(
          model,
          [
            [1, 2],
            [3, vocab],
          ],
          [new CausalBlock(), new CausalBlock()],
        ),
      `batch[1]: ${bad(1, vocab, vocab)}`,
    );
    await refuses('embedTokens', () => embedTokens(model, [vocab + 3]), `ids: ${bad(0, vocab + 3, vocab)}`);
    await refuses(
      'a string from JavaScript',
      () => forward(model, ['7' as unknown as number], cache),
      `ids: element 0 is "7", expected a token id in 0..${vocab - 1}`,
    );
    // no ids: nothing to compute (tfjs ran the products on 0 rows, an XNNPACK status line each on wasm)
    const none = 'expected at least one token id, got none';
    await refuses('forward, no ids', () => forward(model, [], cache), `ids: ${none}`);
    await refuses('forwardLastValues, no ids', () => forwardLastValues(model, [], cache), `ids: ${none}`);
    for (const ids of [[], [5]])
      await refuses(
        `scoreTokens, ${ids.length} id(s)`,
        () => scoreTokens(model, ids, { kind: 'dense' }),
        `ids: expected at least 2 token ids (the first is context only), got ${ids.length}`,
      );
    await refuses('forwardBatch, no ids', () => forwardBatch(model, [[], []], [new CausalBlock(), new CausalBlock()]), `batch[0]: ${none}`);
    t.equal(cache.length, 0, `${where}: the cache did not move`);
    cache.dispose();
    // a stream (one token, the decode path; a block; recompute's window, which takes ids before any pass)
    for (const policy of [{ kind: 'dense' }, { kind: 'streaming', sinkCount: 2, windowSize: 8 }, { kind: 'recompute', windowSize: 4 }] as const) {
      const stream = new TokenStream(model, policy);
      stream.feedLastValues([1, 2, 3, 4, 5]);
      await refuses(`${policy.kind}: feedLastGreedy`, () => stream.feedLastGreedy([vocab]), `ids: ${bad(0, vocab, vocab)}`);
      await refuses(`${policy.kind}: feedLastValues`, () => stream.feedLastValues([2, -1]), `ids: ${bad(1, -1, vocab)}`);
      await refuses(`${policy.kind}: feed`, () => stream.feed([2, 3, vocab]), `ids: ${bad(2, vocab, vocab)}`);
      for (const feed of ['feed', 'feedLastValues', 'feedLastGreedy'] as const)
        await refuses(`${policy.kind}: ${feed}, no ids`, () => stream[feed]([]), 'ids: expected at least one token id, got none');
      t.equal(stream.length, 5, `${where}, ${policy.kind}: the stream did not move`);
      // and it goes on as if nothing had been refused: the next token's logits are those of a stream never given a bad id
      const fresh = new TokenStream(model, policy);
      fresh.feedLastValues([1, 2, 3, 4, 5]);
      t.same(Array.from(stream.feedLastValues([6])), Array.from(fresh.feedLastValues([6])), `${where}, ${policy.kind}: the next token as on a fresh stream`);
      fresh.dispose();
      stream.dispose();
    }
    const steps = async (prompt: number[]) => {
      for await (const step of generate(model, { kind: 'dense' }, prompt, argmax, { steps: 2 })) void step;
    };
    await refuses('generate, a prompt id', () => steps([1, vocab]), `prompt: ${bad(1, vocab, vocab)}`);
    await refuses('generate, SINK_TOKEN in the prompt', () => steps([SINK_TOKEN, 1]), `prompt: ${bad(0, -1, vocab)}`);
    await refuses('generate, an empty prompt', () => steps([]), 'prompt: expected at least one token id, got none');
    // the last id is a target only (never fed): before, the NLL kernel's RangeError, after the blocks before it had run
    for (const mode of ['blocked', 'stepwise'] as const) {
      await refuses(
        `scoreTokens ${mode}, the last id`,
        () => scoreTokens(model, [...text, vocab], { kind: 'dense' }, { mode }),
        `ids: ${bad(text.length, vocab, vocab)}`,
      );
      await refuses(`scoreTokens ${mode}, an id inside`, () => scoreTokens(model, [1, 2, 1.5, 3], { kind: 'dense' }, { mode }), `ids: ${bad(2, 1.5, vocab)}`);
    }
    await refuses('recomputeNllAt, a target', () => recomputeNllAt(model, [...text, vocab], 4, [text.length - 1]), `ids: ${bad(text.length, vocab, vocab)}`);
    await refuses('attentionMaps', () => attentionMaps(model, [...text, -3], { length: 4, samples: 2 }), `tokens: ${bad(text.length, -3, vocab)}`);
    const long = expected.tokens.slice(0, 40);
    await refuses('sinkProfile', () => sinkProfile(model, [vocab, ...long], { size: 16, windows: 2 }), `tokens: ${bad(0, vocab, vocab)}`);
    await refuses('sinkProfileOf', () => sinkProfileOf(model, [long.slice(0, 16), [...long.slice(0, 15), vocab]]), `windows[1]: ${bad(15, vocab, vocab)}`);
    t.equal(tf.memory().numTensors, before, `${where}: no tensor leak`);
    await disposeModel(model);
  }
});

t.test(
  "forwardBatch's batch shape: an ArgumentError naming batch or caches, before any cache begins (were plain Errors; no sequence a TypeError)",
  async (t) => {
    const model = await loaded();
    const before = tf.memory().numTensors;
    const scored = createCache({ kind: 'h2o', budget: 4, recent: 2 }, cacheShape(model.config));
    const cases: [string, () => unknown, ArgumentError][] = [
      ['no sequence', () => forwardBatch(model, [], []), new ArgumentError('batch', 'expected at least one sequence, got none')],
      [
        'sequences of two lengths',
        () => forwardBatch(model, [[1, 2], [3, 4], [5]], [new CausalBlock(), new CausalBlock(), new CausalBlock()]),
        new ArgumentError('batch', 'sequence 2 has 1 tokens and sequence 0 has 2: expected one length'),
      ],
      ['a cache short', () => forwardBatch(model, [[1], [2]], [new CausalBlock()]), new ArgumentError('caches', 'expected one cache per sequence (2), got 1')],
      [
        'a block longer than a cache takes',
        () =>
          forwardBatch(
            model,
            [
              [1, 2, 3, 4, 5],
              [1, 2, 3, 4, 5],
            ],
            [new CausalBlock(), scored],
          ),
        new ArgumentError('caches', 'cache 1 takes at most 4 tokens in a block, got 5 (forward() splits a longer sequence)'),
      ],
      [
        // (its second begin was a plain Error, and the cache stayed begun: every later block refused)
        'a cache given twice',
        () => forwardBatch(model, [[1], [2], [3]], [new CausalBlock(), scored, scored]),
        new ArgumentError('caches', 'cache 2 is cache 1: expected a cache of its own per sequence'),
      ],
    ];
    for (const [what, call, error] of cases) {
      let thrown: unknown;
      try {
        call();
      } catch (e) {
        thrown = e;
      }
      t.ok(thrown instanceof ArgumentError, `${what}: an ArgumentError (got ${String(thrown)})`);
      t.equal((thrown as Error | undefined)?.message, error.message, `${what}: the message`);
    }
    t.equal(scored.length, 0, 'the scored cache did not move');
    const last = forwardBatch(model, [[1, 2, 3, 4]], [scored], 'last');
    const fresh = createCache({ kind: 'h2o', budget: 4, recent: 2 }, cacheShape(model.config));
    const want = forwardBatch(model, [[1, 2, 3, 4]], [fresh], 'last');
    t.same(Array.from(last.dataSync()), Array.from(want.dataSync()), "and takes a block it can: a fresh cache's logits");
    tf.dispose([last, want]);
    scored.dispose();
    fresh.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    disposeModel(model);
  },
);

t.test('SINK_TOKEN: the learned sink of a model that has one (forward, a stream, generate), refused by one that has none', async (t) => {
  const plain = await loaded();
  const vocab = plain.config.vocabSize;
  t.throws(() => forward(plain, [SINK_TOKEN, 1], new CausalBlock()), new ArgumentError('ids', `element 0 is -1, expected a token id in 0..${vocab - 1}`));
  const sinkEmbedding = tf.randomNormal<tf.Rank.R1>([plain.config.dim], 0, 1, 'float32', 5);
  const sinkModel: Model = { ...plain, config: { ...plain.config, sinkToken: true }, weights: { ...plain.weights, sinkEmbedding } };
  const before = tf.memory().numTensors;
  // the sink's row is the learned embedding: forward's logits on [SINK_TOKEN, 1] are those of the sink put first
  const logitsOf = (ids: number[]) => tf.tidy(() => Array.from(forward(sinkModel, ids, new CausalBlock(), 'last').dataSync()));
  t.notSame(logitsOf([SINK_TOKEN, 1]), logitsOf([0, 1]), 'SINK_TOKEN is not token 0');
  const generated: number[] = [];
  for await (const step of generate(sinkModel, { kind: 'streaming', sinkCount: 1, windowSize: 8 }, [1, 2], argmax, { steps: 3 })) generated.push(step.id);
  t.equal(generated.length, 3, 'generate runs (it puts the sink first itself)');
  t.throws(
    () => forward(sinkModel, [1, vocab], new CausalBlock()),
    new ArgumentError('ids', `element 1 is ${vocab}, expected a token id in 0..${vocab - 1} or SINK_TOKEN (-1)`),
  );
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  sinkEmbedding.dispose();
  disposeModel(plain);
});

t.test('a disposed model: one ArgumentError naming it, on the tensor path, one thread and the pool (was a TypeError from tfjs)', async (t) => {
  const disposed = /^model: it was disposed \(disposeModel\): load the model again to use it$/;
  for (const p of [
    undefined,
    { threads: 1, weights: 'q8' },
    { threads: 2, weights: 'q8', splitMinBytes: 0 },
    { threads: 2, weights: 'f32', splitMinBytes: 0 },
  ] as const) {
    const label = p === undefined ? 'tfjs' : `${p.weights} ${p.threads} thread(s)`;
    const model = await loaded(p);
    const before = tf.memory().numTensors;
    const stream = new TokenStream(model, { kind: 'dense' });
    stream.feed([1, 2], 'last').dispose(); // made and fed before: its next feeds fail too
    disposeModel(model);
    const after = tf.memory().numTensors;
    const named = { name: 'ArgumentError', argument: 'model', message: disposed };
    t.throws(() => new TokenStream(model, { kind: 'dense' }), named, `${label}: a new stream`);
    t.throws(() => stream.feed([3]), named, `${label}: feed`);
    t.throws(() => stream.feedLastValues([3]), named, `${label}: feedLastValues (a decode step)`);
    t.throws(() => stream.feedLastGreedy([3]), named, `${label}: feedLastGreedy`);
    const cache = new DenseCache({ layers: 3, kvHeads: 2, headDim: 8 });
    t.throws(() => forward(model, [1, 2, 3], cache), named, `${label}: forward`);
    t.equal(cache.length, 0, `${label}: the cache did not move`);
    cache.dispose();
    const steps = generate(model, { kind: 'dense' }, [1, 2], () => 0, { steps: 2 });
    await t.rejects(steps.next(), named, `${label}: generate`);
    t.equal(tf.memory().numTensors, after, `${label}: no tensor made by the failed calls`);
    stream.dispose();
    t.ok(tf.memory().numTensors < before, `${label}: and the stream's, the model's gone`);
    await model.pool?.dispose();
  }
});

t.test('pooled attention on arrays (no tfjs ops but the stored keys and values) equals the tensor path bit for bit', async (t) => {
  // An attention observer sends every layer through selfAttention's tensors
  // (the observer needs the probabilities); without one, the pooled layers
  // split heads, rotate and attend on arrays (transformer.ts: pooledAttention).
  const policies: KVCachePolicy[] = [{ kind: 'dense' }, { kind: 'streaming', sinkCount: 2, windowSize: 6 }, { kind: 'window', windowSize: 5 }];
  for (const weights of ['f32', 'q8'] as const) {
    const model = await loaded({ threads: 2, weights, splitMinBytes: 0 });
    t.ok(cacheMemory(model) !== undefined, `${weights}: caches for this model go in the pool's memory`);
    for (const softmax of ['softmax', 'softmax1', 'learned-sink'] as const) {
      model.config = { ...model.config, softmax };
      for (const l of model.weights.layers) {
        l.sinkLogits?.dispose();
        if (softmax === 'learned-sink')
          l.sinkLogits = tf.tensor1d(Array.from({ length: model.config.heads }, (_, h) => 0.5 * h - 1)); // [heads]
        else delete l.sinkLogits;
      }
      for (const policy of policies) {
        // inMemory: the cache keeps its entries in the pool's memory (cacheMemory), attended to there in place
        const run = (observe: boolean, inMemory = false) => {
          const cache = createCache(policy, { layers: 3, kvHeads: 2, headDim: 8, entryMemory: inMemory ? cacheMemory(model) : undefined });
          const options = observe ? { onAttention: () => {} } : {};
          const rows: number[] = [];
          // a block of 5 (prefill), then single tokens past the windows
          const blocks = [tokens.slice(0, 5), ...tokens.slice(5, 14).map((id) => [id])];
          for (const ids of blocks) {
            const out = forward(model, ids, cache, 'all', options);
            rows.push(...out.dataSync());
            out.dispose();
          }
          cache.dispose();
          return rows;
        };
        // with the SIMD loops off, the JavaScript loop (single tokens; the block of 5 takes the ops)
        for (const simd of weights === 'f32' ? [true, false] : [true]) {
          setSimdKernels(simd);
          const before = tf.memory().numTensors;
          const held = poolRegions(model.pool!).heldBytes;
          const arrays = run(false);
          t.equal(tf.memory().numTensors, before, 'no tensor leak');
          const name = `${weights}, ${softmax}, ${policy.kind}${simd ? '' : ', no SIMD'}`;
          t.same(arrays, run(true), `${name}: the same logits`);
          t.same(run(false, true), arrays, `${name}: the same logits from a cache in the pool's memory`);
          t.same(run(true, true), arrays, `${name}: and through the tensor path (an observer) from it`);
          t.equal(tf.memory().numTensors, before, 'no tensor leak');
          t.equal(poolRegions(model.pool!).heldBytes, held, "the caches gave the pool's memory back");
          setSimdKernels(true);
        }
      }
    }
    await disposeModel(model);
  }
});

t.test('pooled attention on arrays for a batch of sequences (T = 1 and T = 3) equals the tensor path bit for bit', async (t) => {
  // Each sequence at its own position (prefixes of 4 and 7 tokens), then
  // blocks of 1 and 3 tokens for both at once: the merged heads of the
  // array path (written in place for T = 1) against selfAttention's.
  const model = await loaded({ threads: 2, weights: 'q8', splitMinBytes: 0 });
  t.ok(cacheMemory(model) !== undefined, "caches for this model go in the pool's memory");
  // inMemory: the dense cache in the pool's memory, from 2 slots (it grows, doubling, twice), the streaming one in tensors
  const run = (observe: boolean, inMemory = false) => {
    const options = observe ? { onAttention: () => {} } : {};
    const caches = [
      inMemory
        ? new DenseCache({ layers: 3, kvHeads: 2, headDim: 8, entryMemory: cacheMemory(model) }, 2)
        : new DenseCache({ layers: 3, kvHeads: 2, headDim: 8 }),
      createCache({ kind: 'streaming', sinkCount: 2, windowSize: 6 }, { layers: 3, kvHeads: 2, headDim: 8 }),
    ];
    forward(model, tokens.slice(0, 4), caches[0]!).dispose();
    forward(model, tokens.slice(10, 17), caches[1]!).dispose();
    const rows: number[] = [];
    for (const T of [1, 3, 1]) {
      const out = forwardBatch(model, [tokens.slice(20, 20 + T), tokens.slice(30, 30 + T)], caches, 'all', options);
      rows.push(...out.dataSync());
      out.dispose();
    }
    caches.forEach((c) => c.dispose());
    return rows;
  };
  const before = tf.memory().numTensors;
  const arrays = run(false);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  t.equal(arrays.length, 2 * (1 + 3 + 1) * model.config.vocabSize, 'logits of every token');
  t.same(arrays, run(true), 'the same logits');
  const held = poolRegions(model.pool!).heldBytes;
  t.same(run(false, true), arrays, "the same logits with a growing cache in the pool's memory");
  t.equal(poolRegions(model.pool!).heldBytes, held, 'its memory given back');
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  await disposeModel(model);
});

t.test("a decode step writes its keys and values straight into the slots the cache places (KVCache.place): store's logits bit for bit", async (t) => {
  // The same stream through a cache that places single tokens and through
  // one that only stores (place taken away): a prefill block of 5 (stored),
  // then single tokens (placed in every layer) past the windows, so that
  // the ring wraps and the dense storage grows.
  const policies: KVCachePolicy[] = [{ kind: 'dense' }, { kind: 'streaming', sinkCount: 2, windowSize: 6 }, { kind: 'window', windowSize: 5 }];
  const blocks = [tokens.slice(0, 5), ...tokens.slice(5, 20).map((id) => [id])];
  for (const weights of ['f32', 'q8'] as const) {
    const model = await loaded({ threads: 2, weights, splitMinBytes: 0 });
    for (const policy of policies) {
      const run = (placing: boolean) => {
        const cache = createCache(policy, { layers: 3, kvHeads: 2, headDim: 8, entryMemory: cacheMemory(model) });
        const calls = { placed: 0, stored: 0 };
        const place = cache.place!.bind(cache);
        const store = cache.store.bind(cache);
        cache.place = placing
          ? (layer) => {
              const p = place(layer);
              if (p !== undefined) calls.placed++;
              return p;
            }
          : undefined;
        cache.store = (layer, keys, values) => {
          calls.stored++;
          return store(layer, keys, values);
        };
        const rows: number[] = [];
        for (const ids of blocks) {
          const out = forward(model, ids, cache, 'all');
          rows.push(...out.dataSync());
          out.dispose();
        }
        cache.dispose();
        return { rows, calls };
      };
      const before = tf.memory().numTensors;
      const held = poolRegions(model.pool!).heldBytes;
      const placed = run(true);
      const stored = run(false);
      const name = `${weights}, ${policy.kind}`;
      t.same(placed.calls, { placed: 3 * 15, stored: 3 }, `${name}: every layer of the 15 single tokens placed, the prefill stored`);
      t.same(stored.calls, { placed: 0, stored: 3 * 16 }, `${name}: without place, every layer stored`);
      t.equal(placed.rows.length, blocks.flat().length * model.config.vocabSize, `${name}: logits of every token`);
      t.same(placed.rows, stored.rows, `${name}: the logits of store bit for bit`);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
      t.equal(poolRegions(model.pool!).heldBytes, held, "the caches gave the pool's memory back");
    }
    await disposeModel(model);
  }
});

t.test("TokenStream.feedLastValues (the pooled classifier's output read in place) equals feed(ids, 'last') bit for bit", async (t) => {
  const policies: CachePolicy[] = [{ kind: 'dense' }, { kind: 'streaming', sinkCount: 2, windowSize: 6 }, { kind: 'recompute', windowSize: 5 }];
  for (const p of [undefined, { threads: 2, weights: 'f32', splitMinBytes: 0 } as const, { threads: 2, weights: 'q8', splitMinBytes: 0 } as const]) {
    const model = await loaded(p);
    for (const policy of policies) {
      // a prompt of 5, then single tokens past the windows
      const blocks = [tokens.slice(0, 5), ...tokens.slice(5, 14).map((id) => [id])];
      const viaTensor = new TokenStream(model, policy);
      const viaValues = new TokenStream(model, policy);
      const before = tf.memory().numTensors;
      for (const ids of blocks) {
        const logits = viaTensor.feed(ids, 'last');
        const want = Array.from(logits.dataSync());
        logits.dispose();
        t.same(Array.from(viaValues.feedLastValues(ids)), want, `${p?.weights ?? 'tfjs'}, ${policy.kind}, token ${viaValues.length}`);
      }
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
      viaTensor.dispose();
      viaValues.dispose();
    }
    await disposeModel(model);
  }
});

// A decode step runs as the model's pool program where the pool's SIMD loop attends a cache in place for one
// token (transformer.ts decodeProgramFor, kernels/paths.ts poolAttends): on wasm. On cpu a step keeps the
// fused kernel's float64 JavaScript loop, so no token runs as a program there, and the tests of programs skip.
// (an object of its own for each test: tap writes a test's name, and a --grep's skip, into the options it is given,
// so one object shared by these tests skipped every one of them under any --grep or TAP_GREP)
const programsRun = () => ({ skip: backend !== 'wasm' && 'decode programs run on wasm only (on cpu a step attends by the float64 JavaScript loop)' });

t.test(
  "a decode program's token turned away by a later layer's placement after the first layer's entries moved: the next tokens' program sees the move (the one-job path's logits bit for bit)",
  programsRun(),
  async (t) => {
    const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
    const program = pooledDecodeProgram(model)!;
    t.ok(program !== undefined, 'the model has a decode program');
    const layers = model.config.layers;
    const shape = { ...cacheShape(model.config), entryMemory: cacheMemory(model) };
    // A dense cache whose first layer's entries lie in a storage of their
    // own, which grows (moves) at tokens 4, 8, 16, 32, the other layers' at
    // 64: on the tokens where only the first layer's moved, the last layer's
    // place is refused, and the program turns the token away after it has
    // seen the first layer's move.
    const first = new DenseCache(shape, 4);
    const rest = new DenseCache(shape, 64);
    let firstKeys = -1;
    let moved = false;
    let refused = 0;
    const refusing: KVCache = {
      policy: { kind: 'dense' },
      get length() {
        return first.length;
      },
      get size() {
        return first.size;
      },
      get byteSize() {
        return first.byteSize + rest.byteSize;
      },
      blockLimit: Infinity,
      begin: (T) => {
        rest.begin(T);
        return first.begin(T);
      },
      store: (layer, keys, values) => (layer === 0 ? first : rest).store(layer, keys, values),
      place: (layer) => {
        const placed = (layer === 0 ? first : rest).place(layer);
        if (layer === 0 && placed !== undefined) {
          moved = placed.entries.keys.byteOffset !== firstKeys;
          firstKeys = placed.entries.keys.byteOffset;
        }
        if (layer === layers - 1 && moved) {
          refused++;
          return undefined;
        }
        return placed;
      },
      end: () => {
        first.end();
        rest.end();
      },
      abandon: () => {
        first.abandon();
        rest.abandon();
      },
      reset: () => {
        first.reset();
        rest.reset();
      },
      dispose: () => {
        first.dispose();
        rest.dispose();
      },
    };
    const plain = new DenseCache(shape, 4);
    const before = tf.memory().numTensors;
    const runs = program.runs;
    const ids = Array.from({ length: 40 }, (_, i) => tokens[(5 * i) % tokens.length]!);
    let same = 0;
    for (const id of ids) {
      const want = oneJobPath(() => forwardLastValues(model, [id], plain).slice());
      const got = forwardLastValues(model, [id], refusing).slice();
      if (bitsEqual(got, want)) same++;
    }
    t.ok(refused >= 3, `the last layer's place refused on the tokens the first layer's entries moved (${refused})`);
    t.equal(program.runs - runs, ids.length - refused, 'every other token ran as the program');
    t.equal(same, ids.length, "the one-job path's logits bit for bit, every token");
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    refusing.dispose();
    plain.dispose();
    await disposeModel(model);
  },
);

// KVCache.abandon (src/cache/types.ts, Failing): a decode step that throws
// inside the model's pool program, after the cache began the token (here its
// last layer's place), leaves the cache as if the token had never come: the
// next tokens' logits are those of a cache that never saw it, bit for bit. A
// streaming cache in the pool's memory, its ring wrapping.
t.test("a decode program's step that throws after the cache began: the cache as before it, the next tokens' logits bit for bit", programsRun(), async (t) => {
  const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
  const program = pooledDecodeProgram(model)!;
  t.ok(program !== undefined, 'the model has a decode program');
  const layers = model.config.layers;
  const shape = { ...cacheShape(model.config), entryMemory: cacheMemory(model) };
  let armed = false;
  class FailingPlace extends StreamingCache {
    override place(layer: number): PlacedEntries | undefined {
      if (armed && layer === layers - 1) throw new Error('injected');
      return super.place(layer);
    }
  }
  const failing = new FailingPlace(2, 5, shape);
  const plain = new StreamingCache(2, 5, shape);
  const before = tf.memory().numTensors;
  const runs = program.runs;
  const ids = Array.from({ length: 24 }, (_, i) => tokens[(3 * i) % tokens.length]!);
  let same = 0;
  let thrown = 0;
  for (const [i, id] of ids.entries()) {
    const want = forwardLastValues(model, [id], plain).slice();
    const got = forwardLastValues(model, [id], failing).slice();
    if (bitsEqual(got, want)) same++;
    if (i % 3 !== 2) continue;
    armed = true;
    try {
      forwardLastValues(model, [tokens[i]!], failing);
    } catch (e) {
      if ((e as Error).message === 'injected') thrown++;
    }
    armed = false;
    t.equal(failing.length, plain.length, `token ${i}: the failed step left the length as it was`);
  }
  t.equal(thrown, ids.length / 3, 'every armed step threw');
  t.equal(program.runs - runs, 2 * ids.length, 'every step that did not throw ran as the program (both caches)');
  t.equal(same, ids.length, 'the logits of a cache that never saw the failed steps, bit for bit, every token');
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  failing.dispose();
  plain.dispose();
  await disposeModel(model);
});

// KVCache.place's contract (src/cache/types.ts): ask anew each block, the
// arrays may have moved. A cache may give them in one object it updates
// (EntryStorage gives a new one when they move); the program must see the
// move either way, not keep the placement of an object it saw before.
t.test(
  "a cache that gives its placed entries in one object it updates as they move: each token's program sees the move (the one-job path's logits bit for bit)",
  programsRun(),
  async (t) => {
    const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
    const program = pooledDecodeProgram(model)!;
    t.ok(program !== undefined, 'the model has a decode program');
    class OnePlacedObject extends DenseCache {
      private readonly kept: PlacedEntries[] = [];
      override place(layer: number): PlacedEntries | undefined {
        const placed = super.place(layer);
        if (placed === undefined) return undefined;
        const kept = (this.kept[layer] ??= { entries: { ...placed.entries }, at: placed.at });
        Object.assign(kept.entries, placed.entries); // (the same object, the storage's arrays and shape now)
        kept.at = placed.at;
        return kept;
      }
    }
    const shape = { ...cacheShape(model.config), entryMemory: cacheMemory(model) };
    // 4 slots at first: the entries move as the cache grows at tokens 4, 8, 16 and 32
    const updating = new OnePlacedObject(shape, 4);
    const plain = new DenseCache(shape, 4);
    const before = tf.memory().numTensors;
    const runs = program.runs;
    const N = 40;
    let same = 0;
    for (let i = 0; i < N; i++) {
      const id = tokens[(5 * i) % tokens.length]!;
      const got = forwardLastValues(model, [id], updating).slice();
      const want = oneJobPath(() => forwardLastValues(model, [id], plain));
      if (bitsEqual(got, want)) same++;
    }
    t.equal(updating.size, N, `${N} entries, grown four times`);
    t.equal(program.runs - runs, N, 'every token ran as the program');
    t.equal(same, N, "the one-job path's logits bit for bit, every token");
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    updating.dispose();
    plain.dispose();
    await disposeModel(model);
  },
);

t.test(
  "a decode step as one pool program (decode_program.ts), on 1 to 3 threads: 320 tokens through a streaming cache that wraps, the one-job path's and the tfjs path's logits and picks bit for bit",
  programsRun(),
  async (t) => {
    const stream = Array.from({ length: 320 }, (_, i) => tokens[(7 * i) % tokens.length]!);
    const policies: CachePolicy[] = [{ kind: 'streaming', sinkCount: 4, windowSize: 40 }, { kind: 'dense' }];
    const plain = await loaded();
    for (const p of [
      { threads: 2, weights: 'q8', splitMinBytes: 0 },
      { threads: 3, weights: 'f32', splitMinBytes: 0 },
      { threads: 2, weights: 'f32' },
      { threads: 3, weights: 'q8' },
      // one thread: the caller walks the program alone (the default of --threads 1)
      { threads: 1, weights: 'f32' },
      { threads: 1, weights: 'q8' },
    ] as const) {
      const model = await loaded(p);
      const program = pooledDecodeProgram(model);
      t.ok(program !== undefined, `${p.weights} ${p.threads} threads: the model has a decode program`);
      // feed(ids, 'last') of one token runs it too (forwardBatch), as a tensor
      {
        const a = new TokenStream(model, policies[0]!);
        const b = new TokenStream(model, policies[0]!);
        a.feed(stream.slice(0, 3), 'last').dispose();
        b.feed(stream.slice(0, 3), 'last').dispose();
        const runs = program?.runs ?? 0;
        const viaFeed = a.feed([stream[3]!], 'last');
        t.equal((program?.runs ?? 0) - runs, 1, `${p.weights} ${p.threads} threads: feed of one token ran the program`);
        t.same(Array.from(viaFeed.dataSync()), Array.from(b.feedLastValues([stream[3]!])), 'the same logits as feedLastValues');
        viaFeed.dispose();
        a.dispose();
        b.dispose();
      }
      // a cache that cannot place (h2o): the block begun for the program goes the one-job path, feed's logits
      {
        const policy: CachePolicy = { kind: 'h2o', budget: 8, recent: 4 };
        const a = new TokenStream(model, policy);
        const b = new TokenStream(model, policy);
        const before = tf.memory().numTensors;
        const runs = program?.runs ?? 0;
        let same = 0;
        for (const id of stream.slice(0, 20)) {
          const logits = a.feed([id], 'last');
          if (bitsEqual(b.feedLastValues([id]), logits.dataSync() as Float32Array)) same++;
          logits.dispose();
        }
        t.equal(same, 20, `${p.weights} ${p.threads} threads, h2o: feed's logits bit for bit`);
        t.equal((program?.runs ?? 0) - runs, 0, 'and no program ran');
        t.equal(b.length, 20, 'each token once in the stream');
        t.equal(tf.memory().numTensors, before, 'no tensor leak');
        a.dispose();
        b.dispose();
      }
      for (const policy of policies) {
        const label = `${p.weights} ${p.threads} threads${p.splitMinBytes === 0 ? ', every step split' : ''}, ${policy.kind}`;
        const runs = program?.runs ?? 0;
        // a prompt of 3 (not a program's: T = 3), then single tokens
        const blocks = [stream.slice(0, 3), ...stream.slice(3).map((id) => [id])];
        const tfjs = p.weights === 'f32' && backend === 'wasm';
        const d = decodeThreeWays(model, plain, policy, blocks, tfjs);
        t.equal(d.same, blocks.length, `${label}: the one-job path's logits bit for bit, every token`);
        t.equal(d.picks, blocks.length, `${label}: the greedy pick of those logits, every token`);
        if (tfjs) t.equal(d.sameTfjs, blocks.length, `${label}: the tfjs path's logits bit for bit, every token`);
        t.equal((program?.runs ?? 0) - runs, blocks.length - 1, `${label}: every single token ran as the program`);
        t.equal(d.leaked, 0, `${label}: no tensor leak`);
      }
      await disposeModel(model);
    }
    disposeModel(plain);
  },
);

t.test(
  "an attention-only model (zoo backcopy-attn, intermediate size 0) decodes as a program on 1 and 2 threads: 300 tokens through a streaming cache that wraps, the one-job path's and the tfjs path's logits bit for bit",
  programsRun(),
  async (t) => {
    const dir = join(WEIGHTS, 'backcopy-attn');
    const plain = loadModel(dir);
    t.equal(plain.config.hiddenDim, 0, 'the model has no feed-forward');
    const vocab = plain.config.vocabSize;
    const stream = Array.from({ length: 300 }, (_, i) => (31 * i + 7) % (vocab - 1));
    const policy: CachePolicy = { kind: 'streaming', sinkCount: 4, windowSize: 40 };
    const idle = workerThreads();
    for (const p of [
      { threads: 1, weights: 'f32' },
      { threads: 2, weights: 'f32' },
      { threads: 2, weights: 'q8', splitMinBytes: 0 },
    ] as const) {
      const label = `${p.weights} ${p.threads} threads`;
      const model = loadModelPlaced(dir, p, 'test');
      await model.pool?.ready();
      t.ok(residualInPool(model), `${label}: its residual stream stays in the pool`);
      const program = pooledDecodeProgram(model);
      t.ok(program !== undefined, `${label}: the model has a decode program`);
      const runs = program?.runs ?? 0;
      const blocks = [stream.slice(0, 3), ...stream.slice(3).map((id) => [id])];
      const tfjs = p.weights === 'f32';
      const d = decodeThreeWays(model, plain, policy, blocks, tfjs);
      t.equal(d.same, blocks.length, `${label}: the one-job path's logits bit for bit, every token`);
      if (tfjs) t.equal(d.sameTfjs, blocks.length, `${label}: the tfjs path's logits bit for bit, every token`);
      t.equal((program?.runs ?? 0) - runs, blocks.length - 1, `${label}: every single token ran as the program`);
      t.equal(d.leaked, 0, `${label}: no tensor leak`);
      await disposeModel(model);
      t.equal(workerThreads(), idle, `${label}: no worker thread left once the pool is disposed`);
    }
    disposeModel(plain);
  },
);

t.test(
  "several streams of one model alternating token by token through its one decode program: each stream's logits of the one-job path bit for bit, for each softmax variant",
  programsRun(),
  async (t) => {
    // One program per model, patched per token: every word a stream owns (the
    // cache's slot and entries, the frames: two with sinks, one without, the
    // rotation angles, the scores' room as the dense cache grows past 256)
    // must be patched anew when the next token is another stream's. The
    // variants with an extra logit (softmax1's zero, learned-sink's per head
    // and layer) through the attention records' sinks.
    const policies: CachePolicy[] = [{ kind: 'streaming', sinkCount: 3, windowSize: 20 }, { kind: 'dense' }, { kind: 'window', windowSize: 7 }];
    for (const [softmax, steps] of [
      ['softmax', 270],
      ['softmax1', 40],
      ['learned-sink', 40],
    ] as const) {
      const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));
      model.config = { ...model.config, softmax };
      const { heads } = model.config;
      if (softmax === 'learned-sink')
        model.weights.layers.forEach((l, i) => (l.sinkLogits = tf.tensor1d(Array.from({ length: heads }, (_, h) => Math.sin(3 * i + h)))));
      placeWeights(model, { threads: 2, weights: 'q8', splitMinBytes: 0 });
      await model.pool!.ready();
      const program = pooledDecodeProgram(model);
      t.ok(program !== undefined, `${softmax}: the model has a decode program`);
      const viaProgram = policies.map((p) => new TokenStream(model, p));
      const viaJobs = policies.map((p) => new TokenStream(model, p));
      const before = tf.memory().numTensors;
      const idOf = (s: number, i: number) => tokens[(5 * i + 11 * s) % tokens.length]!;
      const runs = program?.runs ?? 0;
      let same = 0;
      for (let i = 0; i < steps; i++) {
        for (let s = 0; s < policies.length; s++) {
          const got = viaProgram[s]!.feedLastValues([idOf(s, i)]).slice();
          const want = oneJobPath(() => viaJobs[s]!.feedLastValues([idOf(s, i)]));
          if (bitsEqual(got, want)) same++;
        }
      }
      t.equal(same, steps * policies.length, `${softmax}: every stream, every token`);
      t.equal((program?.runs ?? 0) - runs, steps * policies.length, `${softmax}: each of them a run of the program`);
      t.equal(tf.memory().numTensors, before, `${softmax}: no tensor leak`);
      [...viaProgram, ...viaJobs].forEach((s) => s.dispose());
      await disposeModel(model);
    }
  },
);

// The program settles a layer's Attend records (their extra logit among the
// words that stay) only when something changed: a placement moved, another
// frame count, or another softmax in the model's config. A config changed
// between tokens of one stream, from softmax to softmax1 (neither learned,
// so nothing else tells the program) and back, must be seen.
t.test(
  "a model's softmax changed between tokens of one stream: the program's next tokens use it (the one-job path's logits bit for bit)",
  programsRun(),
  async (t) => {
    const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
    const program = pooledDecodeProgram(model)!;
    t.ok(program !== undefined, 'the model has a decode program');
    const viaProgram = new TokenStream(model, { kind: 'dense' });
    const viaJobs = new TokenStream(model, { kind: 'dense' });
    // (softmax throughout, the one-job path: softmax1's tokens must differ from it)
    const plain = new TokenStream(model, { kind: 'dense' });
    const before = tf.memory().numTensors;
    const runs = program.runs;
    const variants = ['softmax', 'softmax1', 'softmax'] as const;
    let same = 0;
    let told = 0;
    for (let i = 0; i < 12; i++) {
      const softmax = variants[Math.floor(i / 4)]!;
      const id = tokens[(3 * i) % tokens.length]!;
      model.config = { ...model.config, softmax };
      const got = viaProgram.feedLastValues([id]).slice();
      const want = oneJobPath(() => viaJobs.feedLastValues([id]).slice());
      model.config = { ...model.config, softmax: 'softmax' };
      const softmaxOnly = oneJobPath(() => plain.feedLastValues([id]));
      if (bitsEqual(got, want)) same++;
      if (softmax === 'softmax1' && !bitsEqual(want, softmaxOnly)) told++;
    }
    t.equal(told, 4, "softmax1's logits differ from softmax's (the variants are told apart)");
    t.equal(same, 12, "every token's logits the one-job path's bit for bit, across softmax, softmax1, softmax");
    t.equal(program.runs - runs, 12, 'each token ran as the program');
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    [viaProgram, viaJobs, plain].forEach((s) => s.dispose());
    await disposeModel(model);
  },
);

// The program's records hold the rope's layout and its angles' room the
// rotary dimension of the model it was made for; a config changed between
// tokens to another theta is followed (the angles are the token's), to
// another rotary dimension or layout the program declines the token (the
// one-job path runs it). Before, the program ran with the old rotation,
// and a larger rotary dimension wrote its angles past the layer's room.
t.test(
  "a model's rope changed between tokens of one stream: the one-job path's logits bit for bit (theta, rotary dimension, layout)",
  programsRun(),
  async (t) => {
    const model = await loaded({ threads: 2, weights: 'f32', splitMinBytes: 0 });
    const program = pooledDecodeProgram(model)!;
    t.ok(program !== undefined, 'the model has a decode program');
    const rope = model.config.rope;
    t.equal(rope.rotaryDim, model.config.headDim, 'the rotation covers the head');
    const ropes = [
      { label: 'theta 500', rope: { ...rope, theta: 500 }, runs: true },
      { label: 'rotary dimension headDim / 2', rope: { ...rope, rotaryDim: rope.rotaryDim / 2 }, runs: false },
      { label: 'layout halves', rope: { ...rope, layout: 'halves' as const }, runs: false },
      // (positions / scale past 2^20 pi/2, 1,647,100: loops.wat ropeAngles declines them, the program computes them in JavaScript)
      { label: 'scale 1e-6', rope: { ...rope, scale: 1e-6 }, runs: true },
      { label: 'the first rope again', rope, runs: true },
    ];
    const viaProgram = new TokenStream(model, { kind: 'dense' });
    const viaJobs = new TokenStream(model, { kind: 'dense' });
    const before = tf.memory().numTensors;
    let i = 0;
    for (const { label, rope: r, runs } of ropes) {
      model.config = { ...model.config, rope: r };
      const ran = program.runs;
      let same = 0;
      for (let k = 0; k < 3; k++, i++) {
        const id = tokens[(7 * i) % tokens.length]!;
        const got = viaProgram.feedLastValues([id]).slice();
        const want = oneJobPath(() => viaJobs.feedLastValues([id]));
        if (bitsEqual(got, want)) same++;
      }
      t.equal(same, 3, `${label}: each token's logits the one-job path's bit for bit`);
      t.equal(program.runs - ran, runs ? 3 : 0, `${label}: ${runs ? 'run as the program' : 'not run as the program'}`);
    }
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    [viaProgram, viaJobs].forEach((s) => s.dispose());
    await disposeModel(model);
  },
);

t.test(
  'a model of more layers than a pool program holds (q8: 10 steps a layer, 2048 steps) decodes without one; one of 204 layers has one, right',
  programsRun(),
  async (t) => {
    // (decode threw PoolProgram's RangeError for any model past 204 layers)
    for (const [layers, programmed] of [
      [205, false],
      [204, true],
    ] as const) {
      const model = modelFromLlama2c(
        randomLlama2c({ dim: 32, hiddenDim: 64, layers, heads: 4, kvHeads: 2, vocabSize: 37, maxSeqLen: 64, sharedClassifier: false }, 'deep'),
      );
      placeWeights(model, { threads: 2, weights: 'q8' });
      await model.pool!.ready();
      t.equal(pooledDecodeProgram(model) !== undefined, programmed, `${layers} layers: ${programmed ? 'a' : 'no'} decode program`);
      const viaProgram = new TokenStream(model, { kind: 'dense' });
      const viaJobs = new TokenStream(model, { kind: 'dense' });
      let same = 0;
      for (const ids of [[1, 2], [3], [4]]) {
        const got = viaProgram.feedLastValues(ids).slice();
        const want = oneJobPath(() => viaJobs.feedLastValues(ids));
        if (bitsEqual(got, want) && got.every(Number.isFinite)) same++;
      }
      t.equal(same, 3, `${layers} layers: each token's logits, finite, the one-job path's bit for bit`);
      t.equal(pooledDecodeProgram(model)?.runs ?? 0, programmed ? 2 : 0, `${layers} layers: the single tokens ${programmed ? '' : 'not '}run as the program`);
      [viaProgram, viaJobs].forEach((s) => s.dispose());
      await disposeModel(model);
    }
  },
);

t.test(
  "a decode program keeps the embedding rows it reads between tokens: after the wasm memory grows and after the embedding is replaced, the one-job path's bits",
  programsRun(),
  async (t) => {
    // (the program keeps a view of the embedding's rows from token to token;
    // a grown wasm memory detaches it, a new tensor is elsewhere: each must
    // be seen, else the step reads a dead view or the old rows)
    const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));
    placeWeights(model, { threads: 2, weights: 'q8', splitMinBytes: 0 });
    await model.pool!.ready();
    const program = pooledDecodeProgram(model);
    t.ok(program !== undefined, 'the model has a decode program');
    const memory = wasmBackendMemory();
    t.ok(memory !== undefined, 'the wasm backend runs');
    const viaProgram = new TokenStream(model, { kind: 'dense' });
    const viaJobs = new TokenStream(model, { kind: 'dense' });
    const before = tf.memory().numTensors;
    let same = 0;
    const step = (id: number) => {
      const got = viaProgram.feedLastValues([id]).slice();
      const want = oneJobPath(() => viaJobs.feedLastValues([id]));
      if (bitsEqual(got, want)) same++;
    };
    [1, 2, 3].forEach(step);
    // grow the wasm backend's memory (tensors of 16 MiB until its buffer is another)
    const buffer = memory!.buffer;
    const fill: tf.Tensor[] = [];
    while (memory!.buffer === buffer && fill.length < 64) fill.push(tf.zeros([2 ** 22])); // [4Mi] floats each
    t.not(memory!.buffer, buffer, 'the wasm memory grew');
    fill.forEach((x) => x.dispose());
    [4, 5].forEach(step);
    // another embedding tensor (rows scaled): the program reads the new one's rows
    const old = model.weights.embedding;
    model.weights.embedding = tf.mul<tf.Tensor2D>(old, 1.5); // [vocab, dim]
    old.dispose();
    [6, 7].forEach(step);
    t.equal(same, 7, "each token's logits the one-job path's bit for bit");
    t.equal(program?.runs, 7, 'each token ran as the program');
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    [viaProgram, viaJobs].forEach((s) => s.dispose());
    await disposeModel(model);
  },
);

/** f's result on the one-job-at-a-time path (decode programs off), programs back on after it, whatever f throws. */
function oneJobPath<T>(f: () => T): T {
  setDecodePrograms(false);
  try {
    return f();
  } finally {
    setDecodePrograms(true);
  }
}

/**
 * `blocks` fed to three streams of `policy`: `model`'s through its decode
 * program, `model`'s on the one-job path, and `plain`'s (the tfjs path).
 * Counts the blocks whose program logits equal the one-job path's bit for
 * bit, whose greedy pick (the classifier step's records, pooledArgmax) is
 * the argmax of those, and (with `tfjs`) that equal the tfjs path's (fed
 * either way); `leaked`: tensors left while the streams were fed.
 */
function decodeThreeWays(model: Model, plain: Model, policy: CachePolicy, blocks: number[][], tfjs: boolean) {
  const viaProgram = new TokenStream(model, policy);
  const viaJobs = new TokenStream(model, policy);
  const viaTfjs = new TokenStream(plain, policy);
  const before = tf.memory().numTensors;
  let same = 0;
  let picks = 0;
  let sameTfjs = 0;
  for (const ids of blocks) {
    const logits = oneJobPath(() => viaJobs.feed(ids, 'last'));
    const want = logits.dataSync() as Float32Array;
    const got = viaProgram.feedLastValues(ids);
    if (bitsEqual(got, want)) same++;
    if (pooledArgmax(model.pool!, got) === argmax(want)) picks++;
    logits.dispose();
    const viaPlain = viaTfjs.feed(ids, 'last');
    if (tfjs && bitsEqual(got, viaPlain.dataSync() as Float32Array)) sameTfjs++;
    viaPlain.dispose();
  }
  const leaked = tf.memory().numTensors - before;
  [viaProgram, viaJobs, viaTfjs].forEach((s) => s.dispose());
  return { same, picks, sameTfjs, leaked };
}

/** Whether two arrays hold the same float32 bits. */
function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

t.test("generate with a greedy sampler (the pooled logits' argmax found where they lie) picks the plain sampler path's ids", async (t) => {
  // the same pick, not declared greedy: generate reads the logits and calls it
  const plainArgmax = (logits: ArrayLike<number>) => argmax(logits);
  const ids = async (model: Model, sample: typeof argmax | typeof plainArgmax, policy: CachePolicy) => {
    const out: number[] = [];
    for await (const step of generate(model, policy, tokens.slice(0, 3), sample, { steps: 24 })) out.push(step.id);
    return out;
  };
  const placements: Placement[] = [
    { threads: 1, weights: 'q8' },
    { threads: 2, weights: 'q8', splitMinBytes: 0 },
    { threads: 3, weights: 'q8', splitMinBytes: 0 },
    { threads: 2, weights: 'f32', splitMinBytes: 0 },
  ];
  for (const p of placements) {
    const model = await loaded(p);
    const label = `${p.weights} ${p.threads} threads`;
    for (const policy of [{ kind: 'dense' }, { kind: 'streaming', sinkCount: 2, windowSize: 6 }] as CachePolicy[]) {
      const before = tf.memory().numTensors;
      const want = await ids(model, plainArgmax, policy);
      t.same(await ids(model, argmax, policy), want, `${label}, ${policy.kind}`);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    }
    // ties: classifier rows 0..9 half of the rest, which are all equal, so
    // that every logit ties with 9 or 80 others; the first is picked (0 or 10)
    const classifier = model.weights.pooledClassifier!;
    const row = Float32Array.from({ length: classifier.cols }, (_, i) => Math.sin(i + 1));
    const half = row.map((v) => v / 2);
    for (let r = 0; r < classifier.rows; r++) writeRow(classifier, r, r < 10 ? half : row);
    const tied = await ids(model, argmax, { kind: 'dense' });
    t.same(tied, await ids(model, plainArgmax, { kind: 'dense' }), `${label}, ties: the plain path's ids`);
    t.ok(
      tied.every((id) => id === 0 || id === 10),
      `${label}, ties: the first of the tied largest (${tied.join(' ')})`,
    );
    await disposeModel(model);
  }
});

t.test('q8: the same on every thread count, perplexity within 1% of float32', async (t) => {
  let first: number[][] | undefined;
  const text = expected.tokens.slice(0, dense.tokens);
  for (const threads of [1, 2, 3]) {
    const model = await loaded({ threads, weights: 'q8', splitMinBytes: 0 });
    t.ok(model.pool !== undefined, `${threads} threads: q8 runs in the pool`);
    const blocked = await scoreTokens(model, text, { kind: 'dense' }, { mode: 'blocked', blockSize: 16 });
    const stepwise = await scoreTokens(model, text, { kind: 'dense' }, { mode: 'stepwise' });
    // Blocked and stepwise agree bit for bit where their attention runs the same loop: on wasm every block does
    // (the SIMD loop: the fused kernel's, or the pool's). On cpu a single step, and a block of up to FUSED_MAX_QUERIES,
    // runs the fused kernel's float64 JavaScript loop, a block of 16 the pool's SIMD loop (float32) and one in between
    // tfjs ops (kernels/paths.ts): there blocks of FUSED_MAX_QUERIES are bit for bit, blocks of 16 within the two
    // loops' rounding, which q8's rounding of each product's input to int16 carries on (measured: 3.6e-4 at most).
    const sameLoop = backend === 'wasm' ? blocked : await scoreTokens(model, text, { kind: 'dense' }, { mode: 'blocked', blockSize: FUSED_MAX_QUERIES });
    t.same(
      Array.from(sameLoop.nll),
      Array.from(stepwise.nll),
      `blocked (blocks of ${sameLoop === blocked ? 16 : FUSED_MAX_QUERIES}) and stepwise agree bit for bit`,
    );
    if (backend !== 'wasm')
      t.ok(maxAbsDiff(blocked.nll, stepwise.nll) < 1e-3, `blocks of 16 within ${maxAbsDiff(blocked.nll, stepwise.nll).toExponential(2)} of stepwise`);
    // on every backend, every path's choice is the same on any number of threads (on cpu the pool's loops run for one thread too)
    const all = [blocked, stepwise, sameLoop].map((r) => Array.from(r.nll));
    if (first === undefined) first = all;
    else t.same(all, first, 'bit for bit the one-thread NLLs, blocked and stepwise');
    // the issue's bar; measured: float32 ppl 703.85, q8 708.71 (+0.69%, the weights' rounding; with x
    // rounded to int8 as well it was 693.70, -1.44%); README, bench/q8_accuracy.ts
    const ratio = Math.exp(meanNll(blocked.nll) - meanNll(dense.nll));
    t.ok(Math.abs(ratio - 1) < 0.01, `q8 / float32 perplexity ${ratio.toFixed(4)}`);
    t.ok(ratio !== 1, 'and it is not the float32 model');
    await disposeModel(model);
  }
});

t.test(
  "on cpu no token runs as a decode program (programsRun's reason): a step attends by the float64 JavaScript loop",
  { skip: backend !== 'cpu' && 'a cpu claim: the wasm suite runs it in a child process on cpu (the next test)' },
  async (t) => {
    const model = await loaded({ threads: 2, weights: 'q8', splitMinBytes: 0 });
    const stream = new TokenStream(model, { kind: 'dense' });
    for (const id of [1, 2, 3]) stream.feedLastValues([id]);
    t.equal(pooledDecodeProgram(model)?.runs ?? 0, 0, 'three single tokens, none as the program');
    stream.dispose();
    await disposeModel(model);
  },
);

t.test(
  'q8 and decode steps on the cpu backend too: the two tests above, in a child process on cpu (whose attention loops differ by block size, not by thread count)',
  { skip: backend !== 'wasm' && 'run from the wasm suite (this process runs them on its own backend)' },
  async (t) => {
    const env = { ...process.env, STREAMLLM_TEST_BACKEND: 'cpu', TAP_GREP: '^(q8: the same on every thread count|on cpu no token runs as a decode program)' };
    // (tap's loader where this file runs from its TypeScript source; nothing from dist/test/)
    const r = spawnSync(process.execPath, [...(extname(process.argv[1]!) === '.ts' ? process.execArgv : []), process.argv[1]!], { env, encoding: 'utf8' });
    t.equal(r.status, 0, `the child passes (${r.stderr.trim().split('\n')[0] ?? ''})`);
    t.notMatch(r.stdout, /^\s*not ok/m, 'no failure');
    t.match(r.stdout, /^ok \d+ - q8: the same on every thread count/m, 'the q8 test ran on cpu');
    t.match(r.stdout, /ok \d+ - blocked \(blocks of 4\) and stepwise agree bit for bit/, "with cpu's claim");
    t.match(r.stdout, /^ok \d+ - on cpu no token runs as a decode program/m, 'and the cpu decode claim');
  },
);

t.test('eval --threads, --weights and --products', async (t) => {
  const dir = tempDir('streamllm-pool-');
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, JSON.stringify(expected.tokens.slice(0, 64)));
  const model = `${FIXTURES}tiny-gqa.bin`;
  const r = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--threads', '2', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /products: f32 weights \([\d.]+ MiB\) on 2 threads/);
  t.ok(maxAbsDiff((JSON.parse(r.stdout) as { nll: number[] }).nll, dense.nll.slice(0, 63)) < 1e-4, 'the conformance NLLs');
  const q = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--threads', '1', '--weights', 'q8', '--json']);
  t.equal(q.status, 0, q.stderr);
  t.match(q.stderr, /products: q8 weights .* on 1 thread, (2 MB pages asked for|4 KB pages \(.+\))\n/);
  // --threads 1: float32 in a pool of one thread (no workers); --products tfjs: the backend's own products, the same NLLs
  const one = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--threads', '1', '--json']);
  t.equal(one.status, 0, one.stderr);
  t.match(one.stderr, /products: f32 weights .* on 1 thread, /, '--threads 1 with float32: the pool, on the calling thread');
  const tfjs = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--products', 'tfjs', '--json']);
  t.equal(tfjs.status, 0, tfjs.stderr);
  t.notMatch(tfjs.stderr, /products:/, '--products tfjs: no pool');
  const nll = (r: { stdout: string }) => (JSON.parse(r.stdout) as { nll: number[] }).nll;
  if (backend === 'wasm') t.same(nll(one), nll(tfjs), "--threads 1: --products tfjs's NLLs bit for bit");
  t.ok(maxAbsDiff(nll(one), nll(tfjs)) < 1e-5, "--threads 1: --products tfjs's NLLs");
  for (const [flags, message] of [
    [['--threads', '0'], /eval --threads: must be >= 1, got 0/],
    [['--weights', 'q4'], /eval --weights: expected one of f32, q8, got 'q4'/],
    [['--products', 'xnnpack'], /eval --products: expected one of pool, tfjs, got 'xnnpack'/],
    [['--products', 'tfjs', '--weights', 'q8'], /eval --products tfjs: float32 only \(--weights q8 runs in the pool\), got --weights q8\n/],
    [['--products', 'tfjs', '--threads', '2'], /eval --products tfjs: one thread \(the \w+ backend's kernels run on one in Node\), got --threads 2\n/],
  ] as const) {
    const bad = await runCliInProcess(['eval', '--model', model, '--tokens', ids, ...flags]);
    t.equal(bad.status, 2, `${flags.join(' ')}: exit code 2`);
    t.match(bad.stderr, message);
  }
});

// The public API's placement (src/index.ts: loadModel's threads, weights and
// products, src/model/placement.ts): the CLI's fast paths for a library user,
// decided by the function the CLI calls, and disposeModel stopping the pool's
// workers.

t.test("loadModel's placement options: 2 threads f32 the plain path's logits and NLLs, q8 the CLI's NLLs; disposeModel stops the workers", async (t) => {
  const api = await import('../src/index.js');
  const file = `${FIXTURES}tiny-gqa.bin`;
  const text = expected.tokens.slice(0, dense.tokens);
  const idle = workerThreads();
  const tensors = tf.memory().numTensors;
  const plain = api.loadModel(file);
  t.equal(plain.pool, undefined, 'no option: the plain tfjs path, as before');
  const plainLogits = logits(plain);
  const plainNll = (await api.scoreTokens(plain, text, { kind: 'dense' }, { mode: 'stepwise' })).nll;
  await api.disposeModel(plain);

  const f32 = api.loadModel(file, { threads: 2 });
  t.equal(f32.pool?.threads, 2, 'threads 2: a pool of two threads');
  await f32.pool!.ready(); // (its keeper thread counted once it runs)
  t.ok(f32.weights.layers[0]!.qkv.weight === undefined && f32.weights.layers[0]!.qkv.pooled?.format === 'f32', 'float32 matrices in the pool');
  t.equal(workerThreads(), idle + 1, 'its keeper thread runs');
  const got = logits(f32);
  const nll = (await api.scoreTokens(f32, text, { kind: 'dense' }, { mode: 'stepwise' })).nll;
  // as the test of placeWeights above: the same bits on wasm, within the products' summing order on cpu
  if (backend === 'wasm') {
    t.same(Array.from(got), Array.from(plainLogits), "the plain path's logits bit for bit");
    t.same(Array.from(nll), Array.from(plainNll), 'and its stepwise NLLs');
  }
  t.ok(maxAbsDiff(got, plainLogits) / Math.max(...Array.from(plainLogits, Math.abs)) < 4e-6, 'the plain logits within float32 rounding');
  t.ok(maxAbsDiff(nll, dense.nll) < 1e-4, 'the conformance NLLs');
  const f32Blocked = await api.scoreTokens(f32, text, { kind: 'dense' });
  await api.disposeModel(f32);
  t.equal(workerThreads(), idle, 'disposeModel: no worker thread left once it resolves');

  // q8 on 2 threads: the NLLs of eval --threads 2 --weights q8 (the CLI's path), bit for bit; perplexity within 1% of f32 (README)
  const q8 = api.loadModel(file, { threads: 2, weights: 'q8' });
  t.equal(q8.weights.layers[0]!.qkv.pooled?.format, 'q8', 'weights q8: q8 matrices');
  const q8Blocked = await api.scoreTokens(q8, text, { kind: 'dense' });
  await api.disposeModel(q8);
  const dir = tempDir('streamllm-api-');
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, JSON.stringify(text));
  const cli = await runCliInProcess([
    'eval',
    '--model',
    file,
    '--tokens',
    ids,
    '--cache',
    'dense',
    '--threads',
    '2',
    '--weights',
    'q8',
    '--json',
    '--backend',
    backend,
  ]);
  t.equal(cli.status, 0, cli.stderr);
  t.same(Array.from(q8Blocked.nll), (JSON.parse(cli.stdout) as { nll: number[] }).nll, "eval --threads 2 --weights q8's NLLs bit for bit");
  const ratio = Math.exp(meanNll(q8Blocked.nll) - meanNll(f32Blocked.nll));
  t.ok(Math.abs(ratio - 1) < 0.01 && ratio !== 1, `q8 / f32 perplexity ${ratio.toFixed(4)}: within 1%, and not f32`);
  t.equal(tf.memory().numTensors, tensors, 'no tensor leak (eval disposes its model too)');
  t.equal(workerThreads(), idle, 'no worker thread left');
});

t.test("loadModel's placement defaults: the CLI's (every core, f32, the pool on wasm and cpu; tensorflow's own threads)", async (t) => {
  const api = await import('../src/index.js');
  const { placementOf } = await import('../src/model/placement.js');
  const file = `${FIXTURES}tiny-gqa.bin`;
  const idle = workerThreads();
  for (const [options, want] of [
    [{}, undefined],
    [{ onNote: () => {} }, undefined],
    [{ products: 'tfjs' }, undefined],
    [{ products: 'tfjs', threads: 1, weights: 'f32' }, undefined],
    [{ products: 'pool' }, { threads: availableParallelism(), format: 'f32' }],
    [{ weights: 'q8' }, { threads: availableParallelism(), format: 'q8' }],
    [{ threads: 1 }, { threads: 1, format: 'f32' }],
  ] as const) {
    const model = api.loadModel(file, options);
    await model.pool?.ready();
    const got = model.pool && { threads: model.pool.threads, format: model.weights.pooledClassifier!.format };
    t.same(got, want, `${JSON.stringify(options)}: ${want === undefined ? 'the tfjs path' : `the pool, ${want.threads} threads, ${want.format}`}`);
    t.equal(workerThreads(), idle + ((want?.threads ?? 1) > 1 ? 1 : 0), '  and its threads');
    await api.disposeModel(model);
  }
  t.equal(workerThreads(), idle, 'no worker thread left');
  // tensorflow (not installed here: its branch by name) runs its own threads: the pool and q8 are refused there, a thread count ignored
  t.equal(placementOf({ threads: 4 }, 'tensorflow'), undefined, 'tensorflow, threads 4: its own products');
  t.throws(() => placementOf({ weights: 'q8' }, 'tensorflow'), new ArgumentError("weights 'q8'", 'runs on the wasm and cpu backends only, not on tensorflow'));
  t.throws(
    () => placementOf({ products: 'pool' }, 'tensorflow'),
    new ArgumentError("products 'pool'", 'runs on the wasm and cpu backends only, not on tensorflow'),
  );
});

t.test("loadModel's bad placement options: one ArgumentError naming the option and what was expected, before any thread or tensor", async (t) => {
  const api = await import('../src/index.js');
  const file = `${FIXTURES}tiny-gqa.bin`;
  const idle = workerThreads();
  const tensors = tf.memory().numTensors;
  const b = tf.getBackend();
  for (const [options, message] of [
    [{ threads: 0 }, 'threads: expected an integer in 1..1024, got 0'],
    [{ threads: 2.5 }, 'threads: expected an integer in 1..1024, got 2.5'],
    [{ threads: 1025 }, 'threads: expected an integer in 1..1024, got 1025'],
    [{ threads: '2' }, "threads: expected an integer in 1..1024, got '2'"],
    [{ weights: 'q4' }, "weights: expected one of f32, q8, got 'q4'"],
    [{ products: 'xnnpack' }, "products: expected one of pool, tfjs, got 'xnnpack'"],
    [{ products: 'tfjs', weights: 'q8' }, "products 'tfjs': float32 only (weights 'q8' runs in the pool), got weights 'q8'"],
    [{ products: 'tfjs', threads: 2 }, `products 'tfjs': one thread (the ${b} backend's kernels run on one in Node), got threads 2`],
    [{ thread: 2 }, "options: unknown option 'thread' (expected threads, weights, products, onNote)"],
    [null, 'options: expected an object, got null'],
  ] as const) {
    const err = t.throws(() => api.loadModel(file, options as never), `${JSON.stringify(options)}: refused`) as unknown;
    t.ok(err instanceof api.ArgumentError, '  an ArgumentError');
    t.equal((err as Error).message, message, `  '${message}'`);
  }
  t.equal(workerThreads(), idle, 'no worker thread started');
  t.equal(tf.memory().numTensors, tensors, 'no tensor made');
});

t.test("placeModel: a model in memory placed as loadModel's options place one, with its own logits (wasm: bit for bit); disposeModel frees it", async (t) => {
  const api = await import('../src/index.js');
  const file = `${FIXTURES}tiny-gqa.bin`;
  const idle = workerThreads();
  const tensors = tf.memory().numTensors;
  // a model changed in memory (as training leaves one): its q|k|v of layer 0 scaled, so that it differs from the file
  const model = api.loadModel(file);
  const qkv = model.weights.layers[0]!.qkv;
  const scaled = tf.tidy<tf.Tensor2D>(() => qkv.weight!.mul(1.5));
  qkv.weight!.dispose();
  qkv.weight = scaled;
  const want = logits(model);
  t.equal(api.placeModel(model, {}), model, 'no option: the same model');
  t.equal(api.placeModel(model, { products: 'tfjs' }).pool, undefined, "products 'tfjs': left on the tfjs path");
  t.equal(api.placeModel(model, { threads: 2 }), model, 'threads 2: placed in place');
  t.equal(model.pool?.threads, 2, '  a pool of two threads');
  t.ok(qkv.weight === undefined && qkv.pooled?.format === 'f32', '  its float32 matrices moved into the pool');
  const got = logits(model);
  if (backend === 'wasm') t.same(Array.from(got), Array.from(want), "the unplaced model's logits bit for bit");
  t.ok(maxAbsDiff(got, want) / Math.max(...Array.from(want, Math.abs)) < 4e-6, 'within float32 rounding');
  const fromFile = api.loadModel(file, { threads: 1 });
  t.ok(maxAbsDiff(logits(fromFile), want) > 1e-3, "the weights in memory, not the file's");
  await api.disposeModel(fromFile);
  const again = t.throws(() => api.placeModel(model, { weights: 'q8' })) as Error;
  t.ok(again instanceof api.ArgumentError, 'placed twice: an ArgumentError');
  t.equal(again.message, 'model: its matrices are in a worker pool already (loadModel or placeModel placed it)');
  await api.disposeModel(model);
  t.equal(workerThreads(), idle, 'disposeModel: no worker thread left');
  t.equal(tf.memory().numTensors, tensors, 'no tensor leak');
  const plain = api.loadModel(file);
  const bad = t.throws(() => api.placeModel(plain, { thread: 2 } as never)) as Error;
  t.equal(bad.message, "options: unknown option 'thread' (expected threads, weights, products)");
  t.throws(() => api.placeModel(plain, { weights: 'q4' as never }), new api.ArgumentError('weights', "expected one of f32, q8, got 'q4'"));
  t.equal(plain.pool, undefined, 'refused: left as it was');
  await api.disposeModel(plain);
  t.equal(tf.memory().numTensors, tensors, 'no tensor leak');
});

t.test('eval and generate free a pooled model when they refuse an input read after loading it: no tensor or thread left', async (t) => {
  const file = `${FIXTURES}tiny-gqa.bin`;
  const dir = tempDir('streamllm-refused-');
  const one = join(dir, 'one.json');
  writeFileSync(one, JSON.stringify([5]));
  const outside = join(dir, 'outside.json');
  writeFileSync(outside, JSON.stringify([1, 96]));
  const idle = workerThreads();
  const tensors = tf.memory().numTensors;
  for (const [args, message] of [
    [['eval', '--tokens', one], /^streamllm: eval: need at least 2 tokens to score, got 1$/m],
    [['eval', '--tokens', outside], /^streamllm: .*outside\.json.*element 1 is 96, expected a token id in 0\.\.95$/m],
    [['generate', '--prompt-ids', '1,96', '--steps', '1'], /^streamllm: generate --prompt-ids: element 1 is 96, expected a token id in 0\.\.95$/m],
  ] as const) {
    const r = await runCliInProcess([...args, '--model', file, '--threads', '2']);
    t.equal(r.status, 2, `${args.join(' ')}: exit code 2`);
    t.match(r.stderr, message);
    t.equal(tf.memory().numTensors, tensors, '  no tensor left');
    t.equal(workerThreads(), idle, '  no worker thread left');
  }
});
