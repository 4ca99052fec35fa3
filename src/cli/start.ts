// streamllm start (npm start): the main job on the shipped default model.
// Streams the text through dense, window, streaming and recompute caches
// (the `curves` experiment), prints the perplexity table and names the plot
// of per-token log-perplexity it wrote.
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';

export const startCommand = defineCommand({
  name: 'start',
  summary: 'the main job (npm start): stream a text through every cache policy, print perplexities, plot the curves',
  usage: '[--model PATH] [--text FILE | --tokens IDS.json] [--out DIR] [--limit N] [--recompute-samples N]',
  details: [
    "Runs `streamllm reproduce curves` with the zoo's default model (weights/manifest.json) unless --model is given.",
    'Window attention collapses once the first tokens leave its cache; StreamingLLM (4 sinks + a window) tracks',
    'the recompute baseline. (H2O and TOVA, a token per forward pass once full, are in `reproduce curves`.)',
  ].join('\n'),
  flags: [
    ...modelInputFlags,
    { name: 'out', type: 'string', value: 'DIR', default: 'out/start', help: 'output folder' },
    sizeFlags.limit,
    sizeFlags.recomputeSamples,
    forceFlag,
    backendFlag,
  ],
  async run(flags) {
    const backend = await startBackend(flags);
    const started = performance.now();
    const { aboutRun, contextFromFlags } = await import('./experiment_context.js');
    const { runCurves } = await import('../experiments/curves.js');
    const ctx = contextFromFlags(flags, 'start', flags.out);
    const c = ctx.model.config;
    process.stderr.write(`model: ${ctx.modelLabel} (trained length ${c.maxSeqLen}); text: ${ctx.ids.length} tokens\n`);
    let result: Awaited<ReturnType<typeof runCurves>>;
    let report: string;
    try {
      result = await runCurves(ctx, { scoreBased: false }); // H2O and TOVA: `reproduce curves` (minutes, not seconds)
      const seconds = (performance.now() - started) / 1000;
      report = ctx.report.finish('streamllm start: dense, window, streaming and recompute', aboutRun(ctx, 'start', backend, seconds, []));
    } finally {
      ctx.report.discard();
    }
    await writeOut(
      `Perplexity of ${ctx.modelLabel} over ${result.tokens} tokens, every cache ${result.windowSize} entries:\n` +
        result.table +
        `per-token log-perplexity plot: ${ctx.report.dir}/curves.png (and .svg); report: ${report}\n`,
    );
  },
});
