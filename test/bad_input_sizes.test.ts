// Bad input, class "sizes": a window, block, sequence length or shape too
// large for memory is refused before anything is allocated, naming the flag
// or field; a huge window that the stream never fills costs only what the
// stream uses.
import * as tf from '@tensorflow/tfjs';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { ResourceError } from '../src/errors.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { checkFits, MAX_ARRAY_BYTES } from '../src/memory.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { TokenStream } from '../src/stream.js';
import { checkSamplesFit } from '../src/train/budget.js';
import { TRAIN_DEFAULTS } from '../src/train/options.js';
import { assertRefused, listing } from './bad_input.js';
import { FIXTURES, initTestBackend, loadConformance, runCliInProcess } from './helpers.js';
import { WEIGHTS } from './paths.js';

await initTestBackend();
const dir = mkdtempSync(join(tmpdir(), 'streamllm-sizes-'));
const tiny = `${FIXTURES}tiny-gqa.bin`;
const conformance = loadConformance();
const ids = join(dir, 'ids.json');
writeFileSync(ids, JSON.stringify(conformance.tokens.slice(0, 20)));

t.test('a window of two billion over 20 tokens allocates for 20 and scores as a window of 20', async (t) => {
  const model = loadModel(tiny);
  const before = tf.memory().numTensors;
  const tokens = conformance.tokens.slice(0, 20);
  const huge = await scoreTokens(model, tokens, { kind: 'window', windowSize: 2_000_000_000 });
  const exact = await scoreTokens(model, tokens, { kind: 'window', windowSize: 20 });
  t.same(Array.from(huge.nll), Array.from(exact.nll), 'identical NLLs');
  const stream = new TokenStream(model, { kind: 'streaming', sinkCount: 4, windowSize: 2_000_000_000 });
  stream.feed(tokens).dispose();
  const perEntry = 2 * model.config.layers * model.config.kvHeads * model.config.headDim * 4;
  t.ok(stream.cacheBytes <= 256 * perEntry, `cache storage ${stream.cacheBytes} bytes: at most 256 entries`);
  stream.dispose();
  const recompute = new TokenStream(model, { kind: 'recompute', windowSize: 2_000_000_000 });
  recompute.feed(tokens).dispose();
  t.ok(recompute.cacheBytes <= 256 * perEntry, 'recompute scratch cache too');
  recompute.dispose();
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
  disposeModel(model);
});

t.test('a cache that cannot fit is refused before it is allocated (API: ResourceError)', async (t) => {
  const before = tf.memory().numTensors;
  const wide = { layers: 1, kvHeads: 1, headDim: 2 ** 28 }; // 1 GiB per entry and tensor
  t.throws(() => new DenseCache(wide, 8), ResourceError);
  t.throws(
    () => new StreamingCache(4, 100, wide, 8),
    /window|streaming\(4\+100\) cache of 8 entries: needs a tensor of 8\.00 GiB, more than the largest array/,
  );
  t.throws(() => checkFits('x', 1, MAX_ARRAY_BYTES + 1), /x: needs a tensor of/);
  t.throws(() => checkFits('y', Number.MAX_SAFE_INTEGER, 4), /y: needs .* GiB, more than/);
  t.equal(tf.memory().numTensors, before, 'nothing allocated');
});

t.test('generate --window too large to ever fill: refused naming --window', async (t) => {
  const r = await runCliInProcess(['generate', '--model', tiny, '--prompt-ids', '1,2', '--steps', '0', '--cache', 'window', '--window', '2000000000']);
  assertRefused(
    t,
    r,
    /^streamllm: --window 2000000000: a window\(2000000000\) cache of 2000000000 entries: needs a tensor of [\d.]+ GiB, more than the largest array/,
  );
  t.equal(r.stdout, '', 'nothing generated');
});

t.test('a huge max_position_embeddings is the default window: refused naming it; a short run is not', async (t) => {
  const hf = join(dir, 'hf');
  cpSync(join(WEIGHTS, 'softmax'), hf, { recursive: true });
  const config = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 1_000_000_000 }));
  const r = await runCliInProcess(['generate', '--model', hf, '--prompt', 'The jury', '--steps', '0', '--cache', 'streaming']);
  assertRefused(t, r, /^streamllm: the default window \(the model's trained length 1000000000\): a streaming\(4\+999999996\) cache .*give a smaller --window/);
  const short = await runCliInProcess(['generate', '--model', hf, '--prompt-ids', '5,6', '--steps', '3', '--cache', 'streaming', '--ignore-eos', '--json']);
  t.equal(short.status, 0, short.stderr);
  t.equal((JSON.parse(short.stdout) as { ids: number[] }).ids.length, 2 + 3, 'a bounded run needs only its own length');
});

const many = join(dir, 'many.json');
writeFileSync(many, JSON.stringify(Array.from({ length: 60_000 }, (_, i) => 1 + (i % 90))));

t.test('eval --block too large for the attention scores: refused naming --block', async (t) => {
  const r = await runCliInProcess(['eval', '--model', tiny, '--tokens', many, '--cache', 'dense', '--block', '60000']);
  assertRefused(t, r, /^streamllm: --block 60000: attention of 60000 tokens at a time over a dense cache of 60000 entries: needs/);
  t.equal(r.stdout, '');
});

t.test('attn --length too large for the maps: refused naming --length', async (t) => {
  const r = await runCliInProcess([
    'attn',
    '--model',
    tiny,
    '--tokenizer',
    `${FIXTURES}tiny-gqa.tokenizer.bin`,
    '--tokens',
    many,
    '--length',
    '50000',
    '--samples',
    '2',
    '--out',
    join(dir, 'attn'),
  ]);
  assertRefused(
    t,
    r,
    /^streamllm: --length 50000: attention maps of 50000 x 50000 per head and layer: needs an array of [\d.]+ GiB, more than the largest array/,
  );
});

t.test('init with a shape too large for the disk: refused, nothing written (the weights are drawn as written: memory is no limit)', async (t) => {
  const before = listing(dir);
  const out = join(dir, 'huge.bin');
  const seq = await runCliInProcess(['init', '--shape', '15M', '--seq-len', '2000000000', '--out', out]);
  assertRefused(t, seq, /^streamllm: init --dim 288 .*--seq-len 2000000000: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
  const wide = await runCliInProcess(['init', '--shape', '15M', '--dim', '600000', '--heads', '6', '--out', out]);
  assertRefused(t, wide, /^streamllm: init --dim 600000 .*: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
  const deep = await runCliInProcess(['init', '--shape', '110M', '--layers', '200000', '--out', out]); // 5 TB
  assertRefused(t, deep, /^streamllm: init --dim 768 .*--layers 200000 .*: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
  t.same(listing(dir), before, 'no file left behind');
});

t.test('train: a batch beyond memory is refused before the corpus is read or --out written; a sample longer than the corpus too', async (t) => {
  const out = join(dir, 'run');
  const batch = await runCliInProcess(['train', '--variant', 'softmax', '--out', out, '--steps', '1', '--batch', '100000000']);
  assertRefused(t, batch, /^streamllm: train --dim 256 --layers 4 --heads 8 --seq-len 256 --batch 100000000: needs/);
  t.same(existsSync(out) ? listing(out) : [], [], 'nothing written to the run folder');
  const options = { ...TRAIN_DEFAULTS, variant: 'softmax', shape: { dim: 16, layers: 1, heads: 2 }, tokenizer: 'unused', seqLen: 500 } as const;
  t.throws(() => checkSamplesFit(options, 400, 10_000), /^train --seq-len 500: the training text has only 400 tokens$/);
  t.throws(() => checkSamplesFit(options, 10_000, 500), /^train --seq-len 500: the held-out text has only 500 tokens$/);
  t.doesNotThrow(() => checkSamplesFit(options, 501, 501));
});
