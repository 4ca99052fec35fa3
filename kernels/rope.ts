// Rotary position embedding (Su et al. 2021). Each pair of channels of a
// query or key is rotated by the angle position * theta^(-2i/rotaryDim).
// Only position differences survive in q.k, which is what lets the cache
// re-encode positions (see src/cache/types.ts).
//
// Two layouts pair the channels differently:
//   pairs   (2i, 2i+1)            llama2.c and Meta's original checkpoints
//   halves  (i, i + rotaryDim/2)  Hugging Face `rotate_half`
// Channels past rotaryDim pass through (GPT-NeoX rotates only a fraction).
import * as tf from '@tensorflow/tfjs';
import { cosSinInto, pow } from './fdlibm.js';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

export type RopeLayout = 'pairs' | 'halves';

export interface RopeSpec {
  theta: number;
  layout: RopeLayout;
  /** Channels rotated per head, even and at most headDim. */
  rotaryDim: number;
  /** Linear position scaling (HF rope_scaling type "linear"): position / scale. */
  scale: number;
}

export interface RopeAngles {
  cos: tf.Tensor2D; // [T, rotaryDim/2]
  sin: tf.Tensor2D; // [T, rotaryDim/2]
}

/**
 * Inverse frequency of pair i: theta^(-2i/rotaryDim). (fdlibm's pow, Node
 * 20's Math.pow: Node 24's differs in the last bit of ~10% of these.)
 */
export function inverseFrequency(spec: RopeSpec, i: number): number {
  return 1 / pow(spec.theta, (2 * i) / spec.rotaryDim);
}

/**
 * cos and sin of every pair's angle at each position. Computed in float64 so
 * that positions in the millions keep their accuracy, then stored as float32.
 */
export function ropeAngles(positions: ArrayLike<number>, spec: RopeSpec): RopeAngles {
  const { cos, sin } = ropeAngleArrays(positions, spec);
  const half = spec.rotaryDim / 2;
  return {
    cos: tf.tensor2d(cos, [positions.length, half]),
    sin: tf.tensor2d(sin, [positions.length, half]),
  };
}

// Each spec's inverse frequencies, computed once: a decode step asks for the
// angles of a position or two per layer view, every step, and computing the
// frequencies each time (half a pow call per channel) cost a decode step of
// the 15M model 0.03 ms, more than the angles themselves.
const frequencyTables = new WeakMap<RopeSpec, { theta: number; rotaryDim: number; values: Float64Array }>();

/** inverseFrequency of every pair, [rotaryDim/2] (shared: do not write to it). */
export function inverseFrequencies(spec: RopeSpec): Float64Array {
  const known = frequencyTables.get(spec);
  // a spec is not expected to change, but a changed one must not keep its old table
  if (known !== undefined && known.theta === spec.theta && known.rotaryDim === spec.rotaryDim) return known.values;
  const values = Float64Array.from({ length: spec.rotaryDim / 2 }, (_, i) => inverseFrequency(spec, i));
  frequencyTables.set(spec, { theta: spec.theta, rotaryDim: spec.rotaryDim, values });
  return values;
}

/** ropeAngles as arrays, [T, rotaryDim/2] each: for loops that rotate on arrays (the pooled decode step). */
export function ropeAngleArrays(positions: ArrayLike<number>, spec: RopeSpec): { cos: Float32Array; sin: Float32Array } {
  const half = spec.rotaryDim / 2;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let t = 0; t < positions.length; t++) ropeAnglesInto(positions[t]!, spec, cos, t * half, sin, t * half);
  return { cos, sin };
}

/** The angles of one position, [rotaryDim/2] each, into cos from cosAt and sin from sinAt (a decode program's, in the pool's memory). */
export function ropeAnglesInto(position: number, spec: RopeSpec, cos: Float32Array, cosAt: number, sin: Float32Array, sinAt: number): void {
  ropeAnglesFrom(position, spec.scale, inverseFrequencies(spec), cos, cosAt, sin, sinAt);
}

/**
 * ropeAnglesInto with the spec's inverse frequencies (inverseFrequencies)
 * and scale given: for a caller that keeps the table from token to token.
 * The same bits. cos and sin are fdlibm's (kernels/fdlibm.ts, Node 20's
 * Math.cos and Math.sin), the same operations as loops.wat ropeAngles, with
 * which a decode program computes its angles, calling this only for a
 * position past that copy's range (src/model/decode_program.ts): the same
 * bits on every Node, except for an angle past 2^20 pi/2 (about 1,647,100),
 * where both take Math.cos and Math.sin.
 */
export function ropeAnglesFrom(
  position: number,
  scale: number,
  frequencies: Float64Array,
  cos: Float32Array,
  cosAt: number,
  sin: Float32Array,
  sinAt: number,
): void {
  const half = frequencies.length;
  const p = position / scale;
  for (let i = 0; i < half; i++) cosSinInto(p * frequencies[i]!, cos, cosAt + i, sin, sinAt + i);
}

/** How a head row is rotated: the channel layout, how many channels, which way. */
export interface RowRotation {
  pairs: boolean;
  /** Channels rotated per head, even and at most headDim. */
  rotaryDim: number;
  headDim: number;
  /** +1 rotates forwards; -1 backwards (the transpose, used by the gradient). */
  direction: number;
}

/**
 * dst[d + c] = src[s + c] rotated by row t of the angle tables, for c <
 * headDim (channels past rotaryDim are copied): rotateHeads of one head.
 * The rope kernel's loop.
 */
export function rotateRow(
  src: Float32Array,
  s: number,
  dst: Float32Array,
  d: number,
  cos: Float32Array,
  sin: Float32Array,
  t: number,
  { pairs, rotaryDim, headDim, direction }: RowRotation,
): void {
  rotateHeads(src, s, 0, dst, d, 0, 1, cos, sin, t, pairs, rotaryDim, headDim, direction);
}

/**
 * n heads at once: head h's row src[s + h srcStride ..] into dst[d + h
 * dstStride ..], rotated by row t of the angle tables (direction: see
 * RowRotation). Pair by pair across the heads, each angle read once, in one
 * call: a decode step's head split (qkv_heads.ts) took 2.0 µs a layer at
 * 15M (12 heads of 48) through a call a head, and 0.5 µs so (hot, in a
 * loop; 110M, 24 heads of 64: 5.1 -> 2.3 µs).
 */
export function rotateHeads(
  src: Float32Array,
  s: number,
  srcStride: number,
  dst: Float32Array,
  d: number,
  dstStride: number,
  n: number,
  cos: Float32Array,
  sin: Float32Array,
  t: number,
  pairs: boolean,
  rotaryDim: number,
  headDim: number,
  direction = 1,
): void {
  const half = rotaryDim / 2;
  // the two channels of pair i are (step * i, step * i + other)
  const step = pairs ? 2 : 1;
  const other = pairs ? 1 : half;
  for (let i = 0; i < half; i++) {
    const c = cos[t * half + i]!;
    const sn = direction * sin[t * half + i]!;
    for (let h = 0, x = s + step * i, y = d + step * i; h < n; h++, x += srcStride, y += dstStride) {
      const a = src[x]!;
      const b = src[x + other]!;
      dst[y] = a * c - b * sn;
      dst[y + other] = a * sn + b * c;
    }
  }
  for (let h = 0; h < n && rotaryDim < headDim; h++) {
    for (let j = rotaryDim; j < headDim; j++) dst[d + h * dstStride + j] = src[s + h * srcStride + j]!;
  }
}

type RopeAttrs = Omit<RowRotation, 'headDim'>;

const ropeKernel: JsKernel<RopeAttrs> = {
  name: 'StreamllmRope',
  outputShape: ([x]) => x!,
  run([x, cos, sin], [shape], out, attrs) {
    const [heads, T, headDim] = shape as [number, number, number];
    const rotation = { ...attrs, headDim };
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < T; t++) rotateRow(x!, (h * T + t) * headDim, out, (h * T + t) * headDim, cos!, sin!, t, rotation);
    }
  },
  // A rotation's transpose is the rotation the other way; the angles get no gradient.
  gradient: {
    save: [1, 2],
    grads: (dy, [cos, sin], attrs) => ({ 0: () => runJsKernel(ropeKernel, [dy, cos!, sin!], { ...attrs, direction: -attrs.direction }) }),
  },
};

/** The rotation in tfjs ops, for backends without direct memory (and as autodiff's reference). */
function ropeOps(x: tf.Tensor3D, { cos, sin }: RopeAngles, spec: RopeSpec): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, T, headDim] = x.shape;
    const half = spec.rotaryDim / 2;
    const rotated = spec.rotaryDim === headDim ? x : x.slice([0, 0, 0], [heads, T, spec.rotaryDim]);
    let a: tf.Tensor;
    let b: tf.Tensor;
    if (spec.layout === 'pairs') {
      const pairs = rotated.reshape([heads, T, half, 2]);
      a = pairs.slice([0, 0, 0, 0], [heads, T, half, 1]).reshape([heads, T, half]);
      b = pairs.slice([0, 0, 0, 1], [heads, T, half, 1]).reshape([heads, T, half]);
    } else {
      a = rotated.slice([0, 0, 0], [heads, T, half]);
      b = rotated.slice([0, 0, half], [heads, T, half]);
    }
    const ra = a.mul(cos).sub(b.mul(sin));
    const rb = a.mul(sin).add(b.mul(cos));
    const joined = spec.layout === 'pairs' ? tf.stack([ra, rb], 3).reshape([heads, T, spec.rotaryDim]) : tf.concat([ra, rb], 2);
    if (spec.rotaryDim === headDim) return joined as tf.Tensor3D;
    return tf.concat([joined, x.slice([0, 0, spec.rotaryDim], [heads, T, headDim - spec.rotaryDim])], 2) as tf.Tensor3D;
  });
}

/** Rotate x: [heads, T, headDim] at the T positions of `angles`. */
export function applyRope(x: tf.Tensor3D, angles: RopeAngles, spec: RopeSpec): tf.Tensor3D {
  if (!jsKernelsAvailable()) return ropeOps(x, angles, spec);
  const attrs: RopeAttrs = { pairs: spec.layout === 'pairs', rotaryDim: spec.rotaryDim, direction: 1 };
  return runJsKernel(ropeKernel, [x, angles.cos, angles.sin], attrs) as tf.Tensor3D;
}
