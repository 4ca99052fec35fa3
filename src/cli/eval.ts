// streamllm eval: per-token NLL and perplexity of a text under one or more
// cache policies.
import { CACHE_KINDS, type CachePolicy, policyLabel, policySpan } from '../cache/policies.js';
import { UsageError } from '../errors.js';
import type { ScoreResult } from '../eval/perplexity.js';
import type { Model } from '../model/weights.js';
import { checkOutputFile, writeFileAtomic } from '../outputs.js';
import { checkReadable, encodeTextFile } from '../text_file.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { defineCommand, required } from './args.js';
import { cacheFlag, cacheFlags, policiesFromFlags } from './cache_flags.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { placementFlags } from './placement_flags.js';
import { createProgress } from './progress.js';

export const evalCommand = defineCommand({
  name: 'eval',
  summary: `per-token NLL and perplexity under cache policies (${CACHE_KINDS.join(', ')})`,
  usage:
    '--model PATH (--tokens IDS.json | --text FILE [--tokenizer TOK]) [--cache LIST] [--sinks S] [--window W] [--budget C] [--recent R] [--json | --csv FILE]',
  details: [
    'Defaults: 4 sinks; window = the trained length for window and recompute, the trained length minus the sinks for streaming;',
    'budget = the trained length for h2o and tova, h2o keeping the recent half of it.',
    'Blocked evaluation (the default) scores a block of tokens per forward pass with each query seeing exactly what it would',
    'see token by token; --stepwise feeds one token at a time through the cache, as the reference implementation does.',
    'h2o and tova evict by the attention of the query before, so once their cache is full they run one token per pass.',
  ].join('\n'),
  flags: [
    { name: 'model', type: 'string', value: 'PATH', help: 'llama2.c checkpoint or model directory' },
    { name: 'tokens', type: 'string', value: 'IDS.json', help: 'a JSON array of token ids to score' },
    { name: 'text', type: 'string', value: 'FILE', help: 'a text file to score (encoded with BOS when the tokenizer has one)' },
    { name: 'tokenizer', type: 'string', value: 'TOK', help: 'tokenizer for --text (default: the one in the model directory)' },
    cacheFlag('strings', 'dense', 'comma-separated cache policies'),
    ...cacheFlags,
    { name: 'stepwise', type: 'bool', help: 'feed one token per forward pass instead of blocks' },
    { name: 'block', type: 'int', value: 'N', min: 1, help: 'tokens per forward pass in blocked mode (default 256)' },
    { name: 'limit', type: 'int', value: 'N', min: 2, help: 'score only the first N tokens' },
    { name: 'json', type: 'bool', help: 'print JSON instead of a table' },
    { name: 'csv', type: 'string', value: 'FILE', help: 'also write per-token NLLs, one column per policy' },
    forceFlag,
    ...placementFlags,
    backendFlag,
  ],
  async run(flags) {
    const modelPath = required(flags, 'model', 'eval');
    const { tokens, text } = flags;
    if ((tokens === undefined) === (text === undefined)) throw new UsageError('eval: give exactly one of --tokens IDS.json and --text FILE');
    if (flags.csv !== undefined) checkOutputFile(flags.csv, `eval --csv ${flags.csv}`, flags.force === true);
    if (text !== undefined) checkReadable(text);
    await startBackend(flags);
    const { readTokenIds, resolveTokenizer } = await import('./inputs.js');
    const { checkCacheBudget } = await import('./cache_budget.js');
    const { DEFAULT_BLOCK_SIZE, scoreTokens } = await import('../eval/perplexity.js');
    const { loadPlacedModel } = await import('./placement.js');
    const { disposeModel } = await import('../model/weights.js');
    const model = await loadPlacedModel(modelPath, flags, 'eval');
    const results: ScoreResult[] = [];
    // from here on every exit frees the model, a refused input included (its tensors, the pool's workers)
    try {
      const vocab = model.config.vocabSize;
      let ids = tokens !== undefined ? readTokenIds(tokens, vocab) : encodeText(resolveTokenizer(flags.tokenizer, modelPath, vocab), text!, flags.limit);
      if (flags.limit !== undefined) ids = ids.slice(0, flags.limit);
      if (ids.length < 2) throw new UsageError(`eval: need at least 2 tokens to score, got ${ids.length}`);
      const policies = policiesFromFlags('eval', flags.cache, flags, model.config.maxSeqLen);
      warnAboutLengths(policies, model, ids.length);
      const plan = {
        tokens: ids.length + (model.config.sinkToken ? 1 : 0),
        tokensFlag: flags.limit !== undefined ? '--limit' : flags.tokens !== undefined ? '--tokens' : '--text',
        block: flags.stepwise ? 1 : (flags.block ?? DEFAULT_BLOCK_SIZE),
        blockGiven: flags.block !== undefined && !flags.stepwise,
        windowGiven: flags.window !== undefined || flags.budget !== undefined,
      };
      for (const p of policies) checkCacheBudget(p, model.config, plan);

      for (const policy of policies) {
        const progress = createProgress(policyLabel(policy), ids.length - 1);
        const result = await scoreTokens(model, ids, policy, {
          mode: flags.stepwise ? 'stepwise' : 'blocked',
          blockSize: flags.block,
          onProgress: (done) => progress.update(done),
        });
        progress.finish(`ppl ${result.ppl.toFixed(3)}`);
        results.push(result);
      }
    } finally {
      await disposeModel(model); // its tensors freed, its workers gone: in-process callers (tests) keep none
    }
    if (flags.csv !== undefined) writeCsv(flags.csv, results);
    await writeOut(flags.json ? jsonReport(results) : tableReport(results));
  },
});

function encodeText(tokenizer: Tokenizer | undefined, file: string, limit: number | undefined): number[] {
  if (tokenizer === undefined) throw new UsageError('eval --text: this model has no tokenizer; give --tokenizer FILE');
  return encodeTextFile(file, tokenizer, { bos: tokenizer.addsBosByDefault, limit });
}

/** One-line warnings for settings outside what the model was trained on. */
function warnAboutLengths(policies: CachePolicy[], model: Model, tokens: number): void {
  const trained = model.config.maxSeqLen;
  for (const p of policies) {
    const span = policySpan(p);
    if (p.kind === 'dense' && tokens > trained) {
      process.stderr.write(`warning: dense attention over ${tokens} tokens, beyond the trained length ${trained}: expect it to fail (the paper's baseline)\n`);
    } else if (p.kind !== 'dense' && span > trained) {
      process.stderr.write(`warning: ${policyLabel(p)} spans ${span} entries, beyond the trained length ${trained}: the model never saw such distances\n`);
    }
  }
}

function resultJson(r: ScoreResult): object {
  return { policy: r.policy, mode: r.mode, nll: Array.from(r.nll), ppl: r.ppl, tokens: r.tokens, seconds: r.seconds };
}

function jsonReport(results: ScoreResult[]): string {
  const body = results.length === 1 ? resultJson(results[0]!) : results.map(resultJson);
  return JSON.stringify(body) + '\n';
}

function tableReport(results: ScoreResult[]): string {
  const rows = results.map((r) => [policyLabel(r.policy), r.ppl.toFixed(3), r.meanNll.toFixed(4), String(r.tokens), ((r.tokens - 1) / r.seconds).toFixed(1)]);
  const header = ['policy', 'ppl', 'mean nll', 'tokens', 'tok/s'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), ...rows.map(fmt)].join('\n') + '\n';
}

/** Per-token NLLs, one column per policy; written to a temporary name, then renamed. */
function writeCsv(file: string, results: ScoreResult[]): void {
  const lines = [['position', ...results.map((r) => policyLabel(r.policy))].join(',')];
  const n = results[0]!.nll.length;
  for (let i = 0; i < n; i++) lines.push([String(i + 1), ...results.map((r) => r.nll[i]!.toPrecision(8))].join(','));
  writeFileAtomic(file, lines.join('\n') + '\n');
}
