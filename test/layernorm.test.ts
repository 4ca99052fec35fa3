// kernels/layernorm.ts against its float64 reference: the fused kernel and
// the tfjs-op path (taken under a gradient tape), values and gradient.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { layerNorm } from '../kernels/layernorm.js';
import { layerNormReference } from '../kernels/layernorm.ref.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { randomArray, rng } from './tiny_checkpoints.js';

await initTestBackend();

const r = rng('layernorm');
const dim = 24;
// Rows with a large common offset: a one-pass variance would cancel.
const x = Float32Array.from(randomArray(r, 5 * dim, 2), (v, i) => v + (i < dim ? 1000 : 0));
const w = randomArray(r, dim, 1);
const b = randomArray(r, dim, 1);
const eps = 1e-5;

t.test('fused kernel matches the reference', async (t) => {
  const before = tf.memory().numTensors;
  const [xt, wt, bt] = [tf.tensor2d(x, [5, dim]), tf.tensor1d(w), tf.tensor1d(b)];
  const y = layerNorm(xt, wt, bt, eps);
  t.same(y.shape, [5, dim]);
  const d = maxAbsDiff(y.dataSync(), layerNormReference(x, w, b, eps));
  t.ok(d < 2e-6, `max |diff| ${d}`);
  tf.dispose([xt, wt, bt, y]);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

t.test('op path (under a tape): values and gradient against finite differences', async (t) => {
  const before = tf.memory().numTensors;
  const rows = x.slice(dim); // without the offset row: float32 ops would lose it
  const [xt, wt, bt] = [tf.tensor2d(rows, [4, dim]), tf.tensor1d(w), tf.tensor1d(b)];
  const probe = randomArray(r, rows.length, 1); // loss = sum(probe * y)
  const pt = tf.tensor2d(probe, [4, dim]);
  let y: tf.Tensor | undefined;
  const dx = tf.grad((v: tf.Tensor) => (y = tf.keep(layerNorm(v, wt, bt, eps))).mul(pt).sum())(xt);
  const d = maxAbsDiff(y!.dataSync(), layerNormReference(rows, w, b, eps));
  t.ok(d < 2e-6, `values max |diff| ${d}`);
  const loss = (xs: Float32Array) => layerNormReference(xs, w, b, eps).reduce((a, y, i) => a + y * probe[i]!, 0);
  const got = dx.dataSync();
  let worst = 0;
  for (let i = 0; i < rows.length; i += 7) {
    const up = Float32Array.from(rows);
    const down = Float32Array.from(rows);
    up[i]! += 1e-3;
    down[i]! -= 1e-3;
    worst = Math.max(worst, Math.abs(got[i]! - (loss(up) - loss(down)) / 2e-3));
  }
  t.ok(worst < 1e-3, `gradient max |diff| ${worst}`);
  tf.dispose([xt, wt, bt, pt, dx, y!]);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});
