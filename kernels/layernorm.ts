// LayerNorm (Ba et al. 2016), GPT-NeoX's normalisation:
//   y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias
// with the biased (population) variance, as torch.nn.LayerNorm. One fused
// kernel on wasm/cpu, accumulating in float64; tfjs ops elsewhere and under
// a gradient tape (autodiff through the ops).
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

const layerNormKernel: JsKernel<{ eps: number }> = {
  name: 'StreamllmLayerNorm',
  outputShape: ([x]) => x!,
  run([x, w, b], [shape], out, { eps }) {
    const dim = shape![shape!.length - 1]!;
    for (let row = 0; row < x!.length; row += dim) {
      let sum = 0;
      for (let i = 0; i < dim; i++) sum += x![row + i]!;
      const mean = sum / dim;
      // Two passes: the variance of centred values does not cancel.
      let ss = 0;
      for (let i = 0; i < dim; i++) {
        const d = x![row + i]! - mean;
        ss += d * d;
      }
      const r = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) out[row + i] = (x![row + i]! - mean) * r * w![i]! + b![i]!;
    }
  },
};

function layerNormOps(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const centred = x.sub(x.mean(-1, true));
    return centred.mul(centred.square().mean(-1, true).add(eps).rsqrt()).mul(weight).add(bias);
  });
}

/** x: [..., dim], weight and bias: [dim] -> [..., dim] */
export function layerNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): T {
  if (jsKernelsAvailable() && !tf.engine().isTapeOn()) return runJsKernel(layerNormKernel, [x, weight, bias], { eps }) as T;
  return layerNormOps(x, weight, bias, eps) as T;
}
