// The engine on the conformance checkpoint: against the conformance data, and
// streaming far past the trained length.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { CausalBlock } from '../src/cache/causal_block.js';
import { DenseCache } from '../src/cache/dense.js';
import type { CachePolicy } from '../src/cache/policies.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { entryTensors } from '../src/cache/types.js';
import { WorkerPool } from '../kernels/pool.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { poolEntryMemory } from '../src/model/pooled_layers.js';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { ArgumentError } from '../src/errors.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { generate } from '../src/generate.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { forward, SINK_TOKEN } from '../src/model/transformer.js';
import { argmax } from '../src/sample/sampler.js';
import { TokenStream } from '../src/stream.js';
import { type ConformanceCase, FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';

await initTestBackend();

const model = modelFromLlama2c(readLlama2c(`${FIXTURES}tiny-gqa.bin`));

// The engine against the conformance data in test/fixtures (float64, independently
// computed, checked against llama2.c): dense logits, greedy decoding, and per-token NLLs
// of every cache policy, token by token and in blocks.
const expected = loadConformance();

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

t.test("generate keeps an async generator's protocol: queued calls in order, return() and throw() end it and free the stream", async (t) => {
  const { prompt, steps, tokens } = expected.greedy;
  const before = tf.memory().numTensors;
  const want = tokens.slice(prompt.length);
  // every next() asked for at once, before any has settled: the tokens in
  // order, then done; a sampler of 30 ms a token, so that some steps turn
  // the event loop first (generate's TURN_MS, 50) and the calls after them wait
  const slow = (logits: ArrayLike<number>) => {
    for (const started = performance.now(); performance.now() - started < 30;);
    return argmax(logits);
  };
  const all = generate(model, { kind: 'dense' }, prompt, slow, { steps: 8 });
  const results = await Promise.all(Array.from({ length: 10 }, () => all.next()));
  t.same(
    results.map((r) => (r.done ? 'done' : r.value.id)),
    [...want.slice(0, 8), 'done', 'done'],
    'the tokens in order, then done',
  );
  // and a return() asked for after them ends it after them, not before
  const some = generate(model, { kind: 'dense' }, prompt, slow, { steps: 8 });
  const cut = await Promise.all([some.next(), some.next(), some.next(), some.next(), some.return(undefined), some.next()]);
  t.same(
    cut.map((r) => (r.done ? 'done' : r.value.id)),
    [...want.slice(0, 4), 'done', 'done'],
    'four tokens, then return()',
  );
  t.equal(tf.memory().numTensors, before, 'the stream freed at the end');
  // return() after 5 tokens: done, the stream freed, and next() done from then on
  const five = generate(model, { kind: 'dense' }, prompt, argmax, { steps });
  for (let i = 0; i < 5; i++) t.equal((await five.next()).value?.id, want[i], `token ${i} before return()`);
  t.ok(tf.memory().numTensors > before, 'a stream holds its cache while it runs');
  t.same(await five.return(undefined), { done: true, value: undefined }, 'return() ends it');
  t.equal(tf.memory().numTensors, before, 'return() freed the stream');
  t.same(await five.next(), { done: true, value: undefined }, 'next() after return()');
  // throw() rejects with its error and ends it; before any step, nothing is made
  const thrown = generate(model, { kind: 'dense' }, prompt, argmax, { steps });
  await thrown.next();
  await t.rejects(thrown.throw(new Error('stop here')), /^stop here$/, 'throw() rejects with its error');
  t.equal(tf.memory().numTensors, before, 'throw() freed the stream');
  t.same(await thrown.next(), { done: true, value: undefined }, 'next() after throw()');
  t.same(
    await generate(model, { kind: 'dense' }, prompt, argmax, { steps }).return(undefined),
    { done: true, value: undefined },
    'return() before the first step',
  );
  // break out of for-await: the stream freed; a stop id ends it before that token
  for await (const step of generate(model, { kind: 'dense' }, prompt, argmax, { steps })) if (step.generated === 3) break;
  t.equal(tf.memory().numTensors, before, 'a break freed the stream');
  const stopped: number[] = [];
  for await (const step of generate(model, { kind: 'dense' }, prompt, argmax, { steps, stopIds: [want[6]!] })) stopped.push(step.id);
  t.same(stopped, want.slice(0, want.indexOf(want[6]!)), 'stopped before the first stop id');
  t.equal(tf.memory().numTensors, before, 'and freed');
});

// What an async function* does that Generation must too: a call made from
// inside a step (the sampler's or shouldStop's code) waits for that step to
// end (it ran at once: a return() disposed the stream under the step, a
// next() fed the stream inside the step's own feed), and a rejected call
// that nobody handles is reported (Generation's queue handled them all)
t.test('generate: a call from inside a step runs after it; a queued call that rejects unhandled is reported', async (t) => {
  const { prompt, steps, tokens } = expected.greedy;
  const want = tokens.slice(prompt.length);
  const before = tf.memory().numTensors;
  for (const from of ['sampler', 'shouldStop'] as const) {
    // return() asked during step 2: step 2 ends with its token and the stream it used; return() after it
    let returned: Promise<IteratorResult<unknown>> | undefined;
    let heldDuringStep = false;
    let asked = 0;
    const quit = () => {
      returned = generation.return(undefined);
      heldDuringStep = tf.memory().numTensors > before; // the stream's cache, still there
    };
    const sampler = (logits: ArrayLike<number>) => {
      if (from === 'sampler' && ++asked === 2) quit();
      return argmax(logits);
    };
    const shouldStop = () => {
      if (from === 'shouldStop' && ++asked === 1) quit(); // (asked before each step after the first)
      return false;
    };
    const generation = generate(model, { kind: 'dense' }, prompt, sampler, { steps, shouldStop, stopIds: [] });
    t.equal((await generation.next()).value?.id, want[0], `${from}: step 1`);
    t.same((await generation.next()).value?.id, want[1], `${from}: step 2, during which return() was asked, gives its token`);
    t.ok(heldDuringStep, `${from}: the stream was not disposed under the step`);
    t.same(await returned, { done: true, value: undefined }, `${from}: return() then ends it`);
    t.equal(tf.memory().numTensors, before, `${from}: and frees the stream`);
    t.same(await generation.next(), { done: true, value: undefined }, `${from}: next() after it: done`);
  }
  // a sampler that asks for the next token itself: that token after its own, in order (it fed the stream inside the step's feed)
  let inner: Promise<IteratorResult<{ id: number }, void>> | undefined;
  const eager = (logits: ArrayLike<number>) => {
    inner ??= nested.next();
    return argmax(logits);
  };
  const nested = generate(model, { kind: 'dense' }, prompt, eager, { steps: 4 });
  const outer = await nested.next();
  t.same([outer.value?.id, (await inner!).value?.id, (await nested.next()).value?.id], want.slice(0, 3), 'the tokens in order');
  await nested.return(undefined);
  // a queued next() that rejects, never awaited: reported as unhandled, as an async function*'s is
  const unhandled: unknown[] = [];
  const listeners = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', (reason) => unhandled.push(reason));
  try {
    let n = 0;
    const failing = (logits: ArrayLike<number>) => {
      for (const started = performance.now(); performance.now() - started < 60;); // past TURN_MS: every step after the first waits for a turn
      if (++n === 3) throw new Error('the sampler failed');
      return argmax(logits);
    };
    const g = generate(model, { kind: 'dense' }, prompt, failing, { steps });
    await g.next();
    const second = g.next(); // waits for a turn of the event loop
    void g.next(); // queued behind it, rejects, and nobody handles it
    t.equal((await second).value?.id, want[1], 'the step before it');
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.removeAllListeners('unhandledRejection');
    for (const listener of listeners) process.on('unhandledRejection', listener);
  }
  t.same(
    unhandled.map((e) => (e as Error).message),
    ['the sampler failed'],
    'reported once',
  );
  t.equal(tf.memory().numTensors, before, 'the failed generation freed its stream');
});

// shouldStop is the caller's code: a throw from it ends the generation as a
// throw from a step does (an async function*'s finally freed the stream;
// Generation's next() asks shouldStop outside the step's own catch)
t.test('generate: a shouldStop that throws rejects next() with its error, ends it and frees the stream', async (t) => {
  const { prompt, steps, tokens } = expected.greedy;
  const want = tokens.slice(prompt.length);
  const before = tf.memory().numTensors;
  let asked = 0;
  const shouldStop = () => {
    if (++asked === 3) throw new Error('the handler failed');
    return false;
  };
  const generation = generate(model, { kind: 'dense' }, prompt, argmax, { steps, shouldStop });
  const ids: number[] = [];
  await t.rejects(
    (async () => {
      for await (const step of generation) ids.push(step.id);
    })(),
    /^the handler failed$/,
    "next() rejects with shouldStop's error",
  );
  t.same(ids, want.slice(0, 3), 'the tokens before it (shouldStop is asked before each step after the first)');
  t.equal(tf.memory().numTensors, before, 'the stream freed');
  t.same(await generation.next(), { done: true, value: undefined }, 'next() after it: done');
});

// steps is a whole number >= 0 (0: until stopped). NaN compared false with
// every count: Generation's limit never came (an endless generation), and
// 2.5 gave 3 tokens (the async function* gave none for NaN, 2 for 2.5)
t.test('generate: steps that are not a whole number >= 0: an ArgumentError naming them at the first next(), no token, nothing left', async (t) => {
  const { prompt } = expected.greedy;
  const before = tf.memory().numTensors;
  for (const steps of [NaN, 2.5, -1, Infinity]) {
    let generated = 0;
    let error: unknown;
    try {
      for await (const _ of generate(model, { kind: 'dense' }, prompt, argmax, { steps })) if (++generated === 20) break;
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof ArgumentError, `steps ${steps}: an ArgumentError (got ${String(error)})`);
    t.equal((error as Error | undefined)?.message, `steps: expected a whole number >= 0 (0: until stopped), got ${steps}`, `steps ${steps}: the message`);
    t.equal(generated, 0, `steps ${steps}: no token`);
  }
  t.equal(tf.memory().numTensors, before, 'no tensor left');
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

// Streaming at length: the ring buffer wraps many times (slot by slot, and
// through the model) and still gives the blocked path's numbers; memory stays
// flat however long the stream.
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

// in tensors, and in an entry memory (a worker pool's, as a pooled model's caches keep them)
for (const where of ['tensors', 'entry memory'] as const) {
  t.test(`the ring wraps: sinks stay put, each token overwrites the oldest window slot, a block reads in stream order (${where})`, async (t) => {
    const [S, W] = [2, 3];
    const before = tf.memory().numTensors;
    const pool = new WorkerPool(1);
    const memory = where === 'tensors' ? undefined : poolEntryMemory(pool);
    const cache = new StreamingCache(S, W, { layers: 1, kvHeads: 1, headDim: 1, entryMemory: memory });
    /** Feed stream indices `js` as one block, each its own key and value; the entries attention reads. */
    const feed = (js: number[]): number[] => {
      cache.begin(js.length);
      const kv = tf.tensor3d(js, [1, js.length, 1]); // [kvHeads, T, headDim]
      const entries = cache.store(0, kv, kv);
      t.equal('memory' in entries, memory !== undefined, 'entries where the cache keeps them');
      const { keys, values } = entryTensors(entries);
      const read = Array.from(keys.dataSync());
      t.same(Array.from(values.dataSync()), read, 'values beside their keys');
      if (js.length > 1 || memory !== undefined) tf.dispose([keys, values]); // a block's entries are a fresh copy (and so is entryTensors')
      cache.end();
      kv.dispose();
      return read;
    };
    // Slot of stream index j: j itself for a sink, else S + (j - S) mod W.
    const slotOf = (j: number) => (j < S ? j : S + ((j - S) % W));
    const length = S + 4 * W + 1; // the ring wraps four times
    for (let j = 0; j < length; j++) {
      const slots = feed([j]);
      t.equal(slots.length, S + W, `${j}: storage of exactly sinks + window`);
      const kept = [...Array.from({ length: Math.min(S, j + 1) }, (_, i) => i), ...Array.from({ length: W }, (_, i) => j - i).filter((i) => i >= S)];
      for (const i of kept) t.equal(slots[slotOf(i)], i, `after token ${j}: stream index ${i} in slot ${slotOf(i)}`);
    }
    t.equal(cache.size, S + W);
    t.equal(cache.byteSize, 2 * (S + W) * 4, 'keys and values of S + W entries, after four laps');
    // A block after the ring wrapped: sinks, the window entries its first token still sees, then the block.
    t.same(feed([length, length + 1]), [0, 1, length - 2, length - 1, length, length + 1]);
    t.same(
      feed([length + 2])
        .filter((_, slot) => slot >= S)
        .sort((a, b) => a - b),
      [length, length + 1, length + 2],
      'the block went into the ring',
    );
    cache.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor left behind');
    t.equal(poolRegions(pool).heldBytes, 0, 'the entry memory given back');
    await pool.dispose();
  });
}

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
