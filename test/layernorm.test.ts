// kernels/layernorm.ts against its float64 reference, through the fused
// kernel and through tfjs ops: values, and gradients against finite
// differences of the reference.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { setFusedKernels } from '../kernels/js_kernel.js';
import { layerNorm } from '../kernels/layernorm.js';
import { layerNormReference } from '../kernels/layernorm.ref.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { randomArray, rng } from './tiny_checkpoints.js';

await initTestBackend();

const r = rng('layernorm');
const dim = 24;
const rows = 4;
const x = randomArray(r, rows * dim, 2);
const w = randomArray(r, dim, 1);
const b = randomArray(r, dim, 1);
const probe = randomArray(r, rows * dim, 1); // loss = sum(probe * y)
const eps = 1e-5;

t.test('fused kernel: a large common offset does not cancel', async (t) => {
  setFusedKernels(true);
  const shifted = Float32Array.from(x, (v) => v + 1000);
  const got = tf.tidy(() => layerNorm(tf.tensor2d(shifted, [rows, dim]), tf.tensor1d(w), tf.tensor1d(b), eps).dataSync());
  const d = maxAbsDiff(got, layerNormReference(shifted, w, b, eps));
  t.ok(d < 1e-4, `max |diff| ${d}`);
});

function numericGrad(which: 'x' | 'w' | 'b', i: number): number {
  const h = 1e-3;
  const loss = (xs: Float32Array, ws: Float32Array, bs: Float32Array) => layerNormReference(xs, ws, bs, eps).reduce((a, y, j) => a + y * probe[j]!, 0);
  const shift = (a: Float32Array, d: number) => Float32Array.from(a, (v, j) => (j === i ? v + d : v));
  const at = (d: number) => loss(which === 'x' ? shift(x, d) : x, which === 'w' ? shift(w, d) : w, which === 'b' ? shift(b, d) : b);
  return (at(h) - at(-h)) / (2 * h);
}

for (const fused of [true, false]) {
  t.test(`values and gradients (${fused ? 'fused' : 'tfjs ops'})`, async (t) => {
    setFusedKernels(fused);
    const before = tf.memory().numTensors;
    const [xt, wt, bt, pt] = [tf.tensor2d(x, [rows, dim]), tf.tensor1d(w), tf.tensor1d(b), tf.tensor2d(probe, [rows, dim])];
    let y: tf.Tensor | undefined;
    const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      (y = tf.keep(layerNorm(xi, wi as tf.Tensor1D, bi as tf.Tensor1D, eps))).mul(pt).sum(),
    )([xt, wt, bt]);
    const d = maxAbsDiff(y!.dataSync(), layerNormReference(x, w, b, eps));
    t.ok(d < 2e-6, `values max |diff| ${d}`);
    const [dx, dw, db] = grads.map((g) => g.dataSync());
    let worst = 0;
    for (let i = 0; i < x.length; i += 5) worst = Math.max(worst, Math.abs(dx![i]! - numericGrad('x', i)));
    for (let i = 0; i < dim; i += 3) {
      worst = Math.max(worst, Math.abs(dw![i]! - numericGrad('w', i)), Math.abs(db![i]! - numericGrad('b', i)));
    }
    t.ok(worst < 1e-4, `gradients max |diff| ${worst}`);
    tf.dispose([xt, wt, bt, pt, y!, ...grads]);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    setFusedKernels(true);
  });
}
