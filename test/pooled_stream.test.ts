// Models built without ever holding the float32 model: the random model
// drawn as it is read (randomLlamaReader), `init` writing it that way, and a
// llama2.c checkpoint or a Hugging Face directory read straight into the
// worker pool (pooled_llama2c.ts, from_hf.ts pooledModelFromHf). Each equals
// the ordinary path bit for bit: the tensors of randomLlamaTensors, the file
// writeLlama2c writes from them, and the pool's bytes after loading +
// placeWeights. Nothing leaks, and a model too large for the pool's 4 GiB is
// one line before any allocation.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { matrixBytes as pooledMatrixBytes, type PooledMatrix, readRowQ8 } from '../kernels/split_products.js';
import { DenseCache } from '../src/cache/dense.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { LLAMA2C_TENSOR_ORDER, type LlamaShape, openLlama2c, readLlama2c, tensorSizes, writeLlama2c } from '../src/checkpoint/llama2c.js';
import { ResourceError } from '../src/errors.js';
import { cacheShape } from '../src/model/config.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { loadModel, loadPooledHfModel } from '../src/model/load.js';
import { placeWeights } from '../src/model/pooled.js';
import { pooledModelFromLlama2c } from '../src/model/pooled_llama2c.js';
import { normalArray, randomLlamaReader, randomLlamaTensors } from '../src/model/random_init.js';
import { forward } from '../src/model/transformer.js';
import { collectTensors, disposeModel, type Model } from '../src/model/weights.js';
import { errorLines, float64Hex, initTestBackend, runCliInProcess, watchPools } from './helpers.js';
import { llamaConfigJson, llamaTensorShapes, neoxTensorShapes, randomTensors, type TensorMap, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();
const dir = tempDir('streamllm-stream-');

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

t.test("seeded weights: values pinned from Node 20 (normalArray through kernels/fdlibm.ts; init's through Math.log)", async (t) => {
  // (computed on Node 20.20.2 by the code before kernels/fdlibm.ts, with Math.log, Math.cos and Math.sin: V8 11.3's C
  // functions, not the port. Node 22's and 24's Math.log give init's too; a later V8 whose Math.log differs fails the
  // second assertion, which then says that `init --seed` no longer writes Node 20's weights: route fillNormals'
  // logarithm through kernels/fdlibm.ts log, 15 -> 22 ns a weight, see random_init.ts)
  t.same(
    Array.from(normalArray(seedrandom('pin'), 6, 1), float64Hex),
    ['3ff1b79a60000000', 'bff3675780000000', '3ffb7ac160000000', 'bfa31375e0000000', '3fc309c080000000', '3fe23bd0a0000000'],
    "normalArray (training's initialisation)",
  );
  const tiny = { dim: 8, hiddenDim: 16, layers: 1, heads: 2, kvHeads: 2, vocabSize: 4, maxSeqLen: 8, sharedClassifier: true };
  t.same(
    Array.from(randomLlamaTensors(tiny, 42).wq.subarray(0, 4), float64Hex),
    ['3f6d886980000000', '3f5b898980000000', '3f83d0abe0000000', 'bf8eabbec0000000'],
    "randomLlamaTensors (init's)",
  );
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

/** A model's logits for ids, one block on a fresh dense cache. */
function logits(model: Model, ids: number[]): number[] {
  const cache = new DenseCache(cacheShape(model.config));
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
        await disposeModel(model);
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
  // as float32 (the default) the message names q8, in the flag's words and the API's
  const hint = / q8 weights take 1\.125 bytes a weight \(--weights q8, or loadModel's weights: 'q8'\)$/;
  const f = await runCliInProcess(['generate', '--model', file, '--prompt-ids', '1', '--steps', '1']);
  t.equal(f.status, 2, 'f32: exit code 2');
  t.equal(errorLines(f.stderr).length, 1, 'f32: one error line');
  t.match(
    errorLines(f.stderr)[0],
    /^streamllm: generate --model \S+big\.bin --weights f32: the weight matrices need [\d.]+ GiB as f32, more than the worker pool's 4\.00 GiB/,
  );
  t.match(errorLines(f.stderr)[0], hint);
  const api = t.throws(() => loadModel(file, { threads: 1 })) as Error;
  t.ok(api instanceof (await import('../src/index.js')).ResourceError, "loadModel: a ResourceError, the library's export");
  t.match(api.message, /^loadModel: \S+big\.bin with weights 'f32': the weight matrices need [\d.]+ GiB as f32, more than the worker pool's 4\.00 GiB/);
  t.match(api.message, hint);
  t.equal(tf.memory().numTensors, before, 'nothing made');
});

// Hugging Face directories read straight into the pool (loadPooledHfModel):
// the llama family (tied, GQA, biases, attention-only layers) and GPT-NeoX
// (its per-head fused query_key_value rows reordered), F32 and BF16 files,
// f32 and q8 in the pool, against loadModel + placeWeights.
{
  const neox = {
    model_type: 'gpt_neox',
    hidden_size: 40,
    intermediate_size: 72,
    num_hidden_layers: 2,
    num_attention_heads: 4, // head size 10
    rotary_pct: 0.4, // rotary_ndims 4
    vocab_size: 45,
    max_position_embeddings: 64,
    hidden_act: 'gelu',
    tie_word_embeddings: false,
  };
  const biased = { ...llamaConfigJson({ ...shape, sharedClassifier: false }), attention_bias: true, mlp_bias: true };
  const cases: [string, Record<string, unknown>, TensorMap][] = [
    ['llama, tied, GQA', llamaConfigJson(shape), randomTensors('hf-tied', llamaTensorShapes(llamaConfigJson(shape)))],
    ['llama, untied, every bias', biased, randomTensors('hf-bias', llamaTensorShapes(biased, { qkvBias: true, outBias: true, mlpBias: true }))],
    ['gpt_neox, untied', neox, randomTensors('hf-neox', neoxTensorShapes(neox))],
    ['gpt_neox, tied', { ...neox, tie_word_embeddings: true }, randomTensors('hf-neox-tied', neoxTensorShapes({ ...neox, tie_word_embeddings: true }))],
  ];
  const attentionOnly = { ...llamaConfigJson(shape), intermediate_size: 0 };
  cases.push(['llama, attention-only layers', attentionOnly, randomTensors('hf-attn', llamaTensorShapes(attentionOnly))]);
  const ids = [1, 5, 9, 44, 0, 33, 2, 40];
  const quiet = { onNote: () => {} };

  // compared as digests: a failure then prints a short diff, not one of arrays of thousands of numbers
  const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  /** Every matrix slot of a model: the digest of its pooled bytes, or null where it stayed a tensor. */
  const slots = (model: Model) =>
    [...model.weights.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { pooled: model.weights.pooledClassifier }].map((l) =>
      l.pooled === undefined ? null : digest(Uint8Array.from(matrixBytes(l.pooled))),
    );
  const tensors = (model: Model) =>
    collectTensors(model.weights).map((x) => {
      const v = x.dataSync() as Float32Array;
      return `${x.shape.join('x')}: ${digest(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))}`;
    });

  t.test('loadPooledHfModel: the pool holds what loadModel + placeWeights put there, bit for bit, and the same logits; nothing leaks', async (t) => {
    for (const [name, config, weights] of cases) {
      for (const dtype of ['F32', 'BF16'] as const) {
        const hf = tempDir();
        writeHfDir(hf, config, weights, dtype);
        for (const format of dtype === 'F32' ? (['f32', 'q8'] as const) : (['q8'] as const)) {
          const label = `${name}, ${dtype} file, ${format}`;
          const p = { threads: format === 'f32' ? 2 : 1, weights: format }; // f32 on one thread would stay in tfjs
          const before = tf.memory().numTensors;
          const ordinary = placeWeights(loadModel(hf, quiet), p);
          const streamed = loadPooledHfModel(hf, p, 'test', quiet);
          t.ok(streamed.pool !== undefined && streamed.weights.classifier === undefined, `${label}: the matrices are in the pool`);
          t.same(slots(streamed), slots(ordinary), `${label}: every pooled matrix's bytes`);
          t.same(tensors(streamed), tensors(ordinary), `${label}: the tensors left in tfjs (embedding, norms, biases, empty MLPs)`);
          t.same(logits(streamed, ids), logits(ordinary, ids), `${label}: the logits`);
          for (const model of [ordinary, streamed]) {
            await disposeModel(model);
          }
          t.equal(tf.memory().numTensors, before, `${label}: no tensor leak`);
        }
      }
    }
  });

  t.test("gpt_neox q8: each query_key_value row lands in the engine's q|k|v order, quantised per block of 32", async (t) => {
    const [, config, weights] = cases[2]!;
    const hf = tempDir();
    writeHfDir(hf, config, weights);
    const model = loadPooledHfModel(hf, { threads: 1, weights: 'q8' }, 'test', quiet);
    const { dim, headDim } = model.config;
    const w = weights.get('gpt_neox.layers.1.attention.query_key_value.weight')!.values; // [heads * 3 * headDim, dim]: rows per head q, k, v
    let worst = 0;
    for (let r = 0; r < 3 * dim; r++) {
      const [head, which, i] = [Math.floor(r / (3 * headDim)), Math.floor(r / headDim) % 3, r % headDim];
      const { q, d } = readRowQ8(model.weights.layers[1]!.qkv.pooled!, which * dim + head * headDim + i);
      for (let c = 0; c < dim; c++) {
        const want = w[r * dim + c]!;
        const block = Math.floor(c / 32);
        const max = Math.max(...Array.from(w.subarray(r * dim + block * 32, r * dim + Math.min(dim, block * 32 + 32)), Math.abs));
        worst = Math.max(worst, Math.abs(d[block]! * q[c]! - want) / (max / 127));
      }
    }
    t.ok(worst <= 0.5 + 1e-5, `every weight within half a step of its block's scale (max|w| / 127): worst ${worst.toFixed(4)} steps`);
    await disposeModel(model);
  });

  t.test('a directory too large for the pool: one line naming the flag, before anything is read or allocated', async (t) => {
    // Llama-2-70B's shape: the config alone decides, the file holds no tensor
    const hf = tempDir();
    const config = {
      ...llamaConfigJson({ dim: 8192, hiddenDim: 28672, layers: 80, heads: 64, kvHeads: 8, vocabSize: 32000, maxSeqLen: 4096, sharedClassifier: false }),
    };
    writeHfDir(hf, config, new Map());
    const before = tf.memory().numTensors;
    const pools = watchPools();
    t.throws(
      () => loadPooledHfModel(hf, { threads: 1, weights: 'q8' }, 'huge', quiet),
      /^huge: the weight matrices need 71\.99 GiB as q8, more than the worker pool's 4\.00 GiB/,
    );
    t.equal(pools(), 0, 'no pool took memory');
    t.equal(tf.memory().numTensors, before, 'nothing made');
    const r = await runCliInProcess(['generate', '--model', hf, '--weights', 'q8', '--prompt-ids', '1', '--steps', '1']);
    t.equal(r.status, 2, 'exit code 2');
    t.equal(errorLines(r.stderr).length, 1, 'one error line');
    t.match(r.stderr, /^streamllm: generate --model \S+ --weights q8: the weight matrices need 71\.99 GiB as q8/m);
  });

  t.test('eval --weights q8 on a directory: the NLLs of loadModel + placeWeights', async (t) => {
    const [, config, weights] = cases[1]!;
    const hf = tempDir();
    writeHfDir(hf, config, weights, 'BF16');
    const tokens = join(hf, 'ids.json');
    writeFileSync(tokens, JSON.stringify(ids));
    const r = await runCliInProcess(['eval', '--model', hf, '--tokens', tokens, '--weights', 'q8', '--threads', '1', '--json']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, /products: q8 weights \([\d.]+ MiB\) on 1 thread, (2 MB pages asked for|4 KB pages \(.+\))\n/);
    const ordinary = placeWeights(loadModel(hf, quiet), { threads: 1, weights: 'q8' });
    const want = await scoreTokens(ordinary, ids, { kind: 'dense' });
    t.same((JSON.parse(r.stdout) as { nll: number[] }).nll, Array.from(want.nll), 'every NLL equal');
    await disposeModel(ordinary);
  });
}
