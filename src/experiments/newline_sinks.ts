// The paper's Table 1: is a sink the first tokens' meaning or their place?
// The text's first four tokens are replaced by newline tokens (the
// tokenizer's encoding of "\n", repeated) and streamed with 4+(W-4); if
// perplexity stays close to the original's, position makes the sink.
//
// Perplexity is taken over the tokens after the first four in every row, so
// that all rows predict the same targets.
import { type CachePolicy, policyLabel } from '../cache/index.js';
import { UsageError } from '../errors.js';
import { pplAt, scoreWithProgress } from './score.js';
import { sourceLabel } from './text_source.js';
import { cacheWindow, type Experiment, type ExperimentContext, tokenBudget } from './types.js';
import { EXPERIMENT_TITLES } from './names.js';

const REPLACED = 4;

export interface NewlineSinksResult {
  experiment: 'newline-sinks';
  model: string;
  text: string;
  tokens: number;
  cacheSize: number;
  /** The ids that replaced the first four tokens. */
  newlineIds: number[];
  /** The first four tokens they replaced. */
  originalIds: number[];
  rows: { label: string; initial: 'original' | 'newlines'; policy: CachePolicy; ppl: number }[];
}

export const newlineSinks: Experiment = {
  name: 'newline-sinks',
  title: EXPERIMENT_TITLES['newline-sinks'],
  run: runNewlineSinks,
};

export async function runNewlineSinks(ctx: ExperimentContext): Promise<NewlineSinksResult> {
  const W = cacheWindow(ctx);
  if (W <= REPLACED)
    throw new UsageError(
      `newline-sinks: the cache of ${W} entries has no room for recent tokens beside the ${REPLACED} initial ones (give --window > ${REPLACED})`,
    );
  if (ctx.tokenizer === undefined) throw new UsageError('newline-sinks: needs the model\'s tokenizer to encode "\\n"; give --tokenizer FILE');
  const newline = ctx.tokenizer.encode('\n');
  if (newline.length === 0) throw new UsageError('newline-sinks: the tokenizer encodes "\\n" to no tokens');
  const N = tokenBudget(ctx);
  if (N < REPLACED + 2) throw new UsageError(`newline-sinks: needs at least ${REPLACED + 2} tokens, got ${N}`);
  const original = ctx.ids.slice(0, N);
  const replaced = [...original];
  for (let i = 0; i < REPLACED; i++) replaced[i] = newline[i % newline.length]!;
  // nll[i] predicts token i + 1: targets after the first four are i >= 3
  const after = Array.from({ length: N - REPLACED }, (_, j) => j + REPLACED - 1);

  const window: CachePolicy = { kind: 'window', windowSize: W };
  const streaming: CachePolicy = { kind: 'streaming', sinkCount: REPLACED, windowSize: W - REPLACED };
  const runs: [string, 'original' | 'newlines', CachePolicy, number[]][] = [
    [`0+${W} (window)`, 'original', window, original],
    [`4+${W - 4}`, 'original', streaming, original],
    [`4 "\\n" + ${W - 4}`, 'newlines', streaming, replaced],
  ];
  const rows: NewlineSinksResult['rows'] = [];
  for (const [label, initial, policy, ids] of runs) {
    const r = await scoreWithProgress(ctx, ids, policy, `${policyLabel(policy)} ${initial}`);
    rows.push({ label, initial, policy, ppl: pplAt(r.nll, after) });
  }
  ctx.report.heading(newlineSinks.title);
  ctx.report.text(
    `Perplexity over tokens 5..${N} of ${sourceLabel(ctx.source)} (cache ${W} = the trained length). In the last row the first four ` +
      `tokens (ids ${original.slice(0, REPLACED).join(', ')}) are replaced by the tokenizer's "\\n" (ids ${replaced.slice(0, REPLACED).join(', ')}).`,
  );
  ctx.report.table(
    'newline-sinks',
    ['cache', 'initial tokens', 'PPL'],
    rows.map((r) => [r.label, r.initial, r.ppl]),
  );
  const [win, orig, nl] = rows.map((r) => r.ppl) as [number, number, number];
  ctx.report.text(`Newline sinks give ${nl.toFixed(2)} against ${orig.toFixed(2)} with the original tokens and ${win.toFixed(2)} without any initial tokens.`);
  const result: NewlineSinksResult = {
    experiment: 'newline-sinks',
    model: ctx.modelLabel,
    text: sourceLabel(ctx.source),
    tokens: N,
    cacheSize: W,
    newlineIds: replaced.slice(0, REPLACED),
    originalIds: original.slice(0, REPLACED),
    rows,
  };
  ctx.report.json('newline-sinks', result);
  return result;
}
