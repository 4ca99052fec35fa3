// Matrix products in the form the wasm backend runs fast.
//
// XNNPACK (wasm) takes its fast path only for 2-D, untransposed operands:
// measured here, x[1,288] @ W[288,32000] runs in 1.0 ms but with W stored
// [32000,288] and transposeB it takes 8.8 ms; a batched [6,256,48] @
// [6,48,256] falls to a loop 10x slower than six 2-D products. So weights
// are stored [in, out], batched products are split into 2-D ones, and the
// gradients (which tfjs writes with transposed products) transpose
// explicitly first. The tensorflow backend gets the plain ops.
import * as tf from '@tensorflow/tfjs';
import { runNamedKernel, splitsBatchedProducts } from './paths.js';

// The product runs the backend's own BatchMatMul kernel under a name of
// ours, so that it can carry its own gradient (saved the standard way).
const MATMUL_2D = 'StreamllmMatMul2d';

// Backends it is registered for (a registry look-up per product costs more).
const registeredOn = new Set<string>();

function ensureMatMulKernel(): void {
  const backend = tf.getBackend();
  if (registeredOn.has(backend)) return;
  if (tf.getKernel(MATMUL_2D, backend) !== undefined) {
    registeredOn.add(backend);
    return;
  }
  const inner = tf.getKernel('BatchMatMul', backend);
  if (inner === undefined) throw new Error(`matMul2d: backend '${backend}' has no BatchMatMul kernel`);
  tf.registerKernel({
    kernelName: MATMUL_2D,
    backendName: backend,
    kernelFunc: (args) => inner.kernelFunc({ ...args, attrs: { transposeA: false, transposeB: false } }),
  });
  if (tf.getGradient(MATMUL_2D) === undefined) {
    tf.registerGradient({
      kernelName: MATMUL_2D,
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, [a, b]) => ({
        a: () => tf.matMul(dy as tf.Tensor2D, tf.transpose(b as tf.Tensor2D)), // dA = dY B^T
        b: () => tf.matMul(tf.transpose(a as tf.Tensor2D), dy as tf.Tensor2D), // dB = A^T dY
      }),
    });
  }
  registeredOn.add(backend);
}

/** a: [M, K] @ b: [K, N] -> [M, N]; differentiable without transposed products. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  ensureMatMulKernel();
  return runNamedKernel<tf.Tensor2D>(MATMUL_2D, { a, b });
}

/** x: [..., in] @ weight: [in, out] (+ bias: [out]) -> [..., out] */
export function linear<T extends tf.Tensor>(x: T, weight: tf.Tensor2D, bias?: tf.Tensor1D): T {
  // The common case is one op: no scope of its own (25 per decode step add up).
  if (x.rank === 2 && bias === undefined) return matMul2d(x as unknown as tf.Tensor2D, weight) as unknown as T;
  return tf.tidy(() => {
    const [inDim, outDim] = weight.shape;
    const flat = x.rank === 2 ? (x as unknown as tf.Tensor2D) : x.reshape([-1, inDim]);
    let y: tf.Tensor = matMul2d(flat as tf.Tensor2D, weight);
    if (bias !== undefined) y = y.add(bias);
    return (x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), outDim])) as T;
  });
}

/** a: [B, M, K] @ b: [B, K, N] -> [B, M, N], as B 2-D products where that is faster. */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (!splitsBatchedProducts()) return tf.matMul(a, b);
  return tf.tidy(() => {
    if (a.shape[0] === 1) return matMul2d(a.squeeze([0]), b.squeeze([0])).expandDims<tf.Tensor3D>(0);
    const as = tf.unstack(a) as tf.Tensor2D[];
    const bs = tf.unstack(b) as tf.Tensor2D[];
    return tf.stack(as.map((ai, i) => matMul2d(ai, bs[i]!))) as tf.Tensor3D;
  });
}

/** [B, M, N] -> [B, N, M] */
export function transposeLast(x: tf.Tensor3D): tf.Tensor3D {
  return tf.transpose(x, [0, 2, 1]);
}
