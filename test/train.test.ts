// Training: the optimizer, schedule and clipping by hand-computed values;
// seeded batches; a tiny run that learns, for every variant; a checkpoint
// that resumes to exactly the step the uninterrupted run takes next.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { IGNORE_TARGET } from '../kernels/cross_entropy.js';
import { loadModel } from '../src/model/load.js';
import { SINK_TOKEN } from '../src/model/transformer.js';
import { trainBpe } from '../src/tokenizer/bpe_train.js';
import { AdamW } from '../src/train/adamw.js';
import { BatchSampler, sampleAt, samplePrefix, WindowSource } from '../src/train/batches.js';
import { clipScale, globalNorm } from '../src/train/clip.js';
import { type TrainOptions, TRAIN_DEFAULTS } from '../src/train/options.js';
import type { Param } from '../src/train/params.js';
import { learningRate } from '../src/train/schedule.js';
import { type TrainData, Trainer } from '../src/train/trainer.js';
import { validationOffsets } from '../src/train/validate.js';
import { VARIANTS, type Variant } from '../src/train/variants.js';
import { initTestBackend } from './helpers.js';

await initTestBackend();
// customGrad's saved copies trip tfjs's per-op leak check on wasm (see
// kernels/causal_attention.ts); leaks are checked with tf.memory() here.
tf.env().set('IS_TEST', false);

const TEXT = [
  'The Fulton County Grand Jury said Friday an investigation of recent primary election produced no evidence that any irregularities took place.',
  'The jury further said in term-end presentments that the City Executive Committee deserves the praise and thanks of the City of Atlanta.',
];

/** A small BPE and a few hundred tokens of text, so that a run takes seconds. */
function tinyData(): TrainData {
  const tokenizer = trainBpe(TEXT, { vocabSize: 300 });
  const stream = (text: string) => Int32Array.from([...tokenizer.encode(text), tokenizer.eosId!]);
  const train = Int32Array.from([...stream(TEXT[0]!), ...stream(TEXT[1]!), ...stream(TEXT[0]!)]);
  return { tokenizer, train, heldout: stream(TEXT[1]!) };
}

function tinyOptions(variant: Variant, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    ...TRAIN_DEFAULTS,
    variant,
    shape: { dim: 32, layers: 2, heads: 4 },
    seqLen: 16,
    batchSize: 4,
    steps: 40,
    peakLr: 1e-2,
    minLr: 1e-3,
    warmupSteps: 5,
    evalEvery: 0,
    evalWindows: 4,
    checkpointEvery: 0,
    tokenizer: 'unused (data given)',
    ...extra,
  };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'streamllm-train-'));

t.test('AdamW: one update by hand, decay only where marked', async (t) => {
  const params: Param[] = [
    { name: 'w', variable: tf.variable(tf.tensor1d([1, -2])), decay: true },
    { name: 'g', variable: tf.variable(tf.tensor1d([0.5])), decay: false },
  ];
  const opt = new AdamW(params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  opt.update([Float32Array.from([0.2, -0.4]), Float32Array.from([1])], 0.01);
  // Step 1: m/(1-b1) = g and v/(1-b2) = g^2, so the Adam step is lr * sign(g) (up to eps).
  const w = params[0]!.variable.dataSync();
  t.ok(Math.abs(w[0]! - (1 * (1 - 0.01 * 0.1) - 0.01)) < 1e-6, `w[0] = ${w[0]}`);
  t.ok(Math.abs(w[1]! - (-2 * (1 - 0.01 * 0.1) + 0.01)) < 1e-6, `w[1] = ${w[1]}`);
  t.ok(Math.abs(params[1]!.variable.dataSync()[0]! - (0.5 - 0.01)) < 1e-6, 'no decay on a gain');
  // Step 2 with the opposite gradient: m = 0.9*0.2*0.1... computed in float64.
  opt.update([Float32Array.from([-0.2, 0.4]), Float32Array.from([1])], 0.01);
  const m = 0.9 * 0.1 * 0.2 + 0.1 * -0.2;
  const v = 0.99 * 0.01 * 0.04 + 0.01 * 0.04;
  const step = m / (1 - 0.9 ** 2) / (Math.sqrt(v / (1 - 0.99 ** 2)) + 1e-8);
  const w1 = 1 * (1 - 0.001) - 0.01;
  t.ok(Math.abs(params[0]!.variable.dataSync()[0]! - (w1 * (1 - 0.001) - 0.01 * step)) < 1e-6, 'second step');
  tf.dispose(params.map((p) => p.variable));
});

t.test('schedule: linear warm-up, cosine to the minimum', async (t) => {
  const s = { peakLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 };
  t.equal(learningRate(s, 1), 0.1);
  t.equal(learningRate(s, 10), 1);
  t.ok(Math.abs(learningRate(s, 60) - 0.55) < 1e-12, 'halfway down the cosine');
  t.ok(Math.abs(learningRate(s, 110) - 0.1) < 1e-12);
  t.ok(Math.abs(learningRate(s, 500) - 0.1) < 1e-12, 'stays at the minimum');
});

t.test('clipping by global norm', async (t) => {
  const grads = [Float32Array.from([3]), Float32Array.from([4, 0])];
  t.equal(globalNorm(grads), 5);
  t.equal(clipScale(5, 1), 0.2);
  t.equal(clipScale(5, 10), 1);
  t.equal(clipScale(5, 0), 1, '0 disables clipping');
});

t.test('batches: seeded, resumable, windows of the stream, sink token first', async (t) => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
  const a = new BatchSampler(new WindowSource(tokens, 8), 3, 7);
  const first = a.next();
  t.same(
    first.inputs.map((s) => s.slice(1).map((v, i) => v - s[i]!)),
    [Array(7).fill(1), Array(7).fill(1), Array(7).fill(1)],
    'contiguous windows',
  );
  t.same(
    Array.from(first.targets.subarray(0, 8)),
    first.inputs[0]!.map((v) => v + 1),
    'targets are the next tokens',
  );
  t.not(first.inputs[0]![0], first.inputs[1]![0], 'random offsets');
  const saved = a.state();
  const second = a.next();
  const resumed = new BatchSampler(new WindowSource(tokens, 8), 3, 7, saved);
  t.same(resumed.next().inputs, second.inputs, 'resumed sampler draws the same batch');
  t.same(new BatchSampler(new WindowSource(tokens, 8), 3, 7).next().inputs, first.inputs, 'same seed, same batches');
  t.notSame(new BatchSampler(new WindowSource(tokens, 8), 3, 8).next().inputs, first.inputs, 'another seed, other batches');
  const sink = sampleAt(tokens, 100, 8, [SINK_TOKEN]);
  t.same(sink.inputs, [SINK_TOKEN, 100, 101, 102, 103, 104, 105, 106]);
  t.same(sink.targets, [IGNORE_TARGET, 101, 102, 103, 104, 105, 106, 107], "the sink's own prediction is not scored");
  t.equal(new BatchSampler(new WindowSource(tokens, 8, samplePrefix(true)), 2, 0).next().scored, 14);
  const bos = sampleAt(tokens, 100, 8, samplePrefix(true, 999));
  t.same(bos.inputs, [SINK_TOKEN, 999, 100, 101, 102, 103, 104, 105], 'sink, then BOS, then the window');
  t.same(bos.targets, [IGNORE_TARGET, 100, 101, 102, 103, 104, 105, 106], 'BOS predicts the first text token; nothing predicts BOS');
  t.same(validationOffsets(100, 10), [0, 11, 22, 33, 45, 56, 67, 78, 89], 'all windows, spread evenly');
  t.same(validationOffsets(100, 10, 3), [0, 45, 89]);
});

for (const variant of VARIANTS) {
  t.test(`a tiny run learns: ${variant}`, async (t) => {
    const before = tf.memory().numTensors;
    const trainer = Trainer.start(tinyOptions(variant), tmp(), tinyData());
    const val0 = trainer.validate();
    const losses: number[] = [];
    while (!trainer.finished) losses.push(trainer.step().loss);
    const val1 = trainer.validate();
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    t.ok(tail < head - 1.5, `train loss ${head.toFixed(3)} -> ${tail.toFixed(3)}`);
    t.ok(val1 < val0 - 0.5, `validation loss ${val0.toFixed(3)} -> ${val1.toFixed(3)}`);
    t.ok(losses.every(Number.isFinite));
    trainer.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });
}

t.test('checkpoint: resumed training takes exactly the next step; the model loads with --model', async (t) => {
  const data = tinyData();
  const dir = tmp();
  const a = Trainer.start(tinyOptions('learned-sink', { steps: 10 }), dir, data);
  for (let i = 0; i < 4; i++) a.step();
  a.checkpoint();
  const next = [a.step(), a.step()];
  const val = a.validate();
  a.dispose();

  const b = Trainer.resume(dir, data);
  t.equal(b.state.step, 4);
  const again = [b.step(), b.step()];
  t.equal(again[0]!.loss, next[0]!.loss, `step 5 loss ${again[0]!.loss} (bit for bit)`);
  t.equal(again[1]!.loss, next[1]!.loss, 'step 6 too');
  t.equal(again[1]!.lr, next[1]!.lr);
  t.equal(b.validate(), val, 'same weights after the resumed steps');
  b.checkpoint();
  b.dispose();

  // The run directory is a model directory: config.json + model.safetensors.
  const model = loadModel(dir);
  t.equal(model.config.softmax, 'learned-sink');
  t.equal(model.config.rope.layout, 'halves');
  t.equal(model.config.vocabSize, 300);
  t.equal(model.config.maxSeqLen, 16);
  tf.dispose(Object.values(model.weights).flat() as tf.Tensor[]);
});

t.test('a run directory is not overwritten, and a cut-short checkpoint is not resumed', async (t) => {
  const data = tinyData();
  const dir = tmp();
  const a = Trainer.start(tinyOptions('softmax', { steps: 4 }), dir, data);
  a.step();
  a.checkpoint();
  a.step();
  a.checkpoint();
  a.dispose();
  t.throws(() => Trainer.start(tinyOptions('softmax'), dir, data), /a training run is already there/);
  // Fake a crash between the optimizer file and the state file.
  const { readFileSync, writeFileSync } = await import('node:fs');
  const state = JSON.parse(readFileSync(join(dir, 'train_state.json'), 'utf8')) as { step: number };
  state.step = 1;
  writeFileSync(join(dir, 'train_state.json'), JSON.stringify(state));
  t.throws(() => Trainer.resume(dir, data), /holds step 2 but train_state.json says 1/);
});
