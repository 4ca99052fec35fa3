// The paper's Table 3 and the verdict per model (src/experiments/paper_table3.ts):
// the effects are ratios of the perplexities written out here, and the verdict
// compares their presence (beyond 1%) with the paper's.
import t from 'tap';
import { comparisonRows, compareWithPaper, effectsOf, PAPER_TABLE3, verdictOf } from '../src/experiments/paper_table3.js';

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
