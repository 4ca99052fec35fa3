// A block view that every layer shares (as sharedLayers'), made once by a
// cache and rewritten by each of its begins: its arrays are the block
// before's while blocks have the same length, so a decode step (a block of
// one token, every token) makes no view. That step's JavaScript runs with
// the CPU's caches cold after the weights streamed through them, where what
// it makes and touches costs more than what it computes (DenseCache.begin
// made 3 typed arrays and 5 objects a token). So a view is valid until its
// block ends (KVCache.begin).
import type { BlockView, LayerView } from './types.js';

export class ReusedView {
  /** What the cache's begin returns: the same object every block, its start rewritten. */
  readonly block: BlockView;
  private readonly shared: LayerView;

  /** A view of `frameCount` frames, each block's. */
  constructor(frameCount: number) {
    const shared: LayerView = {
      keyPositions: new Int32Array(0),
      frames: Array.from({ length: frameCount }, () => ({ queryPositions: new Int32Array(0), keyStart: 0, keyEnd: 0, rowRanges: new Int32Array(0) })),
      wantsAttention: false,
    };
    this.shared = shared;
    // (layer an own property, not a method: a caller may copy the view with a spread, bench/train.ts)
    this.block = { start: 0, selfContained: false, layer: () => shared };
  }

  /**
   * The layer view of a block of T tokens from `start`, for the cache to
   * write whole: every element of its arrays ([T], rowRanges [2T]: the
   * block before's where it had T tokens too) and its frames' keyStart and
   * keyEnd.
   */
  begin(start: number, T: number): LayerView {
    this.block.start = start;
    const view = this.shared;
    if (view.keyPositions.length !== T) {
      view.keyPositions = new Int32Array(T);
      for (const frame of view.frames) {
        frame.queryPositions = new Int32Array(T);
        frame.rowRanges = new Int32Array(2 * T);
      }
    }
    return view;
  }
}
