// The forward pass: token ids in, logits out, one block of tokens at a time,
// reading and writing keys and values through a KV cache.
//
//   x = embed(ids)                                      [T, dim]
//   for each layer:
//     x = x + attention(norm(x))   (keys/values through the cache)
//     x = x + mlp(norm(x))
//   logits = norm(x) @ classifier                       [T, vocab]
//
// GPT-NeoX's parallel residual computes both branches from the same x.
import * as tf from '@tensorflow/tfjs';
import { attention, type AttentionFrame, attentionProbabilities } from '../../kernels/attention.js';
import { attendArrays, attendDirect } from '../../kernels/attention_fused.js';
import { causalAttention } from '../../kernels/causal_attention.js';
import {
  attentionPath,
  causalKernelAvailable,
  float32View,
  hasDirectMemory,
  poolAttends,
  poolAttendsOneQuery,
  pooledAttentionRuns,
} from '../../kernels/paths.js';
import { attendInPool, copyEntriesIn } from '../../kernels/pooled_attention.js';
import { embed } from '../../kernels/embedding.js';
import { qkvHeads, qkvHeadsInto } from '../../kernels/qkv_heads.js';
import type { WorkerPool } from '../../kernels/pool.js';
import { simdAvailable } from '../../kernels/simd/instance.js';
import { productTensor } from '../../kernels/split_products.js';
import { learnsExtraLogit, type SoftmaxVariant } from '../../kernels/softmax.js';
import { applyRope, type RopeAngles, ropeAngleArrays, ropeAngles, type RopeSpec } from '../../kernels/rope.js';
import { type BlockView, type CacheEntries, type EntryMemory, entryTensors, type KVCache, type LayerView } from '../cache/types.js';
import { ArgumentError } from '../errors.js';
import { checkFits } from '../memory.js';
import type { ModelConfig } from './config.js';
import { type DecodeProgram, pooledDecodeProgram } from './decode_program.js';
import { mlp, norm } from './parts.js';
import { type Attend, poolEntryMemory, pooledLayers, pooledLogits, pooledLogitValues, residualInPool } from './pooled_layers.js';
import { classify, project } from './project.js';
import { checkSomeTokenIds, checkTokenIds, SINK_TOKEN } from './token_ids.js';
import { checkNotDisposed, type LayerWeights, type Model } from './weights.js';

export { SINK_TOKEN } from './token_ids.js';

/** What the model reads for `ids`: a sink-token model sees its learned sink first. */
export function withSinkToken(config: ModelConfig, ids: readonly number[]): number[] {
  return config.sinkToken ? [SINK_TOKEN, ...ids] : [...ids];
}

/** The rotations one layer view needs (shared by the layers that share the view). */
interface ViewAngles {
  keys: RopeAngles;
  frames: RopeAngles[];
  /** [kvHeads * n, rotaryDim/2], for a view with entryPositions. */
  entries?: RopeAngles;
}

function viewAngles(view: LayerView, rope: RopeSpec): ViewAngles {
  return {
    keys: ropeAngles(view.keyPositions, rope),
    frames: view.frames.map((f) => ropeAngles(f.queryPositions, rope)),
    ...(view.entryPositions !== undefined ? { entries: ropeAngles(view.entryPositions, rope) } : {}),
  };
}

/** Unrotated entries [kvHeads, n, headDim], kv head g's entry i rotated by row g * n + i of the angles. */
function rotateEntries(keys: tf.Tensor3D, angles: RopeAngles, rope: RopeSpec): tf.Tensor3D {
  const [kvHeads, n, headDim] = keys.shape;
  return applyRope(keys.reshape([1, kvHeads * n, headDim]), angles, rope).reshape([kvHeads, n, headDim]);
}

/** [n, T, headDim] -> [T, n * headDim] */
function mergeHeads(x: tf.Tensor3D): tf.Tensor2D {
  const [n, T, headDim] = x.shape;
  if (T === 1) return x.reshape([1, n * headDim]);
  return x.transpose([1, 0, 2]).reshape([T, n * headDim]);
}

/**
 * Every id is in the vocabulary, or SINK_TOKEN for a model with a sink
 * embedding (an ArgumentError naming `argument` otherwise: token_ids.ts),
 * and the model is not disposed: every forward pass checks its ids before it
 * reads a weight or a cache moves.
 */
export function checkModelIds(model: Model, argument: string, ids: ArrayLike<number>): void {
  checkNotDisposed(model);
  checkTokenIds(argument, ids, model.config.vocabSize, model.weights.sinkEmbedding !== undefined);
}

/** Token embeddings [T, dim]; SINK_TOKEN entries take the learned sink embedding. */
export function embedTokens(model: Model, ids: readonly number[]): tf.Tensor2D {
  const { embedding, sinkEmbedding } = model.weights;
  const list = ids;
  checkModelIds(model, 'ids', list);
  if (!list.includes(SINK_TOKEN) || sinkEmbedding === undefined) return embed(embedding, list);
  return tf.tidy(() => {
    const rows: tf.Tensor2D[] = [];
    for (let i = 0; i < list.length;) {
      let j = i;
      if (list[i] === SINK_TOKEN) {
        rows.push(sinkEmbedding.reshape([1, -1]));
        j++;
      } else {
        while (j < list.length && list[j] !== SINK_TOKEN) j++;
        rows.push(embed(embedding, list.slice(i, j)));
      }
      i = j;
    }
    return tf.concat(rows, 0);
  });
}

/**
 * embedTokens as an array [T * dim], the pooled layers' residual stream: on
 * a backend with direct memory the rows are copied straight from the table
 * (no kernel, no tensor), which a decode step would otherwise pay for.
 */
function embedRows(model: Model, ids: readonly number[]): Float32Array {
  const { embedding } = model.weights;
  if (!hasDirectMemory() || ids.includes(SINK_TOKEN)) {
    const x = embedTokens(model, ids);
    const rows = Float32Array.from(x.dataSync());
    x.dispose();
    return rows;
  }
  const dim = embedding.shape[1]; // (ids checked by forwardBatch)
  const table = float32View(embedding); // [vocab, dim]
  const rows = new Float32Array(ids.length * dim); // [T, dim]
  ids.forEach((id, t) => rows.set(table.subarray(id * dim, (id + 1) * dim), t * dim));
  return rows;
}

/**
 * Sees the attention probabilities of every layer as they are computed, for
 * attention maps: `probs` is [heads, T, n] for sequence `sequence` of the
 * batch, its columns the cache entries in the view's frame order (for a
 * CausalBlock: key positions 0..T-1). The tensor lives only during the
 * call: read it (dataSync) or clone it. Without an observer the forward
 * pass does no extra work.
 */
export type AttentionObserver = (layer: number, sequence: number, probs: tf.Tensor3D) => void;

export interface ForwardOptions {
  onAttention?: AttentionObserver;
}

/** What one sequence of a batch attends through: its cache, its view, its rotations per view. */
interface SequenceState {
  cache: KVCache;
  view: BlockView;
  angles: Map<LayerView, ViewAngles>;
  /** The same rotations as arrays, for pooledAttention: the keys' cos, sin, then each frame's. */
  angleArrays?: Map<LayerView, Float32Array[]>;
  /**
   * pooledAttention's new keys and values for the cache's store, [kvHeads,
   * T, headDim] each: made in the first layer that stores, or handed in (a
   * decode stream's DecodeScratch, T = 1), and written in place in every
   * layer after that (a cache copies what it keeps: src/cache/types.ts,
   * store). Unused where the cache places a single token (KVCache.place).
   */
  newEntries?: { keys: tf.Tensor3D; values: tf.Tensor3D };
}

/**
 * Self-attention of one layer from its projected q|k|v, [B*T, (heads + 2
 * kvHeads) * headDim] (B sequences of T tokens one after another), to the
 * merged heads [B*T, heads * headDim], before the out projection. Attention
 * runs per sequence, through its own cache, or, when every sequence is a
 * fresh causal block (training), for the whole batch in one op.
 */
function selfAttention(
  config: ModelConfig,
  w: LayerWeights,
  qkv: tf.Tensor2D,
  layer: number,
  batch: SequenceState[],
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
  pool: WorkerPool | undefined,
): tf.Tensor2D {
  const { heads, kvHeads, headDim } = config;
  const T = qkv.shape[0] / batch.length;
  if (causal !== undefined) {
    const spec = { batch: batch.length, heads, kvHeads, headDim, rope: config.rope, variant: config.softmax };
    return causalAttention(qkv, causal, spec, w.sinkLogits);
  }
  const outs = batch.map(({ cache, view: block, angles: byView }, b) => {
    const view = block.layer(layer);
    let angles = byView.get(view);
    if (angles === undefined) byView.set(view, (angles = viewAngles(view, config.rope)));
    // Keys are rotated once, at their own position, and stored that way;
    // queries once per frame of the view.
    const { queries, keys, values } = qkvHeads(qkv, b * T, T, config, angles.keys, angles.frames, config.rope);
    // (entries in an entry memory: a copy in tensors, disposed with the block's tidy)
    const entries = entryTensors(cache.store(layer, keys, values));
    // A policy that stores keys unrotated gives their positions now.
    const entryKeys = angles.entries !== undefined ? rotateEntries(entries.keys, angles.entries, config.rope) : entries.keys;
    const frames: AttentionFrame[] = view.frames.map((f, i) => ({
      queries: queries[i]!, // [heads, T, headDim]
      keyStart: f.keyStart,
      keyEnd: f.keyEnd,
      rowRanges: f.rowRanges,
    }));
    const spec = { variant: config.softmax, sinkLogits: w.sinkLogits };
    if (onAttention !== undefined || view.wantsAttention) {
      const probs = attentionProbabilities(frames, entryKeys, spec); // [heads, T, n]
      if (view.wantsAttention) {
        if (cache.observeAttention === undefined) throw new Error('forward: the cache view wants attention but the cache has no observeAttention');
        cache.observeAttention(layer, probs);
      }
      onAttention?.(layer, b, probs);
    }
    const out = attention(frames, entryKeys, entries.values, spec, pool);
    return mergeHeads(out); // [T, heads * headDim]
  });
  return outs.length === 1 ? outs[0]! : tf.concat(outs, 0);
}

/**
 * selfAttention for the pooled layers (pooled_layers.ts): q|k|v as an array
 * [B*T, (heads + 2 kvHeads) * headDim] in, the merged heads [B*T, heads *
 * headDim] as an array out. Where the fused kernels would run anyway (no
 * tape, direct memory, the fused attention path) and no sequence's view
 * needs more than they do (no observer, no attention probabilities for the
 * policy, no per-entry positions), it runs their loops on arrays: the head
 * split and rotations (qkvHeadsInto) and attention (attendArraysTo: on the
 * pool's threads, in place, for a cache in the pool's memory), the same
 * numbers with two tensors a sequence (the keys and values the cache
 * stores), or none (a single token that the cache places: its key and value
 * written straight into the cache's slot), instead of five tfjs calls.
 * Otherwise it goes through selfAttention's tensors.
 */
function pooledAttention(
  config: ModelConfig,
  w: LayerWeights,
  qkv: Float32Array,
  rows: number,
  layer: number,
  batch: SequenceState[],
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
  pool: WorkerPool | undefined,
  route: AttentionRoute,
): Float32Array {
  const { heads, kvHeads, headDim } = config;
  const T = rows / batch.length;
  const direct =
    route.direct &&
    batch.every(({ view }) => {
      const v = view.layer(layer);
      return !v.wantsAttention && v.entryPositions === undefined;
    });
  if (!direct) {
    const qkvTensor = productTensor(qkv, [rows, (heads + 2 * kvHeads) * headDim]);
    const merged = selfAttention(config, w, qkvTensor, layer, batch, causal, onAttention, pool);
    const values = merged.dataSync() as Float32Array;
    tf.dispose([qkvTensor, merged]);
    return values;
  }
  const merged = directArrays.take(MERGED, rows * heads * headDim); // [B*T, heads * headDim]
  const rotation = { pairs: config.rope.layout === 'pairs', rotaryDim: config.rope.rotaryDim };
  const spec = { variant: config.softmax, sinkLogits: w.sinkLogits };
  const qSize = heads * T * headDim;
  for (let b = 0; b < batch.length; b++) {
    const state = batch[b]!;
    const { cache, view: block } = state;
    const view = block.layer(layer);
    const byView = (state.angleArrays ??= new Map());
    let angles = byView.get(view); // [T, rotaryDim/2] each: the keys' cos and sin, then each frame's
    if (angles === undefined) {
      // (a decode step's query sits where its key does: the same rotations, computed once)
      const keyAngles = ropeAngleArrays(view.keyPositions, config.rope);
      angles = [keyAngles.cos, keyAngles.sin];
      for (const f of view.frames) {
        const { cos, sin } = samePositions(f.queryPositions, view.keyPositions) ? keyAngles : ropeAngleArrays(f.queryPositions, config.rope);
        angles.push(cos, sin);
      }
      byView.set(view, angles);
    }
    const frames = view.frames;
    const queries: Float32Array[] = []; // per frame [heads, T, headDim]
    const rowRanges: Int32Array[] = [];
    for (let f = 0; f < frames.length; f++) {
      queries.push(directArrays.take(QUERIES + f, qSize));
      rowRanges.push(frames[f]!.rowRanges);
    }
    const single = T === 1;
    // A single token's key and value go straight into the cache's slot for
    // them where it has one (KVCache.place): no tensors, no copy.
    const placed = single ? cache.place?.(layer) : undefined;
    let entries: CacheEntries;
    if (placed !== undefined) {
      entries = placed.entries; // [kvHeads, slots, headDim] each
      const slots = entries.shape[1];
      qkvHeadsInto(
        qkv,
        b,
        1,
        config,
        rotation,
        angles[0],
        angles[1],
        angles.slice(2),
        entries.keys,
        entries.values,
        queries,
        placed.at * headDim,
        slots * headDim,
      );
    } else {
      // The keys and values the cache stores: two tensors a sequence for the
      // whole pass (or, handed in, for a decode stream's every step), made
      // from the first layer's arrays and written in place in the next layers
      // (their views taken just before: no allocation comes between), instead
      // of two new tensors a layer.
      const stored = state.newEntries;
      const keys = stored !== undefined ? float32View(stored.keys) : new Float32Array(kvHeads * T * headDim); // [kvHeads, T, headDim]
      const values = stored !== undefined ? float32View(stored.values) : new Float32Array(kvHeads * T * headDim); // [kvHeads, T, headDim]
      qkvHeadsInto(qkv, b * T, T, config, rotation, angles[0], angles[1], angles.slice(2), keys, values, queries);
      const newEntries = (state.newEntries ??= { keys: tf.tensor3d(keys, [kvHeads, T, headDim]), values: tf.tensor3d(values, [kvHeads, T, headDim]) });
      entries = cache.store(layer, newEntries.keys, newEntries.values);
    }
    // A single query row's [heads, 1, headDim] is its row of merged as it is.
    const out = single ? (batch.length === 1 ? merged : merged.subarray(b * qSize, (b + 1) * qSize)) : directArrays.take(OUT, qSize); // [heads, T, headDim]
    attendArraysTo(pool, route, queries, rowRanges, entries, spec, out);
    if (single) continue;
    // [heads, T, headDim] -> rows b*T.. of [B*T, heads * headDim]
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < T; t++) {
        const from = (h * T + t) * headDim;
        const to = ((b * T + t) * heads + h) * headDim;
        for (let c = 0; c < headDim; c++) merged[to + c] = out[from + c]!;
      }
    }
  }
  return merged;
}

/**
 * pooledAttention's attention of the frames' queries (arrays [heads, T,
 * headDim]) over the entries a cache returned, into out [heads, T,
 * headDim]: on the pool's threads where the entries lie in its memory (read
 * in place) or the block is one for the pool (kernels/paths.ts; the entries
 * copied in), else by the fused kernel's loops (attendDirect, or its
 * JavaScript loop on arrays). The same numbers every way, but where the
 * pool's memory has no room left for the attention's operands: a cache
 * there is then attended by the JavaScript loop (float64, within rounding of
 * the SIMD loop's), on the calling thread.
 */
function attendArraysTo(
  pool: WorkerPool | undefined,
  route: AttentionRoute,
  queries: Float32Array[],
  rowRanges: Int32Array[],
  entries: CacheEntries,
  spec: { variant: SoftmaxVariant; sinkLogits: tf.Tensor1D | undefined },
  out: Float32Array,
): void {
  const sinks = () => (learnsExtraLogit(spec.variant) && spec.sinkLogits !== undefined ? float32View(spec.sinkLogits) : undefined);
  if ('memory' in entries) {
    const [kvHeads, capacity, headDim] = entries.shape;
    if (route.inPlace !== undefined && entries.memory === route.inPlace) {
      const at = { keysAt: entries.keys.byteOffset, valuesAt: entries.values.byteOffset, kvHeads, capacity, headDim };
      if (attendInPool(pool!, queries, rowRanges, at, spec.variant, sinks(), out)) return;
    }
    attendArrays(queries, rowRanges, entries.keys, entries.values, entries.shape, spec.variant, sinks(), out);
    return;
  }
  if (route.copiesIn) {
    const at = copyEntriesIn(pool!, entries.keys, entries.values);
    if (at !== undefined && attendInPool(pool!, queries, rowRanges, at, spec.variant, sinks(), out)) return;
  }
  attendDirect(queries, rowRanges, entries.keys, entries.values, spec, out);
}

/**
 * What pooledAttention's paths depend on that stays the same through a
 * forward pass (the backend, the tape, the kernels enabled, the block's
 * length): asked once a pass, not in every layer. (Asked in every layer,
 * tfjs's engine lookups were inlined into the per-layer functions, and
 * TurboFan compiled them there, in the first tokens of a process.)
 */
interface AttentionRoute {
  /** The arrays' path may run (each view still asked, each layer): no batched causal block, no observer, tensors readable in place, the fused attention path. */
  direct: boolean;
  /** The pool's entry memory where the pool's loop reads a cache there in place (kernels/paths.ts poolAttends); undefined: it does not. */
  inPlace: EntryMemory | undefined;
  /** A cache in tensors goes to the pool, its entries copied in (kernels/paths.ts pooledAttentionRuns). */
  copiesIn: boolean;
}

/** pooledAttention's route for a pass of blocks of T tokens. */
function attentionRoute(
  config: ModelConfig,
  pool: WorkerPool | undefined,
  T: number,
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
): AttentionRoute {
  const { headDim, softmax } = config;
  return {
    direct: causal === undefined && onAttention === undefined && hasDirectMemory() && attentionPath(T, simdAvailable) === 'fused',
    inPlace: pool !== undefined && poolAttends(T, headDim, softmax, simdAvailable) ? poolEntryMemory(pool) : undefined,
    copiesIn: pooledAttentionRuns(pool, T, headDim, softmax, simdAvailable),
  };
}

/** Whether two position lists are equal, element by element. */
function samePositions(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Arrays that pooledAttention's direct path fills and reads within one call,
 * by slot: kept from call to call (a decode step made them new in every
 * layer, and a typed array's allocation, about a microsecond, cost more than
 * the loops that fill it) and made anew only for another length.
 */
class ReusedArrays {
  private readonly arrays: Float32Array[] = [];

  take(slot: number, length: number): Float32Array {
    let a = this.arrays[slot];
    if (a === undefined || a.length !== length) this.arrays[slot] = a = new Float32Array(length);
    return a;
  }
}
const directArrays = new ReusedArrays();
// its slots: the merged heads, one sequence's output, then each frame's queries
const [MERGED, OUT, QUERIES] = [0, 1, 2];

/** One transformer layer; x: [B*T, dim] -> [B*T, dim]. */
function transformerLayer(
  config: ModelConfig,
  w: LayerWeights,
  x: tf.Tensor2D,
  layer: number,
  batch: SequenceState[],
  causal: RopeAngles | undefined,
  onAttention: AttentionObserver | undefined,
  pool: WorkerPool | undefined,
): tf.Tensor2D {
  const attend = (h: tf.Tensor2D) => project(selfAttention(config, w, project(h, w.qkv), layer, batch, causal, onAttention, pool), w.out);
  if (config.parallelResidual) {
    return x.add<tf.Tensor2D>(attend(norm(config, w.attnNorm, x))).add<tf.Tensor2D>(mlp(config, w, norm(config, w.mlpNorm, x)));
  }
  const h = x.add<tf.Tensor2D>(attend(norm(config, w.attnNorm, x)));
  if (config.hiddenDim === 0) return h; // attention-only layer: no feed-forward
  return h.add<tf.Tensor2D>(mlp(config, w, norm(config, w.mlpNorm, h)));
}

/** Attention scores below this size are not worth a check. */
const SMALL_SCORES_BYTES = 64 * 1024 * 1024;

/**
 * Refuse a block whose attention scores, [heads, T, entries] per sequence,
 * cannot be allocated (a huge block, or a huge dense or recompute window).
 */
function checkAttentionFits(config: ModelConfig, views: BlockView[], T: number): void {
  let bytes = 0;
  let entries = 0;
  for (const v of views) {
    const n = v.layer(0).frames.reduce((sum, f) => sum + f.keyEnd - f.keyStart, 0);
    entries = Math.max(entries, n);
    bytes += 4 * config.heads * T * n;
  }
  if (bytes > SMALL_SCORES_BYTES) checkScoresFit(`attention of a block of ${T} tokens over ${entries} cache entries`, bytes);
}

/**
 * ResourceError (`what` first) where attention scores of `bytes` cannot be
 * allocated: the scores, their softmax and the mask are alive together,
 * about 3x. The forward pass's check, for a caller that refuses a size
 * before its work begins (experiments/latency.ts).
 */
export function checkScoresFit(what: string, bytes: number): void {
  checkFits(what, 3 * bytes, bytes);
}

/**
 * Run B sequences of T tokens each through the model, each at its own
 * cache's stream position. Returns logits [B*T, vocab] (sequence after
 * sequence), or [B, vocab] for the last token of each.
 */
export function forwardBatch(
  model: Model,
  batch: readonly (readonly number[])[],
  caches: readonly KVCache[],
  logits: 'all' | 'last' = 'all',
  options: ForwardOptions = {},
): tf.Tensor2D {
  batch.forEach((ids, b) => {
    checkModelIds(model, `batch[${b}]`, ids);
    checkSomeTokenIds(`batch[${b}]`, ids);
  });
  return forwardChecked(model, batch, caches, logits, options);
}

/** forwardBatch of a batch whose ids are checked (checkModelIds). */
function forwardChecked(
  model: Model,
  batch: readonly (readonly number[])[],
  caches: readonly KVCache[],
  logits: 'all' | 'last',
  options: ForwardOptions,
): tf.Tensor2D {
  const { config, weights } = model;
  return forwardBlock(model, batch, caches, options, (states, causal) => {
    const T = batch[0]!.length;
    if (residualInPool(model)) {
      // one token: the whole step as one pool program, where it runs the loops below
      const program = batch.length === 1 && T === 1 && causal === undefined && options.onAttention === undefined ? decodeProgramFor(model) : undefined;
      const programmed = program?.run(batch[0]![0]!, caches[0]!, states[0]!.view);
      if (programmed !== undefined) return productTensor(programmed, [1, config.vocabSize]); // [1, vocab]
      const stream = pooledStream(model, batch, states, causal, options);
      return pooledLogits(model, logits === 'all' || T === 1 ? stream : lastRows(stream, batch.length, T, config.dim)); // [B*T or B, vocab]
    }
    let x = embedTokens(model, batch.flat()); // [B*T, dim]
    for (let l = 0; l < config.layers; l++) x = transformerLayer(config, weights.layers[l]!, x, l, states, causal, options.onAttention, model.pool);
    if (logits === 'last' && T > 1) {
      x = tf.concat(
        batch.map((_, b) => x.slice([b * T + T - 1, 0], [1, config.dim])),
        0,
      );
    }
    return classify(norm(config, weights.finalNorm, x), weights); // [rows, vocab]
  });
}

/**
 * The logits of the last of `ids` as an array [vocab], for a caller that
 * reads them at once (greedy decoding, generate.ts). A model whose layers
 * and classifier run in the worker pool gives the classifier's output where
 * the pool wrote it, valid until the model's next forward pass: no tensor
 * made and read back, which at a vocabulary of 32,000 copied 128 KB twice a
 * token and cost a 15M decode step about as much as its attention. Any other
 * model: forward's logits, read. `scratch`, for a block of one token: the
 * tensors in which the step hands the cache its new keys and values where
 * the cache does not place them (KVCache.place).
 */
export function forwardLastValues(model: Model, ids: readonly number[], cache: KVCache, scratch?: DecodeScratch): Float32Array {
  checkModelIds(model, 'ids', ids); // (before the decode program is looked up: it is made on the model's pool)
  checkSomeTokenIds('ids', ids);
  // One token: the whole step as one pool program,
  // where it runs the loops below; outside forwardBlock's tidy and checks
  // (it makes no tensor, and its attention's scores are a few floats a
  // thread): about 20 µs of a 15M q8 step's 600. (Looked up first: a model
  // has a program only where the checks below held when it was made, and
  // they read every layer's matrices, a token's cache misses.)
  const program = ids.length === 1 && cache.blockLimit >= 1 ? decodeProgramFor(model) : undefined;
  if (program === undefined && (!residualInPool(model) || model.weights.pooledClassifier === undefined || ids.length > cache.blockLimit)) {
    const logits = forwardIds(model, ids, cache, 'last', {}); // [1, vocab]
    const values = logits.dataSync() as Float32Array;
    logits.dispose();
    return values;
  }
  let begun: BlockView[] | undefined;
  if (program !== undefined) {
    const view = cache.begin(1);
    let programmed: Float32Array | undefined;
    try {
      // (a self-contained block takes the batched causal kernel's path, as forwardBlock decides)
      if (!(view.selfContained && causalKernelAvailable())) programmed = program.run(ids[0]!, cache, view);
    } catch (e) {
      abandonBlock([cache]); // (as if the step had never begun: the caller may go on with the cache)
      throw e;
    }
    if (programmed !== undefined) {
      cache.end();
      return programmed;
    }
    begun = [view]; // (not the program's: the loops below, in the block begun)
  }
  // not tidy's result: tidy would walk the array's 32,000 numbers looking for tensors
  let values: Float32Array = new Float32Array(0);
  forwardBlock(
    model,
    [ids],
    [cache],
    {},
    (states, causal) => {
      if (scratch !== undefined && ids.length === 1) states[0]!.newEntries = scratch.entries;
      const stream = pooledStream(model, [ids], states, causal, {});
      values = pooledLogitValues(model, lastRows(stream, 1, ids.length, model.config.dim)); // [vocab]
    },
    begun,
  );
  return values;
}

/**
 * The model's decode program (decode_program.ts), where a step of one token
 * takes pooledAttention's in-place path in the pool: attentionRoute's
 * direct and inPlace for T = 1 (no causal block, no observer), checked
 * without making the route (every token: the object and the copy-in check it
 * does not need cost a 15M step some 5 µs).
 */
function decodeProgramFor(model: Model): DecodeProgram | undefined {
  if (model.pool === undefined) return undefined;
  const { headDim, softmax } = model.config;
  // (attentionPath(1) is 'fused' wherever poolAttends(1) holds: both need fusedInference)
  return poolAttendsOneQuery(headDim, softmax, simdAvailable) ? pooledDecodeProgram(model) : undefined;
}

/**
 * What a decode loop (TokenStream) keeps from step to step for
 * forwardLastValues: the two tensors [kvHeads, 1, headDim] in which
 * pooledAttention hands the cache a step's new keys and values where the
 * cache does not place them in its own memory (KVCache.place: a cache in
 * tensors; written in place layer after layer; the cache copies what it
 * keeps), so that a step
 * makes and disposes no tensor (two a step, about 20 µs of a 15M q8 step in
 * the profile, its caches cold after the weights stream through). Made
 * with the stream (for a pooled model), disposed with it.
 */
export class DecodeScratch {
  /** keys, values: [kvHeads, 1, headDim] */
  readonly entries: { keys: tf.Tensor3D; values: tf.Tensor3D };

  constructor({ kvHeads, headDim }: ModelConfig) {
    const dims: [number, number, number] = [kvHeads, 1, headDim];
    this.entries = { keys: tf.keep(tf.zeros<tf.Rank.R3>(dims)), values: tf.keep(tf.zeros<tf.Rank.R3>(dims)) };
  }

  dispose(): void {
    tf.dispose([this.entries.keys, this.entries.values]);
  }
}

/** The last row of each sequence's T rows of x [B*T, dim]: [B, dim] (x itself when T = 1). */
function lastRows(x: Float32Array, B: number, T: number, dim: number): Float32Array {
  if (T === 1) return x;
  const last = new Float32Array(B * dim); // [B, dim]
  for (let b = 0; b < B; b++) last.set(x.subarray((b * T + T - 1) * dim, (b * T + T) * dim), b * dim);
  return last;
}

/** The residual stream [B*T, dim] of a pooled model after its last layer (before the final norm). */
function pooledStream(
  model: Model,
  batch: readonly (readonly number[])[],
  states: SequenceState[],
  causal: RopeAngles | undefined,
  options: ForwardOptions,
): Float32Array {
  const { config, weights } = model;
  const stream = embedRows(model, batch.flat()); // [B*T, dim]
  const route = attentionRoute(config, model.pool, batch[0]!.length, causal, options.onAttention);
  const attend: Attend = (qkv, rows, l) => pooledAttention(config, weights.layers[l]!, qkv, rows, l, states, causal, options.onAttention, model.pool, route);
  pooledLayers(model, stream, attend);
  return stream;
}

/**
 * A batch's shape as forwardBatch takes it, checked before any cache begins:
 * at least one sequence, all of one length, a cache of its own each, none
 * longer than its cache takes in one block (forward() splits a longer
 * sequence itself).
 */
function checkBatchShape(batch: readonly (readonly number[])[], caches: readonly KVCache[]): void {
  const T = batch[0]?.length;
  if (T === undefined) throw new ArgumentError('batch', 'expected at least one sequence, got none');
  const uneven = batch.findIndex((ids) => ids.length !== T);
  if (uneven >= 0) throw new ArgumentError('batch', `sequence ${uneven} has ${batch[uneven]!.length} tokens and sequence 0 has ${T}: expected one length`);
  if (caches.length !== batch.length) throw new ArgumentError('caches', `expected one cache per sequence (${batch.length}), got ${caches.length}`);
  // (a cache begins one block at a time: its second begin threw a plain Error and left the first begun for good)
  const again = caches.length > 1 ? caches.findIndex((c, b) => caches.indexOf(c) !== b) : -1;
  if (again >= 0) throw new ArgumentError('caches', `cache ${again} is cache ${caches.indexOf(caches[again]!)}: expected a cache of its own per sequence`);
  const short = caches.findIndex((c) => T > c.blockLimit);
  if (short >= 0)
    throw new ArgumentError(
      'caches',
      `cache ${short} takes at most ${caches[short]!.blockLimit} tokens in a block, got ${T} (forward() splits a longer sequence)`,
    );
}

/**
 * A block of B sequences of T tokens, each through its cache: the checks,
 * the caches' begin and end around `run`, which computes the result from
 * the sequences' states (and, for self-contained causal blocks, the batched
 * kernel's angles) inside a tidy. `begun`: the caches' views where the
 * caller has begun the block already (ended or abandoned here all the
 * same). The ids are the caller's to check (checkModelIds), before any
 * cache begins the block: a bad id must not leave a stream longer by T
 * with nothing stored. Where anything throws after a cache began, the
 * caches begun abandon the block (KVCache.abandon): each is as it was, for
 * a caller that goes on with it.
 */
function forwardBlock<R extends tf.TensorContainer>(
  model: Model,
  batch: readonly (readonly number[])[],
  caches: readonly KVCache[],
  options: ForwardOptions,
  run: (states: SequenceState[], causal: RopeAngles | undefined) => R,
  begun?: BlockView[],
): R {
  const { config } = model;
  checkBatchShape(batch, caches);
  const T = batch[0]!.length;
  const views = begun ?? beginBlock(caches, T);
  let result: R;
  try {
    checkAttentionFits(config, views, T);
    result = tf.tidy(() => {
      const states: SequenceState[] = caches.map((cache, b) => ({ cache, view: views[b]!, angles: new Map() }));
      // Self-contained causal blocks (training, scoring windows) take the
      // batched path where the backend has JS kernels; its angles are those
      // of 0..T-1. An attention observer needs the probabilities, which only
      // the general path computes.
      let causal: RopeAngles | undefined;
      if (options.onAttention === undefined && causalKernelAvailable() && views.every((v) => v.selfContained)) {
        const first = views[0]!.layer(0);
        const angles = viewAngles(first, config.rope);
        states[0]!.angles.set(first, angles);
        causal = angles.frames[0];
      }
      return run(states, causal);
    });
  } catch (e) {
    abandonBlock(caches);
    throw e;
  }
  caches.forEach((c) => c.end());
  return result;
}

/**
 * Each cache abandons the block, whatever another's abandon throws: the
 * error that failed the block is the one reported, and no cache is left
 * begun because one before it failed to abandon.
 */
function abandonBlock(caches: readonly KVCache[]): void {
  for (const cache of caches) {
    try {
      cache.abandon();
    } catch {
      // (the block's error is thrown by the caller)
    }
  }
}

/** Each cache's view of a block of T tokens; where a begin throws, the caches begun before it abandon the block. */
function beginBlock(caches: readonly KVCache[], T: number): BlockView[] {
  const views: BlockView[] = [];
  try {
    for (const cache of caches) views.push(cache.begin(T));
  } catch (e) {
    abandonBlock(caches.slice(0, views.length));
    throw e;
  }
  return views;
}

/**
 * One sequence: logits [T, vocab], or [1, vocab] for the last token only.
 * A block longer than the cache's blockLimit runs as several, each as long
 * as the cache allows. Where one throws, the cache abandons it
 * (KVCache.abandon) and keeps the blocks before it: cache.length says how
 * many tokens it took.
 */
export function forward(model: Model, ids: readonly number[], cache: KVCache, logits: 'all' | 'last' = 'all', options: ForwardOptions = {}): tf.Tensor2D {
  checkModelIds(model, 'ids', ids);
  checkSomeTokenIds('ids', ids);
  return forwardIds(model, ids, cache, logits, options);
}

/** forward of checked ids. */
function forwardIds(model: Model, ids: readonly number[], cache: KVCache, logits: 'all' | 'last', options: ForwardOptions): tf.Tensor2D {
  if (ids.length <= cache.blockLimit) return forwardChecked(model, [ids], [cache], logits, options);
  const rows: tf.Tensor2D[] = [];
  try {
    for (let done = 0; done < ids.length;) {
      const n = Math.min(cache.blockLimit, ids.length - done);
      const last = done + n === ids.length;
      const out = forwardChecked(model, [ids.slice(done, done + n)], [cache], logits === 'last' ? 'last' : 'all', options);
      if (logits === 'all' || last) rows.push(out);
      else out.dispose();
      done += n;
    }
  } catch (e) {
    tf.dispose(rows); // (the blocks before the one that threw: the caller gets none of them)
    throw e;
  }
  if (rows.length === 1) return rows[0]!;
  const all = tf.concat(rows, 0);
  tf.dispose(rows);
  return all;
}
