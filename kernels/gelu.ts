// GELU (Hendrycks & Gimpel 2016), GPT-NeoX's activation, in its exact form:
//   gelu(x) = x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)) = x/2 * erfc(-x / sqrt 2)
// (not the tanh approximation, HF's "gelu_new"). JavaScript has no erf, so
// the fused kernel uses Numerical Recipes' erfc approximation (erfcc,
// relative error below 1.2e-7 everywhere, measured against gelu.ref.ts):
// through erfc the negative tail keeps its relative accuracy where
// 1 + erf(x) would cancel. The tfjs-op path uses tf.erf (present on wasm,
// cpu and tensorflow). Differentiable on both.
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

/** erfc(x), relative error < 1.2e-7 (Press et al., Numerical Recipes, 6.2). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  // prettier-ignore
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// gelu'(x) = Phi(x) + x phi(x), times the incoming gradient.
const geluGradKernel: JsKernel<object> = {
  name: 'StreamllmGeluGrad',
  outputShape: ([x]) => x!,
  run([x, dy], _shapes, out) {
    for (let i = 0; i < x!.length; i++) {
      const v = x![i]!;
      out[i] = dy![i]! * (0.5 * erfc(-v * Math.SQRT1_2) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
    }
  },
};

const geluKernel: JsKernel<object> = {
  name: 'StreamllmGelu',
  outputShape: ([x]) => x!,
  run([x], _shapes, out) {
    for (let i = 0; i < x!.length; i++) {
      const v = x![i]!;
      out[i] = 0.5 * v * erfc(-v * Math.SQRT1_2);
    }
  },
  gradient: {
    save: [0],
    grads: (dy, [x]) => ({ 0: () => runJsKernel(geluGradKernel, [x!, dy], {}) }),
  },
};

function geluOps(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)));
}

/** x: [...] -> [...], elementwise. */
export function gelu<T extends tf.Tensor>(x: T): T {
  if (!jsKernelsAvailable()) return geluOps(x) as T;
  return runJsKernel(geluKernel, [x], {}) as T;
}
