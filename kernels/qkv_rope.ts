// A decode step's head split and RoPE as a pool job (PoolOp.QkvRope,
// loops.wat qkvRope): one token's q|k|v row, [heads + 2 kvHeads, headDim],
// into its rotated keys and its values, written straight where the cache
// keeps the token's entry (a slot of each kv head's run), and its queries,
// rotated once per frame of the view (src/cache/types.ts, Positions), where
// attention reads them. The numbers are qkvHeadsInto's for T = 1
// (kernels/qkv_heads.ts; each rotated channel a * c - b * s in float64,
// rounded once), so a decode step run as one pool program (no JavaScript
// between the q|k|v product and attention) gives the same bits.
//
// What the job reads is a record in the pool's memory (int32 words), so that
// a program's step names only the record, and the per-token parts (the
// cache's slot) are patched in place:
//
//   0 qkv   1 heads   2 kvHeads   3 headDim   4 rotaryDim   5 pairs (1: pairs layout, 0: halves)
//   6 keys' cos   7 keys' sin   ([rotaryDim/2] float32 each)
//   8 keys   9 values   (kv head 0's slot)   10 kvStride (bytes from one kv head's slot to the next)
//   11 frames F, then per frame: cos, sin (of its query position), queries ([heads, headDim])
//
// Every pointer is a byte offset into the pool's memory.
import type { HeadCounts, QkvRotation } from './qkv_heads.js';
import type { WorkerPool } from './pool.js';
import { PoolOp } from './pool_ops.js';

const HEADER_WORDS = 12;
const FRAME_WORDS = 3;

/** Bytes of a record with `frames` frames. */
export function qkvRopeRecordBytes(frames: number): number {
  return 4 * (HEADER_WORDS + FRAME_WORDS * frames);
}

/** Where a row's angles lie: [rotaryDim/2] float32 each. */
export interface AnglesAt {
  cos: number;
  sin: number;
}

/** What a record says (byte offsets into the pool's memory). */
export interface QkvRopeRecord {
  /** The token's q|k|v row, [heads + 2 kvHeads, headDim]. */
  qkv: number;
  keyAngles: AnglesAt;
  /** Kv head 0's slot for the rotated key and the value; kv head g's lies kvStride bytes on per head. */
  keys: number;
  values: number;
  kvStride: number;
  /** Per frame: its angles and where its rotated queries go, [heads, headDim]. */
  frames: readonly (AnglesAt & { queries: number })[];
}

/** Write `record` at `at` (qkvRopeRecordBytes(frames) bytes) in the pool's memory. */
export function writeQkvRopeRecord(pool: WorkerPool, at: number, counts: HeadCounts, rotation: QkvRotation, record: QkvRopeRecord): void {
  const { heads, kvHeads, headDim } = counts;
  const { rotaryDim, pairs } = rotation;
  if (!(rotaryDim % 2 === 0 && rotaryDim <= headDim)) throw new RangeError(`QkvRope: rotaryDim ${rotaryDim} must be even and at most headDim ${headDim}`);
  if (at % 4 !== 0) throw new RangeError(`QkvRope: a record at ${at}, not a multiple of 4`);
  const ints = pool.views().ints;
  const w = at / 4;
  ints[w] = record.qkv;
  ints[w + 1] = heads;
  ints[w + 2] = kvHeads;
  ints[w + 3] = headDim;
  ints[w + 4] = rotaryDim;
  ints[w + 5] = pairs ? 1 : 0;
  ints[w + 6] = record.keyAngles.cos;
  ints[w + 7] = record.keyAngles.sin;
  ints[w + 8] = record.keys;
  ints[w + 9] = record.values;
  ints[w + 10] = record.kvStride;
  ints[w + 11] = record.frames.length;
  record.frames.forEach((f, i) => {
    const fw = w + HEADER_WORDS + FRAME_WORDS * i;
    ints[fw] = f.cos;
    ints[fw + 1] = f.sin;
    ints[fw + 2] = f.queries;
  });
}

// The per-token patches take the pool's memory as int32s (pool.views().ints).
// A decode program writes these words through loops.wat patchDecodeLayers
// (kernels/decode_patch.ts); these setters are its reference
// (decode_patch.ref.ts) and the tests'.

/** Patch the cache slot of the record at `at`: kv head 0's key and value slots, kvStride bytes apart per kv head. */
export function setQkvRopeSlot(ints: Int32Array, at: number, keys: number, values: number, kvStride: number): void {
  ints[at / 4 + 8] = keys;
  ints[at / 4 + 9] = values;
  ints[at / 4 + 10] = kvStride;
}

/** Patch the keys' angles (cos, sin) and the frame count of the record at `at` (a token's view; then each frame's, setQkvRopeFrame). */
export function setQkvRopeAngles(ints: Int32Array, at: number, cos: number, sin: number, frames: number): void {
  ints[at / 4 + 6] = cos;
  ints[at / 4 + 7] = sin;
  ints[at / 4 + 11] = frames;
}

/** Patch frame f of the record at `at`: its angles and where its queries go. */
export function setQkvRopeFrame(ints: Int32Array, at: number, f: number, cos: number, sin: number, queries: number): void {
  const fw = at / 4 + HEADER_WORDS + FRAME_WORDS * f;
  ints[fw] = cos;
  ints[fw + 1] = sin;
  ints[fw + 2] = queries;
}

/** The job's arguments for `tokens` records, `recordBytes` apart from `records` on (a row each). */
export function qkvRopeArgs(records: number, recordBytes: number): number[] {
  return [records, recordBytes];
}

/** Run the records [records, records + tokens recordBytes) as one pool job (a row each, split over the threads when there are several). */
export function qkvRopeInPool(pool: WorkerPool, records: number, recordBytes: number, tokens: number): void {
  // (the bytes for the pool's choice to split: a token's is far below any
  // split, but a pool that splits every job, the tests', splits several)
  pool.run(PoolOp.QkvRope, qkvRopeArgs(records, recordBytes), tokens, tokens * recordBytes);
}
