// Hugging Face `config.json` <-> the engine's ModelConfig.
//
// Supported `model_type`s and what they switch on:
//   llama     RMSNorm, SwiGLU, halves RoPE; optional attention_bias / mlp_bias
//   mistral   as llama (sliding_window is not applied: see `notes`)
//   qwen2     as llama with biases on q, k and v
//   gpt_neox  LayerNorm with bias, exact-erf GELU MLP, partial rotary
//             (rotary_pct of each head, halves layout), parallel residual,
//             one fused query_key_value projection
// All take `rope_scaling` {type: "linear", factor} and `tie_word_embeddings`.
// Defaults for absent optional fields are those of the transformers config
// classes. Our own models add a "streamllm" object: {"softmax": variant,
// "sink_token": boolean}.
import { join } from 'node:path';
import { SOFTMAX_VARIANTS, type SoftmaxVariant } from '../../kernels/softmax.js';
import { ConfigError, FileFormatError } from '../errors.js';
import { type ModelConfig, validateConfig } from '../model/config.js';
import { readJsonFile } from '../files.js';

export const HF_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gpt_neox'] as const;
export type HfModelType = (typeof HF_MODEL_TYPES)[number];

export const CONFIG_FILE = 'config.json';

export interface HfModelSpec {
  modelType: HfModelType;
  config: ModelConfig;
  /** The classifier is the embedding table (no separate lm_head / embed_out tensor). */
  tiedEmbeddings: boolean;
  bosTokenId?: number;
  eosTokenId?: number;
  /** Options read but not applied, for the CLI to show. */
  notes: string[];
}

/** Typed access to config.json fields; every failure names the file and the field. */
class Fields {
  constructor(
    private readonly json: Record<string, unknown>,
    private readonly file: string,
  ) {}

  private fail(name: string, expected: string): never {
    const v = this.json[name];
    if (v === undefined) throw new ConfigError(`${this.file}: missing field "${name}" (${expected})`);
    throw new ConfigError(`${this.file}: field "${name}" must be ${expected}, got ${JSON.stringify(v)}`);
  }

  has(name: string): boolean {
    return this.json[name] !== undefined && this.json[name] !== null;
  }

  positiveInt(name: string, fallback?: number): number {
    const v = this.has(name) ? this.json[name] : fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(name, 'a positive integer');
    return v;
  }

  nonNegativeInt(name: string): number {
    const v = this.json[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(name, 'a non-negative integer');
    return v;
  }

  positive(name: string, fallback?: number): number {
    const v = this.has(name) ? this.json[name] : fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) this.fail(name, 'a positive number');
    return v;
  }

  fraction(name: string, fallback: number): number {
    const v = this.has(name) ? this.json[name] : fallback;
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) this.fail(name, 'a number in (0, 1]');
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.has(name) ? this.json[name] : fallback;
    if (typeof v !== 'boolean') this.fail(name, 'true or false');
    return v;
  }

  str(name: string, fallback: string): string {
    const v = this.has(name) ? this.json[name] : fallback;
    if (typeof v !== 'string') this.fail(name, 'a string');
    return v;
  }

  /** A token id, or the first of a list of them (eos_token_id may be a list). */
  tokenId(name: string): number | undefined {
    const v = this.json[name];
    const id = Array.isArray(v) ? v[0] : v;
    return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
  }

  raw(name: string): unknown {
    return this.json[name];
  }
}

/** Linear position scale from `rope_scaling`, the one scaling type supported. */
function ropeScale(f: Fields, file: string): number {
  const rs = f.raw('rope_scaling');
  if (rs === undefined || rs === null) return 1;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw new ConfigError(`${file}: field "rope_scaling" must be an object or null`);
  const r = rs as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return 1;
  if (type !== 'linear') {
    throw new ConfigError(`${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: linear, default)`);
  }
  if (typeof r.factor !== 'number' || !(r.factor > 0)) throw new ConfigError(`${file}: rope_scaling.factor must be a positive number`);
  return r.factor;
}

/** Our "streamllm" object: the attention-sink variant a model was trained with. */
function streamllmOptions(f: Fields, file: string): { softmax: SoftmaxVariant; sinkToken: boolean } {
  const s = f.raw('streamllm');
  if (s === undefined || s === null) return { softmax: 'softmax', sinkToken: false };
  if (typeof s !== 'object' || Array.isArray(s)) throw new ConfigError(`${file}: field "streamllm" must be an object`);
  const o = s as Record<string, unknown>;
  const softmax = o.softmax ?? 'softmax';
  if (typeof softmax !== 'string' || !(SOFTMAX_VARIANTS as readonly string[]).includes(softmax)) {
    throw new ConfigError(`${file}: streamllm.softmax ${JSON.stringify(softmax)} is not one of ${SOFTMAX_VARIANTS.join(', ')}`);
  }
  const sinkToken = o.sink_token ?? false;
  if (typeof sinkToken !== 'boolean') throw new ConfigError(`${file}: streamllm.sink_token must be true or false`);
  return { softmax: softmax as SoftmaxVariant, sinkToken };
}

function requireActivation(f: Fields, file: string, modelType: string, fallback: string, supported: string): void {
  const act = f.str('hidden_act', fallback);
  if (act !== supported) throw new ConfigError(`${file}: hidden_act "${act}" is not supported for ${modelType} (supported: ${supported})`);
}

function llamaFamily(f: Fields, file: string, modelType: 'llama' | 'mistral' | 'qwen2', notes: string[]): Omit<HfModelSpec, 'modelType' | 'notes'> {
  requireActivation(f, file, modelType, 'silu', 'silu');
  const dim = f.positiveInt('hidden_size');
  const heads = f.positiveInt('num_attention_heads');
  if (!f.has('head_dim') && dim % heads !== 0) {
    throw new ConfigError(`${file}: num_attention_heads (${heads}) must divide hidden_size (${dim}) when head_dim is not given`);
  }
  const headDim = f.positiveInt('head_dim', dim / heads);
  if (modelType === 'qwen2' && f.bool('use_sliding_window', false)) {
    throw new ConfigError(`${file}: use_sliding_window true is not supported (supported: false)`);
  }
  if (modelType === 'mistral' && f.has('sliding_window')) {
    notes.push(`sliding_window ${String(f.raw('sliding_window'))} is not applied: dense attention beyond it differs from the reference`);
  }
  const attentionBias = modelType === 'qwen2' || f.bool('attention_bias', false);
  const { softmax, sinkToken } = streamllmOptions(f, file);
  return {
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    config: {
      family: 'llama',
      dim,
      hiddenDim: f.nonNegativeInt('intermediate_size'),
      layers: f.positiveInt('num_hidden_layers'),
      heads,
      kvHeads: f.positiveInt('num_key_value_heads', heads),
      headDim,
      vocabSize: f.positiveInt('vocab_size'),
      maxSeqLen: f.positiveInt('max_position_embeddings', { llama: 2048, mistral: 131072, qwen2: 32768 }[modelType]),
      norm: 'rmsnorm',
      normEps: f.positive('rms_norm_eps', 1e-6),
      mlp: 'swiglu',
      parallelResidual: false,
      rope: { theta: f.positive('rope_theta', 10000), layout: 'halves', rotaryDim: headDim, scale: ropeScale(f, file) },
      // Qwen2 has biases on q, k, v only; llama's attention_bias puts them on the output too.
      bias: { qkv: attentionBias, out: modelType !== 'qwen2' && attentionBias, mlp: modelType === 'llama' && f.bool('mlp_bias', false) },
      softmax,
      sinkToken,
    },
  };
}

function gptNeoX(f: Fields, file: string): Omit<HfModelSpec, 'modelType' | 'notes'> {
  requireActivation(f, file, 'gpt_neox', 'gelu', 'gelu');
  const dim = f.positiveInt('hidden_size');
  const heads = f.positiveInt('num_attention_heads');
  if (dim % heads !== 0) throw new ConfigError(`${file}: num_attention_heads (${heads}) must divide hidden_size (${dim})`);
  const headDim = dim / heads;
  // transformers: rotary_ndims = int(head_size * rotary_pct) (newer releases call it partial_rotary_factor).
  const pct = f.has('partial_rotary_factor') ? f.fraction('partial_rotary_factor', 1) : f.fraction('rotary_pct', 0.25);
  const rotaryDim = Math.floor(headDim * pct);
  const theta = f.has('rope_theta') ? f.positive('rope_theta') : f.positive('rotary_emb_base', 10000);
  const bias = f.bool('attention_bias', true);
  const { softmax, sinkToken } = streamllmOptions(f, file);
  return {
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    config: {
      family: 'gpt_neox',
      dim,
      hiddenDim: f.positiveInt('intermediate_size'),
      layers: f.positiveInt('num_hidden_layers'),
      heads,
      kvHeads: heads,
      headDim,
      vocabSize: f.positiveInt('vocab_size'),
      maxSeqLen: f.positiveInt('max_position_embeddings', 2048),
      norm: 'layernorm',
      normEps: f.positive('layer_norm_eps', 1e-5),
      mlp: 'gelu',
      parallelResidual: f.bool('use_parallel_residual', true),
      rope: { theta, layout: 'halves', rotaryDim, scale: ropeScale(f, file) },
      bias: { qkv: bias, out: bias, mlp: true },
      softmax,
      sinkToken,
    },
  };
}

/** Interpret a parsed config.json; `file` names it in errors. */
export function parseHfConfig(json: unknown, file: string): HfModelSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FileFormatError(file, 'not a JSON object');
  const f = new Fields(json as Record<string, unknown>, file);
  const modelType = f.raw('model_type');
  if (typeof modelType !== 'string' || !(HF_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new ConfigError(`${file}: model_type ${JSON.stringify(modelType)} is not supported (supported: ${HF_MODEL_TYPES.join(', ')})`);
  }
  const notes: string[] = [];
  const family = modelType === 'gpt_neox' ? gptNeoX(f, file) : llamaFamily(f, file, modelType as 'llama' | 'mistral' | 'qwen2', notes);
  validateConfig(family.config, file);
  const spec: HfModelSpec = { modelType: modelType as HfModelType, ...family, notes };
  const bos = f.tokenId('bos_token_id');
  const eos = f.tokenId('eos_token_id');
  if (bos !== undefined) spec.bosTokenId = bos;
  if (eos !== undefined) spec.eosTokenId = eos;
  return spec;
}

/** Read DIR/config.json. */
export function readHfConfig(dir: string): HfModelSpec {
  const file = join(dir, CONFIG_FILE);
  return parseHfConfig(readJsonFile(file), file);
}

/**
 * The config.json of a llama-family engine model, as our trained models are
 * saved: "llama", or "qwen2" when only q, k and v have biases.
 */
export function hfConfigJson(c: ModelConfig, tiedEmbeddings: boolean): Record<string, unknown> {
  const where = 'saving a Hugging Face checkpoint';
  if (c.family !== 'llama' || c.norm !== 'rmsnorm' || c.mlp !== 'swiglu' || c.parallelResidual) {
    throw new ConfigError(`${where}: only llama-family models (RMSNorm, SwiGLU, sequential residual) can be saved, got family ${c.family}`);
  }
  if (c.rope.rotaryDim !== c.headDim) throw new ConfigError(`${where}: llama rotates whole heads; rotaryDim ${c.rope.rotaryDim} != headDim ${c.headDim}`);
  const qwen2 = c.bias.qkv && !c.bias.out;
  if (qwen2 && c.bias.mlp) throw new ConfigError(`${where}: biases on q/k/v and the MLP but not the output have no Hugging Face model type`);
  if (c.bias.out && !c.bias.qkv) throw new ConfigError(`${where}: an output bias without q/k/v biases has no Hugging Face model type`);
  const json: Record<string, unknown> = {
    architectures: [qwen2 ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen2 ? 'qwen2' : 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
  };
  if (c.headDim * c.heads !== c.dim) json.head_dim = c.headDim;
  Object.assign(json, {
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.rope.theta,
    tie_word_embeddings: tiedEmbeddings,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  });
  if (!qwen2) json.attention_bias = c.bias.qkv;
  if (!qwen2) json.mlp_bias = c.bias.mlp;
  if (c.rope.scale !== 1) json.rope_scaling = { type: 'linear', rope_type: 'linear', factor: c.rope.scale };
  json.streamllm = { softmax: c.softmax, sink_token: c.sinkToken };
  return json;
}
