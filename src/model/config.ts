// What a model is: its shapes and the few architectural switches that
// separate the supported families.
import type { RopeSpec } from '../../kernels/rope.js';
import type { SoftmaxVariant } from '../../kernels/softmax.js';
import { ConfigError } from '../errors.js';

export interface ModelConfig {
  /** Where the architecture comes from: 'llama' (llama2.c, HF llama/mistral/qwen2) or 'gpt_neox'. */
  family: 'llama' | 'gpt_neox';
  dim: number;
  /** Feed-forward inner width. */
  hiddenDim: number;
  layers: number;
  heads: number;
  /** Key/value heads; fewer than heads is grouped-query attention. */
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  /** The context length the model was trained on. */
  maxSeqLen: number;
  norm: 'rmsnorm' | 'layernorm';
  normEps: number;
  /** 'swiglu': down(silu(gate x) * up x); 'gelu': down(gelu(up x)). */
  mlp: 'swiglu' | 'gelu';
  /** GPT-NeoX: x + attn(ln1 x) + mlp(ln2 x) instead of two residual steps. */
  parallelResidual: boolean;
  rope: RopeSpec;
  /** Biases on the q/k/v projection, the attention output, the MLP. */
  bias: { qkv: boolean; out: boolean; mlp: boolean };
  softmax: SoftmaxVariant;
  /** A learned sink embedding is placed at position 0 of every sequence. */
  sinkToken: boolean;
}

/** Checks that the shapes fit together; throws ConfigError naming the field. */
export function validateConfig(c: ModelConfig, source: string): void {
  const positive: (keyof ModelConfig)[] = ['dim', 'layers', 'heads', 'kvHeads', 'headDim', 'vocabSize', 'maxSeqLen'];
  for (const key of positive) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ConfigError(`${source}: ${key} must be a positive integer, got ${String(v)}`);
    }
  }
  if (!Number.isInteger(c.hiddenDim) || c.hiddenDim < 0)
    throw new ConfigError(`${source}: hiddenDim must be a non-negative integer, got ${String(c.hiddenDim)}`);
  if (c.heads % c.kvHeads !== 0) throw new ConfigError(`${source}: kvHeads (${c.kvHeads}) must divide heads (${c.heads})`);
  if (c.rope.rotaryDim % 2 !== 0 || c.rope.rotaryDim <= 0 || c.rope.rotaryDim > c.headDim) {
    throw new ConfigError(`${source}: rotary dimension ${c.rope.rotaryDim} must be even and in 2..headDim (${c.headDim})`);
  }
  if (!(c.rope.theta > 0) || !(c.rope.scale > 0)) throw new ConfigError(`${source}: rope theta and scale must be positive`);
  if (!(c.normEps > 0)) throw new ConfigError(`${source}: normEps must be positive, got ${c.normEps}`);
}

/**
 * The [out, in] shape of each weight matrix of one layer, as checkpoints
 * store them: q|k|v, out, gate|up (swiglu; gelu: up) and down.
 */
export function layerMatrixShapes(c: ModelConfig): [rows: number, cols: number][] {
  const qDim = c.heads * c.headDim;
  const upOut = c.mlp === 'swiglu' ? 2 * c.hiddenDim : c.hiddenDim;
  return [
    [qDim + 2 * c.kvHeads * c.headDim, c.dim],
    [c.dim, qDim],
    [upOut, c.dim],
    [c.dim, c.hiddenDim],
  ];
}

/** The cache shape a model needs. */
export function cacheShape(c: ModelConfig): { layers: number; kvHeads: number; headDim: number } {
  return { layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim };
}

/** A llama2.c-style Llama: RMSNorm, SwiGLU, adjacent-pair RoPE with theta 10000, no biases. */
export function llamaConfig(shape: {
  dim: number;
  hiddenDim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  maxSeqLen: number;
}): ModelConfig {
  const headDim = shape.dim / shape.heads;
  return {
    family: 'llama',
    ...shape,
    headDim,
    norm: 'rmsnorm',
    normEps: 1e-5,
    mlp: 'swiglu',
    parallelResidual: false,
    rope: { theta: 10000, layout: 'pairs', rotaryDim: headDim, scale: 1 },
    bias: { qkv: false, out: false, mlp: false },
    softmax: 'softmax',
    sinkToken: false,
  };
}
