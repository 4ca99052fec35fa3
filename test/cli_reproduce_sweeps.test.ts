// `streamllm reproduce initial-tokens | cache-size | latency` end to end on
// the conformance checkpoint (trained length 64): perplexities against
// scoreTokens on the same tokens, latency rows, figures.
import t from 'tap';
import { scoreTokens } from '../src/eval/perplexity.js';
import { loadModel } from '../src/model/load.js';
import { initTestBackend } from './helpers.js';
import { checkFigures, close, type FigureFile, model, reproduce, setUp, textIds } from './reproduce_helpers.js';

await initTestBackend();
const { dir, text, common } = setUp();
const ids = textIds(text);
const m = loadModel(model);
const streamingPpl = async (sinkCount: number, windowSize: number) => (await scoreTokens(m, ids, { kind: 'streaming', sinkCount, windowSize })).ppl;

t.test('initial-tokens: S + (64 - S) for S = 0, 1, 2, 4, 8', async (t) => {
  const { out, json } = await reproduce(dir, common, 'initial-tokens');
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
  const { out, json } = await reproduce(dir, common, 'cache-size');
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
  const { out, json } = await reproduce(dir, common, 'latency');
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
