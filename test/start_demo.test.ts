// The demo path: a zoo manifest whose "demo" names a model (here a tiny one,
// marked as trained with BOS first) makes `npm start` show it first and the
// default (text) model beside it, each with a sentence computed from its own
// table; `reproduce` runs the demo without --model; a manifest without
// "demo" behaves as before. The sentence itself against hand-made numbers.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import type { CurveRow, CurvesResult } from '../src/experiments/curves.js';
import { curvesSentence } from '../src/experiments/curves_sentence.js';
import { readManifest } from '../src/zoo/manifest.js';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { model as llama2cModel, setUp, tokenizer } from './reproduce_helpers.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();
const { dir, text } = setUp();

// Two models of the conformance shape: "sinky" (the conformance weights; marked as the demo, trained with BOS first) and "texty" (random weights; the default).
const zoo = join(dir, 'weights');
const base = readLlama2c(llama2cModel);
for (const [name, tensors] of [
  ['sinky', base],
  ['texty', randomLlama2c(base.shape, 'texty')],
] as const) {
  mkdirSync(join(zoo, name), { recursive: true });
  writeHfDir(join(zoo, name), llamaConfigJson(base.shape), llama2cToHf(tensors));
  copyFileSync(tokenizer, join(zoo, name, 'tokenizer.bin'));
}
const manifest = join(zoo, 'manifest.json');
const entries = [
  { name: 'sinky', variant: 'softmax', data: 'brown', bosFirst: true },
  { name: 'texty', variant: 'softmax' },
];
writeFileSync(manifest, JSON.stringify({ default: 'texty', demo: 'sinky', models: entries }));

/** A curves result with the given perplexities (the sentence reads nothing else). */
function curvesOf(ppl: { window: number; streaming: number; streamingSampled: number; recompute: number; recomputeBos?: number }): CurvesResult {
  const row = (name: CurveRow['name'], all: number | null, sampled: number | null): CurveRow => ({
    name,
    label: name,
    policy: { kind: 'dense' },
    ppl: all,
    pplSampled: sampled,
    seconds: 1,
    tokensPerSecond: 1,
    nll: [],
  });
  return {
    experiment: 'curves',
    model: 'm',
    text: 't',
    tokens: 1001,
    windowSize: 64,
    sinkCount: 4,
    binSize: 16,
    recompute: { stride: 2, positions: 500, pastFirstWindow: 468 },
    bosKept: ppl.recomputeBos !== undefined ? 1 : null,
    policies: [
      row('window', ppl.window, null),
      row('streaming', ppl.streaming, ppl.streamingSampled),
      row('recompute', null, ppl.recompute),
      ...(ppl.recomputeBos !== undefined ? [row('recompute-bos', null, ppl.recomputeBos)] : []),
    ],
    figures: [],
    table: '',
  };
}

t.test('the sentence: a collapse where the numbers show one, none where they do not', async (t) => {
  t.equal(
    curvesSentence(curvesOf({ window: 30, streaming: 20, streamingSampled: 20.2, recompute: 24, recomputeBos: 20 })),
    'm: window / streaming PPL = 1.500 over 1000 tokens: evicting the first 4 tokens costs +50.0%; streaming is +1.0% from recompute with BOS kept on 468 sampled positions.',
  );
  t.equal(
    curvesSentence(curvesOf({ window: 620, streaming: 20, streamingSampled: 19, recompute: 20 })),
    'm: window / streaming PPL = 31.000 over 1000 tokens: evicting the first 4 tokens costs x31.00 (+3000%); streaming is -5.0% from recompute on 468 sampled positions.',
  );
  t.equal(
    curvesSentence(curvesOf({ window: 20.1, streaming: 20, streamingSampled: 20, recompute: 20 })),
    'm: window / streaming PPL = 1.005 over 1000 tokens: evicting the first 4 tokens changes perplexity by +0.5%, within the 1% counted as an effect: ' +
      'no collapse on this model; streaming is 0.0% from recompute on 468 sampled positions.',
  );
  t.match(
    curvesSentence(curvesOf({ window: 19.999, streaming: 20, streamingSampled: 20, recompute: 20 })),
    /changes perplexity by 0\.0%, within/,
    'no "-0.0%"',
  );
  const short = { ...curvesOf({ window: 20, streaming: 20, streamingSampled: 20, recompute: 20 }), tokens: 50 };
  t.equal(curvesSentence(short), 'm: the 50 tokens fit in the cache of 64, so nothing is evicted and the policies agree.');
});

/** A row's cells of a Markdown table in `text` whose first cell is `label`. */
function cellsOf(table: string, label: string): string[] {
  const line = table.split('\n').find((l) => l.startsWith(`| ${label} `));
  return (line ?? '')
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

t.test('start with a demo model: its table and sentence, then the text model beside it, each from its own numbers', async (t) => {
  t.equal(readManifest(manifest).demoName, 'sinky');
  const out = join(dir, 'start');
  const r = await runCliInProcess(['start', '--manifest', manifest, '--text', text, '--limit', '200', '--recompute-samples', '10', '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  const [demo, beside] = r.stdout.split('\n\n');
  t.match(demo, /^Demo, a model trained to form an attention sink: perplexity of sinky over 200 tokens, every cache 64 entries:\n/);
  t.match(beside, /^Beside it, the text model: perplexity of texty over 200 tokens, every cache 64 entries:\n/);
  t.ok(cellsOf(demo!, 'recompute(64), BOS kept').length > 0, 'the demo (trained with BOS first) has the BOS-kept recompute');
  t.equal(cellsOf(beside!, 'recompute(64), BOS kept').length, 0, 'the text model does not');
  for (const [block, file] of [
    [demo!, 'curves.json'],
    [beside!, 'curves-text.json'],
  ] as const) {
    const json = JSON.parse(readFileSync(join(out, file), 'utf8')) as CurvesResult;
    const sentence = curvesSentence(json);
    t.ok(block.includes(`\n${sentence}\n`), `${json.model}: the sentence of its own numbers`);
    const by = (name: string) => json.policies.find((p) => p.name === name)!;
    t.ok(sentence.includes(`window / streaming PPL = ${(by('window').ppl! / by('streaming').ppl!).toFixed(3)} over 199 tokens`));
  }
  t.match(demo, new RegExp(`per-token log-perplexity plot: ${out}/curves\\.png`));
  t.match(beside, new RegExp(`per-token log-perplexity plot: ${out}/curves-text\\.png \\(and \\.svg\\)\\nreport: ${out}/report\\.md\\n$`));
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  t.match(report, /^# streamllm start: dense, window, streaming and recompute on sinky and texty$/m);
  t.match(report, /^- model: sinky .*trained on brown with BOS first in every sample\)$/m);
  t.match(report, /^- beside it, model: texty .*trained on brown\)$/m);
  t.match(report, /!\[.*\]\(curves\.png\)/);
  t.match(report, /!\[.*\]\(curves-text\.png\)/);
});

t.test('reproduce runs the demo without --model; --model and a manifest without a demo as before', async (t) => {
  const out = join(dir, 'curves');
  const r = await runCliInProcess(['reproduce', 'curves', '--manifest', manifest, '--text', text, '--limit', '100', '--recompute-samples', '4', '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  t.equal((JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8')) as CurvesResult).model, 'sinky');
  const plain = join(zoo, 'manifest-plain.json');
  writeFileSync(plain, JSON.stringify({ default: 'texty', models: entries }));
  const one = join(dir, 'start-plain');
  const s = await runCliInProcess(['start', '--manifest', plain, '--text', text, '--limit', '100', '--recompute-samples', '4', '--out', one]);
  t.equal(s.status, 0, s.status === 0 ? 'exits 0' : s.stderr);
  t.match(s.stdout, /^Perplexity of texty over 100 tokens, every cache 64 entries:\n/);
  t.notMatch(s.stdout, /Demo|Beside it/);
  t.match(s.stdout, /^texty: window \/ streaming PPL = \d+\.\d{3} over 99 tokens: /m);
  t.match(s.stdout, /per-token log-perplexity plot: \S+\/curves\.png \(and \.svg\)\nreport: \S+report\.md\n$/);
  const given = await runCliInProcess([
    'start',
    '--manifest',
    manifest,
    '--model',
    join(zoo, 'texty'),
    '--text',
    text,
    '--limit',
    '100',
    '--recompute-samples',
    '4',
    '--out',
    join(dir, 'start-given'),
    '--force',
  ]);
  t.equal(given.status, 0, given.status === 0 ? 'exits 0' : given.stderr);
  t.notMatch(given.stdout, /Demo/, '--model: that model alone');
  // a demo that names no model: one line, exit 2
  const bad = join(zoo, 'manifest-bad.json');
  writeFileSync(bad, JSON.stringify({ default: 'texty', demo: 'nosuch', models: entries }));
  const e = await runCliInProcess(['start', '--manifest', bad, '--text', text, '--out', join(dir, 'start-bad')]);
  t.equal(e.status, 2);
  t.match(e.stderr, /manifest-bad\.json: "demo" names "nosuch", which is not in "models"/);
  writeFileSync(bad, JSON.stringify({ demo: 3, models: entries }));
  t.throws(() => readManifest(bad), /field "demo" must be a model name/);
});
