// A decode program's per-token patch (src/model/decode_program.ts): the words
// of each layer's QkvRope record (kernels/qkv_rope.ts) and Attend records
// (kernels/pooled_attention.ts) that change from token to token (the cache
// slot, the entries each frame sees, the angles and queries of each frame),
// written by one call into the pool's loops (simd/loops.wat
// patchDecodeLayers) from a table that the caller fills: a row a layer with
// what the cache placed, and a block of frames a layer view.
//
// Why in WebAssembly: as JavaScript (the setters of qkv_rope.ts and
// pooled_attention.ts, called per layer, frame and head: decode_patch.ref.ts)
// this ran as bytecode through a process's first ~170 tokens (some 38 µs a
// 15M token, against 5-7 µs compiled), and V8 then compiled it on a background
// thread that takes one of the pool's two cores (patchLayers: 12-16 ms, and
// again after the cache grows), during the tokens that bench/decode times.
//
// The table, int32 words (byte offsets into the pool's memory; an address
// past 2^31 is stored wrapped, as the records' setters store it):
//
//   a layer's row (ROW_WORDS, rows one after another):
//     0 its QkvRope record   1 its Attend records (head h's at + h attendRecordBytes(F))
//     2 keys   3 values   (kv head 0's run of the cache's entries; kv head g's lies g kvBytes further)
//     4 kvBytes (a kv head's run: the cache's capacity x a row's bytes)   5 slot (the new entry's, in the run)
//     6 its frames block (the layer view's: layers that share a view share one)
//   a frames block (FRAMES_BLOCK_WORDS, room for MAX_PATCH_FRAMES frames):
//     0 F   1 keys' cos   2 keys' sin   ([rotaryDim/2] float32 each)
//     then frame f at 3 + FRAME_WORDS f: cos, sin (of its query position), queries ([heads, headDim]),
//     lo, hi (the entries [lo, hi) of the run it sees)

/** A layer row's words. */
export const ROW = { rope: 0, attend: 1, keys: 2, values: 3, kvBytes: 4, slot: 5, frames: 6 } as const;
export const ROW_WORDS = 7;

/** A frames block's words: the count and the keys' angles, then each frame's (FRAME at 3 + FRAME_WORDS f). */
export const BLOCK = { frames: 0, keysCos: 1, keysSin: 2 } as const;
export const FRAME = { cos: 0, sin: 1, queries: 2, lo: 3, hi: 4 } as const;
export const FRAME_WORDS = 5;
/** The most frames a block holds (a decode program's MAX_FRAMES). */
export const MAX_PATCH_FRAMES = 4;
export const FRAMES_BLOCK_WORDS = 3 + FRAME_WORDS * MAX_PATCH_FRAMES;

/** The heads' layout the patch needs: query heads, query heads a kv head serves, a key or value row's bytes. */
export interface PatchHeads {
  heads: number;
  group: number;
  rowBytes: number;
}
