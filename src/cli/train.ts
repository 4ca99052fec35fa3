// streamllm train: train one attention-sink variant on the Brown corpus.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { yieldToEventLoop } from '../event_loop.js';
import { checkOutputDir, checkWritableDir } from '../outputs.js';
import { DATA_KINDS, dataKind, DEFAULT_TRIGGERS, type TrainOptions, TRAIN_DEFAULTS } from '../train/options.js';
import { checkRunFiles, STATE_FILE } from '../train/state.js';
import type { Trainer } from '../train/trainer.js';
import { VARIANTS } from '../train/variants.js';
import { defineCommand, defineFlags, type Flags, required } from './args.js';
import { backendFlag, startBackend } from './common.js';
import { createProgress, type Progress } from './progress.js';

/** The zoo's tokenizer and model shape (chosen by the sweep in weights/README.md). */
export const DEFAULT_TOKENIZER = 'weights/tokenizer.json';
export const DEFAULT_SHAPE = { dim: 256, layers: 4, heads: 8 } as const;

const D = TRAIN_DEFAULTS;

const trainFlags = defineFlags([
  { name: 'variant', type: 'string', value: 'V', choices: VARIANTS, help: 'attention-sink variant' },
  { name: 'out', type: 'string', value: 'DIR', help: 'run directory (created)' },
  { name: 'resume', type: 'string', value: 'DIR', help: 'continue the run in DIR from its last checkpoint' },
  { name: 'seed', type: 'int', value: 'S', default: D.seed, min: 0, help: 'seed of the initial weights and the data order' },
  { name: 'steps', type: 'int', value: 'N', min: 1, help: 'updates to run' },
  { name: 'minutes', type: 'number', value: 'M', min: 0.01, help: 'time budget instead of --steps: the step count is fixed after timing the first steps' },
  { name: 'tokenizer', type: 'string', value: 'FILE', default: DEFAULT_TOKENIZER, help: 'tokenizer.json to encode the corpus with' },
  { name: 'data', type: 'string', value: 'KIND', choices: DATA_KINDS, help: 'what samples are made of (default brown)' },
  { name: 'triggers', type: 'int', value: 'N', min: 1, max: 64, help: `backcopy and mix: trigger tokens (default ${DEFAULT_TRIGGERS})` },
  { name: 'bos-first', type: 'bool', help: 'put BOS first in every Brown window (default: on for mix, off for brown; --bos-first=false to turn off)' },
  { name: 'snapshots', type: 'bool', help: 'keep a copy of the model at every checkpoint in DIR/steps/STEP/ (for plots across training)' },
  { name: 'dim', type: 'int', value: 'N', min: 2, help: `model width (default ${DEFAULT_SHAPE.dim})` },
  { name: 'layers', type: 'int', value: 'N', min: 1, help: `transformer layers (default ${DEFAULT_SHAPE.layers})` },
  { name: 'heads', type: 'int', value: 'N', min: 1, help: `attention heads (default ${DEFAULT_SHAPE.heads})` },
  {
    name: 'hidden',
    type: 'int',
    value: 'N',
    min: 0,
    help: 'feed-forward width (default: 8/3 dim rounded up to 64; 0: attention-only layers, no feed-forward)',
  },
  { name: 'seq-len', type: 'int', value: 'N', min: 2, help: `context length of a sample (default ${D.seqLen})` },
  { name: 'batch', type: 'int', value: 'N', min: 1, help: `samples per update (default ${D.batchSize})` },
  { name: 'lr', type: 'number', value: 'X', min: 0, help: `peak learning rate (default ${D.peakLr})` },
  { name: 'min-lr', type: 'number', value: 'X', min: 0, help: `learning rate at the end of the cosine (default ${D.minLr})` },
  { name: 'warmup', type: 'int', value: 'N', min: 0, help: `warm-up steps (default ${D.warmupSteps})` },
  { name: 'weight-decay', type: 'number', value: 'X', min: 0, default: D.weightDecay, help: 'AdamW decoupled weight decay' },
  { name: 'clip', type: 'number', value: 'X', min: 0, default: D.clip, help: 'global gradient-norm limit (0: off)' },
  { name: 'eval-every', type: 'int', value: 'N', min: 0, default: D.evalEvery, help: 'steps between validation losses (0: at the end only)' },
  { name: 'eval-windows', type: 'int', value: 'N', min: 1, default: D.evalWindows, help: 'held-out windows per periodic validation' },
  { name: 'final-eval-windows', type: 'int', value: 'N', min: 1, help: 'held-out windows in the final validation (default: all of them)' },
  { name: 'checkpoint-every', type: 'int', value: 'N', min: 0, default: D.checkpointEvery, help: 'steps between checkpoints (0: at the end only)' },
  backendFlag,
]);
type TrainFlags = Flags<typeof trainFlags>;

export const trainCommand = defineCommand({
  name: 'train',
  summary: 'train a model (one attention-sink variant) on the Brown corpus or Bigram-Backcopy data, resumably',
  usage: '--variant V --out DIR [--seed S] [--steps N | --minutes M] [shape and optimizer flags]\n       streamllm train --resume DIR',
  details: [
    `Variants: ${VARIANTS.join(', ')} (see src/train/variants.ts). Data (--data, see src/train/data.ts):`,
    "  brown     windows of the Brown corpus's training split at seeded random offsets; validation on the held-out split",
    '  backcopy  Bigram-Backcopy samples, BOS first: a bigram chain of the Brown training text in which the token after',
    '            a trigger (one of the --triggers most frequent tokens) copies the token before it; a reason to form a sink',
    '  mix       each sample Backcopy or a Brown window (BOS first), at random; validation on held-out Brown windows',
    'AdamW with decoupled weight decay (not on norms or sink parameters), linear warm-up then cosine decay,',
    'global-norm gradient clipping. DIR receives config.json + model.safetensors (what --model reads),',
    'tokenizer.json, optimizer.safetensors, train_state.json and train_log.jsonl; Ctrl-C saves a checkpoint.',
  ].join('\n'),
  flags: trainFlags,
  async run(flags) {
    const resumeDir = flags.resume;
    const trainerOf = resumeDir !== undefined ? checkResume(flags, resumeDir) : checkStart(flags);
    await startBackend(flags);
    const { Trainer } = await import('../train/trainer.js');
    await trainLoop(trainerOf(Trainer));
  },
});

/** Makes the trainer once the backend runs (the Trainer class comes with tfjs, so it is passed in). */
type TrainerOf = (trainer: typeof Trainer) => Trainer;

/** Flags that only a fresh run takes. */
const START_ONLY: (keyof TrainFlags)[] = [
  'variant',
  'out',
  'steps',
  'minutes',
  'dim',
  'layers',
  'heads',
  'hidden',
  'seq-len',
  'batch',
  'lr',
  'min-lr',
  'warmup',
  'final-eval-windows',
  'data',
  'triggers',
  'bos-first',
  'snapshots',
];

function checkResume(flags: TrainFlags, dir: string): TrainerOf {
  const clash = START_ONLY.find((name) => flags[name] !== undefined);
  if (clash !== undefined) throw new UsageError(`train --resume: --${clash} cannot change a run; it continues with its own settings`);
  if (!existsSync(dir)) throw new UsageError(`train --resume ${dir}: no such directory`);
  checkWritableDir(dir, `train --resume ${dir}`);
  checkRunFiles(dir);
  return (Trainer) => Trainer.resume(dir);
}

function checkStart(flags: TrainFlags): TrainerOf {
  const variant = required(flags, 'variant', 'train');
  const out = required(flags, 'out', 'train');
  if (flags.steps !== undefined && flags.minutes !== undefined) throw new UsageError('train: give --steps or --minutes, not both');
  if (flags.steps === undefined && flags.minutes === undefined) throw new UsageError('train: give --steps N or --minutes M');
  const num = (name: 'dim' | 'heads' | 'layers' | 'seq-len' | 'batch' | 'lr' | 'min-lr' | 'warmup', fallback: number) => flags[name] ?? fallback;
  const dim = num('dim', DEFAULT_SHAPE.dim);
  const heads = num('heads', DEFAULT_SHAPE.heads);
  if (dim % heads !== 0) throw new UsageError(`train --heads: ${heads} must divide --dim ${dim}`);
  if ((dim / heads) % 2 !== 0) throw new UsageError(`train --heads: head size dim/heads = ${dim / heads} must be even (RoPE rotates pairs)`);
  const peakLr = num('lr', D.peakLr);
  const minLr = num('min-lr', D.minLr);
  const warmupSteps = num('warmup', D.warmupSteps);
  if (minLr > peakLr) throw new UsageError(`train --min-lr: ${minLr} exceeds the peak --lr ${peakLr}`);
  if (flags.minutes !== undefined && warmupSteps < 1)
    throw new UsageError('train --minutes: needs --warmup >= 1 (the step count is planned during the warm-up)');
  const { tokenizer } = flags;
  if (!existsSync(tokenizer)) {
    throw new UsageError(`train --tokenizer ${tokenizer}: no such file (make one with: streamllm train-tokenizer --out ${tokenizer})`);
  }
  const data = flags.data ?? 'brown';
  if (data === 'brown' && flags.triggers !== undefined) throw new UsageError('train --triggers: only backcopy and mix data have triggers');
  if (data === 'backcopy' && flags['bos-first'] !== undefined) throw new UsageError('train --bos-first: backcopy samples always start with BOS');
  if (existsSync(join(out, STATE_FILE))) {
    throw new UsageError(`train --out ${out}: a training run is already there (resume it with --resume ${out}, or choose another --out)`);
  }
  checkOutputDir(out, `train --out ${out}`);
  const options: TrainOptions = {
    variant,
    shape: { dim, layers: num('layers', DEFAULT_SHAPE.layers), heads, ...(flags.hidden !== undefined ? { hiddenDim: flags.hidden } : {}) },
    seqLen: num('seq-len', D.seqLen),
    batchSize: num('batch', D.batchSize),
    ...(flags.steps !== undefined ? { steps: flags.steps } : { minutes: flags.minutes! }),
    peakLr,
    minLr,
    warmupSteps,
    weightDecay: flags['weight-decay'],
    beta1: D.beta1,
    beta2: D.beta2,
    clip: flags.clip,
    seed: flags.seed,
    evalEvery: flags['eval-every'],
    evalWindows: flags['eval-windows'],
    ...(flags['final-eval-windows'] !== undefined ? { finalEvalWindows: flags['final-eval-windows'] } : {}),
    checkpointEvery: flags['checkpoint-every'],
    tokenizer,
    data,
    ...(flags.triggers !== undefined ? { triggers: flags.triggers } : {}),
    ...(flags['bos-first'] !== undefined ? { bosFirst: flags['bos-first'] } : {}),
    ...(flags.snapshots === true ? { snapshots: true } : {}),
  };
  return (Trainer) => Trainer.start(options, out);
}

async function trainLoop(trainer: Trainer): Promise<void> {
  const { options, state } = trainer;
  const label = `train ${options.variant}`;
  process.stderr.write(
    `${label}: ${state.parameterCount} parameters, data ${dataKind(options)}, ${trainer.data.train.length} Brown training tokens, ` +
      `${trainer.data.heldout.length} held-out; ${state.step > 0 ? `resuming at step ${state.step}` : 'from scratch'} in ${trainer.dir}\n`,
  );
  if (state.done) {
    process.stderr.write(`${label}: already finished (step ${state.step}, held-out loss ${state.valLoss?.toFixed(4)})\n`);
    trainer.dispose();
    return;
  }
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let progress: Progress | undefined;
  let progressStart = 0; // the step the bar starts counting from
  try {
    while (!trainer.finished && !interrupted) {
      const r = trainer.step();
      const { evalEvery, checkpointEvery } = options;
      if (progress === undefined && state.totalSteps > 0) {
        process.stderr.write(`${label}: ${state.totalSteps} steps planned\n`);
        progressStart = state.step;
        progress = createProgress(label, (state.totalSteps - progressStart) * trainer.tokensPerStep, 'tok');
      }
      if (evalEvery > 0 && r.step % evalEvery === 0 && !trainer.finished) {
        const val = trainer.validate();
        trainer.recordValidation(val, false);
        process.stderr.write(`${label}: step ${r.step} train ${r.loss.toFixed(4)} val ${val.toFixed(4)}\n`);
      }
      const val = state.valLoss === undefined ? '' : ` (val ${state.valLoss.toFixed(3)})`;
      progress?.update(
        (state.step - progressStart) * trainer.tokensPerStep,
        `step ${r.step}/${state.totalSteps || '?'} loss ${r.loss.toFixed(3)} lr ${r.lr.toExponential(2)}${val}`,
      );
      if (checkpointEvery > 0 && r.step % checkpointEvery === 0 && !trainer.finished) trainer.checkpoint();
      await yieldToEventLoop();
    }
    if (interrupted) {
      trainer.checkpoint();
      process.stderr.write(`${label}: interrupted; checkpoint at step ${state.step} (continue with: streamllm train --resume ${trainer.dir})\n`);
      process.exitCode = 130;
      return;
    }
    const val = trainer.validate(true);
    trainer.recordValidation(val, true);
    state.done = true;
    trainer.checkpoint();
    progress?.finish(`loss ${state.trainLoss?.toFixed(4)} val ${val.toFixed(4)}`);
    process.stderr.write(
      `${label}: done, ${state.step} steps, ${state.tokensSeen} tokens, ${(state.wallSeconds / 60).toFixed(1)} min; ` +
        `final train loss ${state.trainLoss?.toFixed(4)}, held-out loss ${val.toFixed(4)} (${trainer.dir})\n`,
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    trainer.dispose();
  }
}
