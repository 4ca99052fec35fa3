// streamllm reproduce: the paper's experiments on one model and text, each
// writing its tables (Markdown + JSON) and figures (SVG + PNG) and a
// report.md that embeds them.
import { StreamllmError, UsageError } from '../errors.js';
import { EXPERIMENT_NAMES, EXPERIMENT_TITLES } from '../experiments/names.js';
import type { Experiment, ExperimentContext } from '../experiments/types.js';
import { defineCommand } from './args.js';
import { backendFlag, forceFlag, startBackend, writeOut } from './common.js';
import { modelInputFlags, sizeFlags } from './experiment_flags.js';

const CHOICES = [...EXPERIMENT_NAMES, 'all'];

export const reproduceCommand = defineCommand({
  name: 'reproduce',
  summary: "the paper's experiments: tables, figures and a report",
  usage: 'EXPERIMENT [--model PATH] [--text FILE | --tokens IDS.json] [--out DIR] [--limit N] [--recompute-samples N]',
  details: [
    'Experiments:',
    ...EXPERIMENT_NAMES.map((name) => `  ${name.padEnd(16)}${EXPERIMENT_TITLES[name]}`),
    `  ${'all'.padEnd(16)}every one of them, one report`,
    '',
    'Caches hold W = the trained length. Recompute costs a W-token forward pass per scored token, so it is scored',
    'on the first window and then at about --recompute-samples evenly spaced positions; tables compare the other',
    'policies on the same positions. pretraining runs every model of the zoo manifest (--manifest) on the text.',
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
    forceFlag,
    backendFlag,
  ],
  async run(flags) {
    const name = flags.experiment;
    if (name === undefined) throw new UsageError(`reproduce: name an EXPERIMENT (one of ${CHOICES.join(', ')}; see streamllm reproduce --help)`);
    const out = flags.out ?? `out/${name}`;
    const backend = await startBackend(flags);
    const { aboutRun, contextFromFlags } = await import('./experiment_context.js');
    const { EXPERIMENTS } = await import('../experiments/index.js');
    const ctx = contextFromFlags(flags, 'reproduce', out);
    const chosen = name === 'all' ? EXPERIMENTS : EXPERIMENTS.filter((e) => e.name === name);
    const started = performance.now();
    const timings: string[] = [];
    let file: string;
    try {
      for (const experiment of chosen) {
        const t0 = performance.now();
        const ran = await runOne(experiment, ctx, name === 'all');
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
    }
    await writeOut(`wrote ${file}\n`);
  },
});

/** Run one experiment; inside `all`, one that cannot run here is noted in the report and skipped. */
async function runOne(experiment: Experiment, ctx: ExperimentContext, inAll: boolean): Promise<boolean> {
  try {
    await experiment.run(ctx);
    return true;
  } catch (e) {
    if (!inAll || !(e instanceof StreamllmError)) throw e;
    ctx.log(`${experiment.name}: skipped: ${e.message}`);
    ctx.report.heading(experiment.title);
    ctx.report.text(`Skipped in this run: ${e.message}`);
    return false;
  }
}
