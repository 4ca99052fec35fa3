// A plain-TypeScript, float64, token-by-token forward pass over Hugging Face
// tensors as named in the checkpoint, following transformers' modeling
// code line by line (LlamaForCausalLM / Qwen2 / GPTNeoXForCausalLM), with
// dense causal attention. It reads config.json and the [out, in] tensors
// itself, so it shares nothing with src/model/from_hf.ts or the engine's
// fused layout. Tests only.
//
// With `visible`, token t attends to the listed stream indices only (per
// layer and kv head, when a policy evicts per head), with positions
// re-encoded inside that list (StreamingLLM's Section 3.2): the i-th visible
// key is rotated to position i and the query to n-1. Keys are kept unrotated
// for that. It is asked once per token, layer and kv head, in that order,
// before the token attends; `observe` then sees each head's probabilities.
import { erfcReference } from '../kernels/gelu.ref.js';
import { extraLogitOf, type SoftmaxVariant } from '../kernels/softmax.js';
import type { TensorMap } from './tiny_checkpoints.js';

type Vec = Float64Array;
/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = Record<string, any>;

/** W [out, in] @ x (+ b); outDim given where in may be 0 (an attention-only layer's MLP) */
function linear(x: Vec, w: Float32Array, b?: Float32Array, outDim = w.length / x.length): Vec {
  const inDim = x.length;
  const out = new Float64Array(outDim);
  for (let o = 0; o < out.length; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < inDim; i++) s += w[o * inDim + i]! * x[i]!;
    out[o] = s;
  }
  return out;
}

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]!);
}

function layerNorm(x: Vec, w: Float32Array, b: Float32Array, eps: number): Vec {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i]! + b[i]!);
}

/** transformers' apply_rotary_pos_emb on the first `rotary` channels of one head (rotate_half). */
function rotate(v: Vec, pos: number, rotary: number, theta: number, scale: number): Vec {
  const out = Float64Array.from(v);
  const half = rotary / 2;
  for (let i = 0; i < half; i++) {
    const angle = (pos / scale) * (1 / theta ** ((2 * i) / rotary));
    const [c, s] = [Math.cos(angle), Math.sin(angle)];
    out[i] = v[i]! * c - v[i + half]! * s;
    out[i + half] = v[i + half]! * c + v[i]! * s;
  }
  return out;
}

const silu = (g: number) => g / (1 + Math.exp(-g));
const gelu = (x: number) => 0.5 * x * erfcReference(-x / Math.SQRT2);

/** Sees the probabilities of head `head` of layer `layer` for the token at `position`, over its visible keys in order, and their scaled scores q·k/sqrt(d). */
export type ReferenceObserver = (layer: number, position: number, head: number, probs: Vec, scores: Vec) => void;

/** Logits [ids.length][vocab] of a dense causal pass; id -1 is the learned sink token. */
export function hfReferenceLogits(
  config: Json,
  tensors: TensorMap,
  ids: number[],
  visible?: (t: number, layer: number, kvHead: number) => number[],
  observe?: ReferenceObserver,
): Vec[] {
  const get = (name: string) => {
    const t = tensors.get(name);
    if (t === undefined) throw new Error(`reference: no tensor ${name}`);
    return t.values;
  };
  const maybe = (name: string) => tensors.get(name)?.values;
  const neox = config.model_type === 'gpt_neox';
  const dim: number = config.hidden_size;
  const H: number = config.num_attention_heads;
  const KV: number = neox ? H : (config.num_key_value_heads ?? H);
  const hd: number = config.head_dim ?? dim / H;
  const rotary = neox ? Math.floor(hd * (config.rotary_pct ?? 0.25)) : hd;
  const theta: number = neox ? (config.rotary_emb_base ?? 10000) : (config.rope_theta ?? 10000);
  const scale: number = config.rope_scaling?.factor ?? 1;
  const eps: number = neox ? (config.layer_norm_eps ?? 1e-5) : (config.rms_norm_eps ?? 1e-6);
  const softmax: SoftmaxVariant = config.streamllm?.softmax ?? 'softmax';
  const embedName = neox ? 'gpt_neox.embed_in.weight' : 'model.embed_tokens.weight';
  const embed = get(embedName);
  const head = config.tie_word_embeddings ? embed : get(neox ? 'embed_out.weight' : 'lm_head.weight');
  const keys: Vec[][][] = []; // [layer][position][kvHead], not rotated
  const values: Vec[][][] = [];
  const logits: Vec[] = [];

  const attention = (l: number, pos: number, qRaw: Vec[], sinks?: Float32Array): Vec => {
    // Each kv head may see its own list (a policy that evicts per kv head).
    const seenOf = Array.from({ length: KV }, (_, g) => (visible ? visible(pos, l, g) : Array.from({ length: pos + 1 }, (_, j) => j)));
    const out = new Float64Array(H * hd);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KV));
      const seen = seenOf[kvh]!;
      const n = seen.length;
      // Dense: stream positions; otherwise positions re-encoded within the visible list.
      const at = (i: number) => (visible ? i : seen[i]!);
      const q = rotate(qRaw[h]!, at(n - 1), rotary, theta, scale);
      const k = seen.map((j, i) => rotate(keys[l]![j]![kvh]!, at(i), rotary, theta, scale));
      const scores = k.map((kj) => q.reduce((a, v, c) => a + v * kj[c]!, 0) / Math.sqrt(hd));
      const extra = extraLogitOf(softmax, h, sinks);
      const m = Math.max(extra, ...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0) + Math.exp(extra - m);
      observe?.(
        l,
        pos,
        h,
        Float64Array.from(e, (p) => p / z),
        Float64Array.from(scores),
      );
      e.forEach((p, j) => {
        const v = values[l]![seen[j]!]![kvh]!;
        for (let c = 0; c < hd; c++) out[h * hd + c]! += (p / z) * v[c]!;
      });
    }
    return out;
  };

  ids.forEach((id, pos) => {
    let x: Vec =
      id === -1
        ? Float64Array.from(get(neox ? 'gpt_neox.sink_embedding' : 'model.sink_embedding'))
        : Float64Array.from(embed.subarray(id * dim, (id + 1) * dim));
    for (let l = 0; l < config.num_hidden_layers; l++) {
      keys[l] ??= [];
      values[l] ??= [];
      if (neox) {
        const p = `gpt_neox.layers.${l}.`;
        const n1 = layerNorm(x, get(`${p}input_layernorm.weight`), get(`${p}input_layernorm.bias`), eps);
        // qkv.view(heads, 3 * head_size): per head q, k, v side by side
        const qkv = linear(n1, get(`${p}attention.query_key_value.weight`), maybe(`${p}attention.query_key_value.bias`));
        const part = (h: number, j: number) => qkv.slice(h * 3 * hd + j * hd, h * 3 * hd + (j + 1) * hd);
        const q = Array.from({ length: H }, (_, h) => part(h, 0));
        keys[l]![pos] = Array.from({ length: H }, (_, h) => part(h, 1));
        values[l]![pos] = Array.from({ length: H }, (_, h) => part(h, 2));
        const attn = linear(attention(l, pos, q, maybe(`${p}attention.sinks`)), get(`${p}attention.dense.weight`), maybe(`${p}attention.dense.bias`));
        const mlp = (v: Vec) => {
          const n2 = layerNorm(v, get(`${p}post_attention_layernorm.weight`), get(`${p}post_attention_layernorm.bias`), eps);
          const up = linear(n2, get(`${p}mlp.dense_h_to_4h.weight`), get(`${p}mlp.dense_h_to_4h.bias`)).map(gelu);
          return linear(up, get(`${p}mlp.dense_4h_to_h.weight`), get(`${p}mlp.dense_4h_to_h.bias`));
        };
        if (config.use_parallel_residual ?? true) {
          const m = mlp(x);
          x = x.map((v, i) => v + attn[i]! + m[i]!);
        } else {
          x = x.map((v, i) => v + attn[i]!);
          const m = mlp(x);
          x = x.map((v, i) => v + m[i]!);
        }
      } else {
        const p = `model.layers.${l}.self_attn.`;
        const n1 = rmsNorm(x, get(`model.layers.${l}.input_layernorm.weight`), eps);
        const qAll = linear(n1, get(`${p}q_proj.weight`), maybe(`${p}q_proj.bias`));
        const kAll = linear(n1, get(`${p}k_proj.weight`), maybe(`${p}k_proj.bias`));
        const vAll = linear(n1, get(`${p}v_proj.weight`), maybe(`${p}v_proj.bias`));
        const q = Array.from({ length: H }, (_, h) => qAll.slice(h * hd, (h + 1) * hd));
        keys[l]![pos] = Array.from({ length: KV }, (_, h) => kAll.slice(h * hd, (h + 1) * hd));
        values[l]![pos] = Array.from({ length: KV }, (_, h) => vAll.slice(h * hd, (h + 1) * hd));
        const attn = linear(attention(l, pos, q, maybe(`${p}sinks`)), get(`${p}o_proj.weight`), maybe(`${p}o_proj.bias`));
        x = x.map((v, i) => v + attn[i]!);
        const m = `model.layers.${l}.mlp.`;
        const n2 = rmsNorm(x, get(`model.layers.${l}.post_attention_layernorm.weight`), eps);
        const gate = linear(n2, get(`${m}gate_proj.weight`), maybe(`${m}gate_proj.bias`));
        const up = linear(n2, get(`${m}up_proj.weight`), maybe(`${m}up_proj.bias`));
        const down = linear(
          gate.map((g, i) => silu(g) * up[i]!),
          get(`${m}down_proj.weight`),
          maybe(`${m}down_proj.bias`),
          x.length,
        );
        x = x.map((v, i) => v + down[i]!);
      }
    }
    const final = neox
      ? layerNorm(x, get('gpt_neox.final_layer_norm.weight'), get('gpt_neox.final_layer_norm.bias'), eps)
      : rmsNorm(x, get('model.norm.weight'), eps);
    logits.push(linear(final, head));
  });
  return logits;
}
