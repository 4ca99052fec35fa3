// streamllm reproduce: the paper's experiments on one model and text, each
// writing its tables (Markdown + JSON) and figures (SVG + PNG) and a
// report.md that embeds them.
import { StreamllmError, UsageError } from '../errors.js';
import { EXPERIMENT_NAMES, EXPERIMENT_TITLES, type ExperimentName, SINKS_EXPERIMENTS } from '../experiments/names.js';
import type { Experiment, ExperimentContext } from '../experiments/types.js';
import type { Placement } from '../model/pooled.js';
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';
import { placementFlags } from './placement_flags.js';

const CHOICES = [...EXPERIMENT_NAMES, 'all'];

export const reproduceCommand = defineCommand({
  name: 'reproduce',
  summary: "the paper's experiments: tables, figures and a report",
  usage: 'EXPERIMENT [--model PATH] [--text FILE | --tokens IDS.json] [--out DIR] [--limit N] [--recompute-samples N] [--window W] [--sinks S]',
  details: [
    'Experiments:',
    ...EXPERIMENT_NAMES.map((name) => `  ${name.padEnd(16)}${EXPERIMENT_TITLES[name]}`),
    `  ${'all'.padEnd(16)}every one of them, one report`,
    '',
    "The model: --model, else the zoo manifest's demo model (trained to form an attention sink) when it names one, else",
    'its default model.',
    '',
    "Caches hold W entries: the trained length, or --window W (a researcher's cache; W past the trained length is",
    'allowed and says how the model extrapolates). --sinks S sets the initial tokens streaming keeps in curves,',
    'cache-size and latency (default 4); initial-tokens, newline-sinks and pretraining vary or fix it by design.',
    'attention also measures the sink on windows of W positions (see streamllm attn --help). Recompute costs a W-token forward pass per scored token, so it is scored',
    'on the first window and then at about --recompute-samples evenly spaced positions; tables compare the other',
    'policies on the same positions. pretraining runs every model of the zoo manifest (--manifest), or the model',
    'directories of --models DIR,DIR,... (published models, training runs, snapshots), on the text, and prints them beside',
    "the paper's Table 3 with a verdict each.",
    'A model trained with BOS first in every sample (its manifest entry or train_state.json says; --bos-first and',
    '--bos-first=false override) reads the text with BOS first, and curves, initial-tokens and pretraining add',
    'recompute with that BOS kept at the front of every window (BOS + the last W-1 tokens) beside plain recompute.',
    '',
    "Where the weight products run: eval's flags and default (the worker pool on wasm and cpu, every core; on wasm",
    'the same numbers as --products tfjs, bit for bit). latency runs on the tfjs path whatever they say: it measures',
    "tfjs's peak tensor memory, which the pool's memory is not (reproduce all loads the model again for it).",
  ].join('\n'),
  positional: { name: 'experiment', choices: CHOICES },
  flags: [
    ...modelInputFlags,
    { name: 'out', type: 'string', value: 'DIR', help: 'output folder (default out/EXPERIMENT)' },
    sizeFlags.limit,
    sizeFlags.recomputeSamples,
    sizeFlags.samples,
    sizeFlags.length,
    sizeFlags.seed,
    sizeFlags.perHead,
    sizeFlags.window,
    sizeFlags.sinks,
    sizeFlags.sinkWindows,
    sizeFlags.bosFirst,
    { name: 'models', type: 'strings', value: 'DIR,DIR', help: "pretraining: compare these model directories instead of the manifest's models" },
    ...placementFlags,
    forceFlag,
    backendFlag,
  ],
  async run(flags) {
    const name = flags.experiment;
    if (name === undefined) throw new UsageError(`reproduce: name an EXPERIMENT (one of ${CHOICES.join(', ')}; see streamllm reproduce --help)`);
    if (flags.models !== undefined && name !== 'all' && name !== 'pretraining')
      throw new UsageError(`reproduce ${name} --models: only pretraining compares several models`);
    if (flags.sinks !== undefined && name !== 'all' && !SINKS_EXPERIMENTS.includes(name as ExperimentName)) {
      throw new UsageError(
        `reproduce ${name} --sinks: does not apply (it sets the initial tokens of ${SINKS_EXPERIMENTS.join(', ')}; ${name} varies or fixes them by design)`,
      );
    }
    const out = flags.out ?? `out/${name}`;
    const backend = await startBackend(flags);
    const { aboutRun, contextFromFlags } = await import('./experiment_context.js');
    const { EXPERIMENTS } = await import('../experiments/index.js');
    const { placementOfFlags, reportProducts } = await import('./placement.js');
    // eval's and generate's placement: the pool on wasm and cpu unless --products tfjs (on wasm the same bits as the tfjs path)
    const chosen = name === 'all' ? EXPERIMENTS : EXPERIMENTS.filter((e) => e.name === name);
    const asked = placementOfFlags(flags, 'reproduce'); // (even where unused: a bad combination is refused alike)
    const placement = chosen.every((e) => TFJS_PATH_ONLY.includes(e.name)) ? undefined : asked;
    const { disposeModel } = await import('../model/weights.js');
    const { loadModelPlaced } = await import('../model/load.js');
    const ctx = await contextFromFlags(flags, 'reproduce', out, { zoo: 'demo', placement }); // without --model: the demo model when the zoo names one
    const started = performance.now();
    const timings: string[] = [];
    reportProducts(ctx.model);
    let file: string;
    const printed: string[] = [];
    // the context's model again, from its file, where `where` says (the text, tokenizer and settings stay)
    const reload = async (where: Placement | undefined) => {
      await disposeModel(ctx.model);
      ctx.model = loadModelPlaced(ctx.modelPath, where, `reproduce: ${ctx.modelPath} with --weights ${where?.weights ?? 'f32'}`);
    };
    try {
      for (const experiment of chosen) {
        const t0 = performance.now();
        // one of TFJS_PATH_ONLY in `all`: the model on the tfjs path in place of the pooled one (disposed first, so that
        // tf.profile counts one model's tensors, as in `reproduce latency`), then pooled again for what follows
        const swap = ctx.model.pool !== undefined && TFJS_PATH_ONLY.includes(experiment.name);
        if (swap) {
          ctx.log(`${experiment.name}: on the tfjs path (it measures tfjs's tensor memory, which the worker pool's is not)`);
          await reload(undefined);
        }
        let ran: unknown;
        try {
          ran = await runOne(experiment, ctx, name === 'all');
        } finally {
          if (swap) await reload(placement);
        }
        if (ran !== false && name !== 'all' && typeof (ran as { summary?: unknown }).summary === 'string') printed.push((ran as { summary: string }).summary);
        const seconds = (performance.now() - t0) / 1000;
        timings.push(`${experiment.name}: ${ran ? `${seconds.toFixed(0)} s` : 'skipped'}`);
        ctx.log(`${experiment.name}: ${ran ? `done in ${seconds.toFixed(1)} s` : 'skipped'}`);
      }
      const total = (performance.now() - started) / 1000;
      file = ctx.report.finish(
        name === 'all' ? "StreamingLLM: the paper's experiments" : chosen[0]!.title,
        aboutRun(ctx, 'reproduce', backend, total, timings),
      );
    } finally {
      ctx.report.discard(); // a no-op once finished; else the earlier report stays as it was
      await disposeModel(ctx.model); // in-process callers (tests) keep no tensors
    }
    await writeOut(`${printed.join('')}wrote ${file}\n`);
  },
});

/**
 * Experiments that run on the tfjs path whatever --products says: latency's memory is tf.profile's peak tensor
 * memory, and a pooled model's matrices and the products' operands lie outside tfjs (a decode step run as one pool
 * program makes no tensor at all: a peak of -Infinity, which refused its figure). Its timings are then the tfjs path's.
 */
const TFJS_PATH_ONLY: readonly ExperimentName[] = ['latency'];

/** Run one experiment and return its result; inside `all`, one that cannot run here is noted in the report and skipped (false). */
async function runOne(experiment: Experiment, ctx: ExperimentContext, inAll: boolean): Promise<unknown> {
  try {
    return (await experiment.run(ctx)) ?? true;
  } catch (e) {
    if (!inAll || !(e instanceof StreamllmError)) throw e;
    ctx.log(`${experiment.name}: skipped: ${e.message}`);
    ctx.report.heading(experiment.title);
    ctx.report.text(`Skipped in this run: ${e.message}`);
    return false;
  }
}
