// The pool's WebAssembly loops tiered up before a process's first token.
//
// V8 runs each WebAssembly function as baseline code (Liftoff) until it has
// spent a budget (about 1.8 MB of code executed, counted in the function's
// own loops and returns), then compiles it with TurboFan on a background
// thread, for every instance of its module (the workers' too: they
// instantiate the same WebAssembly.Module). In a 15M float32 decode on two
// threads the attention's loops (scores, exps, attendRow, attendRows), the
// norms' (normOperand), the heads' split (qkvRope), the pick (pickRows,
// pickOfClaims) and the per-token patch (patchDecodeLayers) reached TurboFan
// between a process's tokens 17 and 560 (node --trace-wasm-compilation-times),
// through the tokens bench/decode.ts times: attention ran 55 µs a token there
// against 41 later (bench/RESULTS.md "run.c's step by phase").
//
// A call's return spends the budget whatever the input's size, so calling
// each of those loops a few thousand times on a few floats of scratch memory
// spends it in a few milliseconds of the pool's making, not in the decode's
// first hundreds of tokens at its full size: the TurboFan code is the same,
// the baseline code's extra time at full size is not spent at all. (The
// compiles themselves move to start-up: V8 would make them anyway.)
import type { SharedLoops } from './pool_ops.js';

/** Bytes of scratch memory warmLoops writes (16-byte aligned, any contents). */
export const WARM_SCRATCH_BYTES = 1024;

/** Calls of each loop: past the budget of those that cost a decode most (attendRow and its loops: ~2000 calls of a 4-entry row; argmaxFinite ~2000, normOperand, qkvRope, pickOfClaims, patchDecodeLayers ~4000). */
const CALLS = 4000;

/**
 * Call the decode step's loops CALLS times each on tiny inputs at `at`
 * (WARM_SCRATCH_BYTES of the pool's memory, overwritten), so that V8 tiers
 * them up now. Returns the milliseconds it took.
 */
export function warmLoops(loops: SharedLoops, memory: WebAssembly.Memory, at: number): number {
  const started = performance.now();
  const ints = new Int32Array(memory.buffer, at, WARM_SCRATCH_BYTES / 4);
  ints.fill(0);
  const w = (byte: number) => byte / 4;
  // floats: x at +0 (16 floats), y/out at +64 (16), scores at +128 (16), eps at +192 (f64)
  const x = at;
  const out = at + 64;
  const s = at + 128;
  const epsAt = at + 192;
  new Float64Array(memory.buffer, epsAt, 1)[0] = 1e-5;
  // an Attend item (kernels/pooled_attention.ts): one frame's plan (query, its first key, 4 entries), sink, output row
  const item = at + 256;
  ints.set([x, x, 4], w(item - at));
  new Float32Array(memory.buffer, item + 12, 1)[0] = -Infinity;
  ints[w(item - at) + 4] = out;
  // a QkvRope record (kernels/qkv_rope.ts): one head, one kv head of 4 floats, rotated whole, one frame; all on the scratch
  const record = at + 320;
  ints.set([x, 1, 1, 4, 4, 0, s, s, out, out, 16, 1, s, s, out], w(record - at));
  // pickRows' records (kernels/pool_ops.ts PICK_RECORD_BYTES): one claim of 4 rows
  const picks = at + 448;
  // patchDecodeLayers' table: no layers (its return alone spends the budget)
  const table = at + 512;
  const scale = 0x3f000000; // 0.5's float32 bits
  for (let i = 0; i < CALLS; i++) {
    loops.attendRows(item, 0, 1, 1, 0, 4, scale, s);
    loops.normOperand(x, x, epsAt, 4, 4, out, 0, 1);
    loops.qkvRope(record);
    loops.pickRows(x, 0, 4, picks, 4);
    loops.pickOfClaims(x, 4, picks, 4);
    loops.patchDecodeLayers(table, 0, 1, 1, 0);
  }
  ints.fill(0);
  return performance.now() - started;
}
