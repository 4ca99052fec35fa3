// The pieces behind `streamllm reproduce`: the sampled recompute baseline
// against the conformance NLLs and scoreTokens, binned curves, the zoo
// manifest reader; the paper's Table 3 and the verdict per model; the
// median's interval of src/stats.ts.
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FileFormatError } from '../src/errors.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { recomputeNllAt, sampledPositions } from '../src/eval/recompute_sampled.js';
import { compareWithPaper, comparisonRows, effectsOf, PAPER_TABLE3, verdictOf } from '../src/experiments/paper_table3.js';
import { binnedCurve, pplAt, relative } from '../src/experiments/score.js';
import { sourceTokens } from '../src/experiments/text_source.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { median, medianInterval } from '../src/stats.js';
import { defaultManifestPath, defaultModel, packageRoot, readManifest } from '../src/zoo/manifest.js';
import { FIXTURES, initTestBackend, loadConformance, maxAbsDiff } from './helpers.js';
import { llama2cToHf, llamaConfigJson, randomArray, randomLlama2c, rng, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();

const expected = loadConformance();

t.test('sampled positions: the whole first window, then a stride', async (t) => {
  t.same(sampledPositions(10, 4, 3), { stride: 2, positions: [0, 1, 2, 3, 4, 6, 8] });
  t.same(sampledPositions(10, 4, 100).positions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'stride 1 when samples suffice');
  t.same(sampledPositions(3, 8, 5), { stride: 1, positions: [0, 1, 2] }, 'a text inside one window');
  const { stride, positions } = sampledPositions(1000, 64, 50);
  t.equal(stride, 19);
  t.ok(positions.filter((p) => p >= 64).length <= 50);
});

t.test('recompute at sampled positions = the conformance recompute-32 NLLs', async (t) => {
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const want = expected.cases.find((c) => c.name === 'recompute-32')!.nll;
  const { positions } = sampledPositions(want.length, 32, 25);
  const before = tf.memory().numTensors;
  let progress = 0;
  const nll = await recomputeNllAt(model, expected.tokens, 32, positions, { batchSize: 3, onProgress: (d) => (progress = d) });
  t.equal(tf.memory().numTensors, before, 'no tensor leaks');
  t.equal(progress, positions.length);
  const diff = maxAbsDiff(
    nll,
    positions.map((p) => want[p]!),
  );
  t.ok(diff < 1e-4, `max diff ${diff.toExponential(2)}`);
  // and the same as scoreTokens' recompute, token by token
  const full = await scoreTokens(model, expected.tokens.slice(0, 100), { kind: 'recompute', windowSize: 32 });
  const some = [0, 5, 31, 32, 33, 60, 98];
  const mine = await recomputeNllAt(model, expected.tokens.slice(0, 100), 32, some);
  t.ok(
    maxAbsDiff(
      mine,
      some.map((p) => full.nll[p]!),
    ) < 1e-5,
  );
  await t.rejects(recomputeNllAt(model, expected.tokens, 32, [5, 3]), /positions must ascend/);
  await t.rejects(recomputeNllAt(model, expected.tokens, 32, [159]), /positions must ascend within 0..158/);
  disposeModel(model);
});

t.test('a sink-token model recomputes with its sink kept: sink + the last W-1 tokens', async (t) => {
  const shape = { dim: 16, hiddenDim: 32, layers: 2, heads: 4, kvHeads: 2, vocabSize: 40, maxSeqLen: 12, sharedClassifier: true };
  const tensors = llama2cToHf(randomLlama2c(shape, 'sink-recompute'));
  tensors.set('model.sink_embedding', { shape: [16], values: randomArray(rng('sink'), 16) });
  const dir = tempDir();
  writeHfDir(dir, { ...llamaConfigJson(shape), streamllm: { softmax: 'softmax', sink_token: true } }, tensors);
  const model = loadModel(dir);
  const r = rng('ids');
  const ids = Array.from({ length: 40 }, () => Math.floor(r() * 40));
  const W = 8;
  const positions = [0, 3, 6, 7, 8, 20, 38];
  const nll = await recomputeNllAt(model, ids, W, positions, { batchSize: 2 });
  for (const [j, p] of positions.entries()) {
    // the window of text tokens ending at p, at most W-1 of them; scoreTokens puts the sink first
    const context = ids.slice(Math.max(0, p - (W - 2)), p + 2);
    const dense = await scoreTokens(model, context, { kind: 'dense' });
    t.ok(Math.abs(nll[j]! - dense.nll[dense.nll.length - 1]!) < 1e-5, `position ${p}`);
  }
  disposeModel(model);
});

t.test('recompute with the first token kept: it + the last W-1 tokens, each scored by a dense pass over that context', async (t) => {
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const ids = expected.tokens.slice(0, 120);
  const W = 16;
  const positions = [0, 9, 14, 15, 16, 40, 118];
  const before = tf.memory().numTensors;
  const nll = await recomputeNllAt(model, ids, W, positions, { batchSize: 3, keepFirst: 1 });
  t.equal(tf.memory().numTensors, before, 'no tensor leaks');
  for (const [j, p] of positions.entries()) {
    const context = p < W ? ids.slice(0, p + 2) : [ids[0]!, ...ids.slice(p - (W - 2), p + 2)];
    t.equal(context.length - 1, Math.min(p + 1, W), `position ${p}: a window of ${Math.min(p + 1, W)}`);
    const dense = await scoreTokens(model, context, { kind: 'dense' });
    t.ok(Math.abs(nll[j]! - dense.nll[dense.nll.length - 1]!) < 1e-5, `position ${p}`);
  }
  const plain = await recomputeNllAt(model, ids, W, [40]);
  t.not(plain[0], nll[5], 'keeping the first token changes what position 40 sees');
  await t.rejects(recomputeNllAt(model, ids, W, [40], { keepFirst: 16 }), /keepFirst must be an integer in 0..15/);
  disposeModel(model);
});

t.test('binned curves and perplexity over a subset', async (t) => {
  // nll[i] is the loss of token i + 1: positions 1..6, bins of 2 -> [1,2], [3,4], [5,6]
  t.same(binnedCurve([1, 3, 5, 7, 9, 11], 2), { x: [1.5, 3.5, 5.5], y: [2, 6, 10] });
  // sampled values at indices 0, 3, 4 -> positions 1, 4, 5
  t.same(binnedCurve([1, 2, 3], 2, [0, 3, 4]), { x: [1.5, 3.5, 5.5], y: [1, 2, 3] });
  t.equal(pplAt([Math.log(2), Math.log(8)]), 4);
  t.ok(Math.abs(pplAt([0, Math.log(9), 100], [1]) - 9) < 1e-12);
  t.ok(Number.isNaN(pplAt([1], [])));
  t.equal(relative(11, 10), '+10.0%');
  t.equal(relative(9, 10), '-10.0%');
  t.equal(relative(30, 10), 'x3.0');
});

t.test('text sources: ids are checked against the vocabulary; text needs a tokenizer', async (t) => {
  t.same(sourceTokens({ kind: 'ids', file: 'a.json', ids: [1, 2, 3, 4] }, undefined, 10, 3), [1, 2, 3]);
  t.throws(() => sourceTokens({ kind: 'ids', file: 'a.json', ids: [1, 12] }, undefined, 10), /^a\.json: element 1 is 12, expected a token id in 0\.\.9$/);
  t.throws(() => sourceTokens({ kind: 'file', file: 'b.txt' }, undefined, 10), /b.txt: this model has no tokenizer/);
});

t.test('zoo manifest: paths, default, and one-line errors', async (t) => {
  const dir = tempDir('streamllm-manifest-');
  const file = join(dir, 'manifest.json');
  writeFileSync(
    file,
    JSON.stringify({
      default: 'b',
      models: [
        { name: 'a', variant: 'softmax' },
        { name: 'b', path: 'sub/b', steps: 10 },
      ],
    }),
  );
  const m = readManifest(file);
  t.equal(m.models.length, 2);
  t.equal(m.models[0]!.path, join(dir, 'a'), 'path defaults to the name, beside the manifest');
  t.equal(m.models[1]!.path, join(dir, 'sub/b'));
  t.equal(m.models[1]!.fields.steps, 10, 'other fields kept');
  t.equal(defaultModel(m).name, 'b');
  writeFileSync(file, JSON.stringify({ models: [{ name: 'only' }] }));
  t.equal(defaultModel(readManifest(file)).name, 'only', 'a single model is the default');
  const bad: [unknown, RegExp][] = [
    [{ models: [{ name: 'a' }, { name: 'b' }] }, /names no "default" model among its 2/],
    [{ default: 'c', models: [{ name: 'a' }] }, /"default" names "c", which is not in "models"/],
    [{ models: [{ name: 'a' }, { name: 'a' }] }, /model name "a" appears twice/],
    [{ models: [{ path: 'x' }] }, /models\[0\] must be an object with a non-empty "name"/],
    [{ models: 'a' }, /field "models" must be an array/],
    [[1], /expected a JSON object/],
  ];
  for (const [json, message] of bad) {
    writeFileSync(file, JSON.stringify(json));
    t.throws(() => defaultModel(readManifest(file)), message);
  }
  writeFileSync(file, '{"models": [');
  t.throws(() => readManifest(file), FileFormatError);
  t.throws(() => readManifest(join(dir, 'none.json')), /cannot read: ENOENT/);
  t.equal(defaultManifestPath(), join(packageRoot(), 'weights', 'manifest.json'));
});

t.test('experiments leave no tensors behind', async (t) => {
  const { Report } = await import('../src/experiments/report.js');
  const { runCurves } = await import('../src/experiments/curves.js');
  const { runLatency } = await import('../src/experiments/latency.js');
  const { runAttention } = await import('../src/experiments/attention.js');
  const model = loadModel(`${FIXTURES}tiny-gqa.bin`);
  const quiet = { update() {}, finish() {} };
  const ctx = {
    model,
    modelLabel: 'tiny',
    source: { kind: 'ids' as const, file: 'ids.json', ids: expected.tokens },
    ids: expected.tokens,
    settings: { tokens: 100, recomputeSamples: 8, samples: 4, length: 8 },
    report: new Report(tempDir('streamllm-leaks-')),
    progress: () => quiet,
    log: () => {},
  };
  const before = tf.memory().numTensors;
  const curves = await runCurves(ctx);
  t.equal(curves.tokens, 100);
  await runLatency(ctx);
  await runAttention(ctx);
  t.equal(tf.memory().numTensors, before, 'curves, latency and attention maps dispose what they make');
  t.ok(ctx.report.files.includes('curves.json') && ctx.report.files.includes('latency.png') && ctx.report.files.includes('sink-scores.json'));
  disposeModel(model);
});

// The paper's Table 3 and the verdict per model (src/experiments/paper_table3.ts):
// the effects are ratios of the perplexities written out here, and the verdict
// compares their presence (beyond 1%) with the paper's.
t.test("the paper's effects", async (t) => {
  const vanilla = effectsOf(PAPER_TABLE3['softmax']!.ppl);
  t.ok(Math.abs(vanilla.evictFirst! - 27.87 / 18.49) < 1e-12);
  t.ok(Math.abs(vanilla.oneNotFour! - 18.49 / 18.05) < 1e-12);
  const sink = effectsOf(PAPER_TABLE3['sink-token']!.ppl);
  t.ok(Math.abs(sink.evictFirst! - 1235 / 18.01) < 1e-12);
  t.ok(sink.oneNotFour! < 1, 'one sink token is enough: 18.01 against 18.02');
  t.equal(PAPER_TABLE3['softmax1']!.ppl[0], 29214);
  t.equal(PAPER_TABLE3['learned-sink'], undefined, 'no counterpart in the paper');
});

t.test('verdicts', async (t) => {
  const sinkPaper = effectsOf(PAPER_TABLE3['sink-token']!.ppl);
  // a sink-token miniature that collapses without its first token and needs no more than one: agrees
  t.equal(verdictOf(effectsOf({ 0: 218.7, 1: 191.7, 4: 191.7 }), sinkPaper), 'agrees');
  // one that does not care about its first tokens at all: eviction effect missing, the one-token effect absent as in the paper
  t.equal(verdictOf(effectsOf({ 0: 81.11, 1: 81.11, 4: 81.04 }), sinkPaper), 'partly');
  // a vanilla miniature with no sink: neither effect, the paper has both
  t.equal(verdictOf(effectsOf({ 0: 84.11, 1: 84.08, 4: 84.04 }), effectsOf(PAPER_TABLE3['softmax']!.ppl)), 'disagrees');
  // 1% is the line: x1.009 is no effect, x1.02 is one
  t.equal(verdictOf(effectsOf({ 0: 30, 1: 20.4, 4: 20 }), effectsOf(PAPER_TABLE3['softmax']!.ppl)), 'agrees');
  t.equal(verdictOf(effectsOf({ 0: 30, 1: 20.18, 4: 20 }), effectsOf(PAPER_TABLE3['softmax']!.ppl)), 'partly');
  t.equal(verdictOf(effectsOf({ 0: 30, 1: null, 4: 20 }), sinkPaper), 'incomplete');
  t.equal(verdictOf(effectsOf({ 0: 30, 1: 20, 4: 20 }), null), 'no paper row');
});

t.test('rows: the miniature, then the paper', async (t) => {
  const ppl: Record<number, number> = { 0: 40, 1: 20, 2: 19, 4: 18 };
  const comparison = compareWithPaper([
    { name: 'mini', variant: 'softmax', ppl: (s) => ppl[s], recompute: 17.5, recomputeBosKept: 17.25 },
    { name: 'ls', variant: 'learned-sink', ppl: (s) => ppl[s], recompute: null },
  ]);
  t.equal(comparison[0]!.verdict, 'agrees');
  t.equal(comparison[1]!.verdict, 'no paper row');
  const rows = comparisonRows(comparison);
  t.equal(rows.length, 3, 'no paper row under learned-sink');
  t.same(rows[0], ['mini (softmax)', 40, 20, 19, 18, 17.5, 17.25, 'x2.000', 'x1.111', 'agrees']);
  t.same(rows[1], ['paper: vanilla', 27.87, 18.49, 18.05, 18.05, null, null, 'x1.507', 'x1.024', '']);
  t.same(rows[2]!.slice(0, 2), ['ls (learned-sink)', 40]);
  t.equal(rows[2]![6], null, 'no BOS-kept recompute for a model not trained with BOS first');
});

// src/stats.ts's 95% interval of a median (the benchmarks' rounds): its
// order statistics' coverage of the true median, computed exactly from the
// binomial distribution of how many measurements fall below it.
t.test('the median interval covers the median with at least 95% from 6 measurements, and gives none below', async (t) => {
  for (let n = 1; n <= 5; n++) {
    const xs = [5, 1, 4, 2, 3].slice(0, n);
    t.same(medianInterval(xs), { median: median(xs) }, `${n} measurements: the median, no interval`);
  }
  // every count of rounds a benchmark takes (inproc_ab's --rounds: up to 1000); p: P(B = k), B ~ Binomial(n, 1/2), row n
  // of Pascal's rule (no approximation)
  let p = [1];
  let least = 1;
  for (let n = 1; n <= 1000; n++) {
    const previous = p;
    p = Array.from({ length: n + 1 }, (_, k) => ((previous[k] ?? 0) + (previous[k - 1] ?? 0)) / 2);
    if (n < 6) continue;
    // the values are their ranks, given in reverse: the interval's ends are the ranks it chose
    const { median: middle, low, high } = medianInterval(Array.from({ length: n }, (_, i) => n - i));
    if (middle !== (n + 1) / 2) t.fail(`${n} measurements: median ${middle}`);
    let coverage = 0;
    for (let k = low!; k < high!; k++) coverage += p[k]!; // x_(low) <= median < x_(high) when low..high-1 measurements fall below it
    if (coverage < 0.95) t.fail(`${n} measurements: ranks ${low}..${high} cover ${coverage}`);
    least = Math.min(least, coverage);
  }
  t.ok(least >= 0.95 && least < 0.951, `the least coverage over 6..1000 measurements: ${least}`);
  t.same(medianInterval([3, 9, 1, 7, 5, 2, 8, 4, 6, 10]), { median: 5.5, low: 2, high: 9 }, "10: ranks 2 and 9, the tables' interval");
  t.same(medianInterval(Array.from({ length: 20 }, (_, i) => 20 - i)), { median: 10.5, low: 6, high: 15 }, '20: ranks 6 and 15');
});
