// `streamllm attn`, `reproduce pretraining`, `start` and `reproduce all` end
// to end: attention maps of the conformance checkpoint, and a zoo of four
// tiny variants (softmax, softmax1, learned-sink, sink-token) with a
// manifest written here.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readLlama2c } from '../src/checkpoint/llama2c.js';
import { attentionMaps, sinkScores } from '../src/eval/attention_maps.js';
import { type SinkVerdict, sinkProfile, sinkVerdict } from '../src/eval/sink_measure.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { recomputeNllAt } from '../src/eval/recompute_sampled.js';
import { loadModel } from '../src/model/load.js';
import { writeSafetensors } from '../src/checkpoint/safetensors.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { initTestBackend, maxAbsDiff, runCliInProcess } from './helpers.js';
import { decodePng } from './plot_helpers.js';
import { checkFigures, close, type FigureFile, headsDiff, model, reproduce, setUp, textIds, tokenizer } from './reproduce_helpers.js';
import { llama2cToHf, llamaConfigJson, randomArray, rng } from './tiny_checkpoints.js';

const backend = await initTestBackend();
const { dir, text } = setUp();

// The zoo: the conformance model in four variants, as HF directories with the tokenizer beside them.
const VARIANTS = ['softmax', 'softmax1', 'learned-sink', 'sink-token'] as const;
const zoo = join(dir, 'weights');
{
  const base = readLlama2c(model);
  const { layers, heads, dim } = base.shape;
  for (const variant of VARIANTS) {
    const tensors = llama2cToHf(base);
    const r = rng(`zoo-${variant}`);
    if (variant === 'learned-sink') {
      for (let l = 0; l < layers; l++) tensors.set(`model.layers.${l}.self_attn.sinks`, { shape: [heads], values: randomArray(r, heads, 2) });
    }
    if (variant === 'sink-token') tensors.set('model.sink_embedding', { shape: [dim], values: randomArray(r, dim) });
    const modelDir = join(zoo, `tiny-${variant}`);
    mkdirSync(modelDir, { recursive: true });
    const config = {
      ...llamaConfigJson(base.shape),
      streamllm: { softmax: variant === 'sink-token' ? 'softmax' : variant, sink_token: variant === 'sink-token' },
    };
    writeFileSync(join(modelDir, 'config.json'), JSON.stringify(config));
    writeSafetensors(
      join(modelDir, 'model.safetensors'),
      [...tensors].map(([name, v]) => ({ name, shape: v.shape, values: v.values })),
    );
    copyFileSync(tokenizer, join(modelDir, 'tokenizer.bin'));
  }
  writeFileSync(
    join(zoo, 'manifest.json'),
    JSON.stringify({ default: 'tiny-softmax', models: VARIANTS.map((v) => ({ name: `tiny-${v}`, variant: v, steps: 0 })) }),
  );
}
const manifest = join(zoo, 'manifest.json');

t.test('attn: maps, sink scores and the per-layer table', async (t) => {
  const out = join(dir, 'attn');
  const r = await runCliInProcess([
    'attn',
    '--model',
    model,
    '--tokenizer',
    tokenizer,
    '--text',
    text,
    '--samples',
    '16',
    '--length',
    '12',
    '--seed',
    '5',
    '--per-head',
    '--sink-windows',
    '8',
    '--out',
    out,
  ]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^Attention of queries at positions 4\+ \(mean over 16 windows of 12 tokens\); uniform: key 0 0\.\d{3}, keys 0-3 0\.\d{3}$/);
  t.match(lines[1], /^\| layer \| to key 0 \| to keys 0-3 \| max head, key 0 \| that head \| row mass \|$/);
  const measurement = lines.indexOf('Sink measurement: 8 windows of 64 positions; per layer, its strongest head');
  t.ok(measurement > 0, 'the sink measurement follows the maps');
  t.equal(lines.slice(0, measurement).filter((l) => /^\|\s+\d \|/.test(l)).length, 3, 'one row per layer');
  t.match(
    lines[measurement + 1],
    /^\| layer \| strongest head \| key 0, t in \[32, 64\) \| x uniform \| key 0, t in \[4, 16\) \| logit gap, short \| logit gap, long \| sink heads \|$/,
  );
  t.equal(lines.slice(measurement).filter((l) => /^\|\s+\d \|/.test(l)).length, 3, 'one row per layer');
  t.match(lines[measurement + 6], /^Sink: no; strongest layer \d head \d: 0\.\d{3} on key 0 at t in \[32, 64\)/);
  const scores = JSON.parse(readFileSync(join(out, 'sink-scores.json'), 'utf8')) as ReturnType<typeof sinkScores> & {
    samples: number;
    length: number;
    seed: number;
    softmax: string;
  };
  t.equal(scores.samples, 16);
  t.equal(scores.softmax, 'softmax');
  // the same numbers in process
  const allIds = loadTokenizer(tokenizer).encode(readFileSync(text, 'utf8'), { bos: true }); // attn takes the whole text
  const maps = attentionMaps(loadModel(model), allIds, { samples: 16, length: 12, seed: 5 });
  const want = sinkScores(maps);
  t.ok(close(scores.uniform.key0, want.uniform.key0));
  t.ok(headsDiff(scores, want, 'key0') < 1e-6);
  t.ok(
    maxAbsDiff(
      scores.layers.map((l) => l.mean.keys0to3),
      want.layers.map((l) => l.mean.keys0to3),
    ) < 1e-6,
  );
  // the measurement, as sinkProfile and sinkVerdict give it on the same windows
  const verdict = sinkVerdict(sinkProfile(loadModel(model), allIds, { windows: 8, seed: 5 }));
  const written = (scores as unknown as { measurement: SinkVerdict }).measurement;
  t.same(written.longRange, [32, 64]);
  t.ok(headsDiff(written, verdict, 'key0') < 1e-6);
  t.ok(headsDiff(written, verdict, 'gapLong') < 1e-5);
  t.equal(written.sink, false);
  const profile = JSON.parse(readFileSync(join(out, 'sink-profile.json'), 'utf8')) as { key0: number[][][]; logitGap: number[][][]; size: number };
  t.equal(profile.size, 64);
  t.equal(profile.key0[2]![5]!.length, 64, 'per layer, head and query position');
  const saved = JSON.parse(readFileSync(join(out, 'attention-maps.json'), 'utf8')) as { size: number; offsets: number[]; layers: number[][][][] };
  t.same(saved.offsets, maps.offsets);
  t.equal(saved.layers.length, 3);
  t.equal(saved.layers[0]!.length, 6, 'one map per head');
  t.ok(Math.abs(saved.layers[2]![4]![7]![3]! - maps.probs[2]![(4 * 12 + 7) * 12 + 3]!) < 1e-6);
  // figures: the overview and one per layer, here with a panel per head
  const overview = decodePng(readFileSync(join(out, 'attention-layers.png')));
  const layer0 = decodePng(readFileSync(join(out, 'attention-layer-0.png')));
  t.ok(layer0.height > overview.height, 'two rows of head panels');
  for (const l of [1, 2]) t.ok(existsSync(join(out, `attention-layer-${l}.svg`)));
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /!\[Attention maps, every layer/);
  const bad = await runCliInProcess(['attn', '--model', model, '--tokenizer', tokenizer, '--text', text, '--length', '4']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /attn --length: must be >= 5, got 4/);
  for (const flag of ['--samples', '--sink-windows']) {
    const many = await runCliInProcess(['attn', '--model', model, '--text', text, flag, '1e12']);
    t.same(
      [many.status, many.stderr],
      [2, `streamllm: attn ${flag}: must be <= 1000000, got 1e12\n`],
      `${flag} 1e12: one line (was a RangeError's stack trace)`,
    );
  }
});

t.test("attn's placement: the worker pool by default, with the tfjs path's maps and measurement (wasm: bit for bit)", async (t) => {
  // the sink-token model: its learned sink first in every window, attention observed in every layer
  const files = ['sink-scores.json', 'attention-maps.json', 'sink-profile.json'];
  const run = async (folder: string, extra: string[]) => {
    const out = join(dir, folder);
    const r = await runCliInProcess([
      'attn',
      '--model',
      join(zoo, 'tiny-sink-token'),
      '--text',
      text,
      '--samples',
      '6',
      '--length',
      '10',
      '--sink-windows',
      '3',
      '--out',
      out,
      ...extra,
    ]);
    t.equal(r.status, 0, r.status === 0 ? `${extra.join(' ') || 'no flag'}: exits 0` : r.stderr);
    return { stderr: r.stderr, stdout: r.stdout, json: files.map((f) => JSON.parse(readFileSync(join(out, f), 'utf8')) as unknown) };
  };
  const pool = await run('attn-pool', []);
  const plain = await run('attn-tfjs', ['--products', 'tfjs']);
  if (backend === 'wasm' || backend === 'cpu')
    t.match(pool.stderr, /^products: f32 weights \([\d.]+ MiB\) on \d+ threads?, /m, 'no flag: the products in the pool');
  t.notMatch(plain.stderr, /products:/, '--products tfjs: the tfjs path');
  if (backend === 'wasm') {
    files.forEach((f, i) => t.same(pool.json[i], plain.json[i], `${f}: the same numbers (to the report's 7 digits)`));
    t.equal(pool.stdout.replace(/\/attn-pool\//g, '/attn-tfjs/'), plain.stdout, 'the same tables');
  } else {
    const key0 = (j: unknown[]) => (j[0] as { layers: { mean: { key0: number } }[] }).layers.map((l) => l.mean.key0);
    t.ok(maxAbsDiff(key0(pool.json), key0(plain.json)) < 1e-5, `${backend}: key-0 attention within float32 rounding`);
  }
});

t.test('reproduce pretraining: every model of the manifest, as scoreTokens scores it', async (t) => {
  const { out, json } = await reproduce(dir, ['--manifest', manifest, '--text', text, '--limit', '200', '--recompute-samples', '20'], 'pretraining');
  const models = json.models as {
    name: string;
    variant: string;
    trainedLength: number;
    tokens: number;
    streaming: { sinks: number; window: number; ppl: number }[];
    recompute: { stride: number; positions: number; ppl: number; streaming4PplSamePositions: number };
  }[];
  t.same(
    models.map((m) => m.variant),
    [...VARIANTS],
  );
  t.ok(models.every((m) => m.trainedLength === 64 && m.tokens === 200));
  t.same(
    models[0]!.streaming.map((s) => `${s.sinks}+${s.window}`),
    ['0+64', '1+63', '2+62', '4+60'],
  );
  const ids = textIds(text).slice(0, 200);
  for (const i of [1, 3]) {
    const m = loadModel(join(zoo, `tiny-${VARIANTS[i]}`));
    for (const s of models[i]!.streaming) {
      const want = await scoreTokens(m, ids, { kind: 'streaming', sinkCount: s.sinks, windowSize: s.window });
      t.ok(close(s.ppl, want.ppl), `${VARIANTS[i]} ${s.sinks}+${s.window}`);
    }
    const { stride, positions } = models[i]!.recompute;
    const past = Array.from({ length: positions }, (_, j) => 64 + j * stride);
    const nll = await recomputeNllAt(m, ids, 64, past);
    t.ok(close(models[i]!.recompute.ppl, Math.exp(nll.reduce((a, b) => a + b, 0) / nll.length)), `${VARIANTS[i]} recompute`);
  }
  const table = readFileSync(join(out, 'pretraining.md'), 'utf8');
  const cells = (line: string) =>
    line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const lines = table.trim().split('\n');
  t.same(cells(lines[0]!), ['model', 'variant', '0+W', '1+(W-1)', '2+(W-2)', '4+(W-4)', 'recompute*', 'recompute, BOS kept*', '4+(W-4)*']);
  t.equal(cells(lines[2]!)[7], '–', 'no BOS-kept recompute: these models did not train with BOS first');
  t.same(cells(lines[5]!).slice(0, 2), ['tiny-sink-token', 'sink-token']);
  t.equal(Number(cells(lines[5]!)[3]), Number(models[3]!.streaming[1]!.ppl.toFixed(2)));
  // beside the paper: each model's effects are ratios of its own perplexities
  const comparison = json.comparison as {
    name: string;
    effects: { evictFirst: number; oneNotFour: number };
    verdict: string;
    paper: { paper: string } | null;
  }[];
  t.same(
    comparison.map((c) => c.paper?.paper ?? null),
    ['vanilla', 'zero sink (softmax1)', null, 'learnable sink token'],
  );
  for (const [i, c] of comparison.entries()) {
    const p = (s: number) => models[i]!.streaming.find((x) => x.sinks === s)!.ppl;
    t.ok(close(c.effects.evictFirst, p(0) / p(1), 1e-4) && close(c.effects.oneNotFour, p(1) / p(4), 1e-4), `${c.name} effects`);
  }
  t.equal(comparison[2]!.verdict, 'no paper row');
  const side = readFileSync(join(out, 'pretraining-vs-paper.md'), 'utf8').trim().split('\n');
  t.same(cells(side[0]!), [
    'model',
    '0+W',
    '1+(W-1)',
    '2+(W-2)',
    '4+(W-4)',
    'recompute*',
    'recompute, BOS kept*',
    '0+W / 1+(W-1)',
    '1+(W-1) / 4+(W-4)',
    'verdict',
  ]);
  t.same(cells(side[3]!).slice(0, 5), ['paper: vanilla', '27.87', '18.49', '18.05', '18.05']);
  checkFigures(t, out, json.figures as FigureFile[]);
});

t.test('start: the default model of the manifest on the held-out text, the table and the plot it names', async (t) => {
  const out = join(dir, 'start');
  const r = await runCliInProcess(['start', '--manifest', manifest, '--limit', '200', '--recompute-samples', '20', '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  // on wasm start runs the products in the worker pool (the CLI's default placement), with reproduce curves' numbers (the tfjs path) bit for bit
  if (backend === 'wasm') {
    t.match(r.stderr, /^products: f32 weights \([\d.]+ MiB\) on \d+ threads?, /m, 'wasm: the products in the pool');
    const plainOut = join(dir, 'start-curves');
    const plain = await runCliInProcess([
      'reproduce',
      'curves',
      '--manifest',
      manifest,
      '--limit',
      '200',
      '--recompute-samples',
      '20',
      '--products',
      'tfjs',
      '--out',
      plainOut,
    ]);
    t.equal(plain.status, 0, plain.stderr);
    t.notMatch(plain.stderr, /products:/, 'reproduce curves --products tfjs: the tfjs path');
    type Row = { label: string; ppl: number | null; pplSampled: number | null; nll: number[] };
    const rows = (folder: string) => (JSON.parse(readFileSync(join(folder, 'curves.json'), 'utf8')) as { policies: Row[] }).policies;
    const want = new Map(rows(plainOut).map((p) => [p.label, p]));
    const got = rows(out);
    t.same(
      got.map((p) => p.label),
      ['dense', 'window(64)', 'streaming(4+60)', 'recompute(64)'],
      "start's rows",
    );
    for (const p of got)
      t.same(
        [p.ppl, p.pplSampled, p.nll],
        [want.get(p.label)?.ppl, want.get(p.label)?.pplSampled, want.get(p.label)?.nll],
        `${p.label}: the same numbers (to the report's 7 digits)`,
      );
  } else t.notMatch(r.stderr, /products:/, `${backend}: the tfjs path`);
  t.match(r.stdout, /^Perplexity of tiny-softmax over 200 tokens, every cache 64 entries:\n/);
  t.match(r.stdout, /\| streaming\(4\+60\) \|/);
  const plot = /per-token log-perplexity plot: (\S+\.png)/.exec(r.stdout)?.[1];
  t.equal(plot, join(out, 'curves.png'));
  const curves = JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8')) as { model: string; figures: FigureFile[] };
  t.equal(curves.model, 'tiny-softmax');
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /^- text: the held-out Brown corpus texts, \d+ tokens$/m);
  checkFigures(t, out, curves.figures);
  const none = await runCliInProcess(['start', '--manifest', join(dir, 'no-manifest.json'), '--text', text]);
  t.equal(none.status, 2);
  t.match(none.stderr, /start: give --model PATH \(there is no model zoo manifest at /);
});

t.test('reproduce all: every experiment in one report', async (t) => {
  const out = join(dir, 'all');
  const r = await runCliInProcess([
    'reproduce',
    'all',
    '--manifest',
    manifest,
    '--text',
    text,
    '--limit',
    '150',
    '--samples',
    '8',
    '--recompute-samples',
    '10',
    '--sink-windows',
    '4',
    '--out',
    out,
  ]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  for (const heading of ['(Fig. 2)', '(Fig. 3)', '(Table 2)', '(Table 1)', '(Table 6)', '(Fig. 10)', '(Table 3)']) t.match(report, heading);
  t.notMatch(report, /Skipped/);
  t.match(report, /^- model: tiny-softmax /m);
  for (const name of ['curves', 'initial-tokens', 'newline-sinks', 'cache-size', 'latency', 'pretraining', 'sink-scores']) {
    t.ok(existsSync(join(out, `${name}.json`)), `${name}.json`);
    t.match(report, readFileSync(join(out, name === 'sink-scores' ? 'sink-scores.md' : `${name}.md`), 'utf8').split('\n')[0]!);
  }
});
