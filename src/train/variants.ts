// The four attention-sink variants of the pre-training ablation, and the
// model shape they share. Every variant is a Llama (RMSNorm, SwiGLU, RoPE in
// the Hugging Face "halves" layout so checkpoints need no permutation, no
// biases, tied embeddings); they differ only in where attention may park
// its spare probability mass:
//
//   softmax       nowhere: it must land on some token (the sink emerges)
//   softmax1      on an implicit zero logit ("off by one")
//   learned-sink  on a learned per-head logit, one per layer and head
//   sink-token    on a learned embedding placed at position 0 of every sample
import { type ModelConfig, validateConfig } from '../model/config.js';
import { ConfigError } from '../errors.js';

export const VARIANTS = ['softmax', 'softmax1', 'learned-sink', 'sink-token'] as const;
export type Variant = (typeof VARIANTS)[number];

export interface ModelShape {
  dim: number;
  layers: number;
  heads: number;
  /** Feed-forward width (default: about 8/3 dim, rounded up to a multiple of 64, as Llama does). */
  hiddenDim?: number;
}

export function defaultHiddenDim(dim: number): number {
  return 64 * Math.ceil((8 * dim) / 3 / 64);
}

/** The model config for a variant at a shape, vocabulary and context length. */
export function variantConfig(variant: Variant, shape: ModelShape, vocabSize: number, maxSeqLen: number): ModelConfig {
  if (shape.dim % shape.heads !== 0) throw new ConfigError(`heads (${shape.heads}) must divide dim (${shape.dim})`);
  const headDim = shape.dim / shape.heads;
  const config: ModelConfig = {
    family: 'llama',
    dim: shape.dim,
    hiddenDim: shape.hiddenDim ?? defaultHiddenDim(shape.dim),
    layers: shape.layers,
    heads: shape.heads,
    kvHeads: shape.heads,
    headDim,
    vocabSize,
    maxSeqLen,
    norm: 'rmsnorm',
    normEps: 1e-5,
    mlp: 'swiglu',
    parallelResidual: false,
    rope: { theta: 10000, layout: 'halves', rotaryDim: headDim, scale: 1 },
    bias: { qkv: false, out: false, mlp: false },
    softmax: variant === 'sink-token' ? 'softmax' : variant,
    sinkToken: variant === 'sink-token',
  };
  validateConfig(config, 'model shape');
  return config;
}

/** Which variant a config is (the inverse of variantConfig). */
export function variantOf(config: ModelConfig): Variant {
  return config.sinkToken ? 'sink-token' : config.softmax;
}
