// GPT-NeoX (Pythia) directories: fused per-head query_key_value, partial
// rotary in the halves layout, LayerNorm with bias, exact GELU, parallel and
// sequential residuals, against the float64 reference of transformers'
// forward; a streaming cache run gives the same NLLs stepwise and in
// blocks, and matches the reference with positions re-encoded in the cache.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import { StreamingCache } from '../src/cache/streaming.js';
import type { KVCache } from '../src/cache/types.js';
import { readHfConfig } from '../src/checkpoint/hf_config.js';
import { cacheShape } from '../src/model/config.js';
import { loadModel } from '../src/model/load.js';
import { forward } from '../src/model/transformer.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { neoxTensorShapes, randomTensors, rng, tempDir, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();

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
