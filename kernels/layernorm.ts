// LayerNorm (Ba et al. 2016), GPT-NeoX's normalisation:
//   y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias
// with the biased (population) variance, as torch.nn.LayerNorm. One fused
// kernel on wasm/cpu, accumulating in float64; tfjs ops elsewhere.
// Differentiable on both.
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
  // With r = (var + eps)^-1/2, xhat = (x - mean) r and g = dy * weight:
  //   dx = r (g - mean(g) - xhat mean(g xhat)),  dweight = sum over rows of dy xhat,  dbias = sum of dy
  gradient: {
    save: [0, 1],
    grads: (dy, [x, w], { eps }) => {
      const dim = w!.shape[0];
      const normalised = () => {
        const centred = x!.sub(x!.mean(-1, true));
        const r = centred.square().mean(-1, true).add(eps).rsqrt();
        return { xhat: centred.mul(r), r };
      };
      return {
        0: () => {
          const { xhat, r } = normalised();
          const g = dy.mul(w!);
          return r.mul(g.sub(g.mean(-1, true)).sub(xhat.mul(g.mul(xhat).mean(-1, true))));
        },
        1: () => dy.mul(normalised().xhat).reshape([-1, dim]).sum(0),
        2: () => dy.reshape([-1, dim]).sum(0),
      };
    },
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
  if (!jsKernelsAvailable()) return layerNormOps(x, weight, bias, eps) as T;
  return runJsKernel(layerNormKernel, [x, weight, bias], { eps }) as T;
}
