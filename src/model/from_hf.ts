// Hugging Face tensors -> the engine's Model. Matrices are transposed to
// [in, out] and fused (q|k|v, gate|up) as from_llama2c.ts does; every
// tensor's name and shape is checked against the config as it is read. Bound
// for the worker pool (pooledModelFromHf), the same builders write each
// matrix row straight into the pool instead (assemble.ts MatrixStore), so a
// model too large for float32 in memory loads as q8.
//
// llama / mistral / qwen2 (and our own trained models):
//   model.embed_tokens.weight                      [vocab, dim]
//   model.layers.N.input_layernorm.weight          [dim]
//   model.layers.N.self_attn.{q,k,v}_proj.weight   [heads*headDim | kvHeads*headDim, dim] (+ .bias)
//   model.layers.N.self_attn.o_proj.weight         [dim, heads*headDim] (+ .bias)
//   model.layers.N.self_attn.sinks                 [heads]  learned-sink softmax (the gpt-oss name)
//   model.layers.N.post_attention_layernorm.weight [dim]
//   model.layers.N.mlp.{gate,up}_proj.weight       [hidden, dim] (+ .bias)
//   model.layers.N.mlp.down_proj.weight            [dim, hidden] (+ .bias)
//   model.norm.weight                              [dim]
//   lm_head.weight                                 [vocab, dim], absent when tied
//   model.sink_embedding                           [dim]    sink-token models
// q and k are in the halves RoPE layout.
//
// gpt_neox:
//   gpt_neox.embed_in.weight, embed_out.weight     [vocab, dim]
//   gpt_neox.layers.N.{input,post_attention}_layernorm.{weight,bias}
//   gpt_neox.layers.N.attention.query_key_value.{weight,bias}  [3*dim, dim]: rows [heads, 3, headDim]
//   gpt_neox.layers.N.attention.dense.{weight,bias}            [dim, dim]
//   gpt_neox.layers.N.mlp.dense_h_to_4h.{weight,bias}          [hidden, dim]
//   gpt_neox.layers.N.mlp.dense_4h_to_h.{weight,bias}          [dim, hidden]
//   gpt_neox.final_layer_norm.{weight,bias}
//   gpt_neox.layers.N.attention.sinks, gpt_neox.sink_embedding   our sink variants, as for llama
import * as tf from '@tensorflow/tfjs';
import type { HfModelSpec } from '../checkpoint/hf_config.js';
import { FileFormatError, NonFiniteError } from '../errors.js';
import { firstNonFinite } from '../finite.js';
import type { SafetensorsReader } from '../checkpoint/safetensors.js';
import type { WorkerPool } from '../../kernels/pool.js';
import { copiedTensor, linearBias, type MatrixPart, type MatrixStore, poolMatrices, type RowSource, tensorMatrices } from './assemble.js';
import { checkPoolFits, type Placement, poolFor } from './pooled.js';
import { collectTensors, disposeModel, type LayerWeights, type Model, type ModelWeights, type Norm } from './weights.js';
import { learnsExtraLogit } from '../../kernels/softmax.js';

/** Reads named tensors of a given shape from the checkpoint, and remembers which it read. */
class Source {
  readonly used = new Set<string>();

  constructor(private readonly reader: SafetensorsReader) {}

  rows(name: string, shape: number[]): RowSource {
    const entry = this.reader.entry(name, shape); // fail on a missing or misshapen tensor before allocating
    this.used.add(name);
    const rowElements = shape.slice(1).reduce((a, b) => a * b, 1);
    return (visit) =>
      this.reader.readRows(name, shape, (row, values) => {
        const bad = firstNonFinite(values);
        if (bad >= 0) {
          const at = row * rowElements + bad;
          throw new NonFiniteError(
            `${entry.file}: tensor '${name}' holds ${String(values[bad])} at element ${at} (of [${shape.join(', ')}]): expected finite weights`,
          );
        }
        visit(row, values);
      });
  }

  part(name: string, shape: number[], columnOf?: (r: number) => number): MatrixPart {
    return columnOf ? { rows: shape[0]!, source: this.rows(name, shape), columnOf } : { rows: shape[0]!, source: this.rows(name, shape) };
  }

  vector(name: string, length: number): tf.Tensor1D {
    return copiedTensor<tf.Rank.R1>([length], this.rows(name, [length]));
  }
}

function llamaWeights(spec: HfModelSpec, src: Source, matrices: MatrixStore): ModelWeights {
  const c = spec.config;
  const { dim, hiddenDim, heads, kvHeads, headDim, vocabSize } = c;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    const qkv = (kind: 'weight' | 'bias') => {
      const shape = (rows: number) => (kind === 'weight' ? [rows, dim] : [rows]);
      return [
        src.part(`${p}self_attn.q_proj.${kind}`, shape(qDim)),
        src.part(`${p}self_attn.k_proj.${kind}`, shape(kvDim)),
        src.part(`${p}self_attn.v_proj.${kind}`, shape(kvDim)),
      ];
    };
    const gateUp = (kind: 'weight' | 'bias') => {
      const shape = kind === 'weight' ? [hiddenDim, dim] : [hiddenDim];
      return [src.part(`${p}mlp.gate_proj.${kind}`, shape), src.part(`${p}mlp.up_proj.${kind}`, shape)];
    };
    const layer: LayerWeights = {
      attnNorm: { weight: src.vector(`${p}input_layernorm.weight`, dim) },
      qkv: matrices.linear(dim, qkv('weight')),
      out: matrices.linear(qDim, [src.part(`${p}self_attn.o_proj.weight`, [dim, qDim])]),
      mlpNorm: { weight: src.vector(`${p}post_attention_layernorm.weight`, dim) },
      up: matrices.linear(dim, gateUp('weight')),
      down: matrices.linear(hiddenDim, [src.part(`${p}mlp.down_proj.weight`, [dim, hiddenDim])]),
    };
    if (c.bias.qkv) layer.qkv.bias = linearBias(qkv('bias'));
    if (c.bias.out) layer.out.bias = src.vector(`${p}self_attn.o_proj.bias`, dim);
    if (c.bias.mlp) {
      layer.up.bias = linearBias(gateUp('bias'));
      layer.down.bias = src.vector(`${p}mlp.down_proj.bias`, dim);
    }
    if (learnsExtraLogit(c.softmax)) layer.sinkLogits = src.vector(`${p}self_attn.sinks`, heads);
    layers.push(layer);
  }
  const head = spec.tiedEmbeddings ? undefined : src.part('lm_head.weight', [vocabSize, dim]);
  const weights: ModelWeights = {
    ...matrices.embeddingAndClassifier(vocabSize, dim, src.rows('model.embed_tokens.weight', [vocabSize, dim]), head),
    layers,
    finalNorm: { weight: src.vector('model.norm.weight', dim) },
  };
  if (c.sinkToken) weights.sinkEmbedding = src.vector('model.sink_embedding', dim);
  return weights;
}

function neoxWeights(spec: HfModelSpec, src: Source, matrices: MatrixStore): ModelWeights {
  const c = spec.config;
  const { dim, hiddenDim, heads, headDim, vocabSize } = c;
  // query_key_value's output rows are grouped per head, [heads, 3, headDim];
  // the engine wants [3, heads, headDim] (all q, then all k, then all v).
  const qkvColumn = (r: number) => {
    const head = Math.floor(r / (3 * headDim));
    const which = Math.floor(r / headDim) % 3;
    return which * heads * headDim + head * headDim + (r % headDim);
  };
  const norm = (name: string): Norm => ({ weight: src.vector(`${name}.weight`, dim), bias: src.vector(`${name}.bias`, dim) });
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `gpt_neox.layers.${l}.`;
    const layer: LayerWeights = {
      attnNorm: norm(`${p}input_layernorm`),
      qkv: matrices.linear(dim, [src.part(`${p}attention.query_key_value.weight`, [3 * dim, dim], qkvColumn)]),
      out: matrices.linear(dim, [src.part(`${p}attention.dense.weight`, [dim, dim])]),
      mlpNorm: norm(`${p}post_attention_layernorm`),
      up: {
        ...matrices.linear(dim, [src.part(`${p}mlp.dense_h_to_4h.weight`, [hiddenDim, dim])]),
        bias: src.vector(`${p}mlp.dense_h_to_4h.bias`, hiddenDim),
      },
      down: {
        ...matrices.linear(hiddenDim, [src.part(`${p}mlp.dense_4h_to_h.weight`, [dim, hiddenDim])]),
        bias: src.vector(`${p}mlp.dense_4h_to_h.bias`, dim),
      },
    };
    if (c.bias.qkv) layer.qkv.bias = linearBias([src.part(`${p}attention.query_key_value.bias`, [3 * dim], qkvColumn)]);
    if (c.bias.out) layer.out.bias = src.vector(`${p}attention.dense.bias`, dim);
    if (learnsExtraLogit(c.softmax)) layer.sinkLogits = src.vector(`${p}attention.sinks`, heads);
    layers.push(layer);
  }
  const head = spec.tiedEmbeddings ? undefined : src.part('embed_out.weight', [vocabSize, dim]);
  const weights: ModelWeights = {
    ...matrices.embeddingAndClassifier(vocabSize, dim, src.rows('gpt_neox.embed_in.weight', [vocabSize, dim]), head),
    layers,
    finalNorm: norm('gpt_neox.final_layer_norm'),
  };
  if (c.sinkToken) weights.sinkEmbedding = src.vector('gpt_neox.sink_embedding', dim);
  return weights;
}

/**
 * Buffers that real checkpoints of these families carry and the engine
 * recomputes: RoPE's inverse frequencies, GPT-NeoX's causal-mask buffers.
 * They are skipped with a note; any other tensor the config does not use
 * refuses the load.
 */
const RECOMPUTED_BUFFERS = [/\.rotary_emb\.inv_freq$/, /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias)$/];

/** Where the config and the file disagree, refuse before reading any weight. */
function checkStructure(spec: HfModelSpec, reader: SafetensorsReader, file: string): void {
  const c = spec.config;
  const layersField = 'num_hidden_layers';
  let fileLayers = 0;
  for (const name of reader.tensors.keys()) {
    const m = /^(?:model|gpt_neox)\.layers\.(\d+)\./.exec(name);
    if (m && !RECOMPUTED_BUFFERS.some((r) => r.test(name))) fileLayers = Math.max(fileLayers, Number(m[1]) + 1);
  }
  if (fileLayers > c.layers) {
    throw new FileFormatError(file, `holds ${fileLayers} layers but config.json ${layersField} is ${c.layers}: every tensor must be used`);
  }
  const head = spec.modelType === 'gpt_neox' ? 'embed_out.weight' : 'lm_head.weight';
  if (spec.tiedEmbeddings && reader.has(head)) {
    throw new FileFormatError(
      file,
      `holds '${head}' but config.json ties the classifier to the embedding (tie_word_embeddings true): set it false to use '${head}', or remove the tensor`,
    );
  }
}

/** Names, shortened: layer indices folded into "N" and repeats counted. */
function summarize(names: string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) {
    const key = n.replace(/\.layers\.\d+\./, '.layers.N.');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const parts = [...counts].map(([k, n]) => (n > 1 ? `${k} (x${n})` : k));
  return parts.length <= 4 ? parts.join(', ') : `${parts.slice(0, 4).join(', ')} and ${parts.length - 4} more`;
}

/**
 * Build the engine model with its matrices in `matrices` (and `pool`, which
 * holds them when they are pooled). On any error (a missing or misshapen
 * tensor, a tensor the config does not use) the tensors made so far are
 * released, and the pool is disposed. `notes` receives what is read but not
 * applied (one line each).
 */
function buildModel(spec: HfModelSpec, reader: SafetensorsReader, notes: (line: string) => void, matrices: MatrixStore, pool?: WorkerPool): Model {
  const src = new Source(reader);
  const build = spec.modelType === 'gpt_neox' ? neoxWeights : llamaWeights;
  let weights: ModelWeights | undefined;
  try {
    // tf.tidy keeps the weights' tensors and disposes everything else, also when build throws.
    tf.tidy(() => {
      weights = build(spec, src, matrices);
      return collectTensors(weights);
    });
  } catch (e) {
    void pool?.dispose();
    throw e;
  }
  const model: Model = { config: spec.config, weights: weights! };
  if (pool !== undefined) model.pool = pool;
  const unused = [...reader.tensors.keys()].filter((n) => !src.used.has(n));
  const buffers = unused.filter((n) => RECOMPUTED_BUFFERS.some((r) => r.test(n)));
  const stray = unused.filter((n) => !buffers.includes(n));
  if (stray.length > 0) {
    void disposeModel(model); // (its workers stop; the error does not wait for them)
    throw new FileFormatError(
      reader.source,
      `${stray.length === 1 ? 'tensor' : `${stray.length} tensors`} not used by a ${spec.modelType} model with this config.json: ${summarize(stray)} ` +
        `(a bias, sink or layer the config does not declare?)`,
    );
  }
  for (const note of spec.notes) notes(note);
  if (buffers.length > 0) notes(`skipped ${buffers.length} buffer${buffers.length === 1 ? '' : 's'} the engine recomputes: ${summarize(buffers)}`);
  return model;
}

/** Build the engine model, every weight a float32 tfjs tensor (see buildModel for errors and notes). */
export function modelFromHf(spec: HfModelSpec, reader: SafetensorsReader, notes: (line: string) => void = () => {}): Model {
  checkStructure(spec, reader, reader.source);
  return buildModel(spec, reader, notes, tensorMatrices);
}

/**
 * The engine model with its matrices read straight into a new worker pool
 * (`p.weights`, default f32, on `p.threads`), without ever holding the
 * float32 matrices: bit for bit what modelFromHf and then placeWeights
 * make. `what` starts the message that refuses, before anything is
 * allocated, a model whose matrices do not fit the pool.
 */
export function pooledModelFromHf(spec: HfModelSpec, reader: SafetensorsReader, p: Placement, what: string, notes: (line: string) => void = () => {}): Model {
  checkStructure(spec, reader, reader.source);
  const format = p.weights ?? 'f32';
  checkPoolFits(spec.config, format, what);
  const pool = poolFor(p);
  return buildModel(spec, reader, notes, poolMatrices(pool, format), pool);
}
