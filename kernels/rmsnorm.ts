// RMSNorm (Zhang & Sennrich 2019), the Llama normalisation:
//   y = x / sqrt(mean(x^2) + eps) * weight
// One fused kernel on wasm/cpu; tfjs ops elsewhere. Differentiable on both.
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

const rmsNormKernel: JsKernel<{ eps: number }> = {
  name: 'StreamllmRmsNorm',
  outputShape: ([x]) => x!,
  run([x, w], [shape], out, { eps }) {
    rmsNormRows(x!, w!, eps, shape![shape!.length - 1]!, out);
  },
  // With r = (mean(x^2) + eps)^-1/2 and g = dy * weight:
  //   dx = r g - x r^3 mean(g x),   dweight = sum over rows of dy x r
  gradient: {
    save: [0, 1],
    grads: (dy, [x, w], { eps }) => {
      const r = () => x!.square().mean(-1, true).add(eps).rsqrt();
      return {
        0: () => {
          const g = dy.mul(w!);
          const rr = r();
          return g.mul(rr).sub(x!.mul(rr.pow(3)).mul(g.mul(x!).mean(-1, true)));
        },
        1: () => dy.mul(x!).mul(r()).reshape([-1, w!.shape[0]]).sum(0),
      };
    },
  },
};

function rmsNormOps(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => x.mul(x.square().mean(-1, true).add(eps).rsqrt()).mul(weight));
}

/** x: [..., dim], weight: [dim] -> [..., dim] */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  if (!jsKernelsAvailable()) return rmsNormOps(x, weight, eps) as T;
  return runJsKernel(rmsNormKernel, [x, weight], { eps }) as T;
}

/**
 * The kernel's loop over arrays anywhere in memory (the pooled layers'
 * residual stream): out = RMSNorm(x) * weight, per row of dim.
 */
export function rmsNormRows(x: Float32Array, weight: Float32Array, eps: number, dim: number, out: Float32Array): void {
  for (let row = 0; row < x.length; row += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[row + i]! * x[row + i]!;
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[row + i] = x[row + i]! * r * weight[i]!;
  }
}
