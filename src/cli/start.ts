// streamllm start (npm start): the main job on the shipped default model.
// Streams the text through dense, window, streaming and recompute caches
// (the `curves` experiment), prints the perplexity table and a sentence on
// what evicting the first tokens costs, and names the plot of per-token
// log-perplexity it wrote. When the zoo manifest names a demo model (one
// trained to form an attention sink: the paper's Fig. 3 collapse is real on
// it), that model comes first and the default (text) model's table beside
// it, each at half the usual tokens and 192 recompute positions instead of
// 512, so that the two take about the time one did: for the W = 256 softmax
// model, recompute was half of start's time and dense a third (measured:
// 488 s and 305 s of 985 s on a loaded machine), and the demo, trained with
// BOS first, runs recompute twice (plain and BOS kept): 3 x 192 windows
// against 512, dense over half the tokens. On wasm the products run in the
// worker pool on every core (the CLI's default placement), with the tfjs
// path's numbers.
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';

/** With two models, each scores this many times its trained length (reproduce curves: 32) ... */
const DEMO_TOKENS_PER_WINDOW = 16;
/** ... and recompute at about this many positions (reproduce curves: 512), unless --limit / --recompute-samples say otherwise. */
const DEMO_RECOMPUTE_SAMPLES = 192;

export const startCommand = defineCommand({
  name: 'start',
  summary: 'the main job (npm start): stream a text through every cache policy, print perplexities, plot the curves',
  usage: '[--model PATH] [--text FILE | --tokens IDS.json] [--out DIR] [--limit N] [--recompute-samples N]',
  details: [
    "Runs `streamllm reproduce curves` with the zoo's default model (weights/manifest.json) unless --model is given.",
    'Window attention collapses once the first tokens leave its cache; StreamingLLM (4 sinks + a window) tracks',
    'the recompute baseline. (H2O and TOVA, a token per forward pass once full, are in `reproduce curves`.)',
    'When the manifest names a "demo" model (one where that collapse is real), start runs it first and the default',
    `model beside it, each on ${DEMO_TOKENS_PER_WINDOW} x its trained length tokens and about ${DEMO_RECOMPUTE_SAMPLES} recompute positions unless`,
    '--limit / --recompute-samples are given. Under each table, one sentence computed from it: window / streaming',
    'perplexity (what evicting the first tokens costs) and how far streaming is from recompute.',
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
    const { zooDemo } = await import('./model_inputs.js');
    const { runCurves } = await import('../experiments/curves.js');
    const { curvesSentence } = await import('../experiments/curves_sentence.js');
    const { disposeModel } = await import('../model/weights.js');
    const { reportProducts } = await import('./placement.js');
    // On wasm, the CLI's default placement (the worker pool, float32, every core): its products give the tfjs path's
    // bits there, so the table is the same numbers, sooner (measured: npm start's whole default run, every NLL of both
    // models, 2047 and 4095 tokens, recompute included, and every perplexity the same to 17 digits; 7.8 s against 10.2 s
    // on a busy machine). On cpu the pool's products sum in another order than tfjs's (the last bits differ), and
    // tensorflow runs its own threads: the tfjs path there.
    const { placementOf } = await import('../model/placement.js');
    const placement = backend === 'wasm' ? placementOf({ products: 'pool' }, backend) : undefined;
    const first = await contextFromFlags(flags, 'start', flags.out, { zoo: 'demo', placement });
    const contexts = [first];
    const blocks: string[] = [];
    let report: string;
    try {
      // the demo model, when there is one, and the default (text) model beside it
      if (zooDemo(flags) !== undefined) {
        const text = await contextFromFlags(flags, 'start', flags.out, { zoo: 'default', report: first.report, placement });
        if (text.modelLabel !== first.modelLabel) contexts.push(text);
        else await disposeModel(text.model);
      }
      const two = contexts.length === 2;
      for (const [i, ctx] of contexts.entries()) {
        const c = ctx.model.config;
        process.stderr.write(`model: ${ctx.modelLabel} (trained length ${c.maxSeqLen}); text: ${ctx.ids.length} tokens\n`);
        reportProducts(ctx.model);
        const run = two
          ? {
              ...ctx,
              settings: {
                ...ctx.settings,
                tokens: ctx.settings.tokens ?? DEMO_TOKENS_PER_WINDOW * (ctx.settings.window ?? c.maxSeqLen),
                recomputeSamples: ctx.settings.recomputeSamples ?? DEMO_RECOMPUTE_SAMPLES,
              },
            }
          : ctx;
        const name = i === 0 ? 'curves' : 'curves-text';
        // H2O and TOVA: `reproduce curves` (minutes, not seconds)
        const result = await runCurves(run, { scoreBased: false, ...(two ? { name } : {}) });
        const sentence = curvesSentence(result); // runCurves wrote it into the report too
        const role = two ? (i === 0 ? 'Demo, a model trained to form an attention sink: p' : 'Beside it, the text model: p') : 'P';
        blocks.push(
          `${role}erplexity of ${ctx.modelLabel} over ${result.tokens} tokens, every cache ${result.windowSize} entries:\n` +
            result.table +
            sentence +
            '\n' +
            `per-token log-perplexity plot: ${ctx.report.dir}/${name}.png (and .svg)\n`,
        );
      }
      const seconds = (performance.now() - started) / 1000;
      const about = aboutRun(first, 'start', backend, seconds, []);
      if (two) {
        const [model, text] = aboutRun(contexts[1]!, 'start', backend, seconds, []);
        about.splice(2, 0, `beside it, ${model!}`, `its ${text!}`);
      }
      const title = two
        ? `streamllm start: dense, window, streaming and recompute on ${contexts.map((c) => c.modelLabel).join(' and ')}`
        : 'streamllm start: dense, window, streaming and recompute';
      report = first.report.finish(title, about);
    } finally {
      first.report.discard();
      for (const ctx of contexts) await disposeModel(ctx.model); // its tensors and the pool's workers: in-process callers (tests) keep none
    }
    await writeOut(blocks.join('\n') + `report: ${report}\n`);
  },
});
