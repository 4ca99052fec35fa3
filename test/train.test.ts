// Training, as a library and as commands. A section each, in a block of its
// own; both without tfjs's per-op leak check (see the first section).
import * as tf from '@tensorflow/tfjs';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { IGNORE_TARGET } from '../kernels/cross_entropy.js';
import { parseFlags } from '../src/cli/args.js';
import { trainCommand } from '../src/cli/train.js';
import { StreamllmError } from '../src/errors.js';
import { loadModel } from '../src/model/load.js';
import { SINK_TOKEN } from '../src/model/transformer.js';
import { trainBpe } from '../src/tokenizer/bpe_train.js';
import { AdamW } from '../src/train/adamw.js';
import { BatchSampler, sampleAt, samplePrefix, WindowSource } from '../src/train/batches.js';
import { clipScale, globalNorm } from '../src/train/clip.js';
import { type Manifest, sha256 } from '../src/train/manifest.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.js';
import type { Param } from '../src/train/params.js';
import { learningRate } from '../src/train/schedule.js';
import { type TrainData, Trainer } from '../src/train/trainer.js';
import { validationOffsets } from '../src/train/validate.js';
import { type Variant, VARIANTS } from '../src/train/variants.js';
import { readManifest } from '../src/zoo/manifest.js';
import { errorLines, initTestBackend, runCliInProcess } from './helpers.js';
import { tempDir } from './paths.js';

await initTestBackend();

// Training: the optimizer, schedule and clipping by hand-computed values;
// seeded batches; a tiny run that learns, for every variant; a checkpoint
// that resumes to exactly the step the uninterrupted run takes next.
{
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

  const tmp = () => tempDir('streamllm-train-');

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
}

// `streamllm train`, `train-tokenizer` and `publish`, in this process: a
// short run end to end, and every bad input as one line on stderr with exit
// code 2 and nothing written (test/cli_smoke.test.ts runs the executable).
{
  // The commands run as the executable runs them, without tfjs's per-op leak check, which counts
  // customGrad's saved copies as leaks (the first section turned it off).

  const dir = tempDir('streamllm-train-cli-');
  const tokenizer = join(dir, 'tok.json');

  t.test('train-tokenizer writes a BPE of the requested size', async (t) => {
    const r = await runCliInProcess(['train-tokenizer', '--vocab', '300', '--out', tokenizer]);
    t.equal(r.status, 0, r.stderr);
    const json = JSON.parse(readFileSync(tokenizer, 'utf8')) as { model: { vocab: Record<string, number> } };
    t.equal(Object.keys(json.model.vocab).length, 300);
  });

  t.test('a short run writes a resumable model directory', async (t) => {
    const out = join(dir, 'run');
    const args = [
      '--variant',
      'sink-token',
      '--tokenizer',
      tokenizer,
      '--dim',
      '16',
      '--layers',
      '1',
      '--heads',
      '2',
      '--seq-len',
      '16',
      '--batch',
      '2',
      '--warmup',
      '1',
      '--eval-windows',
      '2',
      '--final-eval-windows',
      '4',
    ];
    const r = await runCliInProcess(['train', ...args, '--steps', '3', '--out', out, '--checkpoint-every', '2']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /train sink-token: done, 3 steps, 90 tokens/);
    t.same(readdirSync(out).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'train_log.jsonl', 'train_state.json']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { streamllm: object; vocab_size: number };
    t.same(config.streamllm, { softmax: 'softmax', sink_token: true });
    t.equal(config.vocab_size, 300);
    const state = JSON.parse(readFileSync(join(out, 'train_state.json'), 'utf8')) as { step: number; valLoss: number };
    t.equal(state.step, 3);
    t.ok(state.valLoss > 0);
    const again = await runCliInProcess(['train', '--resume', out]);
    t.equal(again.status, 0, again.stderr);
    t.match(again.stderr, /train sink-token: already finished \(step 3, held-out loss \d\.\d{4}\)/, 'a finished run has nothing more to do');
  });

  /** Run `streamllm train ARGS` in this process up to its first error: the message, or undefined. */
  async function trainError(args: string[]): Promise<string | undefined> {
    try {
      await trainCommand.run(parseFlags(trainCommand, args));
      return undefined;
    } catch (e) {
      if (!(e instanceof StreamllmError)) throw e; // anything else would be a stack trace, not exit 2
      return e.message;
    }
  }

  t.test('bad inputs: exit 2 with one line, nothing written', async (t) => {
    const out = join(dir, 'never');
    // Through main once: the exit code and the one line.
    const r = await runCliInProcess(['train', '--variant', 'softmax2', '--out', out, '--steps', '1']);
    t.equal(r.status, 2);
    t.equal(r.stderr, "streamllm: train --variant: expected one of softmax, softmax1, learned-sink, sink-token, got 'softmax2'\n");
    // The rest straight through the command: each must be a StreamllmError, which main prints as one line, exit 2.
    const base = ['--tokenizer', tokenizer, '--out', out, '--steps', '1'];
    const readOnly = join(dir, 'readonly');
    mkdirSync(readOnly);
    chmodSync(readOnly, 0o500);
    const cases: [string[], RegExp][] = [
      [['--out', out, '--steps', '1'], /--variant is required/],
      [['--variant', 'softmax', '--steps', '1'], /--out is required/],
      [[...base, '--variant', 'softmax', '--lr', 'fast'], /--lr: expected a number, got 'fast'/],
      [[...base, '--variant', 'softmax', '--batch', '0'], /--batch: must be >= 1, got 0/],
      [[...base, '--variant', 'softmax', '--dim', '12.5'], /--dim: expected an integer, got '12.5'/],
      [[...base, '--variant', 'softmax', '--dim', '30', '--heads', '4'], /--heads: 4 must divide --dim 30/],
      [[...base, '--variant', 'softmax', '--seed', '-1'], /--seed: must be >= 0, got -1/],
      [[...base, '--variant', 'softmax', '--minutes', '5'], /give --steps or --minutes, not both/],
      [['--variant', 'softmax', '--out', out, '--tokenizer', tokenizer], /give --steps N or --minutes M/],
      [[...base, '--variant', 'softmax', '--min-lr', '1', '--lr', '0.1'], /--min-lr: 1 exceeds the peak --lr 0.1/],
      [['--variant', 'softmax', '--out', out, '--steps', '1', '--tokenizer', join(dir, 'missing.json')], /--tokenizer .*missing.json: no such file/],
      [
        ['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', join(readOnly, 'run')],
        /--out .*readonly\/run: cannot write in .*readonly \(EACCES\)/,
      ],
      [['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', tokenizer], /--out .*tok.json: is a file, expected a folder/],
      [['--resume', join(dir, 'nothing')], /--resume .*nothing: no such directory/],
      [['--resume', join(dir, 'run'), '--lr', '1'], /--resume: --lr cannot change a run/],
      [['--variant', 'softmax', '--steps', '1', '--stpes', '2'], /unknown flag --stpes/],
    ];
    const root = process.getuid?.() === 0; // root writes anywhere: the read-only case cannot fail there
    for (const [args, message] of cases) {
      if (root && args.some((a) => a.includes('readonly'))) continue;
      const error = await trainError(args);
      t.match(error, message, args.join(' '));
      t.notMatch(error ?? '', /\n/, 'one line');
    }
    t.notOk(existsSync(out), 'no run directory was created');
  });

  t.test('publish copies a finished run into a weights directory and records it', async (t) => {
    const run = join(dir, 'run'); // finished by the test above
    const weights = join(dir, 'weights');
    const r = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--weights', weights]);
    t.equal(r.status, 0, r.stderr);
    t.same(readdirSync(join(weights, 'tiny')).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    const manifest = JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest;
    t.equal(manifest.default, 'tiny', 'the first model published becomes the default');
    t.equal(manifest.models.length, 1);
    const entry = manifest.models[0]!;
    const state = JSON.parse(readFileSync(join(run, 'train_state.json'), 'utf8')) as { valLoss: number; tokensSeen: number };
    t.match(entry, { name: 'tiny', variant: 'sink-token', data: 'brown', bosFirst: false, steps: 3, tokensSeen: state.tokensSeen, dtype: 'F32' });
    t.equal(manifest.demo, undefined, 'no demo model unless --demo');
    t.ok(Math.abs(entry.valLoss - state.valLoss) < 1e-4, `held-out loss of the shipped weights ${entry.valLoss} = the run's ${state.valLoss}`);
    for (const [file, hash] of Object.entries(entry.files)) t.equal(hash, sha256(join(weights, 'tiny', file)), `sha256 of ${file}`);
    t.match(
      entry.command,
      /^streamllm train --variant sink-token --data brown --seed 0 --steps 3 --tokenizer .*tok\.json --dim 16 --layers 1 --heads 2 .* && streamllm publish --run .*run --name tiny$/,
    );
    // Published in F16, under a second name and as the demo: half the bytes, the first model stays the default.
    const half = await runCliInProcess(['publish', '--run', run, '--name', 'tiny-f16', '--dtype', 'F16', '--demo', '--weights', weights]);
    t.equal(half.status, 0, half.stderr);
    const again = JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest;
    t.same(
      again.models.map((m) => m.name),
      ['tiny', 'tiny-f16'],
    );
    t.equal(again.default, 'tiny');
    t.equal(again.demo, 'tiny-f16');
    t.same(readManifest(join(weights, 'manifest.json')).demoName, 'tiny-f16', 'the zoo reader takes the demo');
    t.equal(again.models[1]!.dtype, 'F16');
    t.ok(Math.abs(again.models[1]!.valLoss - state.valLoss) < 0.05, 'F16 weights give nearly the same loss');
    const replaced = await runCliInProcess(['publish', '--run', run, '--name', 'tiny', '--force', '--weights', weights]);
    t.equal(replaced.status, 0, replaced.stderr);
    t.equal((JSON.parse(readFileSync(join(weights, 'manifest.json'), 'utf8')) as Manifest).demo, 'tiny-f16', 'publishing another model keeps the demo');
    t.same(
      readdirSync(weights).filter((f) => f.startsWith('.')),
      [],
      'no temporary directory left behind',
    );
  });

  t.test('publish: bad inputs are one line, exit 2, nothing written', async (t) => {
    const run = join(dir, 'run');
    const weights = join(dir, 'weights-bad');
    const unfinished = join(dir, 'unfinished');
    cpSync(run, unfinished, { recursive: true });
    const statePath = join(unfinished, 'train_state.json');
    writeFileSync(statePath, JSON.stringify({ ...JSON.parse(readFileSync(statePath, 'utf8')), step: 2 }));
    const cases: [string[], RegExp][] = [
      [['publish', '--name', 'x', '--weights', weights], /publish: --run is required/],
      [['publish', '--run', run, '--name', 'no/slash', '--weights', weights], /publish --name: expected letters, digits, - and _, got 'no\/slash'/],
      [['publish', '--run', unfinished, '--name', 'x', '--weights', weights], /the run stopped at step 2 of 3 \(finish it with streamllm train --resume /],
      [['publish', '--run', run, '--name', 'x', '--dtype', 'F8', '--weights', weights], /--dtype: expected one of F32, F16, got 'F8'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCliInProcess(args);
      t.equal(r.status, 2, args.join(' '));
      t.match(r.stderr, pattern, args.join(' '));
      t.equal(errorLines(r.stderr, /^backend:/).length, 1, `one line: ${r.stderr}`);
    }
    t.notOk(existsSync(weights), 'no weights directory was created');
  });

  t.test('train --help', async (t) => {
    const r = await runCliInProcess(['train', '--help']);
    t.equal(r.status, 0);
    t.match(r.stdout, /--variant V\s+attention-sink variant \(one of: softmax, softmax1, learned-sink, sink-token\)/);
  });
}
