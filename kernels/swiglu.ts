// SwiGLU (Shazeer 2020), the Llama feed-forward gate: silu(gate) * up, with
// silu(g) = g * sigmoid(g). The projection that feeds it is fused, so its
// input is [..., 2 * hidden] = [gate | up].
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';
import { simdLoops } from './simd/instance.js';

const swigluKernel: JsKernel<object> = {
  name: 'StreamllmSwiGLU',
  outputShape: ([x]) => [...x!.slice(0, -1), x![x!.length - 1]! / 2],
  run([x], [shape], out) {
    const hidden = shape![shape!.length - 1]! / 2;
    const simd = hidden % 4 === 0 ? simdLoops([x!, out]) : undefined;
    if (simd !== undefined) return simd.swiglu(x!.byteOffset, out.length / hidden, hidden, out.byteOffset);
    for (let row = 0, o = 0; row < x!.length; row += 2 * hidden) {
      for (let i = 0; i < hidden; i++, o++) {
        const g = x![row + i]!;
        out[o] = (g / (1 + Math.exp(-g))) * x![row + hidden + i]!;
      }
    }
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
  if (jsKernelsAvailable() && !tf.engine().isTapeOn()) return runJsKernel(swigluKernel, [gateUp], {}) as T;
  return swigluOps(gateUp) as T;
}
