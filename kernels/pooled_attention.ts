// Attention of a block of queries over a KV cache on the worker pool's
// threads (kernels/pool.ts): the fused SIMD loop of kernels/attention_fused.ts
// (loops.wat's attendRow, the same code assembled for a shared memory), one
// call per (head, query row) item, the items split over the threads.
//
// tfjs's wasm backend keeps the tensors in its own memory, which the workers
// cannot see, so the queries, keys and values are copied into the pool's
// memory first and the output copied back: a key is read by every query row
// of the block, so for a block of scoring (T = 256) the copy is a small part
// of the work; for a decode step (T = 1) it would be most of it, and
// kernels/paths.ts keeps such blocks on the fused kernel. Each item's record
// says where its query, keys and output row lie, so the results do not
// depend on how the items are split: they equal the fused kernel's bit for
// bit.
import * as tf from '@tensorflow/tfjs';
import type { AttentionFrame, SoftmaxSpec } from './attention.js';
import { float32View } from './paths.js';
import { PoolOp, type WorkerPool } from './pool.js';
import { poolScratch, poolScratchFits } from './pool_scratch.js';
import { extraLogitOf, learnsExtraLogit } from './softmax.js';

/** Bytes of an item's record: per frame query, first key, count (i32); then the sink logit (f32) and the output row (i32). */
function recordBytes(frames: number): number {
  return 12 * frames + 8;
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

/**
 * Attention of the frames' queries ([heads, T, headDim] each) over keys and
 * values [kvHeads, n, headDim] (keys rotated to their positions), for the
 * softmax family with headDim a multiple of 4, on the pool: [heads, T,
 * headDim]; undefined when the pool's memory has no room for the operands
 * (the caller runs the fused kernel). The operands must be readable in place
 * (wasm or cpu backend).
 */
export function pooledAttention(
  pool: WorkerPool,
  frames: AttentionFrame[],
  keys: tf.Tensor3D,
  values: tf.Tensor3D,
  spec: SoftmaxSpec,
): tf.Tensor3D | undefined {
  const [heads, T, headDim] = frames[0]!.queries.shape;
  const [kvHeads, capacity] = keys.shape;
  if (headDim % 4 !== 0) throw new Error(`pooledAttention: headDim ${headDim} is not a multiple of 4`);
  if (learnsExtraLogit(spec.variant) && spec.sinkLogits === undefined) throw new Error(`attention: '${spec.variant}' needs sinkLogits`);
  const group = heads / kvHeads;
  const F = frames.length;
  const items = heads * T;
  const rowBytes = 4 * headDim;
  // the most entries a query row sees, over all its frames: one row's scores
  let most = 0;
  for (let t = 0; t < T; t++) {
    let n = 0;
    for (const f of frames) n += f.rowRanges[2 * t + 1]! - f.rowRanges[2 * t]!;
    most = Math.max(most, n);
  }
  const qBytes = align16(heads * T * rowBytes); // per frame
  const kvBytes = align16(kvHeads * capacity * rowBytes);
  const recordsBytes = align16(items * recordBytes(F));
  const scoresBytes = align16(4 * most);
  const bytes = F * qBytes + 2 * kvBytes + qBytes + recordsBytes + pool.threads * scoresBytes;
  if (!poolScratchFits(pool, 'attention', bytes)) return undefined;
  const base = poolScratch(pool, 'attention', bytes);
  const qAt = base; // frame f's queries at qAt + f * qBytes: [heads, T, headDim]
  const keysAt = qAt + F * qBytes; // [kvHeads, capacity, headDim]
  const valuesAt = keysAt + kvBytes; // [kvHeads, capacity, headDim]
  const outAt = valuesAt + kvBytes; // [heads, T, headDim]
  const recordsAt = outAt + qBytes;
  const scoresAt = recordsAt + recordsBytes; // thread i's at scoresAt + i * scoresBytes

  // Copies in, before any tfjs allocation (a wasm view is valid until then).
  const memory = pool.memory.buffer;
  frames.forEach((f, i) => new Float32Array(memory, qAt + i * qBytes, heads * T * headDim).set(float32View(f.queries)));
  new Float32Array(memory, keysAt, kvHeads * capacity * headDim).set(float32View(keys));
  new Float32Array(memory, valuesAt, kvHeads * capacity * headDim).set(float32View(values));
  const sinks = spec.sinkLogits === undefined ? undefined : (spec.sinkLogits.dataSync() as Float32Array);

  const words = recordBytes(F) / 4;
  const records = new Int32Array(memory, recordsAt, items * words);
  const recordFloats = new Float32Array(memory, recordsAt, items * words);
  const order = balancedRows(T);
  let work = 0; // bytes of keys and values read
  for (let h = 0, item = 0; h < heads; h++) {
    const kvBase = keysAt + Math.floor(h / group) * capacity * rowBytes;
    const sink = extraLogitOf(spec.variant, h, sinks);
    for (let i = 0; i < T; i++, item++) {
      const t = order[i]!;
      const at = item * words;
      const row = (h * T + t) * rowBytes;
      for (let f = 0; f < F; f++) {
        const lo = frames[f]!.rowRanges[2 * t]!;
        const n = frames[f]!.rowRanges[2 * t + 1]! - lo;
        records[at + 3 * f] = qAt + f * qBytes + row;
        records[at + 3 * f + 1] = kvBase + lo * rowBytes;
        records[at + 3 * f + 2] = n;
        work += 2 * n * rowBytes;
      }
      recordFloats[at + 3 * F] = sink;
      records[at + 3 * F + 1] = outAt + row;
    }
  }
  const scaleBits = new Int32Array(Float32Array.of(1 / Math.sqrt(headDim)).buffer)[0]!;
  pool.run(PoolOp.Attend, [recordsAt, F, valuesAt - keysAt, headDim, scaleBits, scoresAt, scoresBytes], items, work);
  const out = new Float32Array(pool.memory.buffer, outAt, heads * T * headDim);
  // The wasm backend copies a new tensor's values into its heap at once; the cpu backend keeps the array itself.
  return tf.tensor3d(tf.getBackend() === 'wasm' ? out : out.slice(), [heads, T, headDim]);
}
