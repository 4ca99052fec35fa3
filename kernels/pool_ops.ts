// What a worker-pool job runs (kernels/pool.ts): the ops (PoolOp), the
// loops they call (the exports of simd/products.wat and of simd/loops.wat's
// shared build), how many rows a unit of each op holds (splitRows), and the
// one dispatch of an op to its loops (RUN_ROWS_SOURCE): a string that each
// worker evaluates in its source (kernels/pool_worker.ts) and the calling
// thread makes its runRows from. simd/walker.wat's $runRows is the program
// walker's copy of the dispatch, case for case.
//
// A new op: its PoolOp, JobOp and JOB_OP_NAMES entry, its splitRows, a case
// in RUN_ROWS_SOURCE and one in walker.wat's $runRows (the program tests run
// every op as a program step and as a job).
import { WASM_BASE64 as SHARED_LOOPS_WASM_BASE64 } from './simd/loops.shared.wasm.js';
import { WASM_BASE64 } from './simd/products.wasm.js';

/** The exports of products.wat; pointers are byte offsets into the pool's memory. */
export interface ProductLoops {
  productF32(w: number, x: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
  quantizeQ8(x: number, n: number, q: number, d: number): void;
  quantizeX16(x: number, n: number, q: number, d: number): void;
  productQ8(w: number, xq: number, xd: number, out: number, row0: number, row1: number, cols: number, tokens: number, outStride: number): void;
}

/** The exports of simd/loops.wat (assembled for a shared memory) that the pool runs: attention rows (kernels/pooled_attention.ts), token NLLs' sums (kernels/token_nll.ts), SwiGLU (kernels/pooled_swiglu.ts); and the logits' argmax (kernels/logits_argmax.ts). */
export interface SharedLoops {
  attendRows(records: number, item0: number, item1: number, frames: number, valuesFromKeys: number, dim: number, scaleBits: number, s: number): void;
  sumsOfExps(x: number, row0: number, row1: number, n: number, out: number): void;
  swigluRange(x: number, row0: number, row1: number, hidden: number, out: number): void;
  /** x[i] += y[i] for i < n, float32 (the calling thread only). */
  addInto(x: number, y: number, n: number): void;
  /** RMSNorm of rows of dim floats, stride apart, x into out (may be x): kernels/rmsnorm.ts rmsNormRows' bits (the calling thread only). */
  rmsNormRows(x: number, w: number, rows: number, dim: number, stride: number, eps: number, out: number): void;
  /** The first largest of n floats at x, or -1 if any is not finite (kernels/logits_argmax.ts; the calling thread only). */
  argmaxFinite(x: number, n: number): number;
  /** argmaxFinite of rows [row0, row1) of a one-token product's result x, as a record: see PICK_RECORD_BYTES. */
  pickRows(x: number, row0: number, row1: number, records: number, group: number): void;
  /** The first largest of the claims' picks (pickRows' records, followed from row 0) in x ([rows]); -1 when one found a NaN or an infinity; -2 when a record is not a claim's (the calling thread only). */
  pickOfClaims(x: number, rows: number, records: number, group: number): number;
  /** Rows [row0, row1) of x ([rows, dim]) normalised by w (rmsNormRows' bits, eps the float64 at epsAt) into out ([rows, stride]), the padding zeroed: see PoolOp.NormOperand. */
  normOperand(x: number, w: number, epsAt: number, dim: number, stride: number, out: number, row0: number, row1: number): void;
  /** One token's q|k|v split into rotated queries, rotated keys and values where its record says (kernels/qkv_rope.ts): see PoolOp.QkvRope. */
  qkvRope(record: number): void;
  /** A decode program's per-token words of its QkvRope and Attend records from the patch table's `layers` rows at `table` (kernels/decode_patch.ts; the calling thread only). */
  patchDecodeLayers(table: number, layers: number, heads: number, group: number, rowBytes: number): void;
  /** RoPE's angles of position p (position / scale): cos and sin [half] as float32 of p times the float64s at freqs, kernels/fdlibm.ts's bits (Node 20's Math.cos and Math.sin); 0 where an angle is past 2^20 pi/2 (1,647,100) (then compute them in JavaScript: kernels/rope.ts ropeAnglesFrom; the calling thread only). */
  ropeAngles(p: number, freqs: number, half: number, cos: number, sin: number): number;
}

/** Which loop a pool job runs: a weight product, another loop over rows (attention, row sums, SwiGLU), or a q8 product and its SwiGLU in one (Q8Gated). */
export const enum PoolOp {
  F32 = 0,
  Q8 = 1,
  /** attendRows over items; its last two arguments are the scores' base and bytes per thread. */
  Attend = 3,
  /** sumsOfExps over rows. */
  SumsOfExps = 4,
  /** swigluRange over rows. */
  Swiglu = 5,
  /** SwiGLU of a q8 product of one token (the gate|up projection): see GATED_SCRATCH_FLOATS. */
  Q8Gated = 6,
  /** A float32 product of one token that also picks: F32's args, then the records (see PICK_RECORD_BYTES). */
  F32Pick = 7,
  /** A q8 product of one token that also picks: Q8's args, then the records (see PICK_RECORD_BYTES). */
  Q8Pick = 8,
  /**
   * A decode step's input norm: rows (tokens) of the residual x into a
   * product's operand, normalised (normOperand), and for q8 quantised to
   * int16 blocks (quantizeX16, each row's stride on its own). args: x, w,
   * epsAt, dim, stride, out, xq, xd (xq 0: float32, no quantisation): the
   * operand pooledProduct writes (kernels/split_products.ts).
   */
  NormOperand = 9,
  /** q|k|v split and RoPE of one token a row (loops.wat qkvRope): args: the records (kernels/qkv_rope.ts), bytes from one to the next; row r's at records + r bytes. */
  QkvRope = 10,
  /**
   * A float32 product of one token that adds its rows into the residual:
   * F32's args, then the residual's offset; each claim of rows [r0, r1)
   * computes them, then residual[r] += out[r] for those rows (addInto's
   * float32 add: the bits of the product followed by the separate add).
   */
  F32Add = 11,
  /** Q8's args, then the residual's offset: as F32Add. */
  Q8Add = 12,
  /** A q8 product's x quantised to int16 blocks (quantizeX16), rows of n floats (a multiple of 32) apart: args x, n, q, d. */
  Quantize = 13,
}

/** The jobs run() takes. */
export type JobOp =
  | PoolOp.F32
  | PoolOp.Q8
  | PoolOp.Attend
  | PoolOp.SumsOfExps
  | PoolOp.Swiglu
  | PoolOp.Q8Gated
  | PoolOp.F32Pick
  | PoolOp.Q8Pick
  | PoolOp.NormOperand
  | PoolOp.QkvRope
  | PoolOp.F32Add
  | PoolOp.Q8Add
  | PoolOp.Quantize;

/**
 * Every JobOp, with a name for tables (bench/profile_decode.ts), and for
 * checks of ops that come from outside the type system (a program's steps:
 * PoolProgram checks each op against it when it is built, since an op the
 * dispatch lacks is a trap in the walker). A JobOp missing here is a compile
 * error.
 */
export const JOB_OP_NAMES: Readonly<Record<JobOp, string>> = {
  [PoolOp.F32]: 'F32 product',
  [PoolOp.Q8]: 'Q8 product',
  [PoolOp.Attend]: 'Attend',
  [PoolOp.SumsOfExps]: 'SumsOfExps',
  [PoolOp.Swiglu]: 'Swiglu',
  [PoolOp.Q8Gated]: 'Q8Gated',
  [PoolOp.F32Pick]: 'F32Pick (classifier)',
  [PoolOp.Q8Pick]: 'Q8Pick (classifier)',
  [PoolOp.NormOperand]: 'NormOperand',
  [PoolOp.QkvRope]: 'QkvRope',
  [PoolOp.F32Add]: 'F32Add (product + residual)',
  [PoolOp.Q8Add]: 'Q8Add (product + residual)',
  [PoolOp.Quantize]: 'Quantize',
};

/** Whether `op` is one of the ops run() and a program's op steps take. */
export function isJobOp(op: unknown): op is JobOp {
  return typeof op === 'number' && Object.hasOwn(JOB_OP_NAMES, op);
}

/**
 * A product that picks (F32Pick, Q8Pick: greedy decoding's classifier, one
 * token): each claim of rows [row0, row1), once it has computed them, finds
 * the first largest of them where they lie, in its own core's cache
 * (loops.wat pickRows: argmaxFinite), and writes a record of two int32 at
 * records + PICK_RECORD_BYTES * (row0 / group), group the job's row group
 * (16 rows for f32, 4 for q8): row1, then the row it found, or -1 when any of
 * its rows is NaN or infinite. The caller then follows the records from row
 * 0 to the last row (kernels/split_products.ts), a few claims, instead of
 * reading the whole result, half of it from the other core's cache
 * (argmaxFinite over 32,000 logits: about 7 µs of a 15M q8 decode step).
 * The first largest of the claims' picks, in row order, is the row
 * argmaxFinite finds in the whole result, whichever rows the claims took.
 */
export const PICK_RECORD_BYTES = 8;

/**
 * The gated job (Q8Gated): one token's q8 product with a gate|up matrix
 * ([2 hidden, cols]: gate rows, then up rows), then SwiGLU, in one job: the
 * job's rows are the hidden features, and a claim of rows [r0, r1)
 * computes gate rows [r0, r1) and up rows [hidden + r0, hidden + r1) into
 * its own span of the scratch, [gate | up] (n = r1 - r0 each, at scratch +
 * 4 (hidden + 2 r0)), then swigluRange of that span as one row of n into
 * gated[r0, r1). Each output row's sum is the product loop's whatever range
 * computes it, and SwiGLU is elementwise, so the bits are those of the
 * product followed by the SwiGLU job. The scratch holds 3 hidden floats.
 *
 *   args: w, xq, xd, scratch, cols, gated, hidden
 *
 * The pointers for the product: gate row r lands at scratch + 4 (hidden +
 * 2 r0) + 4 (r - r0), so its out is scratch + 4 (hidden + r0); up row
 * hidden + r lands n floats further, so its out is scratch + 4 r1 (neither
 * below scratch: the span's offset of hidden floats sees to that).
 *
 * (Float32 has no gated job: the same fusion measured 3-4 µs a layer slower
 * than the product and the SwiGLU job in a 15M decode on 2 threads, its two
 * streams of rows per claim coming from memory, not the cache. With the
 * float32 gate|up matrix stored interleaved, gate and up groups of 16 rows
 * alternating so that a claim's rows are one stream (a flag at allocation,
 * writeRow mapping rows, products reordering theirs), it moved SwiGLU off
 * the down product, a few µs a token, but no A/B resolved it: 15M f32 2
 * threads 1.0005 in one process, 95% 0.9966..1.0043; bench/RESULTS.md,
 * 'Float32 SwiGLU in the gate|up claims', 12-01. Not kept.)
 */
export const GATED_SCRATCH_FLOATS = 3;

/**
 * Rows a job's units are whole multiples of: the float32 product's packed
 * groups of 16 rows (split_products.ts; a range that cut a group would
 * compute the whole group), attention's single items (a decode step's are
 * its few heads: groups of 4 would split 6 heads 4 to 2), else 4 (q8's
 * groups; the other jobs' rows).
 */
export function splitRows(op: JobOp): number {
  return op === PoolOp.F32 || op === PoolOp.F32Pick || op === PoolOp.F32Add ? 16 : op === PoolOp.Attend || op === PoolOp.QkvRope ? 1 : 4;
}

// The one dispatch of a job's op: rows [row0, row1) of op with arguments a
// (see run), on thread `thread` (0: the caller; it picks the thread's own
// attention scores). Plain JavaScript in a string: each worker evaluates it
// in its source, and the calling thread makes its runRows from the same
// text, so a new op is one case here (with its PoolOp, JobOp and splitRows),
// and one in the program walker's copy, simd/walker.wat's $runRows (the
// program tests run the ops as program steps and as jobs).
export const RUN_ROWS_SOURCE = `(loops, shared, op, a, row0, row1, thread) => {
  if (row1 <= row0) return;
  if (op === ${PoolOp.F32}) loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
  else if (op === ${PoolOp.Q8}) loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
  else if (op === ${PoolOp.Attend}) shared.attendRows(a[0], row0, row1, a[1], a[2], a[3], a[4], a[5] + thread * a[6]);
  else if (op === ${PoolOp.SumsOfExps}) shared.sumsOfExps(a[0], row0, row1, a[1], a[2]);
  else if (op === ${PoolOp.Swiglu}) shared.swigluRange(a[0], row0, row1, a[1], a[2]);
  else if (op === ${PoolOp.F32Pick}) {
    loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
    shared.pickRows(a[2], row0, row1, a[6], ${splitRows(PoolOp.F32Pick)});
  } else if (op === ${PoolOp.Q8Pick}) {
    loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    shared.pickRows(a[3], row0, row1, a[7], ${splitRows(PoolOp.Q8Pick)});
  } else if (op === ${PoolOp.Q8Gated}) {
    // see GATED_SCRATCH_FLOATS for the pointers (no arrays made here: garbage on every claim measured slower)
    const h = a[6];
    loops.productQ8(a[0], a[1], a[2], a[3] + 4 * (h + row0), row0, row1, a[4], 1, 2 * h);
    loops.productQ8(a[0], a[1], a[2], a[3] + 4 * row1, h + row0, h + row1, a[4], 1, 2 * h);
    shared.swigluRange(a[3] + 4 * (h + 2 * row0), 0, 1, row1 - row0, a[5] + 4 * row0);
  } else if (op === ${PoolOp.NormOperand}) {
    // (xd: a float scale per 32 of a row's stride floats)
    shared.normOperand(a[0], a[1], a[2], a[3], a[4], a[5], row0, row1);
    if (a[6] !== 0) loops.quantizeX16(a[5] + 4 * a[4] * row0, a[4] * (row1 - row0), a[6] + 2 * a[4] * row0, a[7] + (a[4] / 8) * row0);
  } else if (op === ${PoolOp.Quantize}) loops.quantizeX16(a[0] + 4 * a[1] * row0, a[1] * (row1 - row0), a[2] + 2 * a[1] * row0, a[3] + (a[1] / 8) * row0);
  else if (op === ${PoolOp.QkvRope}) {
    for (let r = row0; r < row1; r++) shared.qkvRope(a[0] + r * a[1]);
  } else if (op === ${PoolOp.F32Add}) {
    loops.productF32(a[0], a[1], a[2], row0, row1, a[3], a[4], a[5]);
    shared.addInto(a[6] + 4 * row0, a[2] + 4 * row0, row1 - row0);
  } else if (op === ${PoolOp.Q8Add}) {
    loops.productQ8(a[0], a[1], a[2], a[3], row0, row1, a[4], a[5], a[6]);
    shared.addInto(a[7] + 4 * row0, a[3] + 4 * row0, row1 - row0);
  } else throw new Error('WorkerPool: no op ' + op);
}`;

/** The calling thread's copy of the dispatch (RUN_ROWS_SOURCE). */
export type RunRows = (loops: ProductLoops, shared: SharedLoops, op: JobOp, a: ArrayLike<number>, row0: number, row1: number, thread: number) => void;
// (a string made into a function on purpose: the workers' copy is the same text)
export const runRows = new Function(`return ${RUN_ROWS_SOURCE}`)() as RunRows;

let compiled: WebAssembly.Module | undefined;
export function productsModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

let compiledShared: WebAssembly.Module | undefined;
export function sharedLoopsModule(): WebAssembly.Module {
  compiledShared ??= new WebAssembly.Module(Buffer.from(SHARED_LOOPS_WASM_BASE64, 'base64'));
  return compiledShared;
}
