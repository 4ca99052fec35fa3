// streamllm sink-emergence: the sink measurement on every snapshot of a
// training run, as a table, a JSON and two plots against the step.
import { UsageError } from '../errors.js';
import { defineCommand } from './args.js';
import { backendFlag, startBackend, writeOut } from './common.js';
import { sizeFlags } from './experiment_flags.js';

export const sinkEmergenceCommand = defineCommand({
  name: 'sink-emergence',
  summary: 'the sink measurement on every snapshot of a training run, plotted against the step',
  usage: '--run DIR | --models DIR,DIR,... [--text FILE | --tokens IDS.json] [--window W] [--sink-windows N] [--bos-first] [--seed S] [--out DIR]',
  details: [
    'The text: --text, --tokens or --backcopy; by default the held-out Backcopy stream for a run trained on Backcopy',
    '(train_state.json), else the held-out Brown texts. Windows start with BOS for snapshots whose run put BOS first in',
    'every training sample (Backcopy, mix, train --bos-first); --bos-first or --bos-first=false says so for all of them.',
    'Measures each snapshot that `train --snapshots` kept in DIR/steps/<step>/ (or each model directory of --models,',
    'its step the number ending its name, else its place in the list) as `streamllm attn` does: N windows of W',
    'positions (default 64 of the trained length), each run from scratch like a training sample, the same windows',
    'for every snapshot; per layer the head with most attention on key 0 at t in [W/2, W), its multiple of the',
    "uniform share, its logit gap (key 0's logit minus the mean content logit) at short and long range, and the",
    'heads that pass the rule (>= 0.3 on key 0 and >= 5x uniform). Writes sink-emergence.{md,json},',
    'sink-emergence-key0.{svg,png} and sink-emergence-gap.{svg,png} (one line per layer) and report.md.',
  ].join('\n'),
  flags: [
    { name: 'run', type: 'string', value: 'DIR', help: 'training run directory whose steps/ holds the snapshots' },
    { name: 'models', type: 'strings', value: 'DIR,DIR', help: 'or model directories, in training order' },
    { name: 'text', type: 'string', value: 'FILE', help: 'text file to run on (default: the held-out Brown corpus texts)' },
    { name: 'tokens', type: 'string', value: 'IDS.json', help: 'or a JSON array of token ids' },
    { name: 'backcopy', type: 'bool', help: 'or the held-out Bigram-Backcopy stream (the default for a run trained on Backcopy)' },
    sizeFlags.window,
    sizeFlags.sinkWindows,
    { ...sizeFlags.bosFirst, help: "BOS first in every window (--bos-first=false: in none); default: as each snapshot's run trained (train_state.json)" },
    { ...sizeFlags.seed, help: 'seed of the window offsets' },
    { name: 'out', type: 'string', value: 'DIR', default: 'out/sink-emergence', help: 'output folder' },
    backendFlag,
  ],
  async run(flags) {
    const { run, models } = flags;
    if ((run === undefined) === (models === undefined)) throw new UsageError('sink-emergence: give --run DIR or --models DIR,DIR,... (one of them)');
    const { listedSnapshots, runSnapshots, runSinkEmergence } = await import('../experiments/sink_emergence.js');
    const snapshots = run !== undefined ? runSnapshots(run) : listedSnapshots(models!);
    const { textSource } = await import('./model_inputs.js');
    const { sourceForTrainedData } = await import('../experiments/text_source.js');
    const { trainedOnOfDir } = await import('../zoo/trained_on.js');
    const given = textSource(flags, 'sink-emergence');
    // a run trained on Backcopy (its train_state.json; with --models, the first model's run) is measured on the held-out Backcopy stream unless a text is given
    const trained = trainedOnOfDir(run ?? models![0]!);
    const source = sourceForTrainedData(given, trained?.data);
    await startBackend(flags);
    const { Report } = await import('../experiments/report.js');
    const { createProgress } = await import('./progress.js');
    const started = performance.now();
    const report = new Report(flags.out);
    let result: Awaited<ReturnType<typeof runSinkEmergence>>;
    let file: string;
    try {
      result = await runSinkEmergence(
        snapshots,
        source,
        {
          windows: flags['sink-windows'],
          size: flags.window,
          seed: flags.seed,
          bosFirst: flags['bos-first'], // undefined: as each snapshot's run trained
        },
        report,
        (label, total, unit) => createProgress(label, total, unit),
      );
      const seconds = (performance.now() - started) / 1000;
      file = report.finish('Sink emergence over training', [
        `snapshots: ${run !== undefined ? `${run}/steps/` : models!.join(', ')} (steps ${result.points.map((p) => p.step).join(', ')})`,
        `text: ${result.text}`,
        `command: \`streamllm sink-emergence ${process.argv.slice(3).join(' ')}\``,
        `time: ${seconds.toFixed(0)} s`,
      ]);
    } finally {
      report.discard(); // a no-op once finished; else an earlier report stays as it was
    }
    await writeOut(
      result.table +
        result.points.map((p) => `step ${p.step}: ${p.summary}\n`).join('') +
        `wrote ${report.dir}/sink-emergence.json, ${result.figures.map((f) => `${report.dir}/${f.file}`).join(', ')} and ${file}\n`,
    );
  },
});
