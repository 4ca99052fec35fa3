// The training loop. One step:
//
//   batch  = B windows of the training stream at seeded random offsets
//   loss   = mean next-token NLL, forward + backward on the tape (wasm: fused kernels)
//   grads  -> host, clipped to a global norm
//   AdamW  at the scheduled learning rate (warm-up, then cosine)
//
// plus a validation loss every `evalEvery` steps and a resumable checkpoint
// every `checkpointEvery` (see state.ts for the directory layout).
import * as tf from '@tensorflow/tfjs';
import { copyFileSync, appendFileSync, mkdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { saveHfModel } from '../model/to_hf.js';
import type { Model } from '../model/weights.js';
import { BpeTokenizer, saveBpe } from '../tokenizer/bpe.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { AdamW } from './adamw.js';
import type { Backcopy } from '../data/backcopy.js';
import { checkSamplesFit, checkTrainingFits } from './budget.js';
import { BatchSampler, type Sample } from './batches.js';
import { backcopyOf, dataKind, loadTrainData, type TrainData, trainSources, validationSamples } from './data.js';
import { clipScale, globalNorm } from './clip.js';
import { initTrainableModel } from './init.js';
import { batchLoss } from './loss.js';
import type { TrainOptions } from './options.js';
import type { TrainableModel } from './params.js';
import { learningRate } from './schedule.js';
import { checkRunFiles, LOG_FILE, loadOptimizer, readTrainState, saveOptimizer, type TrainState, STATE_VERSION, writeTrainState } from './state.js';
import { validationLoss } from './validate.js';
import { variantConfig } from './variants.js';
import { UsageError } from '../errors.js';
import { StagedDir } from '../outputs.js';
import { MODEL_FILES } from './manifest.js';

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  seconds: number;
}

/** Where snapshots go: DIR/steps/<step>/. */
export const SNAPSHOT_DIR = 'steps';

/** Steps timed to plan a time-budgeted run (the first two are left out: compilation, first allocations). */
const CALIBRATION_STEPS = 10;

export { loadTrainData, type TrainData };

/** The run's Backcopy generator, built once (a bigram count over the training text), when its data needs one. */
function runBackcopy(data: TrainData, options: TrainOptions): Backcopy | undefined {
  return dataKind(options) === 'brown' ? undefined : backcopyOf(data, options);
}

export class Trainer {
  private readonly vars: tf.Variable[];
  private readonly valSamples: Sample[];
  private calibrationStart = 0;

  private constructor(
    readonly dir: string,
    readonly state: TrainState,
    readonly model: TrainableModel,
    readonly optimizer: AdamW,
    readonly sampler: BatchSampler,
    readonly data: TrainData,
    private readonly backcopy: Backcopy | undefined,
  ) {
    this.vars = model.params.map((p) => p.variable);
    this.valSamples = validationSamples(data, state.options, model.config.sinkToken, state.options.evalWindows, backcopy);
  }

  /** A fresh run into `dir` (created; must not hold a run already). */
  static start(options: TrainOptions, dir: string, given?: TrainData): Trainer {
    if (existsSync(join(dir, 'train_state.json'))) {
      throw new UsageError(`train --out ${dir}: a training run is already there (resume it with --resume ${dir}, or choose another --out)`);
    }
    const tokenizer = given?.tokenizer ?? loadTokenizer(options.tokenizer);
    const config = variantConfig(options.variant, options.shape, tokenizer.vocabSize, options.seqLen);
    checkTrainingFits(options, config); // before the corpus is encoded
    const data = given ?? loadTrainData(options.tokenizer, tokenizer);
    checkSamplesFit(options, data.train.length, data.heldout.length);
    const model = initTrainableModel(config, options.seed);
    const state: TrainState = {
      version: STATE_VERSION,
      options,
      step: 0,
      totalSteps: options.steps ?? 0,
      samplerState: {} as TrainState['samplerState'],
      tokensSeen: 0,
      wallSeconds: 0,
      parameterCount: model.parameterCount,
    };
    const backcopy = runBackcopy(data, options);
    const sampler = new BatchSampler(trainSources(data, options, config.sinkToken, backcopy), options.batchSize, options.seed);
    mkdirSync(dir, { recursive: true });
    // The run directory carries its tokenizer, so it is a complete model directory.
    const tokenizerFile = join(dir, 'tokenizer.json');
    if (data.tokenizer instanceof BpeTokenizer) saveBpe(data.tokenizer, tokenizerFile);
    else if (resolve(options.tokenizer) !== resolve(tokenizerFile)) copyFileSync(options.tokenizer, tokenizerFile);
    return new Trainer(dir, state, model, new AdamW(model.params, Trainer.adamOptions(options)), sampler, data, backcopy);
  }

  /** Continue the run in `dir` from its last checkpoint. */
  static resume(dir: string, data?: TrainData): Trainer {
    const state = readTrainState(dir);
    checkRunFiles(dir);
    const { options } = state;
    const d = data ?? loadTrainData(join(dir, 'tokenizer.json'));
    const config = variantConfig(options.variant, options.shape, d.tokenizer.vocabSize, options.seqLen);
    const model = initTrainableModel(config, options.seed);
    const optimizer = new AdamW(model.params, Trainer.adamOptions(options));
    loadOptimizer(dir, optimizer, state.step);
    model.params.forEach((p, i) => tf.tidy(() => p.variable.assign(tf.tensor(optimizer.state[i]!.value, p.variable.shape))));
    const backcopy = runBackcopy(d, options);
    const sampler = new BatchSampler(trainSources(d, options, config.sinkToken, backcopy), options.batchSize, options.seed, state.samplerState);
    return new Trainer(dir, state, model, optimizer, sampler, d, backcopy);
  }

  private static adamOptions(o: TrainOptions) {
    return { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay };
  }

  get options(): TrainOptions {
    return this.state.options;
  }

  /** Text tokens one step reads (a sink-token sample spends one position on the sink). */
  get tokensPerStep(): number {
    return this.options.batchSize * (this.model.config.sinkToken ? this.options.seqLen - 1 : this.options.seqLen);
  }

  /** True once every planned step is done. */
  get finished(): boolean {
    return this.state.totalSteps > 0 && this.state.step >= this.state.totalSteps;
  }

  /** One update. */
  step(): StepResult {
    const started = performance.now();
    const batch = this.sampler.next();
    const { value, grads } = tf.variableGrads(() => batchLoss(this.model.model(), batch), this.vars);
    const loss = value.dataSync()[0]!;
    const gradArrays = this.vars.map((v) => (grads[v.name]?.dataSync() as Float32Array | undefined) ?? new Float32Array(v.size)); // unused weights (an attention-only layer's MLP) get no gradient
    tf.dispose([value, ...Object.values(grads)]);
    const gradNorm = globalNorm(gradArrays);
    const step = this.state.step + 1;
    const lr = learningRate(this.schedule(), step);
    this.optimizer.update(gradArrays, lr, clipScale(gradNorm, this.options.clip));
    const seconds = (performance.now() - started) / 1000;
    const s = this.state;
    s.step = step;
    s.tokensSeen += this.tokensPerStep;
    s.wallSeconds += seconds;
    s.trainLoss = loss;
    this.planSteps();
    const result = { step, loss, gradNorm, lr, seconds };
    appendFileSync(join(this.dir, LOG_FILE), JSON.stringify({ ...result, tokens: s.tokensSeen }) + '\n');
    return result;
  }

  private schedule() {
    const o = this.options;
    return { peakLr: o.peakLr, minLr: o.minLr, warmupSteps: o.warmupSteps, totalSteps: this.state.totalSteps };
  }

  /**
   * Time-budgeted runs: after CALIBRATION_STEPS steps (all within the
   * warm-up, whose rates do not depend on the total), fix the total from
   * the measured step time, leaving room for validation and checkpoints.
   */
  private planSteps(): void {
    const { minutes, warmupSteps, evalEvery, evalWindows, batchSize, seqLen } = this.options;
    const s = this.state;
    if (minutes === undefined || s.totalSteps > 0) return;
    if (s.step === 2) this.calibrationStart = s.wallSeconds;
    const calibrate = Math.min(CALIBRATION_STEPS, warmupSteps);
    if (s.step < calibrate) return;
    const perStep = s.step > 2 ? (s.wallSeconds - this.calibrationStart) / (s.step - 2) : s.wallSeconds / s.step;
    // Validation costs about a third of a step per step's worth of windows (forward only).
    const evalCost = (windows: number) => ((windows * seqLen) / (batchSize * seqLen) / 3) * perStep;
    const finalEval = evalCost(this.finalValidationSamples().length);
    const perStepWithEvals = perStep + (evalEvery > 0 ? evalCost(evalWindows) / evalEvery : 0);
    const remaining = minutes * 60 - s.wallSeconds - finalEval;
    s.totalSteps = Math.max(s.step + 1, s.step + Math.floor(remaining / perStepWithEvals));
  }

  /** Validation loss on the periodic windows, or the final one (by default the whole held-out stream). */
  validate(full = false): number {
    const samples = full ? this.finalValidationSamples() : this.valSamples;
    const started = performance.now();
    const model = this.engineModel();
    try {
      return validationLoss(model, samples);
    } finally {
      model.weights.classifier?.dispose();
      this.state.wallSeconds += (performance.now() - started) / 1000;
    }
  }

  private finalValidationSamples(): Sample[] {
    return validationSamples(this.data, this.options, this.model.config.sinkToken, this.options.finalEvalWindows, this.backcopy);
  }

  /** Record a validation loss in the state and the log. */
  recordValidation(loss: number, full: boolean): void {
    this.state.valLoss = loss;
    appendFileSync(join(this.dir, LOG_FILE), JSON.stringify({ step: this.state.step, val: loss, full }) + '\n');
  }

  /** The engine's model on the current weights (the tied classifier made once; dispose it after use). */
  private engineModel(): Model {
    return { config: this.model.config, weights: { ...this.model.weights, classifier: tf.transpose(this.model.weights.embedding) } };
  }

  /** Save the model, the optimizer and the state: a point to resume from. */
  checkpoint(): void {
    const started = performance.now();
    const model = this.engineModel();
    try {
      const eos = this.data.tokenizer.eosId;
      saveHfModel(this.dir, model, eos === undefined ? {} : { bos_token_id: eos, eos_token_id: eos });
    } finally {
      model.weights.classifier?.dispose();
    }
    if (this.options.snapshots === true) this.snapshot();
    saveOptimizer(this.dir, this.optimizer);
    this.state.samplerState = this.sampler.state();
    this.state.wallSeconds += (performance.now() - started) / 1000;
    writeTrainState(this.dir, this.state);
  }

  /** The model as it is now, kept in steps/<step>/ as a model directory of its own (staged, then swapped in whole). */
  private snapshot(): void {
    const staged = new StagedDir(join(this.dir, SNAPSHOT_DIR, String(this.state.step)));
    try {
      for (const file of MODEL_FILES) copyFileSync(join(this.dir, file), join(staged.path, file));
      staged.commit();
    } catch (e) {
      staged.discard();
      throw e;
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}
