// The contract between the model and a KV-cache policy: everything the two
// exchange goes through the types below, and nothing else.
//
// For each block of T new tokens the model asks the cache for a view, then,
// layer by layer, hands it the block's keys and values and gets back the
// entries to attend to; a policy that ranks entries by attention (h2o, tova)
// asks for the layer's attention probabilities too and gets them after the
// layer attended. The cache knows nothing of the model: it stores vectors,
// says who sees what at which positions, and reads probabilities.
//
// Positions. The paper re-encodes positions inside the cache: the n visible
// entries get positions 0..n-1 and the query n-1. RoPE only sees position
// differences, so the same scores come from a cheaper arrangement: every key
// is rotated once, at its stream index, when it is stored, and the query is
// rotated once per "frame" of entries that share a distance rule:
//
//   recent window (j in t-W+1..t)   query at t      distance t - j
//   sinks (i < S, outside window)   query at n-1    distance n - 1 - i
//
// both exactly the re-encoded distances. A block of queries then needs no
// per-query copy of the cache, and a decode step never re-rotates old keys.
// A policy whose kept entries are scattered through the stream (h2o, tova)
// has no such rule: it stores keys unrotated (key positions 0) and gives
// every entry its re-encoded position in the view (`entryPositions`); the
// model rotates the entries to them before attending.
//
// Blocks. A view is exact for every query of its block: query t sees what it
// would see if the tokens came one at a time. A policy that decides what to
// evict from the attention of the query before (h2o, tova) cannot say that
// for a block that crosses an eviction, so it bounds the next block
// (`blockLimit`) and the model splits a longer one.
//
// Memory. A cache keeps its entries in tensors, unless whoever builds it
// hands it an entry memory (`CacheShape.entryMemory`): an allocator of
// arrays outside the backend, such as a pooled model's shared memory, whose
// threads read entries there in place but cannot see the wasm backend's
// heap. A policy that can (dense, window, streaming) then keeps its entries
// in arrays of that memory while it has room for them (past that, in
// tensors: the memory may hold less than the backend), gives them back when
// it grows and when it is disposed, and `store` returns them as they lie
// (MemoryEntries); a consumer that needs tensors copies them
// (entryTensors). So `store` may return either kind, even from one cache. A
// policy that cannot (h2o, tova: they rank and rewrite entries through
// tensors) ignores it.
//
// Placing. A decode step (a block of one token) need not hand the cache its
// new key and value to copy: a cache that keeps its entries in its entry
// memory can say, with `place`, where the layer's entries lie and which
// entry of each kv head's run is the new token's, and the model writes the
// token's rotated key and its value there itself. A step that runs as one
// program on a pool's threads needs every layer's addresses before any layer
// runs, so the cache settles its storage in `begin` (it grows there) and
// moves nothing until the block ends. Only the cache knows its slots; where
// it cannot place (entries in tensors, a policy that ranks entries, a block
// of more tokens) it says so, and the model stores.
//
// Failing. A block whose forward pass throws between `begin` and `end` is
// abandoned, not ended: `abandon` leaves the cache as if the block had never
// begun (its length, what each later query sees, the policy's scores and
// evictions), so a caller that catches the error may go on with the cache.
// A policy undoes there what begin, store, place and observeAttention did;
// only what no later query can tell stays (storage grown, free or dead
// slots written).
import * as tf from '@tensorflow/tfjs';
import type { KVCachePolicy } from './policies.js';

/** The entries a block's queries see under one distance rule. */
export interface ViewFrame {
  /** [T]: the position each query is rotated to in this frame. */
  queryPositions: Int32Array;
  /** The frame's entries are [keyStart, keyEnd) of what `store` returns. */
  keyStart: number;
  keyEnd: number;
  /** [T * 2]: query row t sees entries [rowRanges[2t], rowRanges[2t+1]). */
  rowRanges: Int32Array;
}

/** What the queries of one layer of a block see. */
export interface LayerView {
  /** [T]: position each new key is rotated to before it is stored (all 0: stored unrotated). */
  keyPositions: Int32Array;
  frames: ViewFrame[];
  /**
   * [kvHeads * n], n the entries `store` returns: when given, the stored keys
   * are unrotated, and entry i of kv head g is rotated to
   * entryPositions[g * n + i] before the queries attend to it.
   */
  entryPositions?: Int32Array;
  /** The policy reads this layer's attention probabilities (KVCache.observeAttention). */
  wantsAttention: boolean;
}

/** What a block of T tokens sees. */
export interface BlockView {
  /** Stream index of the block's first token. */
  start: number;
  /**
   * The block is a sequence of its own: its keys and values pass straight
   * through, at positions 0..T-1, causally. The model may then run the
   * batched causal kernel (and train through it).
   */
  selfContained: boolean;
  /**
   * The view of layer l. A policy that treats every layer alike returns one
   * object for all of them, and the model computes its rotations once.
   */
  layer(l: number): LayerView;
}

export interface TensorEntries {
  keys: tf.Tensor3D; // [kvHeads, n, headDim], rotated (unless the view gives entryPositions)
  values: tf.Tensor3D; // [kvHeads, n, headDim]
}

/** Entries as they lie in the cache's entry memory: read them during the layer's attention, as the tensors. */
export interface MemoryEntries {
  /** The memory they lie in (CacheShape.entryMemory). */
  memory: EntryMemory;
  /** [kvHeads, n, headDim] */
  shape: [number, number, number];
  keys: Float32Array; // [kvHeads, n, headDim], rotated (unless the view gives entryPositions)
  values: Float32Array; // [kvHeads, n, headDim]
}

export type CacheEntries = TensorEntries | MemoryEntries;

/** A decode step's entries as `store` would return them, and the new token's slot in them (KVCache.place). */
export interface PlacedEntries {
  entries: MemoryEntries;
  /** The new token's entry: kv head g's key goes to entries.keys [g, at, :] (rotated), its value to entries.values [g, at, :]. */
  at: number;
}

/** Where a cache may keep its entries instead of tensors (see Memory above). */
export interface EntryMemory {
  /** `floats` zeros in this memory; they stay where they are until freed. */
  alloc(floats: number): Float32Array;
  /** Give back an array that alloc returned. */
  free(array: Float32Array): void;
  /** The most bytes one alloc can give now: a cache checks it first, and keeps in tensors what would not fit. */
  readonly room: number;
}

/** Shape of the vectors a cache stores, per layer, and where it may keep them. */
export interface CacheShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  entryMemory?: EntryMemory;
}

export interface KVCache {
  /** The policy this cache realises; undefined for CausalBlock, which keeps nothing. */
  readonly policy: KVCachePolicy | undefined;
  /** Tokens the stream has seen. */
  readonly length: number;
  /** Entries held now, per layer. */
  readonly size: number;
  /** Bytes of key and value storage, all layers. */
  readonly byteSize: number;
  /**
   * The most tokens the next block may have, for its view to be exact for
   * every query (Infinity: any number). `forward` splits a longer block.
   */
  readonly blockLimit: number;
  /**
   * Begin a block of T tokens (T <= blockLimit). The view, its frames and
   * arrays are valid until the block ends: a cache may give the same
   * objects, rewritten, for its next block (a decode step then makes none).
   */
  begin(T: number): BlockView;
  /**
   * Store a layer's new keys and values, [kvHeads, T, headDim]; return the
   * entries the view's frames index (MemoryEntries where the cache keeps
   * them in its entry memory: valid until the cache's next begin or store,
   * either of which may move them). The two tensors
   * are the model's: they hold this layer's values during the call and the
   * layer's attention, and the model may write the next layer's, or the
   * next block's, into them (a pooled model's decode stream makes two
   * tensors for all its steps, not two a layer), so a cache copies what it
   * keeps.
   */
  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries;
  /**
   * For a block of one token, instead of `store`: the entries the view's
   * frames index, as `store` would return them after storing, with the slot
   * `at` that the model fills with the token's rotated key and its value
   * before it attends to the layer and before the cache's next begin, store
   * or end. The cache copies nothing. Callable for every layer before any is
   * filled; the arrays do not move until the block ends (ask anew each
   * block: `begin` may grow them, and the cache may give the layer's
   * object of the block before, rewritten). Undefined where the cache
   * cannot (its entries in tensors, a block of more tokens): then `store`.
   */
  place?(layer: number): PlacedEntries | undefined;
  /**
   * The layer's attention probabilities, [heads, T, n]: column i is entry i
   * of what `store` returned (entries a row does not see are 0). Called once
   * per layer, after the layer attended, only where the layer's view
   * `wantsAttention`; the tensor lives only during the call.
   */
  observeAttention?(layer: number, probs: tf.Tensor3D): void;
  /** End the block: the stream is T tokens longer. With no block begun: an Error ("CACHE.end: no block begun"). */
  end(): void;
  /**
   * End the block as if it had never begun (its forward pass failed: see
   * Failing above). With no block begun: an Error, as end's. Where putting
   * something back throws, the block is over all the same, and a cache no
   * longer sure of what it holds refuses the next begin until reset()
   * (StreamingCache's overwritten window entries).
   */
  abandon(): void;
  /** Forget the stream (storage is kept). */
  reset(): void;
  dispose(): void;
}

/** The entries as tensors: themselves, or new tensors with a copy of the memory's (the caller disposes those). */
export function entryTensors(entries: CacheEntries): TensorEntries {
  if (!('memory' in entries)) return entries;
  // (a copy: the cpu backend would keep the array itself, which the cache overwrites)
  return { keys: tf.tensor3d(entries.keys.slice(), entries.shape), values: tf.tensor3d(entries.values.slice(), entries.shape) };
}

/** A view that every layer shares. */
export function sharedLayers(start: number, view: LayerView, selfContained = false): BlockView {
  return { start, selfContained, layer: () => view };
}
