// `streamllm reproduce` end to end on the conformance checkpoint (trained
// length 64): curves against `streamllm eval` on the same text, newline-sinks
// against scoreTokens, figures as PNGs of the stated size, report.md.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { scoreTokens } from '../src/eval/perplexity.js';
import { loadModel } from '../src/model/load.js';
import { initTestBackend, maxAbsDiff, runCliInProcess } from './helpers.js';
import { checkFigures, close, type FigureFile, LIMIT, model, reproduce as run, setUp, textIds } from './reproduce_helpers.js';

await initTestBackend();
const { dir, text, common } = setUp();
const reproduce = (experiment: string, extra: string[] = []) => run(dir, common, experiment, extra);

interface EvalResult {
  policy: { kind: string; sinkCount?: number; windowSize?: number };
  nll: number[];
  ppl: number;
}

/** `streamllm eval --json` on the same text and limit. */
async function evalJson(extra: string[]): Promise<EvalResult[]> {
  // --threads 1: the backend's products, as reproduce computes them (the worker pool sums in another order)
  const r = await runCliInProcess(['eval', ...common, '--json', '--threads', '1', ...extra]);
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
  const ids = textIds(text);
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
  const m = loadModel(model);
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
