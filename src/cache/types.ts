// The contract between the model and a KV-cache policy.
//
// For each block of T new tokens the model asks the cache for a view, then,
// layer by layer, hands it the block's keys and values and gets back the
// entries to attend to. The cache knows nothing of the model: it stores
// vectors and says who sees what, at which positions.
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
import type * as tf from '@tensorflow/tfjs';

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

/** What a block of T tokens sees; identical for every layer of one forward pass. */
export interface BlockView {
  /** Stream index of the block's first token. */
  start: number;
  /** [T]: position each new key is rotated to before it is stored. */
  keyPositions: Int32Array;
  frames: ViewFrame[];
}

export interface CacheEntries {
  keys: tf.Tensor3D; // [kvHeads, n, headDim], rotated
  values: tf.Tensor3D; // [kvHeads, n, headDim]
}

/** Shape of the vectors a cache stores, per layer. */
export interface CacheShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

export type CachePolicy =
  | { kind: 'dense' }
  | { kind: 'window'; windowSize: number }
  | { kind: 'streaming'; sinkCount: number; windowSize: number }
  | { kind: 'recompute'; windowSize: number };

export type CacheKind = CachePolicy['kind'];
export const CACHE_KINDS: readonly CacheKind[] = ['dense', 'window', 'streaming', 'recompute'];

export interface KVCache {
  readonly policy: CachePolicy;
  /** Tokens the stream has seen. */
  readonly length: number;
  /** Entries held now, per layer. */
  readonly size: number;
  /** Bytes of key and value storage, all layers. */
  readonly byteSize: number;
  /** Begin a block of T tokens. */
  begin(T: number): BlockView;
  /** Store a layer's new keys and values, [kvHeads, T, headDim]; return the entries the view's frames index. */
  store(layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries;
  /** End the block: the stream is T tokens longer. */
  end(): void;
  /** Forget the stream (storage is kept). */
  reset(): void;
  dispose(): void;
}

/** A short human label: "streaming(4+252)". */
export function policyLabel(p: CachePolicy): string {
  switch (p.kind) {
    case 'dense':
      return 'dense';
    case 'window':
    case 'recompute':
      return `${p.kind}(${p.windowSize})`;
    case 'streaming':
      return `streaming(${p.sinkCount}+${p.windowSize})`;
  }
}
