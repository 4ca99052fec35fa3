// Saving an engine Model as a Hugging Face Llama directory: the format our
// trained models ship in (see src/checkpoint/hf_config.ts for config.json).
//
//   DIR/config.json        model_type "llama" (or "qwen2"), plus "streamllm": {softmax, sink_token}
//   DIR/model.safetensors  HF names (see from_hf.ts), matrices [out, in], q/k in the halves RoPE layout
//
// The inverse of from_hf.ts: fused weights are split and transposed back,
// and a model in the pairs layout (llama2.c) has its q and k rows permuted
// to halves, as Meta's and llama2.c's conversion scripts do. The extra
// tensors `model.layers.N.self_attn.sinks` and `model.sink_embedding` are
// ignored by transformers (it warns about unused weights); everything else
// loads there as a plain Llama.
import type * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILE, hfConfigJson } from '../checkpoint/hf_config.js';
import { SINGLE_FILE, type FloatDtype, type TensorToWrite, writeSafetensors } from '../checkpoint/safetensors.js';
import { ConfigError } from '../errors.js';
import { writeFileAtomic } from '../outputs.js';
import { classifierTensor, type Linear, type Model, weightTensor } from './weights.js';
import { learnsExtraLogit } from '../../kernels/softmax.js';

/**
 * Row r of an HF (halves) q or k projection is row pairsRow(r) of the same
 * projection in the pairs layout: within each head, HF's channel j*half + i
 * is the pairs layout's channel 2i + j.
 */
export function pairsRow(r: number, headDim: number): number {
  const head = Math.floor(r / headDim);
  const c = r % headDim;
  const half = headDim / 2;
  return head * headDim + 2 * (c % half) + Math.floor(c / half);
}

/** Columns [col0, col0 + rows) of an [in, total] matrix, transposed: [rows, in], with row r taken from column col0 + rowOf(r). */
function columnsTransposed(w: Float32Array, inDim: number, total: number, col0: number, rows: number, rowOf = (r: number) => r): Float32Array {
  const out = new Float32Array(rows * inDim);
  for (let r = 0; r < rows; r++) {
    const col = col0 + rowOf(r);
    for (let i = 0; i < inDim; i++) out[r * inDim + i] = w[i * total + col]!;
  }
  return out;
}

/** True when the classifier [dim, vocab] is exactly the embedding [vocab, dim] transposed. */
function classifierIsTied(model: Model): boolean {
  const { embedding } = model.weights;
  const classifier = classifierTensor(model.weights);
  const [vocab, dim] = embedding.shape;
  const e = embedding.dataSync();
  const c = classifier.dataSync();
  for (let v = 0; v < vocab; v++) {
    for (let d = 0; d < dim; d++) if (e[v * dim + d] !== c[d * vocab + v]) return false;
  }
  return true;
}

export interface SaveOptions {
  /** Storage dtype (default F32). */
  dtype?: FloatDtype;
}

/**
 * Write `model` to DIR (created if needed) as config.json + model.safetensors.
 * `extraConfig` keys are merged into config.json last (e.g. bos_token_id,
 * training metadata). Embeddings are saved tied when the classifier equals
 * the embedding exactly, unless extraConfig.tie_word_embeddings says
 * otherwise. Each file is written to a temporary name and renamed.
 */
export function saveHfModel(dir: string, model: Model, extraConfig: Record<string, unknown> = {}, options: SaveOptions = {}): void {
  const c = model.config;
  const w = model.weights;
  const requested = extraConfig.tie_word_embeddings;
  if (requested !== undefined && typeof requested !== 'boolean') throw new ConfigError('saveHfModel: extraConfig.tie_word_embeddings must be a boolean');
  const tied = requested ?? classifierIsTied(model);
  if (requested === true && !classifierIsTied(model)) {
    throw new ConfigError('saveHfModel: tie_word_embeddings true, but the classifier differs from the embedding');
  }
  const json = { ...hfConfigJson(c, tied), ...extraConfig };
  const { dim, hiddenDim, heads, kvHeads, headDim, vocabSize } = c;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  // q and k rows, saved in the halves layout whatever the engine's layout.
  const ropeRow = c.rope.layout === 'pairs' ? (r: number) => pairsRow(r, headDim) : undefined;

  // The last tensor read back from the backend, kept while its parts are written.
  let cached: { t: tf.Tensor; data: Float32Array } | undefined;
  const dataOf = (t: tf.Tensor): Float32Array => {
    if (cached?.t !== t) cached = { t, data: t.dataSync() as Float32Array };
    return cached.data;
  };
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], values: () => Float32Array) => tensors.push({ name, shape, values });
  /** Part [col0, col0 + rows) of a fused linear layer, as an HF [rows, in] weight and [rows] bias. */
  const addLinear = (name: string, linear: Linear, col0: number, rows: number, rowOf?: (r: number) => number) => {
    const weight = weightTensor(linear);
    const [inDim, total] = weight.shape;
    add(`${name}.weight`, [rows, inDim], () => columnsTransposed(dataOf(weight), inDim, total, col0, rows, rowOf));
    const bias = linear.bias;
    if (bias !== undefined) add(`${name}.bias`, [rows], () => columnsTransposed(dataOf(bias), 1, total, col0, rows, rowOf));
  };
  const addVector = (name: string, t: tf.Tensor) => add(name, [t.size], () => dataOf(t));

  add('model.embed_tokens.weight', [vocabSize, dim], () => dataOf(w.embedding));
  w.layers.forEach((l, n) => {
    const p = `model.layers.${n}.`;
    addVector(`${p}input_layernorm.weight`, l.attnNorm.weight);
    addLinear(`${p}self_attn.q_proj`, l.qkv, 0, qDim, ropeRow);
    addLinear(`${p}self_attn.k_proj`, l.qkv, qDim, kvDim, ropeRow);
    addLinear(`${p}self_attn.v_proj`, l.qkv, qDim + kvDim, kvDim);
    addLinear(`${p}self_attn.o_proj`, l.out, 0, dim);
    if (learnsExtraLogit(c.softmax)) {
      if (l.sinkLogits === undefined) throw new ConfigError(`saveHfModel: layer ${n} has no sink logits for the learned-sink softmax`);
      addVector(`${p}self_attn.sinks`, l.sinkLogits);
    }
    addVector(`${p}post_attention_layernorm.weight`, l.mlpNorm.weight);
    addLinear(`${p}mlp.gate_proj`, l.up, 0, hiddenDim);
    addLinear(`${p}mlp.up_proj`, l.up, hiddenDim, hiddenDim);
    addLinear(`${p}mlp.down_proj`, l.down, 0, dim);
  });
  addVector('model.norm.weight', w.finalNorm.weight);
  if (!tied) addLinear('lm_head', { weight: w.classifier }, 0, vocabSize);
  if (c.sinkToken) {
    if (w.sinkEmbedding === undefined) throw new ConfigError('saveHfModel: sinkToken model without a sink embedding');
    addVector('model.sink_embedding', w.sinkEmbedding);
  }

  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, SINGLE_FILE), tensors, { dtype: options.dtype ?? 'F32', metadata: { format: 'pt' } });
  const configFile = join(dir, CONFIG_FILE);
  writeFileAtomic(configFile, `${JSON.stringify(json, null, 2)}\n`);
}
