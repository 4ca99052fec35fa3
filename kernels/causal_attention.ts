// Causal self-attention for training: B independent sequences of T tokens,
// each attending to itself from position 0, straight from the fused q|k|v
// projection, with RoPE, every softmax variant, and a hand-written gradient.
//
// Why not the general path of kernels/attention.ts: on wasm that path
// splits the batch and the heads with Slice/Unpack, and the wasm Slice
// copies its whole input every call (readSync), so carving a [B*T, ...]
// activation into B*heads pieces costs B*heads full copies, forwards and
// again backwards; tfjs's own transposed products fall off XNNPACK's fast
// path. Here JS kernels cut out exactly one head of one sequence (rotating
// q and k on the way, transposing where the product needs it), XNNPACK runs
// the [T, T] products as plain 2-D matrices, a JS kernel does the masked
// softmax, and one JS kernel writes all heads back into [B*T, heads*headDim].
//
// Per sequence b and head h (kv head g = floor(h / group), scale 1/sqrt(d)):
//   S = rope(q) rope(k)^T              [T, T]
//   P = normalise_variant(scale S + causal mask)     (kernels/softmax.ts)
//   O = P v                            [T, headDim]
// Backward, with dO given:
//   dP = dO v^T,  dS = scale * the variant's row gradient of (P, dP)
//     (softmax family: P * (dP - rowsum(P * dP)))
//   dq = rope^-1(dS k),  dk = rope^-1(dS^T q),  dv = P^T dO
//   dsink_h = sum over rows of the row gradient's extra-logit part
//     (softmax family: -p_sink * rowsum(P * dP),  p_sink = 1 - rowsum(P))
import * as tf from '@tensorflow/tfjs';
import { customGrad } from './custom_grad.js';
import { type JsKernel, runJsKernel } from './js_kernel.js';
import type { RopeAngles, RopeSpec } from './rope.js';
import { extraLogitOf, learnsExtraLogit, type SoftmaxVariant, softmaxRule } from './softmax.js';

export interface CausalAttentionSpec {
  /** Sequences in the batch; qkv has batch * T rows. */
  batch: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rope: RopeSpec;
  variant: SoftmaxVariant;
}

// ---- JS kernels --------------------------------------------------------

/**
 * Copy one head row: channel c from src[s + c * sStride] to dst[d + c * dStride],
 * rotating the rotary pairs by `dir` times row t's angles (dir 0: plain copy).
 * The same arithmetic as kernels/rope.ts. Plain numbers only, so the JIT
 * keeps this one monomorphic loop for every caller.
 */
function copyRow(
  src: Float32Array,
  s: number,
  sStride: number,
  dst: Float32Array,
  d: number,
  dStride: number,
  width: number,
  cos: Float32Array,
  sin: Float32Array,
  t: number,
  half: number,
  dir: number,
  pairs: boolean,
): void {
  for (let c = 0; c < width; c++) dst[d + c * dStride] = src[s + c * sStride]!;
  if (dir === 0) return;
  for (let i = 0; i < half; i++) {
    const j = pairs ? 2 * i : i;
    const k = pairs ? 2 * i + 1 : i + half;
    const co = cos[t * half + i]!;
    const si = dir * sin[t * half + i]!;
    const x = src[s + j * sStride]!;
    const y = src[s + k * sStride]!;
    dst[d + j * dStride] = x * co - y * si;
    dst[d + k * dStride] = x * si + y * co;
  }
}

interface SliceAttrs {
  row0: number;
  rows: number;
  col0: number;
  width: number;
  /** Write [width, rows] instead of [rows, width]. */
  transpose: boolean;
  /** 0: copy; +1: rotate row t to position t; -1: rotate back. */
  rope: number;
  pairs: boolean;
  rotaryDim: number;
}

// inputs: x [R, C], cos, sin [rows, rotaryDim/2] -> one head block of x, [rows, width] or [width, rows]
const headSliceKernel: JsKernel<SliceAttrs> = {
  name: 'StreamllmHeadSlice',
  outputShape: (_, a) => (a.transpose ? [a.width, a.rows] : [a.rows, a.width]),
  run([x, cos, sin], [shape], out, a) {
    const C = shape![1]!;
    const half = a.rotaryDim / 2;
    for (let t = 0; t < a.rows; t++) {
      const [d, dStride] = a.transpose ? [t, a.rows] : [t * a.width, 1];
      copyRow(x!, (a.row0 + t) * C + a.col0, 1, out, d, dStride, a.width, cos!, sin!, t, half, a.rope, a.pairs);
    }
  },
};

interface MergeBlock {
  row0: number;
  col0: number;
  /** The block is [width, rows] (a transposed product) rather than [rows, width]. */
  transposed: boolean;
  rope: number;
}

interface MergeAttrs {
  outShape: [number, number];
  blocks: MergeBlock[];
  rows: number;
  width: number;
  pairs: boolean;
  rotaryDim: number;
}

// inputs: the blocks, then cos, sin -> [R, C] with every block written to its place
const mergeKernel: JsKernel<MergeAttrs> = {
  name: 'StreamllmHeadMerge',
  outputShape: (_, a) => a.outShape,
  run(inputs, _shapes, out, a) {
    const C = a.outShape[1];
    const cos = inputs[inputs.length - 2]!;
    const sin = inputs[inputs.length - 1]!;
    const half = a.rotaryDim / 2;
    out.fill(0);
    a.blocks.forEach((b, i) => {
      for (let t = 0; t < a.rows; t++) {
        const [s, sStride] = b.transposed ? [t, a.rows] : [t * a.width, 1];
        copyRow(inputs[i]!, s, sStride, out, (b.row0 + t) * C + b.col0, 1, a.width, cos, sin, t, half, b.rope, a.pairs);
      }
    });
  },
};

interface SoftmaxAttrs {
  scale: number;
  variant: SoftmaxVariant;
  head: number;
}

// inputs: scores [T, T] (+ sinkLogits [heads]) -> P [T, T], zero above the
// diagonal: row i is the variant's normaliser over its scaled scores 0..i.
const causalSoftmaxKernel: JsKernel<SoftmaxAttrs> = {
  name: 'StreamllmCausalSoftmax',
  outputShape: ([s]) => s!,
  run([scores, sinks], [shape], out, { scale, variant, head }) {
    const T = shape![0]!;
    const rule = softmaxRule(variant);
    const extra = extraLogitOf(variant, head, sinks);
    const row = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j <= i; j++) row[j] = scale * scores![i * T + j]!;
      rule.normaliseRow(row, i + 1, extra);
      for (let j = 0; j <= i; j++) out[i * T + j] = row[j]!;
      out.fill(0, i * T + i + 1, i * T + T);
    }
  },
};

/** Row i of P and dP [T, T] (entries 0..i), through the variant's row gradient: dS of the raw scores into ds, returns d extra. */
function causalRowGradient(variant: SoftmaxVariant, p: Float32Array, dp: Float32Array, T: number, i: number, ds: Float64Array): number {
  return softmaxRule(variant).rowGradient(p.subarray(i * T, i * T + i + 1), dp.subarray(i * T, i * T + i + 1), i + 1, ds);
}

// inputs: P [T, T], dP [T, T] -> dS^T [T, T]: the gradient of the raw
// scores (scale included), transposed, because both products that use it
// want it so: dk = dS^T q and dq^T = k^T dS^T.
const softmaxGradKernel: JsKernel<{ scale: number; variant: SoftmaxVariant }> = {
  name: 'StreamllmCausalSoftmaxGrad',
  outputShape: ([p]) => p!,
  run([p, dp], [shape], out, { scale, variant }) {
    const T = shape![0]!;
    const ds = new Float64Array(T);
    out.fill(0);
    for (let i = 0; i < T; i++) {
      causalRowGradient(variant, p!, dp!, T, i, ds);
      for (let j = 0; j <= i; j++) out[j * T + i] = scale * ds[j]!;
    }
  },
};

// inputs: P [T, T], dP [T, T] -> [1]: the gradient of the head's extra logit, summed over rows
const sinkGradKernel: JsKernel<{ variant: SoftmaxVariant }> = {
  name: 'StreamllmSinkLogitGrad',
  outputShape: () => [1],
  run([p, dp], [shape], out, { variant }) {
    const T = shape![0]!;
    const ds = new Float64Array(T);
    let g = 0;
    for (let i = 0; i < T; i++) g += causalRowGradient(variant, p!, dp!, T, i, ds);
    out[0] = g;
  },
};

// ---- the op ------------------------------------------------------------

/**
 * qkv: [B*T, (heads + 2 kvHeads) * headDim] (sequence after sequence),
 * angles: rotations of positions 0..T-1, sinkLogits: [heads] for
 * 'learned-sink' -> [B*T, heads * headDim]. Differentiable with respect to
 * qkv and sinkLogits. Needs a backend with JS kernels (wasm, cpu).
 */
export function causalAttention(qkv: tf.Tensor2D, angles: RopeAngles, spec: CausalAttentionSpec, sinkLogits?: tf.Tensor1D): tf.Tensor2D {
  const { batch, heads, kvHeads, headDim, rope, variant } = spec;
  const T = qkv.shape[0] / batch;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const pairs = rope.layout === 'pairs';
  const learned = learnsExtraLogit(variant);
  if (learned && sinkLogits === undefined) throw new Error(`causalAttention: '${variant}' needs sinkLogits`);
  const qCol = (h: number) => h * headDim;
  const kCol = (g: number) => (heads + g) * headDim;
  const vCol = (g: number) => (heads + kvHeads + g) * headDim;

  /** One head block of x: rows of sequence b, columns col0..col0+headDim. */
  const cut = (x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, b: number, col0: number, ropeDir: number, transpose = false) =>
    runJsKernel(headSliceKernel, [x, cos, sin], {
      row0: b * T,
      rows: T,
      col0,
      width: headDim,
      transpose,
      rope: ropeDir,
      pairs,
      rotaryDim: rope.rotaryDim,
    }) as tf.Tensor2D;
  type Placed = MergeBlock & { t: tf.Tensor };
  const merge = (blocks: Placed[], cols: number, cos: tf.Tensor, sin: tf.Tensor) =>
    runJsKernel(mergeKernel, [...blocks.map((b) => b.t), cos, sin], {
      outShape: [batch * T, cols],
      blocks: blocks.map(({ row0, col0, transposed, rope: r }) => ({ row0, col0, transposed, rope: r })),
      rows: T,
      width: headDim,
      pairs,
      rotaryDim: rope.rotaryDim,
    }) as tf.Tensor2D;
  const softmax = (scores: tf.Tensor, sinks: tf.Tensor | undefined, head: number) =>
    runJsKernel(causalSoftmaxKernel, learned ? [scores, sinks!] : [scores], { scale, variant, head });

  const f = customGrad((inputs, save) => {
    const [x, cos, sin, sinks] = inputs as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D | undefined];
    const probs: tf.Tensor[] = []; // P of (b, h), saved for the backward pass
    const outs: Placed[] = [];
    for (let b = 0; b < batch; b++) {
      for (let g = 0; g < kvHeads; g++) {
        const kT = cut(x, cos, sin, b, kCol(g), 1, true); // [headDim, T]
        const v = cut(x, cos, sin, b, vCol(g), 0); // [T, headDim]
        for (let h = g * group; h < (g + 1) * group; h++) {
          const q = cut(x, cos, sin, b, qCol(h), 1); // [T, headDim]
          const p = softmax(tf.matMul(q, kT), sinks, h); // [T, T]
          probs[b * heads + h] = p;
          outs.push({ t: tf.matMul(p, v), row0: b * T, col0: qCol(h), transposed: false, rope: 0 });
        }
      }
    }
    // Each head's P is saved (tfjs copies what customGrad saves: B * heads
    // [T, T] blocks per layer) rather than recomputed at the cost of one more
    // product and softmax per head. Under tf.env IS_TEST the engine's per-op
    // leak check counts these copies as leaks on wasm; the tape frees them.
    save([x, cos, sin, ...(sinks ? [sinks] : []), ...probs]);
    return {
      value: merge(outs, heads * headDim, cos, sin), // [B*T, heads * headDim]
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const [xs, c, s] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
          const sk = learned ? saved[3] : undefined;
          const P = saved.slice(learned ? 4 : 3);
          const grads: Placed[] = [];
          const sinkGrads: tf.Tensor[][] = Array.from({ length: heads }, () => []);
          const at = (b: number, col0: number, t: tf.Tensor, rope: number): Placed => ({ t, row0: b * T, col0, transposed: true, rope });
          for (let b = 0; b < batch; b++) {
            for (let g = 0; g < kvHeads; g++) {
              const kT = cut(xs, c, s, b, kCol(g), 1, true); // [headDim, T]
              const vT = cut(xs, c, s, b, vCol(g), 0, true); // [headDim, T]
              const dk: tf.Tensor[] = [];
              const dv: tf.Tensor[] = [];
              for (let h = g * group; h < (g + 1) * group; h++) {
                const q = cut(xs, c, s, b, qCol(h), 1); // [T, headDim]
                const p = P[b * heads + h]! as tf.Tensor2D; // [T, T]
                const dO = cut(dy, c, s, b, qCol(h), 0); // [T, headDim]
                const dP = tf.matMul(dO, vT); // [T, T]
                const dST = runJsKernel(softmaxGradKernel, [p, dP], { scale, variant }) as tf.Tensor2D; // [T, T]
                if (sk !== undefined) sinkGrads[h]!.push(runJsKernel(sinkGradKernel, [p, dP], { variant }));
                grads.push(at(b, qCol(h), tf.matMul(kT, dST), -1)); // dq^T = k^T dS^T: [headDim, T]
                dk.push(tf.matMul(dST, q)); // dk = dS^T q: [T, headDim]
                dv.push(tf.matMul(cut(dy, c, s, b, qCol(h), 0, true), p)); // dv^T = dO^T P: [headDim, T]
              }
              grads.push({ ...at(b, kCol(g), dk.length === 1 ? dk[0]! : tf.addN(dk), -1), transposed: false });
              grads.push(at(b, vCol(g), dv.length === 1 ? dv[0]! : tf.addN(dv), 0));
            }
          }
          const dx = merge(grads, xs.shape[1], c, s);
          const none = [tf.zerosLike(c), tf.zerosLike(s)];
          if (sk === undefined) return [dx, ...none];
          return [
            dx,
            ...none,
            tf.concat(
              sinkGrads.map((list) => tf.addN(list)),
              0,
            ),
          ];
        }),
    };
  });
  const inputs: tf.Tensor[] = [qkv, angles.cos, angles.sin];
  if (learned) inputs.push(sinkLogits!);
  return f(...inputs) as tf.Tensor2D;
}
