// Opening a model from disk, whatever its format:
//   FILE.bin   a llama2.c checkpoint (legacy or version 1)
//   DIR        a Hugging Face model directory: config.json plus
//              model.safetensors or model.safetensors.index.json and its shards
//              (our own trained models are saved this way, see to_hf.ts)
// Its options may place the weight products in the worker pool (placement.ts
// decides): a model bound there is read straight into it, a directory by
// loadPooledHfModel, a llama2.c file by pooled_llama2c.ts, so that the
// float32 matrices are never held (a q8 model of about 3B parameters loads).
import * as tf from '@tensorflow/tfjs';
import { existsSync, statSync } from 'node:fs';
import { readHfConfig } from '../checkpoint/hf_config.js';
import { openLlama2c } from '../checkpoint/llama2c.js';
import { SafetensorsReader } from '../checkpoint/safetensors.js';
import { FileFormatError, ResourceError } from '../errors.js';
import { checkFits, gib, WASM_HEAP_BYTES } from '../memory.js';
import { layerMatrixShapes, llamaConfig, type ModelConfig } from './config.js';
import { modelFromHf, pooledModelFromHf } from './from_hf.js';
import { modelFromLlama2c } from './from_llama2c.js';
import { checkOptionNames, placementOf, type PlacementOptions } from './placement.js';
import type { Placement } from './pooled.js';
import { pooledModelFromLlama2c } from './pooled_llama2c.js';
import type { Model } from './weights.js';
import { learnsExtraLogit } from '../../kernels/softmax.js';

/** Elements of the matrices the worker pool can take: q|k|v, out, gate|up and down of every layer, and the classifier. */
function matrixElements(c: ModelConfig): number {
  return c.layers * layerMatrixShapes(c).reduce((sum, [rows, cols]) => sum + rows * cols, 0) + c.vocabSize * c.dim;
}

/** Elements of the weights that stay tfjs tensors in a pooled model: the embedding, norms, biases, sink logits and sink embedding. */
function tensorElements(c: ModelConfig): number {
  const upOut = c.mlp === 'swiglu' ? 2 * c.hiddenDim : c.hiddenDim;
  const normSize = c.norm === 'layernorm' ? 2 * c.dim : c.dim;
  const biases = (c.bias.qkv ? (c.heads + 2 * c.kvHeads) * c.headDim : 0) + (c.bias.out ? c.dim : 0) + (c.bias.mlp ? upOut + c.dim : 0);
  const sinkLogits = learnsExtraLogit(c.softmax) ? c.heads : 0;
  return c.vocabSize * c.dim + c.layers * (2 * normSize + biases + sinkLogits) + normSize + (c.sinkToken ? c.dim : 0);
}

/**
 * Bytes the engine's float32 weights take: every parameter once, plus the
 * classifier as its own [dim, vocab] tensor even when tied to the embedding.
 */
export function weightBytes(c: ModelConfig): number {
  return 4 * (matrixElements(c) + tensorElements(c));
}

/** Bytes of the largest single weight tensor: the embedding, the classifier or a fused projection. */
function largestWeightBytes(c: ModelConfig): number {
  return 4 * Math.max(c.vocabSize * c.dim, ...layerMatrixShapes(c).map(([rows, cols]) => rows * cols));
}

/** Leave room on the wasm heap for the KV cache and activations. */
const WASM_HEADROOM_BYTES = 256 * 1024 * 1024;

/** Refuse, before reading any weight, a model the backend cannot hold. */
function checkFitsBackend(c: ModelConfig, source: string): void {
  const bytes = weightBytes(c);
  if (tf.getBackend() === 'wasm' && bytes > WASM_HEAP_BYTES - WASM_HEADROOM_BYTES) {
    throw new ResourceError(
      `${source}: the float32 weights need ${gib(bytes)}, more than the wasm backend's ${gib(WASM_HEAP_BYTES)} heap holds ` +
        `with room for the cache; use --backend cpu or --backend tensorflow`,
    );
  }
  checkFits(`${source}: the float32 weights`, bytes, largestWeightBytes(c));
}
export interface LoadOptions extends PlacementOptions {
  /**
   * Receives each note on what was read but not applied (Mistral's
   * sliding_window, skipped RoPE buffers). Default: one "warning:" line each
   * on stderr.
   */
  onNote?: (line: string) => void;
}

function stderrNotes(source: string): (line: string) => void {
  return (line) => process.stderr.write(`warning: ${source}: ${line}\n`);
}

/** Open a Hugging Face model directory. */
export function loadHfModel(dir: string, options: LoadOptions = {}): Model {
  const spec = readHfConfig(dir);
  const reader = SafetensorsReader.open(dir);
  checkFitsBackend(spec.config, dir);
  return modelFromHf(spec, reader, options.onNote ?? stderrNotes(dir));
}

/**
 * Open a Hugging Face model directory with its matrices read straight into a
 * new worker pool (from_hf.ts pooledModelFromHf): only the embedding, norms
 * and biases are held as float32. `what` starts the messages that refuse a
 * model too large for the backend or the pool (it names the flags).
 */
export function loadPooledHfModel(dir: string, p: Placement, what: string, options: LoadOptions = {}): Model {
  const spec = readHfConfig(dir);
  const reader = SafetensorsReader.open(dir);
  const c = spec.config;
  checkFits(`${what}: the float32 embedding, norms and biases`, 4 * tensorElements(c), 4 * c.vocabSize * c.dim);
  return pooledModelFromHf(spec, reader, p, what, options.onNote ?? stderrNotes(dir));
}

/**
 * Open a model: a llama2.c .bin file or a Hugging Face directory. With
 * `threads`, `weights` or `products` (PlacementOptions, placement.ts) its
 * products run in the worker pool, the rest as the CLI's defaults; without,
 * on the backend's tfjs ops. A bad option is an ArgumentError naming it.
 */
export function loadModel(path: string, options: LoadOptions = {}): Model {
  checkOptionNames(options, ['onNote']);
  const placement = placementOf(options, tf.getBackend());
  const what = placement === undefined ? path : `loadModel: ${path} with weights '${placement.weights ?? 'f32'}'`;
  return loadModelPlaced(path, placement, what, options);
}

/**
 * loadModel with its placement decided (placementOf; undefined: the tfjs
 * path), for the CLI, whose messages name flags: `what` starts those that
 * refuse a model too large for the pool.
 */
export function loadModelPlaced(path: string, placement: Placement | undefined, what: string, options: LoadOptions = {}): Model {
  if (!existsSync(path)) throw new FileFormatError(path, 'no such file or directory');
  const directory = statSync(path).isDirectory();
  if (directory) return placement === undefined ? loadHfModel(path, options) : loadPooledHfModel(path, placement, what, options);
  const reader = openLlama2c(path);
  try {
    // Straight into the pool: the same bytes there as modelFromLlama2c then placeWeights, and the same decode
    // speed (15M float32, fresh processes alternating: 0.95-1.05x on 2 threads and on 1, A/A 0.99-1.03;
    // bench/load_paths.ts, RESULTS 12-01 03:30), but it loads 2-3x faster and never holds the float32 matrices
    // in the wasm heap, whose pages would stay (peak RSS 80 MiB lower at 15M).
    if (placement !== undefined) return pooledModelFromLlama2c(reader, placement, what);
    checkFitsBackend(llamaConfig(reader.shape), path);
    return modelFromLlama2c(reader);
  } finally {
    reader.close();
  }
}
