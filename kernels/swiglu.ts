// SwiGLU (Shazeer 2020), the Llama feed-forward gate: silu(gate) * up, with
// silu(g) = g * sigmoid(g). The projection that feeds it is fused, so its
// input is [..., 2 * hidden] = [gate | up].
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';
import { simdLoops } from './simd/instance.js';

// inputs: gateUp [..., 2 hidden], dy [..., hidden] -> d gateUp [..., 2 hidden]. With s = sigmoid(g):
//   d gate = dy * up * s (1 + g (1 - s)),   d up = dy * g s
// (tfjs's own gradient would split gateUp in two, a full copy on wasm, and chain four more ops.)
const swigluGradKernel: JsKernel<object> = {
  name: 'StreamllmSwiGLUGrad',
  outputShape: ([x]) => x!,
  run([x, dy], [shape], out) {
    const hidden = shape![shape!.length - 1]! / 2;
    for (let row = 0, o = 0; row < x!.length; row += 2 * hidden) {
      for (let i = 0; i < hidden; i++, o++) {
        const g = x![row + i]!;
        const up = x![row + hidden + i]!;
        const s = 1 / (1 + Math.exp(-g));
        out[row + i] = dy![o]! * up * s * (1 + g * (1 - s));
        out[row + hidden + i] = dy![o]! * g * s;
      }
    }
  },
};

const swigluKernel: JsKernel<object> = {
  name: 'StreamllmSwiGLU',
  outputShape: ([x]) => [...x!.slice(0, -1), x![x!.length - 1]! / 2],
  run([x], [shape], out) {
    const hidden = shape![shape!.length - 1]! / 2;
    const simd = hidden % 4 === 0 ? simdLoops([x!, out]) : undefined;
    if (simd !== undefined) return simd.swiglu(x!.byteOffset, out.length / hidden, hidden, out.byteOffset);
    swigluRows(x!, out.length / hidden, hidden, out);
  },
  gradient: {
    save: [0],
    grads: (dy, [x]) => ({ 0: () => runJsKernel(swigluGradKernel, [x!, dy], {}) }),
  },
};

function swigluOps(gateUp: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [gate, up] = tf.split(gateUp, 2, -1);
    return gate!.mul(gate!.sigmoid()).mul(up!);
  });
}

/** gateUp: [..., 2 * hidden] -> [..., hidden] */
export function swiglu<T extends tf.Tensor>(gateUp: T): T {
  if (!jsKernelsAvailable()) return swigluOps(gateUp) as T;
  return runJsKernel(swigluKernel, [gateUp], {}) as T;
}

/**
 * The SwiGLU kernel's JavaScript loop over arrays anywhere in memory (the
 * pooled layers' fallback where the kernel would not run its SIMD loop
 * either): gateUp [rows, 2 hidden] = [gate | up] -> out [rows, hidden].
 */
export function swigluRows(gateUp: Float32Array, rows: number, hidden: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const at = 2 * r * hidden;
    for (let i = 0; i < hidden; i++) {
      const g = gateUp[at + i]!;
      out[r * hidden + i] = (g / (1 + Math.exp(-g))) * gateUp[at + hidden + i]!;
    }
  }
}
