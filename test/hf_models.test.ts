// Hugging Face model directories against a float64 reference of
// transformers' forward: the llama family (with Qwen2, Mistral and their
// options), then GPT-NeoX. A section each, in a block of its own.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import { StreamingCache } from '../src/cache/streaming.js';
import type { KVCache } from '../src/cache/types.js';
import { readHfConfig } from '../src/checkpoint/hf_config.js';
import { writeLlama2c } from '../src/checkpoint/llama2c.js';
import { ConfigError, FileFormatError } from '../src/errors.js';
import { cacheShape } from '../src/model/config.js';
import { loadModel, weightBytes } from '../src/model/load.js';
import { saveHfModel } from '../src/model/to_hf.js';
import { forward, SINK_TOKEN } from '../src/model/transformer.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { initTrainableModel } from '../src/train/init.js';
import { variantConfig } from '../src/train/variants.js';
import { denseLogits, initTestBackend, maxAbsDiff } from './helpers.js';
import { assertPooledLoadRefused } from './bad_input.js';
import { hfReferenceLogits } from './hf_reference.js';
import {
  llama2cToHf,
  llamaConfigJson,
  llamaTensorShapes,
  neoxTensorShapes,
  randomArray,
  randomLlama2c,
  randomTensors,
  readHfDir,
  rng,
  type TensorMap,
  writeHfDir,
} from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();

// Hugging Face llama-family directories: the same model written as llama2.c
// .bin and as HF safetensors (halves layout) gives the same logits; Qwen2
// biases, untied lm_head, linear rope scaling, an explicit head_dim and
// llama's attention/mlp biases against a float64 reference of
// transformers' forward pass; config errors.
{
  const ids = [5, 0, 17, 3, 3, 29, 11, 8, 1, 30, 2, 7];

  for (const shared of [false, true]) {
    t.test(`llama2.c .bin and HF safetensors give the same logits (${shared ? 'tied' : 'untied'} classifier)`, async (t) => {
      const before = tf.memory().numTensors;
      const shape = { dim: 24, hiddenDim: 40, layers: 2, heads: 6, kvHeads: 2, vocabSize: 31, maxSeqLen: 32, sharedClassifier: shared };
      const tensors = randomLlama2c(shape, `bin-vs-hf-${shared}`);
      const dir = tempDir();
      writeLlama2c(join(dir, 'model.bin'), tensors);
      writeHfDir(dir, llamaConfigJson(shape), llama2cToHf(tensors));
      const bin = loadModel(join(dir, 'model.bin'));
      const hf = loadModel(dir);
      t.equal(bin.config.rope.layout, 'pairs');
      t.equal(hf.config.rope.layout, 'halves');
      const d = maxAbsDiff(denseLogits(bin, ids), denseLogits(hf, ids));
      t.ok(d < 1e-5, `max |diff| ${d}`);
      disposeModel(bin);
      disposeModel(hf);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    });
  }

  /** Engine logits from DIR against the reference on the tensors written there. */
  function checkAgainstReference(t: Test, config: Record<string, unknown>, tensors: TensorMap, tokens = ids, tol = 2e-5): void {
    const before = tf.memory().numTensors;
    const dir = tempDir();
    writeHfDir(dir, config, tensors);
    const model = loadModel(dir);
    const ref = hfReferenceLogits(config, tensors, tokens).flatMap((row) => Array.from(row));
    const d = maxAbsDiff(denseLogits(model, tokens), ref);
    t.ok(d < tol, `engine vs float64 reference: max |diff| ${d}`);
    disposeModel(model);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  }

  t.test('qwen2: q/k/v biases, untied lm_head, rope_scaling linear, head_dim given', async (t) => {
    const config = {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      hidden_size: 24,
      intermediate_size: 36,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 10, // q: 40 channels from a 24-wide residual
      vocab_size: 33,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      rope_scaling: { type: 'linear', factor: 4 },
      tie_word_embeddings: false,
      use_sliding_window: false,
      sliding_window: 4096,
      hidden_act: 'silu',
    };
    const spec = readHfConfigFrom(config);
    t.same(spec.config.bias, { qkv: true, out: false, mlp: false });
    t.equal(spec.config.headDim, 10);
    t.equal(spec.config.rope.scale, 4);
    t.equal(spec.config.rope.theta, 1e6);
    t.same(spec.notes, []);
    checkAgainstReference(t, config, randomTensors('qwen2', llamaTensorShapes(config, { qkvBias: true })));
  });

  t.test('llama: attention_bias, mlp_bias, tied embeddings, GQA', async (t) => {
    const config = {
      model_type: 'llama',
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      vocab_size: 37,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-5,
      rope_theta: 500,
      attention_bias: true,
      mlp_bias: true,
      tie_word_embeddings: true,
    };
    checkAgainstReference(t, config, randomTensors('llama-bias', llamaTensorShapes(config, { qkvBias: true, outBias: true, mlpBias: true })));
  });

  t.test('mistral: loads as llama, and says that sliding_window is not applied', async (t) => {
    const config = {
      model_type: 'mistral',
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      vocab_size: 19,
      sliding_window: 4096,
    };
    const spec = readHfConfigFrom(config);
    t.match(spec.notes[0], /sliding_window 4096 is not applied/);
    t.equal(spec.config.maxSeqLen, 131072, 'transformers default max_position_embeddings');
    t.equal(spec.config.normEps, 1e-6);
    checkAgainstReference(t, config, randomTensors('mistral', llamaTensorShapes(config)), [1, 2, 3, 4]);
  });

  t.test('our saved format (learned sink logits + sink token) against the reference', async (t) => {
    const before = tf.memory().numTensors;
    const shape = { dim: 16, hiddenDim: 24, layers: 2, heads: 4, kvHeads: 2, vocabSize: 23, maxSeqLen: 32, sharedClassifier: false };
    const dir = tempDir();
    writeLlama2c(join(dir, 'm.bin'), randomLlama2c(shape, 'ours'));
    const model = loadModel(join(dir, 'm.bin'));
    model.config = { ...model.config, softmax: 'learned-sink', sinkToken: true };
    const r = rng('ours-sinks');
    for (const l of model.weights.layers) l.sinkLogits = tf.tensor1d(randomArray(r, 4, 3));
    model.weights.sinkEmbedding = tf.tensor1d(randomArray(r, 16));
    const out = join(dir, 'hf');
    saveHfModel(out, model);
    const { config, tensors } = readHfDir(out);
    const tokens = [SINK_TOKEN, 4, 9, 1, 22, 0, 3];
    const ref = hfReferenceLogits(config, tensors, tokens).flatMap((row) => Array.from(row));
    const d = maxAbsDiff(denseLogits(model, tokens), ref);
    t.ok(d < 2e-5, `max |diff| ${d}`);
    disposeModel(model);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  t.test('attention-only layers (intermediate_size 0) against the reference', async (t) => {
    const before = tf.memory().numTensors;
    const trainable = initTrainableModel(variantConfig('softmax', { dim: 16, layers: 2, heads: 4, hiddenDim: 0 }, 31, 32), 5);
    // Weights far from the init's small scale, so the attention carries a real signal.
    const r = rng('attention-only');
    for (const p of trainable.params) tf.tidy(() => p.variable.assign(tf.tensor(randomArray(r, p.variable.size, 0.5), p.variable.shape)));
    const dir = tempDir();
    tf.tidy(() => saveHfModel(dir, trainable.model()));
    trainable.dispose();
    const { config, tensors } = readHfDir(dir);
    t.equal(config.intermediate_size, 0, 'saved as intermediate_size 0');
    const model = loadModel(dir);
    t.equal(model.config.hiddenDim, 0);
    const ref = hfReferenceLogits(config, tensors, ids).flatMap((row) => Array.from(row));
    const d = maxAbsDiff(denseLogits(model, ids), ref);
    t.ok(d < 2e-5, `max |diff| ${d}`);
    disposeModel(model);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  t.test('config errors name the file and the field', async (t) => {
    const base = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 19 };
    const expectError = (patch: Record<string, unknown>, pattern: RegExp, type: typeof ConfigError | typeof FileFormatError = ConfigError) => {
      const config: Record<string, unknown> = { ...base, ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete config[k];
      let error: unknown;
      try {
        readHfConfigFrom(config);
      } catch (e) {
        error = e;
      }
      t.ok(error instanceof type, `${JSON.stringify(patch)}: ${type.name}`);
      t.match((error as Error).message, pattern);
      t.match((error as Error).message, /config\.json: /, 'names the file');
    };
    expectError({ model_type: 'gemma' }, /model_type "gemma" is not supported \(supported: llama, mistral, qwen2, gpt_neox\)/);
    expectError({ model_type: undefined }, /model_type undefined is not supported/);
    expectError({ hidden_size: undefined }, /missing field "hidden_size" \(a positive integer\)/);
    expectError({ vocab_size: undefined }, /missing field "vocab_size"/);
    expectError({ num_hidden_layers: 1.5 }, /field "num_hidden_layers" must be a positive integer, got 1.5/);
    expectError({ intermediate_size: -1 }, /field "intermediate_size" must be a non-negative integer, got -1/);
    // 0 (attention-only) is for the llama family; gpt_neox's parallel residual always runs its MLP
    expectError({ model_type: 'gpt_neox', intermediate_size: 0 }, /field "intermediate_size" must be a positive integer, got 0/);
    expectError({ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported for llama \(supported: silu\)/);
    expectError({ rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling type "dynamic" is not supported \(supported: linear/);
    expectError({ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling type "llama3"/);
    expectError({ num_key_value_heads: 3 }, /kvHeads \(3\) must divide heads \(4\)/);
    expectError({ hidden_size: 18 }, /num_attention_heads \(4\) must divide hidden_size \(18\)/);
    expectError({ streamllm: { softmax: 'sparsemax' } }, /streamllm\.softmax "sparsemax" is not one of softmax, softmax1, learned-sink/);
    expectError({ model_type: 'qwen2', use_sliding_window: true }, /use_sliding_window true is not supported/);

    const dir = tempDir();
    t.throws(() => readHfConfig(dir), FileFormatError, 'no config.json');
    t.throws(() => loadModel(join(dir, 'nothing-here')), /no such file or directory/);
    writeHfDir(dir, base, new Map());
    t.throws(() => loadModel(dir), /model\.safetensors: missing tensor 'model\.layers\.0\.input_layernorm\.weight'/, 'config without tensors');
    // A tensor missing at the end: everything built before it is released.
    const before = tf.memory().numTensors;
    const shapes = llamaTensorShapes(base).filter(([name]) => name !== 'lm_head.weight');
    writeHfDir(dir, base, randomTensors('partial', shapes));
    t.throws(() => loadModel(dir), /missing tensor 'lm_head\.weight'/);
    t.equal(tf.memory().numTensors, before, 'no tensor leak from a failed load');
    assertPooledLoadRefused(t, dir, FileFormatError, /missing tensor 'lm_head\.weight'/);
    const misshapen = randomTensors('misshapen', llamaTensorShapes({ ...base, intermediate_size: 20 }));
    writeHfDir(dir, base, misshapen);
    const wrongShape = /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[20, 16\], expected \[24, 16\] from the config/;
    t.throws(() => loadModel(dir), wrongShape);
    t.equal(tf.memory().numTensors, before, 'no tensor leak from a failed load');
    assertPooledLoadRefused(t, dir, FileFormatError, wrongShape);
  });

  t.test('weights that overflow the wasm heap are refused before loading', async (t) => {
    // TinyLlama-1.1B's shape: 4.4 GB of float32 weights.
    const config = {
      model_type: 'llama',
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 22, // prettier-ignore
      num_attention_heads: 32,
      num_key_value_heads: 4,
      vocab_size: 32000,
      max_position_embeddings: 2048, // prettier-ignore
    };
    const spec = readHfConfigFrom(config);
    const params = 1_100_048_384; // TinyLlama's parameter count (untied)
    t.equal(weightBytes(spec.config), 4 * params, 'weightBytes counts every parameter once (untied)');
    const dir = tempDir();
    writeHfDir(dir, config, new Map());
    if (tf.getBackend() === 'wasm') t.throws(() => loadModel(dir), /need 4\.10 GiB.*--backend cpu/);
    else t.throws(() => loadModel(dir), /missing tensor/, 'other backends have no such limit: loading starts');
  });

  // --- helpers writing a config to disk so the errors carry a real file name

  function readHfConfigFrom(config: Record<string, unknown>) {
    const dir = tempDir();
    writeHfDir(dir, config, new Map());
    return readHfConfig(dir);
  }
}

// GPT-NeoX (Pythia) directories: fused per-head query_key_value, partial
// rotary in the halves layout, LayerNorm with bias, exact GELU, parallel and
// sequential residuals, against the float64 reference of transformers'
// forward; a streaming cache run gives the same NLLs stepwise and in
// blocks, and matches the reference with positions re-encoded in the cache.
{
  function neoxConfig(parallel: boolean): Record<string, unknown> {
    return {
      architectures: ['GPTNeoXForCausalLM'],
      model_type: 'gpt_neox',
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4, // head size 8
      rotary_pct: 0.5, // rotary_ndims 4: channels 4..7 of each head pass through
      rotary_emb_base: 10000,
      vocab_size: 41,
      max_position_embeddings: 64,
      layer_norm_eps: 1e-5,
      use_parallel_residual: parallel,
      hidden_act: 'gelu',
      tie_word_embeddings: false,
    };
  }

  const r = rng('neox-ids');
  const ids = Array.from({ length: 40 }, () => Math.floor(r() * 41));

  /** Next-token NLLs of ids through the cache, fed `block` tokens at a time. */
  function nlls(model: Model, cache: KVCache, block: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < ids.length - 1; s += block) {
      const chunk = ids.slice(s, Math.min(s + block, ids.length - 1));
      const lp = tf.tidy(() => tf.logSoftmax(forward(model, chunk, cache)).arraySync());
      chunk.forEach((_, i) => out.push(-lp[i]![ids[s + i + 1]!]!));
    }
    return out;
  }

  function referenceNlls(logits: Float64Array[]): number[] {
    return logits.slice(0, ids.length - 1).map((row, i) => {
      const m = Math.max(...row);
      const z = Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) + m;
      return z - row[ids[i + 1]!]!;
    });
  }

  for (const parallel of [true, false]) {
    t.test(`gpt_neox (use_parallel_residual ${parallel}) against the reference`, async (t) => {
      const before = tf.memory().numTensors;
      const config = neoxConfig(parallel);
      const tensors = randomTensors(`neox-${parallel}`, neoxTensorShapes(config));
      const dir = tempDir();
      writeHfDir(dir, config, tensors);
      const spec = readHfConfig(dir);
      t.equal(spec.config.rope.rotaryDim, 4);
      t.equal(spec.config.rope.layout, 'halves');
      t.equal(spec.config.parallelResidual, parallel);
      const model = loadModel(dir);

      const cache = new DenseCache(cacheShape(model.config));
      const logits = forward(model, ids.slice(0, 16), cache);
      const ref = hfReferenceLogits(config, tensors, ids.slice(0, 16));
      const d = maxAbsDiff(
        logits.dataSync(),
        ref.flatMap((row) => Array.from(row)),
      );
      t.ok(d < 2e-5, `dense logits: max |diff| ${d}`);
      logits.dispose();
      cache.dispose();

      // Streaming with 2 sinks and a window of 8 over 40 tokens: evictions from token 10 on.
      const S = 2;
      const W = 8;
      const visible = (i: number) => {
        const list: number[] = [];
        for (let j = 0; j <= i; j++) if (j < S || j > i - W) list.push(j);
        return list;
      };
      const expected = referenceNlls(hfReferenceLogits(config, tensors, ids, visible));
      for (const block of [1, 3, 16]) {
        const streaming = new StreamingCache(S, W, cacheShape(model.config));
        const got = nlls(model, streaming, block);
        streaming.dispose();
        const e = maxAbsDiff(got, expected);
        t.ok(e < 2e-5, `streaming(2+8) NLLs in blocks of ${block} vs re-encoded reference: max |diff| ${e}`);
      }
      disposeModel(model);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    });
  }

  t.test('gpt_neox config: defaults and refusals', async (t) => {
    const dir = tempDir();
    const read = (patch: Record<string, unknown>) => {
      const config: Record<string, unknown> = { ...neoxConfig(true), ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete config[k];
      writeHfDir(dir, config, new Map());
      return readHfConfig(dir);
    };
    const d = read({ rotary_pct: undefined, use_parallel_residual: undefined, layer_norm_eps: undefined, hidden_act: undefined });
    t.equal(d.config.rope.rotaryDim, 2, 'rotary_pct defaults to 0.25');
    t.equal(d.config.parallelResidual, true);
    t.equal(d.config.normEps, 1e-5);
    t.same(d.config.bias, { qkv: true, out: true, mlp: true });
    t.equal(read({ partial_rotary_factor: 1, rotary_pct: undefined }).config.rope.rotaryDim, 8, 'newer transformers name');
    t.equal(read({ rope_theta: 500, rotary_emb_base: undefined }).config.rope.theta, 500);
    t.same(read({ attention_bias: false }).config.bias, { qkv: false, out: false, mlp: true });
    t.throws(() => read({ hidden_act: 'gelu_new' }), /hidden_act "gelu_new" is not supported for gpt_neox \(supported: gelu\)/);
    t.throws(() => read({ rotary_pct: 0.1 }), /rotary dimension 0 must be even/);
    t.throws(() => read({ rotary_pct: 2 }), /field "rotary_pct" must be a number in \(0, 1\]/);
  });
}
