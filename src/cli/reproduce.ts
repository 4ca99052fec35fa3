// streamllm reproduce: the paper's experiments on one model and text, each
// writing its tables (Markdown + JSON) and figures (SVG + PNG) and a
// report.md that embeds them.
import { StreamllmError, UsageError } from '../errors.js';
import { EXPERIMENT_NAMES, EXPERIMENT_TITLES, type ExperimentName, SINKS_EXPERIMENTS } from '../experiments/names.js';
import type { Experiment, ExperimentContext } from '../experiments/types.js';
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';

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
    const { disposeModel } = await import('../model/weights.js');
    const ctx = await contextFromFlags(flags, 'reproduce', out, { zoo: 'demo' }); // without --model: the demo model when the zoo names one
    const chosen = name === 'all' ? EXPERIMENTS : EXPERIMENTS.filter((e) => e.name === name);
    const started = performance.now();
    const timings: string[] = [];
    let file: string;
    const printed: string[] = [];
    try {
      for (const experiment of chosen) {
        const t0 = performance.now();
        const ran = await runOne(experiment, ctx, name === 'all');
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
