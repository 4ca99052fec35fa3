// Attention of a block of queries over a KV cache on the worker pool's
// threads (kernels/pool.ts): the fused SIMD loop of kernels/attention_fused.ts
// (loops.wat's attendRow, the same code assembled for a shared memory), one
// call per (head, query row) item, the items split over the threads.
//
// tfjs's wasm backend keeps the tensors in its own memory, which the workers
// cannot see, so the queries are copied into the pool's memory first and
// the output copied back, and so are keys and values held in tensors: a key
// is read by every query row of the block, so for a block of scoring (T =
// 256) that copy is a small part of the work; for a decode step (T = 1) it
// would be most of it, and kernels/paths.ts keeps such blocks on the fused
// kernel. A cache that keeps its entries in the pool's memory
// (src/cache/types.ts, Memory) is read in place (attendInPool), at any T.
// Each item's record says where its query, keys and output row lie, so the
// results do not depend on how the items are split: they equal the fused
// kernel's bit for bit.
import * as tf from '@tensorflow/tfjs';
import type { AttentionFrame, SoftmaxSpec } from './attention.js';
import { float32View } from './paths.js';
import type { WorkerPool } from './pool.js';
import { PoolOp } from './pool_ops.js';
import { poolScratch, poolScratchFits } from './pool_scratch.js';
import { extraLogitOf, learnsExtraLogit, type SoftmaxVariant } from './softmax.js';

// An Attend item's record (loops.wat attendRows), F frames: int32 words
//
//   3f query row   3f + 1 first key row   3f + 2 entry count   (frame f of F; rows as byte offsets)
//   3F extra logit (float32)   3F + 1 output row
//
// written only by writeItemRows and writeItemEntries below (for a block of
// queries at once, writeAttendRecords; for a decode program's one-token
// records, writeAttendHeadWords once and setAttendFrameEntries per token),
// and by loops.wat patchDecodeLayers (kernels/decode_patch.ts), which writes
// setAttendFrameEntries' words (its reference: decode_patch.ref.ts).

/** Bytes of an item's record with F frames. */
function recordBytes(frames: number): number {
  return 12 * frames + 8;
}

/** Item `item`'s words that name its rows: frame f's query at query0 + f qBytes, its extra logit, its output row. */
function writeItemRows(
  floats: Float32Array,
  ints: Int32Array,
  recordsAt: number,
  F: number,
  item: number,
  query0: number,
  qBytes: number,
  extraLogit: number,
  out: number,
): void {
  const at = (recordsAt + item * recordBytes(F)) / 4;
  for (let f = 0; f < F; f++) ints[at + 3 * f] = query0 + f * qBytes;
  floats[at + 3 * F] = extraLogit;
  ints[at + 3 * F + 1] = out;
}

/** Item `item`'s entries of frame f: `count` key rows from firstKey on (their values where the job's valuesFromKeys says). */
function writeItemEntries(ints: Int32Array, recordsAt: number, F: number, item: number, f: number, firstKey: number, count: number): void {
  const at = (recordsAt + item * recordBytes(F)) / 4 + 3 * f;
  ints[at + 1] = firstKey;
  ints[at + 2] = count;
}

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/**
 * Query rows in an order where any run of them costs about the same: with a
 * causal frame row t sees t + 1 entries, so rows go first, last, second,
 * second to last, ... and the runs of rows the pool's threads claim cost
 * about in proportion to their length.
 */
function balancedRows(T: number): Int32Array {
  const order = new Int32Array(T);
  for (let i = 0, lo = 0, hi = T - 1; i < T; i++) order[i] = i % 2 === 0 ? lo++ : hi--;
  return order;
}

/** Keys and values [kvHeads, capacity, headDim] each in the pool's memory, at byte offsets keysAt and valuesAt. */
export interface PoolEntries {
  keysAt: number;
  valuesAt: number;
  kvHeads: number;
  capacity: number;
  headDim: number;
}

/**
 * Attention of the frames' queries (frame f's [heads, T, headDim] in
 * queries[f], query row t seeing entries rowRanges[f][2t]..rowRanges[f][2t+1])
 * over keys and values that lie in the pool's memory, read in place, into
 * out [heads, T, headDim]: the softmax family, headDim a multiple of 4
 * (the SIMD loop's). False, with nothing done, when the pool's memory has
 * no room for the queries and scores.
 *
 * Split over the threads as pool.run decides (a job that reads 64 KB of
 * keys and values or more; each item a unit), a decode step too: a unit is
 * one of its few heads. Measured on 2 threads (a busy shared machine), in
 * one process, a stream with its cache in tensors (attendDirect on the
 * calling thread) against one with it here, split, alternating every 16
 * tokens, warm: the attention's own time a token 15M q8 120 -> 105 and 127
 * -> 112 µs, f32 238 -> 135 and 223 -> 166; 110M q8 1172 -> 623, f32 1205
 * -> 746; the whole step 15M q8 -16 +- 23 µs of ~690 (unresolved), f32 -107
 * +- 46 and -56 +- 38 of ~1600, 110M q8 -525 +- 100 of ~4960, f32 -397 +-
 * 194 of ~10900. (The loop here on the calling thread alone was no faster
 * than attendDirect: 15M q8 0.678 against 0.687 ms a step.) So a decode
 * step's heads are split wherever the bytes call for it; the gain is least
 * where the keys and values stay in the CPU's caches (15M q8).
 */
export function attendInPool(
  pool: WorkerPool,
  queries: Float32Array[],
  rowRanges: Int32Array[],
  entries: PoolEntries,
  variant: SoftmaxVariant,
  sinks: Float32Array | undefined,
  out: Float32Array,
): boolean {
  const { headDim } = entries;
  if (headDim % 4 !== 0) throw new Error(`attendInPool: headDim ${headDim} is not a multiple of 4`);
  if (learnsExtraLogit(variant) && sinks === undefined) throw new Error(`attention: '${variant}' needs sinkLogits`);
  const F = queries.length;
  const T = rowRanges[0]!.length / 2;
  const heads = out.length / (T * headDim);
  const items = heads * T;
  const rowBytes = 4 * headDim;
  // the most entries a query row sees, over all its frames: one row's scores
  let most = 0;
  for (let t = 0; t < T; t++) {
    let n = 0;
    for (const r of rowRanges) n += r[2 * t + 1]! - r[2 * t]!;
    most = Math.max(most, n);
  }
  const qBytes = align16(heads * T * rowBytes); // per frame
  const recordsBytes = align16(items * recordBytes(F));
  const scoresBytes = align16(4 * most);
  const bytes = F * qBytes + qBytes + recordsBytes + pool.threads * scoresBytes;
  if (!poolScratchFits(pool, 'attention', bytes)) return false;
  const qAt = poolScratch(pool, 'attention', bytes); // frame f's queries at qAt + f * qBytes: [heads, T, headDim]
  const outAt = qAt + F * qBytes; // [heads, T, headDim]
  const recordsAt = outAt + qBytes;
  const scoresAt = recordsAt + recordsBytes; // thread i's at scoresAt + i * scoresBytes

  const { floats } = pool.views();
  queries.forEach((q, f) => floats.set(q, (qAt + f * qBytes) / 4));
  const work = writeAttendRecords(pool, recordsAt, qAt, qBytes, rowRanges, entries, heads, variant, sinks, outAt);
  pool.run(PoolOp.Attend, attendArgs(recordsAt, F, entries.valuesAt - entries.keysAt, headDim, scoresAt, scoresBytes), items, work);
  out.set(floats.subarray(outAt / 4, outAt / 4 + heads * T * headDim));
  return true;
}

/**
 * The Attend job's records for heads x T items (kernels/simd/loops.wat
 * attendRows): frame f's queries [heads, T, headDim] at qAt + f qBytes, the
 * entries where they lie, each item's output row in [heads, T, headDim] at
 * outAt. Returns the bytes of keys and values the items read.
 */
export function writeAttendRecords(
  pool: WorkerPool,
  recordsAt: number,
  qAt: number,
  qBytes: number,
  rowRanges: Int32Array[],
  entries: PoolEntries,
  heads: number,
  variant: SoftmaxVariant,
  sinks: Float32Array | undefined,
  outAt: number,
): number {
  const { keysAt, kvHeads, capacity, headDim } = entries;
  const F = rowRanges.length;
  const T = rowRanges[0]!.length / 2;
  const group = heads / kvHeads;
  const rowBytes = 4 * headDim;
  const { floats, ints } = pool.views();
  const order = T === 1 ? undefined : balancedRows(T);
  let work = 0; // bytes of keys and values read
  for (let h = 0, item = 0; h < heads; h++) {
    const kvBase = keysAt + Math.floor(h / group) * capacity * rowBytes;
    const sink = extraLogitOf(variant, h, sinks);
    for (let i = 0; i < T; i++, item++) {
      const t = order === undefined ? i : order[i]!;
      const row = (h * T + t) * rowBytes;
      writeItemRows(floats, ints, recordsAt, F, item, qAt + row, qBytes, sink, outAt + row);
      for (let f = 0; f < F; f++) {
        const lo = rowRanges[f]![2 * t]!;
        const n = rowRanges[f]![2 * t + 1]! - lo;
        writeItemEntries(ints, recordsAt, F, item, f, kvBase + lo * rowBytes, n);
        work += 2 * n * rowBytes;
      }
    }
  }
  return work;
}

/**
 * A one-token (T = 1) Attend job's records, in two parts for a decode
 * program that rewrites them every token: the words that stay while the
 * view keeps F frames (head h's queries of frame f at qAt + f qBytes + h
 * rowBytes, its extra logit, its output row at outAt + h rowBytes) once;
 * then per token each frame's entries (setAttendFrameEntries). Together
 * the words writeAttendRecords writes for T = 1.
 */
export function writeAttendHeadWords(
  floats: Float32Array,
  ints: Int32Array,
  recordsAt: number,
  F: number,
  qAt: number,
  qBytes: number,
  heads: number,
  rowBytes: number,
  variant: SoftmaxVariant,
  sinks: Float32Array | undefined,
  outAt: number,
): void {
  for (let h = 0; h < heads; h++)
    writeItemRows(floats, ints, recordsAt, F, h, qAt + h * rowBytes, qBytes, extraLogitOf(variant, h, sinks), outAt + h * rowBytes);
}

/** Frame f's entries [lo, hi) in every head's one-token record (F frames; kv head k's rows at keysAt + k kvBytes; values where the Attend job's argument says). */
export function setAttendFrameEntries(
  ints: Int32Array,
  recordsAt: number,
  F: number,
  f: number,
  heads: number,
  group: number,
  keysAt: number,
  kvBytes: number,
  rowBytes: number,
  lo: number,
  hi: number,
): void {
  for (let h = 0; h < heads; h++) writeItemEntries(ints, recordsAt, F, h, f, keysAt + Math.floor(h / group) * kvBytes + lo * rowBytes, hi - lo);
}

/**
 * The Attend job's arguments by index (attendArgs writes them in this
 * order; a decode program patches frames, valuesFromKeys and the scores'
 * per token): its records (F frames each), F, where the values lie from the
 * keys (bytes), the rows' headDim, the scale's float32 bits, each thread's
 * scores (scoresBytes apart from scores on).
 */
export const ATTEND_ARG = { records: 0, frames: 1, valuesFromKeys: 2, headDim: 3, scaleBits: 4, scores: 5, scoresBytes: 6 } as const;

/** The Attend job's arguments: its records (F frames), where the values lie from the keys, the rows' headDim, each thread's scores (scoresBytes apart from scoresAt). */
export function attendArgs(recordsAt: number, F: number, valuesFromKeys: number, headDim: number, scoresAt: number, scoresBytes: number): number[] {
  const args = new Array<number>(7);
  args[ATTEND_ARG.records] = recordsAt;
  args[ATTEND_ARG.frames] = F;
  args[ATTEND_ARG.valuesFromKeys] = valuesFromKeys;
  args[ATTEND_ARG.headDim] = headDim;
  args[ATTEND_ARG.scaleBits] = float32Bits(1 / Math.sqrt(headDim));
  args[ATTEND_ARG.scores] = scoresAt;
  args[ATTEND_ARG.scoresBytes] = scoresBytes;
  return args;
}

/** Bytes of an Attend job's item record with F frames. */
export function attendRecordBytes(F: number): number {
  return recordBytes(F);
}

/** The bits of x rounded to float32, as an int32 (the pool passes only int32 arguments). */
function float32Bits(x: number): number {
  bitsF32[0] = x;
  return bitsI32[0]!;
}
const bitsF32 = new Float32Array(1);
const bitsI32 = new Int32Array(bitsF32.buffer);

/**
 * Attention of the frames' queries ([heads, T, headDim] each) over keys and
 * values [kvHeads, n, headDim] in tensors (keys rotated to their positions),
 * for the softmax family with headDim a multiple of 4, on the pool (the
 * keys and values copied in): [heads, T, headDim]; undefined when the
 * pool's memory has no room for the operands (the caller runs the fused
 * kernel). The operands must be readable in place (wasm or cpu backend).
 */
export function pooledAttention(
  pool: WorkerPool,
  frames: AttentionFrame[],
  keys: tf.Tensor3D,
  values: tf.Tensor3D,
  spec: SoftmaxSpec,
): tf.Tensor3D | undefined {
  const [heads, T, headDim] = frames[0]!.queries.shape;
  if (learnsExtraLogit(spec.variant) && spec.sinkLogits === undefined) throw new Error(`attention: '${spec.variant}' needs sinkLogits`);
  const sinks = spec.sinkLogits === undefined ? undefined : (spec.sinkLogits.dataSync() as Float32Array);
  // views of the queries after the copies' pool allocation and before any tfjs one (a wasm view is valid until then)
  const entries = copyEntriesIn(pool, keys, values);
  if (entries === undefined) return undefined;
  const queries = frames.map((f) => float32View(f.queries));
  const out = new Float32Array(heads * T * headDim); // [heads, T, headDim]
  if (
    !attendInPool(
      pool,
      queries,
      frames.map((f) => f.rowRanges),
      entries,
      spec.variant,
      sinks,
      out,
    )
  )
    return undefined;
  return tf.tensor3d(out, [heads, T, headDim]);
}

/**
 * Keys and values [kvHeads, n, headDim] in tensors, copied into the pool's
 * memory (a region reused from call to call) for attendInPool; undefined
 * when the memory has no room. The tensors must be readable in place.
 */
export function copyEntriesIn(pool: WorkerPool, keys: tf.Tensor3D, values: tf.Tensor3D): PoolEntries | undefined {
  const [kvHeads, capacity, headDim] = keys.shape;
  const floats = kvHeads * capacity * headDim;
  const kvBytes = align16(4 * floats);
  if (!poolScratchFits(pool, 'attention entries', 2 * kvBytes)) return undefined;
  const keysAt = poolScratch(pool, 'attention entries', 2 * kvBytes); // [kvHeads, capacity, headDim]
  const valuesAt = keysAt + kvBytes; // [kvHeads, capacity, headDim]
  const memory = pool.memory.buffer;
  new Float32Array(memory, keysAt, floats).set(float32View(keys));
  new Float32Array(memory, valuesAt, floats).set(float32View(values));
  return { keysAt, valuesAt, kvHeads, capacity, headDim };
}
