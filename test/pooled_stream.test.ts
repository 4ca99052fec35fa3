// Models built without ever holding the float32 model: the random model
// drawn as it is read (randomLlamaReader), `init` writing it that way, and a
// llama2.c checkpoint read straight into the worker pool
// (pooled_llama2c.ts). Each equals the ordinary path bit for bit: the
// tensors of randomLlamaTensors, the file writeLlama2c writes from them, and
// the pool's bytes after modelFromLlama2c + placeWeights. Nothing leaks, and
// a model too large for the pool's 4 GiB is one line before any allocation.
import * as tf from '@tensorflow/tfjs';
import { closeSync, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { matrixBytes as pooledMatrixBytes, type PooledMatrix } from '../kernels/split_products.js';
import { DenseCache } from '../src/cache/dense.js';
import { LLAMA2C_TENSOR_ORDER, type LlamaShape, openLlama2c, readLlama2c, tensorSizes, writeLlama2c } from '../src/checkpoint/llama2c.js';
import { ResourceError } from '../src/errors.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { placeWeights } from '../src/model/pooled.js';
import { pooledModelFromLlama2c } from '../src/model/pooled_llama2c.js';
import { randomLlamaReader, randomLlamaTensors } from '../src/model/random_init.js';
import { forward } from '../src/model/transformer.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { initTestBackend, runCliInProcess } from './helpers.js';

await initTestBackend();
const dir = mkdtempSync(join(tmpdir(), 'streamllm-stream-'));

// widths that are not multiples of 32 (the pool pads rows to whole blocks), grouped-query attention
const shape: LlamaShape = { dim: 40, hiddenDim: 50, layers: 3, heads: 4, kvHeads: 2, vocabSize: 70, maxSeqLen: 32, sharedClassifier: true };

t.test('randomLlamaReader: the values of randomLlamaTensors, read in any forward chunks', async (t) => {
  for (const sharedClassifier of [true, false]) {
    const s = { ...shape, sharedClassifier };
    const whole = randomLlamaTensors(s, 5);
    const reader = randomLlamaReader(s, 5);
    const sizes = tensorSizes(s);
    const chunks = [7, 3, 64, 1]; // odd lengths cut pairs of normals
    for (const name of LLAMA2C_TENSOR_ORDER) {
      if (name === 'classifier' && sharedClassifier) continue;
      if (name === 'wk') continue; // skipped: drawn and dropped, so that wv still matches
      const got = new Float32Array(sizes[name]);
      for (let at = 0, i = 0; at < got.length; i++) {
        const n = Math.min(chunks[i % chunks.length]!, got.length - at);
        got.set(reader.read(name, at, n), at);
        at += n;
      }
      t.same(Array.from(got), Array.from(whole[name]!), `${name}${sharedClassifier ? '' : ' (separate classifier)'}`);
    }
    t.throws(() => reader.read('wq', 0, 1), /reads must go forward/, 'reading back is refused');
  }
});

t.test('randomLlamaTensors: weights N(0, 0.02^2) (moments and the share within 1 and 2 std), norm gains 1, the seed matters', async (t) => {
  const big = { ...shape, dim: 64, hiddenDim: 256, heads: 4, kvHeads: 4, vocabSize: 512 };
  const a = randomLlamaTensors(big, 1);
  const w = Float64Array.from([...a.wq, ...a.w1, ...a.w2, ...a.tokenEmbedding]); // 139,264 draws
  const n = w.length;
  const mean = w.reduce((x, y) => x + y, 0) / n;
  const std = Math.sqrt(w.reduce((x, y) => x + (y - mean) ** 2, 0) / n);
  const share = (k: number) => w.filter((x) => Math.abs(x) < k * 0.02).length / n;
  t.ok(Math.abs(mean) < (4 * 0.02) / Math.sqrt(n), `mean ${mean.toExponential(2)}`);
  t.ok(Math.abs(std / 0.02 - 1) < 0.01, `std ${std.toFixed(5)}`);
  // a normal's: 0.6827 within 1 std, 0.9545 within 2 (binomial sd about 0.0013 and 0.0006 here)
  t.ok(Math.abs(share(1) - 0.6827) < 0.006, `within 1 std: ${share(1).toFixed(4)}`);
  t.ok(Math.abs(share(2) - 0.9545) < 0.003, `within 2 std: ${share(2).toFixed(4)}`);
  t.ok(a.rmsAtt.every((g) => g === 1) && a.rmsFinal.every((g) => g === 1), 'norm gains 1');
  t.notSame(Array.from(randomLlamaTensors(big, 2).wq.subarray(0, 8)), Array.from(a.wq.subarray(0, 8)), 'another seed, other weights');
});

t.test('init writes the same file as writing randomLlamaTensors', async (t) => {
  const ordinary = join(dir, 'ordinary.bin');
  writeLlama2c(ordinary, randomLlamaTensors({ ...shape, sharedClassifier: false }, 3));
  const out = join(dir, 'init.bin');
  const args = ['init', '--dim', '40', '--hidden', '50', '--layers', '3', '--heads', '4', '--kv-heads', '2', '--vocab', '70', '--seq-len', '32'];
  const r = await runCliInProcess([...args, '--shared-classifier=false', '--seed', '3', '--out', out]);
  t.equal(r.status, 0, r.stderr);
  t.ok(readFileSync(out).equals(readFileSync(ordinary)), 'byte for byte');
});

/** The bytes of a pooled matrix: its weights and, for q8, its scales (one run from m.data). */
function matrixBytes(m: PooledMatrix): number[] {
  return [...m.pool.bytes().subarray(m.data, m.data + pooledMatrixBytes(m.format, m.rows, m.cols))];
}

function pooledMatrices(model: Model): PooledMatrix[] {
  return [...model.weights.layers.flatMap((l) => [l.qkv.pooled!, l.out.pooled!, l.up.pooled!, l.down.pooled!]), model.weights.pooledClassifier!];
}

function logits(model: Model, ids: number[]): number[] {
  const cache = new DenseCache({ layers: shape.layers, kvHeads: shape.kvHeads, headDim: shape.dim / shape.heads });
  const out = forward(model, ids, cache);
  const values = Array.from(out.dataSync());
  out.dispose();
  cache.dispose();
  return values;
}

t.test('pooledModelFromLlama2c: the pool holds what placeWeights puts there, bit for bit; nothing leaks', async (t) => {
  const ids = [1, 5, 9, 69, 0, 33, 2, 40];
  for (const sharedClassifier of [true, false]) {
    const s = { ...shape, sharedClassifier };
    const file = join(dir, `model-${sharedClassifier}.bin`);
    writeLlama2c(file, randomLlamaTensors(s, 11));
    for (const weights of sharedClassifier ? (['q8', 'f32'] as const) : (['q8'] as const)) {
      const label = `${weights}${sharedClassifier ? '' : ', separate classifier'}`;
      const before = tf.memory().numTensors;
      const threads = weights === 'f32' ? 2 : 1; // f32 on one thread would stay in tfjs
      const ordinary = placeWeights(modelFromLlama2c(readLlama2c(file)), { threads, weights });
      const reader = openLlama2c(file);
      const fromFile = pooledModelFromLlama2c(reader, { threads, weights }, 'test');
      reader.close();
      const drawn = pooledModelFromLlama2c(randomLlamaReader(s, 11), { threads: 1, weights }, 'test');
      const want = pooledMatrices(ordinary).map(matrixBytes);
      for (const [name, model] of [
        ['read from the file', fromFile],
        ['drawn as read', drawn],
      ] as const) {
        t.same(pooledMatrices(model).map(matrixBytes), want, `${label}, ${name}: every pooled matrix's bytes`);
        t.same(Array.from(model.weights.embedding.dataSync()), Array.from(ordinary.weights.embedding.dataSync()), `${label}, ${name}: the embedding`);
        t.same(
          model.weights.layers.map((l) => [...l.attnNorm.weight.dataSync(), ...l.mlpNorm.weight.dataSync()]),
          ordinary.weights.layers.map((l) => [...l.attnNorm.weight.dataSync(), ...l.mlpNorm.weight.dataSync()]),
          `${label}, ${name}: the norms`,
        );
        t.same(logits(model, ids), logits(ordinary, ids), `${label}, ${name}: the logits`);
      }
      for (const model of [ordinary, fromFile, drawn]) {
        disposeModel(model);
        await model.pool!.dispose();
      }
      t.equal(tf.memory().numTensors, before, `${label}: no tensor leak`);
    }
  }
});

t.test('a model too large for the pool: one line naming the flag and the limit, before any allocation', async (t) => {
  // a 70B-parameter llama shape
  const huge: LlamaShape = { dim: 8192, hiddenDim: 28672, layers: 80, heads: 64, kvHeads: 8, vocabSize: 32000, maxSeqLen: 4096, sharedClassifier: false };
  const before = tf.memory().numTensors;
  t.throws(
    () => pooledModelFromLlama2c(randomLlamaReader(huge, 0), { threads: 1, weights: 'q8' }, 'huge'),
    new ResourceError(
      "huge: the weight matrices need 71.99 GiB as q8, more than the worker pool's 4.00 GiB memory (wasm32) holds with 0.25 GiB left for the products",
    ),
  );
  t.equal(tf.memory().numTensors, before, 'nothing made');
  // the CLI, on a sparse file of a 5B shape's size (nothing is read: the header decides)
  const big: LlamaShape = { dim: 4096, hiddenDim: 11008, layers: 24, heads: 32, kvHeads: 32, vocabSize: 32000, maxSeqLen: 64, sharedClassifier: true };
  const file = join(dir, 'big.bin');
  const sizes = tensorSizes(big);
  const bytes = 28 + 4 * (LLAMA2C_TENSOR_ORDER.filter((n) => n !== 'classifier').reduce((n, name) => n + sizes[name], 0) + sizes.freqCis);
  const header = Buffer.alloc(28);
  [big.dim, big.hiddenDim, big.layers, big.heads, big.kvHeads, big.vocabSize, big.maxSeqLen].forEach((v, i) => header.writeInt32LE(v, 4 * i));
  const fd = openSync(file, 'w');
  writeSync(fd, header);
  writeSync(fd, Buffer.alloc(1), 0, 1, bytes - 1); // sparse: takes no disk
  closeSync(fd);
  const r = await runCliInProcess(['generate', '--model', file, '--weights', 'q8', '--prompt-ids', '1', '--steps', '1']);
  t.equal(r.status, 2, 'exit code 2');
  const errors = r.stderr.split('\n').filter((line) => line.startsWith('streamllm:'));
  t.equal(errors.length, 1, 'one error line');
  t.match(
    errors[0],
    /^streamllm: generate --model \S+big\.bin --weights q8: the weight matrices need 5\.23 GiB as q8, more than the worker pool's 4\.00 GiB memory/,
  );
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
