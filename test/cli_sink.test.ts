// The sink measurement and the cache flags from the command line: attn
// --window / --sink-windows / --bos-first against sinkProfile in process, and
// their bad values (one line, exit 2).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type SinkVerdict, sinkProfile, sinkVerdict } from '../src/eval/sink_measure.js';
import { loadModel } from '../src/model/load.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { headsDiff, model, setUp, tokenizer } from './reproduce_helpers.js';

await initTestBackend();
const { dir, text } = setUp();
const inputs = ['--model', model, '--tokenizer', tokenizer, '--text', text];

t.test('attn --window, --sink-windows, --bos-first: the measurement on BOS-first windows of W positions', async (t) => {
  const out = join(dir, 'attn-bos');
  const settings = '--samples 4 --length 8 --window 24 --sink-windows 6 --bos-first --seed 2'.split(' ');
  const r = await runCliInProcess(['attn', ...inputs, ...settings, '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  t.match(r.stdout, /^Sink measurement: 6 windows of 24 positions; per layer, its strongest head$/m);
  const written = (JSON.parse(readFileSync(join(out, 'sink-scores.json'), 'utf8')) as { measurement: SinkVerdict & { prefix: number[] } }).measurement;
  const tok = loadTokenizer(tokenizer);
  t.same(written.prefix, [tok.bosId], 'BOS first');
  const allIds = tok.encode(readFileSync(text, 'utf8'), { bos: true });
  const want = sinkVerdict(sinkProfile(loadModel(model), allIds, { windows: 6, size: 24, seed: 2, bosId: tok.bosId }));
  t.ok(headsDiff(written, want, 'key0') < 1e-6);
  t.ok(headsDiff(written, want, 'gapShort') < 1e-5);
  t.match(readFileSync(join(out, 'report.md'), 'utf8'), /every window starts with BOS \(\d+\)/);
  for (const [args, message] of [
    [['--window', '9'], /^streamllm: window: sink scores need windows of at least 10 positions, got 9$/m],
    [['--window', '5000'], /window: a sink measurement window of 5000 positions holds 5\.0 GiB of attention tensors .* expected at most 2229$/m],
    [['--window', '2000'], /window: windows of 2000 positions need 2000 text tokens; the text has \d+$/m],
    [['--window', 'x'], /attn --window: expected an integer, got 'x'/],
  ] as const) {
    const bad = await runCliInProcess(['attn', ...inputs, '--samples', '2', ...args, '--out', join(dir, 'attn-bad')]);
    t.equal(bad.status, 2, args.join(' '));
    t.match(bad.stderr, message);
    t.equal(bad.stderr.split('\n').filter((l) => l.startsWith('streamllm:')).length, 1, 'one error line');
    t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('reproduce --window W --sinks S: every cache holds W entries, streaming keeps S', async (t) => {
  const out = join(dir, 'curves-w32');
  const settings = '--limit 150 --recompute-samples 10 --window 32 --sinks 2'.split(' ');
  const r = await runCliInProcess(['reproduce', 'curves', ...inputs, ...settings, '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  const json = JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8')) as {
    windowSize: number;
    sinkCount: number;
    policies: { name: string; policy: Record<string, unknown>; ppl: number | null }[];
  };
  t.equal(json.windowSize, 32);
  t.equal(json.sinkCount, 2);
  const by = (name: string) => json.policies.find((p) => p.name === name)!;
  t.same(by('streaming').policy, { kind: 'streaming', sinkCount: 2, windowSize: 30 });
  t.same(by('window').policy, { kind: 'window', windowSize: 32 });
  t.same(by('recompute').policy, { kind: 'recompute', windowSize: 32 });
  const ids = loadTokenizer(tokenizer).encode(readFileSync(text, 'utf8'), { bos: true }).slice(0, 150);
  const { scoreTokens } = await import('../src/eval/perplexity.js');
  const want = await scoreTokens(loadModel(model), ids, { kind: 'streaming', sinkCount: 2, windowSize: 30 });
  t.ok(Math.abs(by('streaming').ppl! - want.ppl) <= 1e-5 * want.ppl, `streaming 2+30: ${by('streaming').ppl} vs ${want.ppl}`);
  t.match(
    readFileSync(join(out, 'report.md'), 'utf8'),
    /Every cache lets a query see 32 entries \(trained length 64\); streaming keeps 2 initial tokens and 30 recent ones/,
  );
});

t.test('reproduce pretraining --models DIR,DIR --window W: those models, caches of W, beside the paper', async (t) => {
  // two model directories: the conformance model as a softmax and a sink-token variant
  const { mkdirSync, writeFileSync, copyFileSync } = await import('node:fs');
  const { readLlama2c } = await import('../src/checkpoint/llama2c.js');
  const { writeSafetensors } = await import('../src/checkpoint/safetensors.js');
  const { llama2cToHf, llamaConfigJson, randomArray, rng } = await import('./tiny_checkpoints.js');
  const base = readLlama2c(model);
  const dirs = ['softmax', 'sink-token'].map((variant) => {
    const tensors = llama2cToHf(base);
    if (variant === 'sink-token') tensors.set('model.sink_embedding', { shape: [base.shape.dim], values: randomArray(rng('models-flag'), base.shape.dim) });
    const d = join(dir, 'models', `mini-${variant}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({ ...llamaConfigJson(base.shape), streamllm: { softmax: 'softmax', sink_token: variant === 'sink-token' } }),
    );
    writeSafetensors(
      join(d, 'model.safetensors'),
      [...tensors].map(([name, v]) => ({ name, shape: v.shape, values: v.values })),
    );
    copyFileSync(tokenizer, join(d, 'tokenizer.bin'));
    return d;
  });
  const out = join(dir, 'pretraining-models');
  const settings = '--window 24 --limit 120 --recompute-samples 6'.split(' ');
  const r = await runCliInProcess(['reproduce', 'pretraining', '--models', dirs.join(','), '--text', text, ...settings, '--out', out]);
  t.equal(r.status, 0, r.status === 0 ? 'exits 0' : r.stderr);
  const json = JSON.parse(readFileSync(join(out, 'pretraining.json'), 'utf8')) as {
    models: { name: string; trainedLength: number; streaming: { sinks: number; window: number }[] }[];
    comparison: { verdict: string }[];
  };
  t.same(
    json.models.map((m) => m.name),
    ['mini-softmax', 'mini-sink-token'],
  );
  t.same(
    json.models[0]!.streaming.map((s) => `${s.sinks}+${s.window}`),
    ['0+24', '1+23', '2+22', '4+20'],
  );
  t.equal(json.comparison.length, 2);
  // printed: the side-by-side table, then where the report is
  t.match(r.stdout, /^\| model +\| +0\+W \|/);
  t.match(r.stdout, /^\| mini-sink-token \(sink-token\) +\|.*\| (agrees|partly|disagrees) +\|$/m);
  t.match(r.stdout, /^\| paper: learnable sink token +\| +1235 \| +18\.01 \|/m);
  t.match(r.stdout, /wrote .*report\.md\n$/);
  const missing = await runCliInProcess(['reproduce', 'pretraining', '--models', `${dirs[0]},${join(dir, 'nope')}`, '--text', text, '--out', join(dir, 'bad')]);
  t.equal(missing.status, 2);
  t.match(missing.stderr, /^streamllm: pretraining --models: .*nope: no such file or directory$/m);
});

t.test('reproduce: bad --window and --sinks are one line and exit 2', async (t) => {
  const common = ['--model', model, '--tokenizer', tokenizer, '--text', text, '--limit', '100', '--out', join(dir, 'bad')];
  for (const [args, message] of [
    [['curves', '--window', '1'], /^streamllm: reproduce --window: must be >= 2, got 1$/m],
    [['curves', '--sinks', '-1'], /^streamllm: reproduce --sinks: must be >= 0, got -1$/m],
    [
      ['curves', '--window', '16', '--sinks', '16'],
      /^streamllm: reproduce --sinks: 16 initial tokens leave no room for recent ones in a cache of --window 16; expected S < W$/m,
    ],
    [
      ['cache-size', '--sinks', '64'],
      /^streamllm: reproduce --sinks: 64 initial tokens leave no room for recent ones in a cache of the trained length 64 \(the default --window\); expected S < W$/m,
    ],
    [['curves', '--models', 'a,b'], /^streamllm: reproduce curves --models: only pretraining compares several models$/m],
    [
      ['initial-tokens', '--sinks', '2'],
      /^streamllm: reproduce initial-tokens --sinks: does not apply \(it sets the initial tokens of curves, cache-size, latency; initial-tokens varies or fixes them by design\)$/m,
    ],
  ] as const) {
    const r = await runCliInProcess(['reproduce', ...args, ...common]);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, message);
    t.equal(r.stderr.split('\n').filter((l) => l.startsWith('streamllm:')).length, 1, 'one error line');
  }
});
