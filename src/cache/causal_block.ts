// No cache at all: one self-contained sequence scored in one pass with plain
// causal attention at positions 0..T-1, its keys and values passed straight
// through (and so differentiable). For training and attention maps. It
// realises no policy (it keeps nothing between blocks); its view says it is
// self-contained, which lets the model run the batched causal kernel.
import type * as tf from '@tensorflow/tfjs';
import { type BlockView, type CacheEntries, type KVCache, sharedLayers } from './types.js';

export class CausalBlock implements KVCache {
  readonly policy = undefined;
  readonly length = 0;
  readonly size = 0;
  readonly byteSize = 0;
  readonly blockLimit = Infinity;
  /** Its one block: begun, then ended for good, or abandoned (as if never begun: it may begin again). */
  private block: 'none' | 'begun' | 'ended' = 'none';

  begin(T: number): BlockView {
    if (this.block !== 'none') throw new Error('CausalBlock holds one block: use a new one per sequence');
    this.block = 'begun';
    const positions = new Int32Array(T);
    const rowRanges = new Int32Array(2 * T);
    for (let t = 0; t < T; t++) {
      positions[t] = t;
      rowRanges[2 * t + 1] = t + 1;
    }
    const frames = [{ queryPositions: positions, keyStart: 0, keyEnd: T, rowRanges }];
    return sharedLayers(0, { keyPositions: positions, frames, wantsAttention: false }, true);
  }

  store(_layer: number, keys: tf.Tensor3D, values: tf.Tensor3D): CacheEntries {
    return { keys, values };
  }

  // (end and abandon with no block begun throw, as every cache's: a caller's mistake, not a no-op to pass unseen)
  end(): void {
    if (this.block !== 'begun') throw new Error('CausalBlock.end: no block begun');
    this.block = 'ended';
  }

  abandon(): void {
    if (this.block !== 'begun') throw new Error('CausalBlock.abandon: no block begun');
    this.block = 'none';
  }

  reset(): void {
    this.block = 'none';
  }

  dispose(): void {}
}
