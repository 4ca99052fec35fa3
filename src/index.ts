// The library's public API: what the CLI is built from.
//
//   import { disposeModel, initBackend, loadModel, TokenStream, scoreTokens } from 'streamllm';
//   await initBackend();                       // tensorflow, else wasm, else cpu
//   const model = loadModel('weights/NAME');   // or a llama2.c .bin, or an HF directory
//   const r = await scoreTokens(model, ids, { kind: 'streaming', sinkCount: 4, windowSize: 252 });
//   // the CLI's fast path: the products in the worker pool, on 2 threads, 8-bit weights
//   const fast = loadModel('weights/NAME', { threads: 2, weights: 'q8' });
//   await disposeModel(fast);                  // stops the pool's worker threads
//   placeModel(model, { threads: 2 });         // a model already in memory, placed as loadModel's options would
export { BACKENDS, type BackendName, initBackend } from './backend.js';
export { ArgumentError, BackendError, ConfigError, FileFormatError, StreamllmError, UsageError } from './errors.js';
/** ResourceError: a model or cache too large for its memory (the worker pool's 4 GiB); OutputError: an output that cannot be written; NonFiniteError: logits that are not finite. */
export { NonFiniteError, OutputError, ResourceError } from './errors.js';
/** The worker pool's error (a pool used after dispose, or broken by a worker gone): one line, as a StreamllmError's. */
export { WorkerPoolError } from '../kernels/pool_error.js';

export type {
  BlockView,
  CacheEntries,
  CacheShape,
  EntryMemory,
  KVCache,
  LayerView,
  MemoryEntries,
  PlacedEntries,
  TensorEntries,
  ViewFrame,
} from './cache/types.js';
export { entryTensors } from './cache/types.js';
export type { CacheKind, CachePolicy, KVCachePolicy, RecomputePolicy } from './cache/policies.js';
export { CACHE_KINDS, createCache, DEFAULT_SINK_COUNT, isKVCachePolicy, policyFromName, type PolicyOptions, policyLabel, policySpan } from './cache/index.js';
export { CausalBlock } from './cache/causal_block.js';
export { DenseCache } from './cache/dense.js';
export { H2OCache } from './cache/h2o.js';
export { TovaCache } from './cache/tova.js';
export { RecomputeWindow } from './cache/recompute.js';
export { StreamingCache } from './cache/streaming.js';
export { WindowCache } from './cache/window.js';

export { type ModelConfig, validateConfig } from './model/config.js';
export type { LayerWeights, Linear, Model, ModelWeights, Norm } from './model/weights.js';
export { disposeModel, parameterCount } from './model/weights.js';
export { embedTokens, forward, forwardBatch, SINK_TOKEN } from './model/transformer.js';
export { loadModel, type LoadOptions } from './model/load.js';
export type { PlacementOptions, Products } from './model/placement.js';
export { placeModel } from './model/pooled.js';
export type { WeightFormat } from '../kernels/weight_format.js';
export { saveHfModel } from './model/to_hf.js';

export { TokenStream } from './stream.js';
export { generate, type GenerateOptions, type GenerateStep } from './generate.js';
export { DEFAULT_BLOCK_SIZE, type ScoreOptions, type ScoreResult, scoreTokens } from './eval/perplexity.js';

export type { EncodeOptions, StreamDecoder, Tokenizer } from './tokenizer/types.js';
export { loadTokenizer } from './tokenizer/load.js';
export { argmax, createSampler, type Sampler, type SamplerOptions } from './sample/sampler.js';
