// Tiny random checkpoints for the Hugging Face tests, written by the tests
// themselves (no real model is available here). The HF tensors are derived
// from llama2.c's with the q/k permutation written out from its definition
// in the conversion scripts, independently of src/model/to_hf.ts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import type { LlamaShape, LlamaTensors } from '../src/checkpoint/llama2c.js';
import { type FloatDtype, SafetensorsReader, type TensorToWrite, writeSafetensors } from '../src/checkpoint/safetensors.js';

export type Rng = () => number;

export function rng(seed: string): Rng {
  return seedrandom(seed);
}

/** n values uniform in [-scale, scale). */
export function randomArray(r: Rng, n: number, scale = 0.5): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * r() - 1) * scale;
  return a;
}

export function randomLlama2c(shape: LlamaShape, seed: string): LlamaTensors {
  const r = rng(seed);
  const { dim, hiddenDim, layers: L, heads, kvHeads, vocabSize } = shape;
  const kvDim = (dim * kvHeads) / heads;
  const norm = (n: number) => Float32Array.from(randomArray(r, n, 0.2), (v) => 1 + v);
  const t: LlamaTensors = {
    shape,
    tokenEmbedding: randomArray(r, vocabSize * dim),
    rmsAtt: norm(L * dim),
    wq: randomArray(r, L * dim * dim, 0.3),
    wk: randomArray(r, L * kvDim * dim, 0.3),
    wv: randomArray(r, L * kvDim * dim, 0.3),
    wo: randomArray(r, L * dim * dim, 0.3),
    rmsFfn: norm(L * dim),
    w1: randomArray(r, L * hiddenDim * dim, 0.3),
    w2: randomArray(r, L * dim * hiddenDim, 0.3),
    w3: randomArray(r, L * hiddenDim * dim, 0.3),
    rmsFinal: norm(dim),
  };
  if (!shape.sharedClassifier) t.classifier = randomArray(r, vocabSize * dim);
  return t;
}

/**
 * Meta/llama2.c q,k rows (adjacent RoPE pairs) -> Hugging Face rows (halves),
 * as in convert_llama_weights_to_hf.py:
 *   w.view(heads, headDim / 2, 2, in).transpose(1, 2).reshape(heads * headDim, in)
 */
export function permuteToHalves(w: Float32Array, heads: number, headDim: number, inDim: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * inDim; // view index [h, i, j]
        const dst = (h * headDim + j * half + i) * inDim; // after transpose [h, j, i]
        out.set(w.subarray(src, src + inDim), dst);
      }
    }
  }
  return out;
}

export type TensorMap = Map<string, { shape: number[]; values: Float32Array }>;

/** The HF Llama tensors of a llama2.c checkpoint. */
export function llama2cToHf(t: LlamaTensors): TensorMap {
  const s = t.shape;
  const { dim, hiddenDim, heads, kvHeads, vocabSize } = s;
  const headDim = dim / heads;
  const kvDim = kvHeads * headDim;
  const m: TensorMap = new Map();
  const put = (name: string, shape: number[], values: Float32Array) => m.set(name, { shape, values });
  const slab = (a: Float32Array, l: number, size: number) => a.slice(l * size, (l + 1) * size);
  put('model.embed_tokens.weight', [vocabSize, dim], t.tokenEmbedding);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    put(`${p}input_layernorm.weight`, [dim], slab(t.rmsAtt, l, dim));
    put(`${p}self_attn.q_proj.weight`, [dim, dim], permuteToHalves(slab(t.wq, l, dim * dim), heads, headDim, dim));
    put(`${p}self_attn.k_proj.weight`, [kvDim, dim], permuteToHalves(slab(t.wk, l, kvDim * dim), kvHeads, headDim, dim));
    put(`${p}self_attn.v_proj.weight`, [kvDim, dim], slab(t.wv, l, kvDim * dim));
    put(`${p}self_attn.o_proj.weight`, [dim, dim], slab(t.wo, l, dim * dim));
    put(`${p}post_attention_layernorm.weight`, [dim], slab(t.rmsFfn, l, dim));
    put(`${p}mlp.gate_proj.weight`, [hiddenDim, dim], slab(t.w1, l, hiddenDim * dim));
    put(`${p}mlp.down_proj.weight`, [dim, hiddenDim], slab(t.w2, l, dim * hiddenDim));
    put(`${p}mlp.up_proj.weight`, [hiddenDim, dim], slab(t.w3, l, hiddenDim * dim));
  }
  put('model.norm.weight', [dim], t.rmsFinal);
  if (t.classifier) put('lm_head.weight', [vocabSize, dim], t.classifier);
  return m;
}

/** config.json of the HF Llama equivalent of a llama2.c shape. */
export function llamaConfigJson(s: LlamaShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.dim,
    intermediate_size: s.hiddenDim,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    vocab_size: s.vocabSize,
    max_position_embeddings: s.maxSeqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: s.sharedClassifier,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
}

export function toWrite(m: TensorMap): TensorToWrite[] {
  return [...m].map(([name, { shape, values }]) => ({ name, shape, values }));
}

/** Write DIR/config.json and DIR/model.safetensors. */
export function writeHfDir(dir: string, config: Record<string, unknown>, tensors: TensorMap, dtype: FloatDtype = 'F32'): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), toWrite(tensors), { dtype });
}

/** Read DIR/config.json and every tensor of DIR's safetensors back (float32), as the reference loops take them. */
export function readHfDir(dir: string): { config: Record<string, unknown>; tensors: TensorMap } {
  const reader = SafetensorsReader.open(dir);
  const tensors: TensorMap = new Map([...reader.tensors.values()].map((e) => [e.name, { shape: e.shape, values: reader.read(e.name) }]));
  return { config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>, tensors };
}

/** Random tensors of the given names and shapes; names ending in "norm.weight" or "layernorm.weight" get values near 1. */
export function randomTensors(seed: string, shapes: [string, number[]][]): TensorMap {
  const r = rng(seed);
  const m: TensorMap = new Map();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm\.weight$/.test(name);
    const values = isNorm ? Float32Array.from(randomArray(r, n, 0.2), (v) => 1 + v) : randomArray(r, n, 0.4);
    m.set(name, { shape, values });
  }
  return m;
}

/** Names and shapes of an HF llama-family checkpoint for `config` (a config.json object). */
export function llamaTensorShapes(
  config: Record<string, unknown>,
  opts: { qkvBias?: boolean; outBias?: boolean; mlpBias?: boolean } = {},
): [string, number[]][] {
  const dim = config.hidden_size as number;
  const H = config.num_attention_heads as number;
  const KV = (config.num_key_value_heads as number | undefined) ?? H;
  const hd = (config.head_dim as number | undefined) ?? dim / H;
  const hidden = config.intermediate_size as number;
  const V = config.vocab_size as number;
  const list: [string, number[]][] = [['model.embed_tokens.weight', [V, dim]]];
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    list.push([`${p}input_layernorm.weight`, [dim]]);
    for (const [n, rows] of [
      ['q', H * hd],
      ['k', KV * hd],
      ['v', KV * hd],
    ] as [string, number][]) {
      list.push([`${p}self_attn.${n}_proj.weight`, [rows, dim]]);
      if (opts.qkvBias) list.push([`${p}self_attn.${n}_proj.bias`, [rows]]);
    }
    list.push([`${p}self_attn.o_proj.weight`, [dim, H * hd]]);
    if (opts.outBias) list.push([`${p}self_attn.o_proj.bias`, [dim]]);
    list.push([`${p}post_attention_layernorm.weight`, [dim]]);
    for (const n of ['gate', 'up']) {
      list.push([`${p}mlp.${n}_proj.weight`, [hidden, dim]]);
      if (opts.mlpBias) list.push([`${p}mlp.${n}_proj.bias`, [hidden]]);
    }
    list.push([`${p}mlp.down_proj.weight`, [dim, hidden]]);
    if (opts.mlpBias) list.push([`${p}mlp.down_proj.bias`, [dim]]);
  }
  list.push(['model.norm.weight', [dim]]);
  if (!config.tie_word_embeddings) list.push(['lm_head.weight', [V, dim]]);
  return list;
}

/** Names and shapes of an HF GPT-NeoX checkpoint for `config`. */
export function neoxTensorShapes(config: Record<string, unknown>): [string, number[]][] {
  const dim = config.hidden_size as number;
  const hidden = config.intermediate_size as number;
  const V = config.vocab_size as number;
  const list: [string, number[]][] = [['gpt_neox.embed_in.weight', [V, dim]]];
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `gpt_neox.layers.${l}.`;
    for (const n of ['input_layernorm', 'post_attention_layernorm']) list.push([`${p}${n}.weight`, [dim]], [`${p}${n}.bias`, [dim]]);
    list.push([`${p}attention.query_key_value.weight`, [3 * dim, dim]], [`${p}attention.query_key_value.bias`, [3 * dim]]);
    list.push([`${p}attention.dense.weight`, [dim, dim]], [`${p}attention.dense.bias`, [dim]]);
    list.push([`${p}mlp.dense_h_to_4h.weight`, [hidden, dim]], [`${p}mlp.dense_h_to_4h.bias`, [hidden]]);
    list.push([`${p}mlp.dense_4h_to_h.weight`, [dim, hidden]], [`${p}mlp.dense_4h_to_h.bias`, [dim]]);
  }
  list.push(['gpt_neox.final_layer_norm.weight', [dim]], ['gpt_neox.final_layer_norm.bias', [dim]]);
  if (!config.tie_word_embeddings) list.push(['embed_out.weight', [V, dim]]);
  return list;
}
