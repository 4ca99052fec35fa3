// streamllm attn: attention maps averaged over many windows of a text, per
// layer and head, with the sink statistics (the paper's Fig. 2).
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';
import { placementFlags } from './placement_flags.js';

export const attnCommand = defineCommand({
  name: 'attn',
  summary: 'attention maps per layer and head averaged over many windows, and where the sink is',
  usage:
    '[--model PATH] [--text FILE | --tokens IDS.json] [--samples N] [--length L] [--seed S] [--out DIR] [--per-head]\n' +
    '       [--window W] [--sink-windows N] [--bos-first]',
  details: [
    "The model: --model, else the zoo manifest's demo model when it names one, else its default model.",
    'Runs N windows of L tokens, taken at seeded random offsets in the text, each from scratch at positions 0..L-1',
    "(a sink-token model's learned sink first), and averages each layer's attention probabilities. Writes",
    "attention-layers.{svg,png} (all layers, heads averaged, as the paper's Fig. 2), attention-layer-L.{svg,png}",
    '(one panel per head with --per-head), sink-scores.json (per layer and head: the mean attention of queries at',
    'positions 4.. on key 0 and keys 0-3, and the uniform baseline), attention-maps.json and report.md.',
    '',
    'Then the sink measurement, which says yes or no: N windows of W positions (default 64 of the trained length),',
    'each run from scratch like a training sample, give per layer and head the mean attention on key 0 of queries at',
    "t in [W/2, W) against the uniform share (mean of 1/(t+1)), and the logit gap: the sink's logit q·k0/sqrt(d)",
    'minus the mean logit of keys 1..t, at short range (t in [4, 16)) and long range. A head has a sink when its',
    'key-0 attention at long range is at least 0.3 and at least 5x uniform. Printed per layer (its strongest head),',
    'written to sink-scores.json ("measurement", every head) and sink-profile.json (per query position).',
    "A model trained with BOS first in every sample (Backcopy, mix, train --bos-first: its manifest entry or its run's",
    "train_state.json says) gets the tokenizer's BOS first in every window (after a sink-token model's sink);",
    '--bos-first or --bos-first=false says so for any model.',
    "Where the weight products run: eval's flags and default (the worker pool on wasm and cpu, every core; on wasm",
    'the same maps and measurement as --products tfjs, bit for bit).',
  ].join('\n'),
  flags: [
    ...modelInputFlags,
    sizeFlags.samples,
    sizeFlags.length,
    sizeFlags.seed,
    sizeFlags.perHead,
    sizeFlags.window,
    sizeFlags.sinkWindows,
    sizeFlags.bosFirst,
    { name: 'out', type: 'string', value: 'DIR', default: 'out/attn', help: 'output folder' },
    ...placementFlags,
    forceFlag,
    backendFlag,
  ],
  async run(flags) {
    const backend = await startBackend(flags);
    const started = performance.now();
    const { aboutRun, contextFromFlags } = await import('./experiment_context.js');
    const { runAttention } = await import('../experiments/attention.js');
    const { disposeModel } = await import('../model/weights.js');
    const { placementOfFlags, reportProducts } = await import('./placement.js');
    // eval's and generate's placement: the pool on wasm and cpu unless --products tfjs (on wasm the same bits as the tfjs path)
    const placement = placementOfFlags(flags, 'attn');
    const ctx = await contextFromFlags(flags, 'attn', flags.out, { zoo: 'demo', placement }); // without --model: the demo model when the zoo names one
    let result: Awaited<ReturnType<typeof runAttention>>;
    reportProducts(ctx.model);
    let file: string;
    try {
      result = await runAttention(ctx);
      const seconds = (performance.now() - started) / 1000;
      file = ctx.report.finish('Attention maps', aboutRun(ctx, 'attn', backend, seconds, []));
    } finally {
      ctx.report.discard();
      await disposeModel(ctx.model); // in-process callers (tests) keep no tensors
    }
    const { uniform, firstQuery } = result.scores;
    await writeOut(
      `Attention of queries at positions ${firstQuery}+ (mean over ${result.samples} windows of ${result.length} tokens); ` +
        `uniform: key 0 ${uniform.key0.toFixed(3)}, keys 0-3 ${uniform.keys0to3.toFixed(3)}\n` +
        result.table +
        `Sink measurement: ${result.sink.windows} windows of ${result.sink.size} positions; per layer, its strongest head\n` +
        result.sinkTable +
        result.sinkSummary +
        '\n' +
        `wrote ${ctx.report.dir}/sink-scores.json, ${result.figures.length} figures and ${file}\n`,
    );
  },
});
