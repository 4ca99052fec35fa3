// What `--weights q8` costs in accuracy: perplexity with float32 weights
// (the tfjs path), with q8 (the worker pool's products: int8 weights in
// blocks of 32, x in int16 blocks), and with the q8 weights alone (the
// stored int8 blocks turned back into float32 and run on the tfjs path, so
// x stays float32), on the two models the README names:
//
//   conformance  test/fixtures/tiny-gqa.bin (random, d48), the dense case's
//                tokens of tiny-gqa.expected.json
//   zoo          weights/softmax (trained, d128), `--windows` evenly spread
//                256-token windows of the held-out Brown stream (the
//                windows the held-out loss is measured on)
//
//   node dist/bench/q8_accuracy.js [--windows 32] [--record]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/backend.js';
import type { TrainOptions } from '../src/train/options.js';
import { benchArgs, markdownTable, recordResult, runBench } from './common.js';
import type { Tensor2D } from '@tensorflow/tfjs';
import type { WorkerPool as Pool } from '../kernels/pool.js';
import type { Model } from '../src/model/weights.js';

const HELP = `Perplexity with float32 weights, with q8, and with the q8 weights alone (x float32), on the conformance model and the zoo's default model.

  node dist/bench/q8_accuracy.js [--windows 32] [--record]

  --windows N   held-out windows of 256 tokens for the zoo model (default 32 of its 661)
  --record      append the table to bench/RESULTS.md
  --help        this text`;
const windows = benchArgs(HELP).count('windows', 32, 1, 661);
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const tf = await import('@tensorflow/tfjs');
const { WorkerPool } = await import('../kernels/pool.js');
const { allocMatrix, readRowQ8, writeRow } = await import('../kernels/split_products.js');
const { readLlama2c } = await import('../src/checkpoint/llama2c.js');
const { scoreTokens } = await import('../src/eval/perplexity.js');
const { modelFromLlama2c } = await import('../src/model/from_llama2c.js');
const { loadModel } = await import('../src/model/load.js');
const { placeWeights } = await import('../src/model/pooled.js');
const { disposeModel } = await import('../src/model/weights.js');
const { loadTrainData, validationSamples } = await import('../src/train/data.js');
const { validationLoss } = await import('../src/train/validate.js');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

type Weights = 'f32' | 'q8' | 'q8 weights, x float32';
const VARIANTS: readonly Weights[] = ['f32', 'q8', 'q8 weights, x float32'];

/** w: [in, out] -> the same with every output's weights rounded as the pool stores them in q8 (blocks of 32 along in). */
function roundedAsQ8(pool: Pool, w: Tensor2D): Tensor2D {
  const [inDim, outDim] = w.shape;
  const m = allocMatrix(pool, 'q8', outDim, inDim);
  const transposed = tf.tidy(() => w.transpose().dataSync() as Float32Array); // [out, in]
  const rounded = new Float32Array(outDim * inDim); // [out, in]
  for (let r = 0; r < outDim; r++) {
    writeRow(m, r, transposed, r * inDim);
    const { q, d } = readRowQ8(m, r);
    for (let c = 0; c < inDim; c++) rounded[r * inDim + c] = q[c]! * d[c >> 5]!;
  }
  return tf.tidy(() => tf.tensor2d(rounded, [outDim, inDim]).transpose());
}

/** The model's matrices (q|k|v, out, gate|up, down, the classifier) replaced by their q8 rounding, in place. */
function roundWeightsAsQ8(model: Model): void {
  // a pool only for its memory and quantiser; big enough for the largest matrix
  const pool = new WorkerPool(1);
  const w = model.weights;
  for (const l of w.layers) {
    for (const p of [l.qkv, l.out, l.up, l.down]) {
      const old = p.weight!;
      p.weight = roundedAsQ8(pool, old);
      old.dispose();
    }
  }
  const old = w.classifier!;
  w.classifier = roundedAsQ8(pool, old);
  old.dispose();
  void pool.dispose();
}

async function placed(load: () => Model, weights: Weights): Promise<Model> {
  const model = load();
  if (weights === 'q8') {
    placeWeights(model, { threads: 1, weights: 'q8' });
    await model.pool!.ready();
  } else if (weights !== 'f32') roundWeightsAsQ8(model);
  return model;
}

async function done(model: Model): Promise<void> {
  await disposeModel(model);
}

/** Perplexity of the conformance model's dense tokens. */
async function conformance(weights: Weights): Promise<number> {
  const expected = JSON.parse(readFileSync(`${ROOT}test/fixtures/tiny-gqa.expected.json`, 'utf8')) as {
    tokens: number[];
    cases: { name: string; tokens: number }[];
  };
  const dense = expected.cases.find((c) => c.name === 'dense')!;
  const model = await placed(() => modelFromLlama2c(readLlama2c(`${ROOT}test/fixtures/tiny-gqa.bin`)), weights);
  const scored = await scoreTokens(model, expected.tokens.slice(0, dense.tokens), { kind: 'dense' }, { mode: 'blocked' });
  await done(model);
  return scored.ppl;
}

/** Perplexity of the zoo's default model on `windows` held-out windows. */
async function zoo(weights: Weights, windows: number): Promise<number> {
  const dir = `${ROOT}weights/softmax`;
  const model = await placed(() => loadModel(dir), weights);
  const data = loadTrainData(`${dir}/tokenizer.json`);
  // the softmax model was trained on Brown windows without a BOS prefix or sink token
  const samples = validationSamples(data, { seqLen: model.config.maxSeqLen, data: 'brown' } as TrainOptions, false, windows);
  const ppl = Math.exp(validationLoss(model, samples));
  await done(model);
  return ppl;
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const rows: string[][] = [];
  for (const [name, measure, run] of [
    ['conformance `tiny-gqa` (random, d48)', 'perplexity of the dense case’s 64 tokens', conformance],
    ['zoo `softmax` (trained, d128)', `held-out perplexity, ${windows} of the 661 windows`, (w: Weights) => zoo(w, windows)],
  ] as const) {
    const ppl: number[] = [];
    for (const w of VARIANTS) {
      ppl.push(await run(w));
      process.stderr.write(`${name}, ${w}: ${ppl[ppl.length - 1]!.toFixed(4)}\n`);
    }
    const change = (p: number) => `${p >= ppl[0]! ? '+' : ''}${((100 * (p - ppl[0]!)) / ppl[0]!).toFixed(3)}%`;
    rows.push([name, measure, ppl[0]!.toFixed(3), `${ppl[1]!.toFixed(3)} (${change(ppl[1]!)})`, `${ppl[2]!.toFixed(3)} (${change(ppl[2]!)})`]);
  }
  const body = markdownTable(['model', 'measure', 'float32', 'q8', 'q8 weights, x float32'], rows);
  process.stdout.write(`${body}\n`);
  recordResult('q8 accuracy (bench/q8_accuracy.ts)', `node dist/bench/q8_accuracy.js --windows ${windows} --record`, body);
}

await runBench(main);
