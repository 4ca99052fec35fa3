// `streamllm reproduce` end to end on the conformance checkpoint (trained
// length 64), every experiment but those of the zoo (test/cli_attn_zoo.test.ts)
// and of BOS-first models (test/bos_first.test.ts), in this process: each
// number against `streamllm eval` or scoreTokens on the same text, figures as
// PNGs of the stated size, report.md; then bad input.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { scoreTokens } from '../src/eval/perplexity.js';
import { loadModel } from '../src/model/load.js';
import { errorLines, initTestBackend, maxAbsDiff, runCliInProcess } from './helpers.js';
import { checkFigures, close, type FigureFile, LIMIT, model, reproduce as run, setUp, textIds } from './reproduce_helpers.js';

await initTestBackend();

const { dir, text, common } = setUp();
const reproduce = (experiment: string, extra: string[] = []) => run(dir, common, experiment, extra);
const ids = textIds(text);
const m = loadModel(model);
/** This process's worker threads (a pool of several threads has one, its keeper). */
const workerThreads = () => (process.report.getReport() as { workers: unknown[] }).workers.length;
const streamingPpl = async (sinkCount: number, windowSize: number) => (await scoreTokens(m, ids, { kind: 'streaming', sinkCount, windowSize })).ppl;

interface EvalResult {
  policy: { kind: string; sinkCount?: number; windowSize?: number };
  nll: number[];
  ppl: number;
}

/** `streamllm eval --json` on the same text and limit. */
async function evalJson(extra: string[]): Promise<EvalResult[]> {
  // the default placement, as reproduce's: the worker pool on wasm and cpu (test below: on wasm the tfjs path's bits)
  const r = await runCliInProcess(['eval', ...common, '--json', ...extra]);
  if (r.status !== 0) throw new Error(r.stderr);
  const out = JSON.parse(r.stdout) as EvalResult | EvalResult[];
  return Array.isArray(out) ? out : [out];
}

t.test('curves: dense, window, streaming, h2o, tova and recompute as eval scores them', async (t) => {
  const { out, json } = await reproduce('curves', ['--recompute-samples', '40']);
  t.equal(json.experiment, 'curves');
  t.equal(json.tokens, LIMIT);
  t.equal(json.windowSize, 64);
  t.equal(json.sinkCount, 4);
  const rows = json.policies as { name: string; label: string; ppl: number | null; pplSampled: number; nll: (number | null)[] }[];
  t.same(
    rows.map((r) => r.label),
    ['dense', 'window(64)', 'streaming(4+60)', 'h2o(32+32)', 'tova(64)', 'recompute(64)'],
  );
  const evals = await evalJson(['--cache', 'dense,window,streaming,h2o,tova,recompute']);
  for (let i = 0; i < 5; i++) {
    t.ok(maxAbsDiff(rows[i]!.nll as number[], evals[i]!.nll) < 1e-5, `${rows[i]!.label}: per-token NLLs as eval`);
    t.ok(close(rows[i]!.ppl!, evals[i]!.ppl), `${rows[i]!.label}: ppl ${rows[i]!.ppl} vs eval ${evals[i]!.ppl}`);
  }
  const recompute = rows[5]!;
  t.equal(recompute.ppl, null, 'recompute scored on a sample only');
  const { stride, positions, pastFirstWindow } = json.recompute as { stride: number; positions: number; pastFirstWindow: number };
  t.equal(stride, Math.ceil((LIMIT - 1 - 64) / 40));
  const scored = recompute.nll.map((v, i) => [i, v] as const).filter(([, v]) => v !== null);
  t.equal(scored.length, positions);
  t.ok(
    scored.every(([i]) => i < 64 || (i - 64) % stride === 0),
    'first window, then on the stride',
  );
  t.ok(
    maxAbsDiff(
      scored.map(([, v]) => v!),
      scored.map(([i]) => evals[5]!.nll[i]!),
    ) < 1e-5,
    'recompute NLLs as eval at the sampled positions',
  );
  const past = scored.filter(([i]) => i >= 64).map(([i]) => i);
  t.equal(past.length, pastFirstWindow);
  const pplOn = (nll: number[]) => Math.exp(past.reduce((s, i) => s + nll[i]!, 0) / past.length);
  for (let i = 0; i < 6; i++) t.ok(close(rows[i]!.pplSampled, pplOn(evals[i]!.nll)), `${rows[i]!.label}: PPL on the sampled positions`);
  checkFigures(t, out, json.figures as FigureFile[]);
  const md = readFileSync(join(out, 'curves.md'), 'utf8');
  t.match(md, /\| streaming\(4\+60\) \|/);
  t.ok(readFileSync(join(out, 'report.md'), 'utf8').includes(md), 'report embeds the table');
});

t.test('newline-sinks: the first four tokens replaced by the encoding of "\\n"', async (t) => {
  const { out, json } = await reproduce('newline-sinks');
  t.same(json.originalIds, ids.slice(0, 4));
  t.equal(ids[0], 1, 'BOS first: this tokenizer adds it');
  t.same(json.newlineIds, [0, 0, 0, 0], "this tokenizer's \\n is id 0");
  const rows = json.rows as { label: string; initial: string; ppl: number }[];
  t.same(
    rows.map((r) => [r.label, r.initial]),
    [
      ['0+64 (window)', 'original'],
      ['4+60', 'original'],
      ['4 "\\n" + 60', 'newlines'],
    ],
  );
  // scoreTokens on the same ids, the first four replaced; PPL over the targets after them (nll[3..])
  const tail = (nll: Float64Array) => Math.exp(nll.slice(3).reduce((a, b) => a + b, 0) / (nll.length - 3));
  const streaming = { kind: 'streaming', sinkCount: 4, windowSize: 60 } as const;
  const want = [
    tail((await scoreTokens(m, ids, { kind: 'window', windowSize: 64 })).nll),
    tail((await scoreTokens(m, ids, streaming)).nll),
    tail((await scoreTokens(m, [0, 0, 0, 0, ...ids.slice(4)], streaming)).nll),
  ];
  rows.forEach((r, i) => t.ok(close(r.ppl, want[i]!), `${r.label}: ${r.ppl} vs ${want[i]}`));
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /replaced by the tokenizer's "\\n" \(ids 0, 0, 0, 0\)/);
  t.ok(existsSync(join(out, 'newline-sinks.md')));
});

// The sweeps, initial-tokens | cache-size | latency: perplexities against
// scoreTokens on the same tokens, latency rows, figures.

t.test('initial-tokens: S + (64 - S) for S = 0, 1, 2, 4, 8', async (t) => {
  const { out, json } = await reproduce('initial-tokens');
  t.equal(json.cacheSize, 64);
  t.equal(json.tokens, ids.length);
  const rows = json.rows as { sinks: number; window: number; label: string; ppl: number }[];
  t.same(
    rows.map((r) => r.label),
    ['0+64', '1+63', '2+62', '4+60', '8+56'],
  );
  for (const r of rows) {
    const want = await streamingPpl(r.sinks, r.window);
    t.ok(close(r.ppl, want), `${r.label}: ${r.ppl} vs scoreTokens ${want}`);
  }
  t.ok(close(rows[0]!.ppl, (await scoreTokens(m, ids, { kind: 'window', windowSize: 64 })).ppl), '0+64 is window attention');
  checkFigures(t, out, json.figures as FigureFile[]);
});

t.test('cache-size: 4 + (C - 4) from W/8 to W, and h2o and tova at budget C', async (t) => {
  const { out, json } = await reproduce('cache-size');
  const rows = json.rows as { cacheSize: number; sinks: number; window: number; ppl: number; h2oPpl: number; tovaPpl: number }[];
  t.same(
    rows.map((r) => r.cacheSize),
    [8, 16, 32, 64],
    'W/16 = 4 leaves no window beside 4 sinks',
  );
  for (const r of rows) {
    const C = r.cacheSize;
    t.equal(r.sinks + r.window, C);
    t.ok(close(r.ppl, await streamingPpl(4, C - 4)), `C = ${C}`);
    t.ok(r.h2oPpl > 1 && r.tovaPpl > 1, `C = ${C}: h2o ${r.h2oPpl}, tova ${r.tovaPpl}`);
  }
  // each score-based row as scoreTokens gives it, at the smallest budget (the one that evicts most)
  t.ok(close(rows[0]!.h2oPpl, (await scoreTokens(m, ids, { kind: 'h2o', budget: 8, recent: 4 })).ppl), 'h2o, C = 8');
  t.ok(close(rows[0]!.tovaPpl, (await scoreTokens(m, ids, { kind: 'tova', budget: 8 })).ppl), 'tova, C = 8');
  checkFigures(t, out, json.figures as FigureFile[]);
});

t.test('latency: both policies at each size, the speed-up their ratio', async (t) => {
  const { out, json } = await reproduce('latency', ['--products', 'tfjs']); // the tfjs path: its peak tensor memory counts the weights
  type Measure = { policy: { kind: string; windowSize: number; sinkCount?: number }; msPerToken: number; peakTensorMiB: number; kvCacheMiB: number };
  const rows = json.rows as { cacheSize: number; speedup: number; recompute: Measure; streaming: Measure }[];
  t.same(
    rows.map((r) => r.cacheSize),
    [8, 16, 32, 64, 128, 256],
    'W/8 .. 4W',
  );
  for (const r of rows) {
    t.same(r.recompute.policy, { kind: 'recompute', windowSize: r.cacheSize });
    t.same(r.streaming.policy, { kind: 'streaming', sinkCount: 4, windowSize: r.cacheSize - 4 });
    t.ok(r.recompute.msPerToken > 0 && r.streaming.msPerToken > 0);
    t.ok(close(r.speedup, r.recompute.msPerToken / r.streaming.msPerToken, 1e-4));
    // the peak includes the weights: 3 layers of q|k|v, out, up, down plus embedding and classifier, float32
    t.ok(r.streaming.peakTensorMiB * 2 ** 20 > 4 * 96 * 48 * 2 && r.recompute.peakTensorMiB > 0);
    // KV storage holds at least C entries: 3 layers x (k, v) x 2 kv heads x 8 floats each
    t.ok(r.streaming.kvCacheMiB * 2 ** 20 >= r.cacheSize * 3 * 2 * 2 * 8 * 4);
  }
  t.equal(json.backend, 'wasm');
  checkFigures(t, out, json.figures as FigureFile[]);
});

t.test("reproduce's placement: the worker pool by default, with the tfjs path's numbers (wasm: bit for bit)", async (t) => {
  // curves: blocked and stepwise decode, caches that rank by attention (h2o, tova) and recompute
  const run = async (folder: string, extra: string[]) => {
    const out = join(dir, folder);
    const r = await runCliInProcess(['reproduce', 'curves', ...common, '--recompute-samples', '10', '--out', out, ...extra]);
    t.equal(r.status, 0, r.status === 0 ? `${extra.join(' ') || 'no flag'}: exits 0` : r.stderr);
    type Row = { label: string; ppl: number | null; pplSampled: number; nll: (number | null)[] };
    return { stderr: r.stderr, rows: (JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8')) as { policies: Row[] }).policies };
  };
  const threads = workerThreads();
  const pool = await run('placed-pool', ['--threads', '2']);
  const plain = await run('placed-tfjs', ['--products', 'tfjs']);
  t.match(pool.stderr, /^products: f32 weights \([\d.]+ MiB\) on 2 threads, /m, '--threads 2: the products in the pool');
  t.notMatch(plain.stderr, /products:/, '--products tfjs: the tfjs path');
  t.equal(workerThreads(), threads, "the pool's threads stopped when it finished");
  t.same(
    pool.rows.map((r) => r.label),
    plain.rows.map((r) => r.label),
  );
  for (const [i, p] of pool.rows.entries()) {
    const q = plain.rows[i]!;
    if (tf.getBackend() === 'wasm')
      t.same([p.ppl, p.pplSampled, p.nll], [q.ppl, q.pplSampled, q.nll], `${p.label}: the same numbers (to the report's 7 digits)`);
    // cpu: the pool sums its products in another order than tfjs's
    else
      t.ok(
        maxAbsDiff(
          p.nll.map((v) => v ?? 0),
          q.nll.map((v) => v ?? 0),
        ) < 1e-5,
        `${p.label}: the NLLs within float32 rounding`,
      );
  }
  const bad = await runCliInProcess(['reproduce', 'curves', ...common, '--products', 'tfjs', '--weights', 'q8', '--out', join(dir, 'never')]);
  t.same([bad.status, errorLines(bad.stderr)], [2, ['streamllm: reproduce --products tfjs: float32 only (--weights q8 runs in the pool), got --weights q8']]);
});

// Bad input: one line on stderr naming the flag or file, exit code 2, no
// stack trace, nothing written (test/cli_smoke.test.ts runs the executable).

t.test('bad input: one line on stderr, exit code 2, no report', async (t) => {
  const out = join(dir, 'never');
  // token ids outside the vocabulary (96 tokens): refused by the file's reader or against the model, before any window runs
  const outOfVocab = join(dir, 'oov.json');
  writeFileSync(outOfVocab, JSON.stringify([1, 2, 96, 3]));
  const negative = join(dir, 'negative.json');
  writeFileSync(negative, JSON.stringify([1, -1, 3]));
  const none = join(dir, 'none-ids.json');
  writeFileSync(none, '[]');
  const oneId = join(dir, 'one-id.json');
  writeFileSync(oneId, '[5]');
  const cases: [string[], RegExp][] = [
    [['reproduce', 'fig99', ...common], /^streamllm: reproduce: unknown experiment 'fig99' \(expected one of attention, curves, .*all\)$/],
    [['reproduce', ...common], /reproduce: name an EXPERIMENT/],
    [
      ['reproduce', 'curves', '--text', text, '--manifest', join(dir, 'none.json')],
      /reproduce: give --model PATH \(there is no model zoo manifest at .*none.json/,
    ],
    [['reproduce', 'curves', '--model', model], /the held-out Brown text needs the model's tokenizer; give --tokenizer FILE/],
    [['reproduce', 'curves', ...common, '--tokens', text], /give one of --text FILE, --tokens IDS.json, not several/],
    [['reproduce', 'curves', ...common, '--backcopy'], /give one of --text FILE, --backcopy, not several/],
    [['reproduce', 'attention', '--model', model, '--tokens', outOfVocab], /oov\.json: element 2 is 96, expected a token id in 0\.\.95$/],
    [['reproduce', 'curves', '--model', model, '--tokens', negative], /negative\.json: element 1 is -1, expected a token id \(an integer >= 0\)$/],
    // fewer than 2 tokens: nothing to score (curves ran to a RangeError and its stack, cache-size to a figure of NaN)
    [['reproduce', 'curves', '--model', model, '--tokens', none], /^streamllm: reproduce: .*none-ids\.json \(token ids\) gives 0 tokens, expected at least 2$/],
    [
      ['reproduce', 'cache-size', '--model', model, '--tokens', oneId],
      /^streamllm: reproduce: .*one-id\.json \(token ids\) gives 1 token, expected at least 2$/,
    ],
    // start loads its model into the worker pool on wasm: refused after loading it, it frees the pool's threads too (below)
    [['start', '--model', model, '--tokens', oneId], /^streamllm: start: .*one-id\.json \(token ids\) gives 1 token, expected at least 2$/],
    [['start', '--model', model, '--tokens', outOfVocab], /oov\.json: element 2 is 96, expected a token id in 0\.\.95$/],
    [['reproduce', 'attention', ...common, '--samples', '0'], /reproduce --samples: must be >= 1, got 0/],
    [['reproduce', 'attention', ...common, '--samples', 'many'], /reproduce --samples: expected an integer, got 'many'/],
    [['reproduce', 'curves', '--model', model, '--text', text], /this model has no tokenizer to encode the text with; give --tokenizer FILE/],
    [['reproduce', 'curves', ...common, '--limit', '1'], /--limit: must be >= 2/],
    [['reproduce', 'pretraining', ...common, '--manifest', join(dir, 'none.json')], /pretraining: no model zoo manifest at/],
    [['reproduce', 'curves', '--model', join(dir, 'missing.bin'), '--text', text], /missing.bin: no such file or directory/],
    [['reproduce', 'curves', 'extra', ...common], /unexpected argument 'extra'/],
    // an empty item of a list flag (was ': no such file or directory', the empty name as a model's path)
    [['reproduce', 'pretraining', ...common, '--models', ''], /^streamllm: reproduce --models: expected a comma-separated list without empty items, got ''$/],
    [
      ['reproduce', 'pretraining', ...common, '--models', 'a,,b'],
      /^streamllm: reproduce --models: expected a comma-separated list without empty items, got 'a,,b'$/,
    ],
    // refused before any size runs (it filled 1.25e11 tokens for the first size: never done, deaf to Ctrl-C)
    [
      ['reproduce', 'latency', ...common, '--window', '1e12'],
      /latency: a cache of 4000000000000 entries \(4 x --window 1000000000000\), whose recompute step attends over 4000000000000 tokens at once: needs a tensor of/,
    ],
  ];
  const tensors = tf.memory().numTensors;
  const threads = workerThreads();
  for (const [args, message] of cases) {
    const r = await runCliInProcess([...args, '--out', out]);
    t.equal(r.status, 2, `${args.join(' ')}: exit 2 (${r.stderr.trim()})`);
    const lines = errorLines(r.stderr);
    t.equal(lines.length, 1, `one line: ${r.stderr}`);
    t.match(lines[0], message);
    t.match(lines[0], /^streamllm: /);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  t.notOk(existsSync(join(out, 'report.md')), 'nothing written');
  // a model loaded before the refusal is disposed (its tensors, a pool's workers)
  t.equal(tf.memory().numTensors, tensors, 'no tensor left by a refused run');
  t.equal(workerThreads(), threads, 'no worker thread left');
  const help = await runCliInProcess(['reproduce', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /^streamllm reproduce: /);
  t.match(help.stdout, /newline-sinks\s+The first four tokens replaced by newlines/);
});
