// kernels/gelu.ts against its float64 reference, through the fused kernel and
// through tfjs ops: values and gradients.
import * as tf from '@tensorflow/tfjs';
import t from 'tap';
import { erfc, gelu } from '../kernels/gelu.js';
import { erfcReference, geluReference } from '../kernels/gelu.ref.js';
import { setFusedKernels } from '../kernels/js_kernel.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';

await initTestBackend();

/** Worst relative error, with `floor` keeping tiny references from dominating. */
function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-30): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return m;
}

// Every 0.01 over [-12, 12], where the negative tail is down at 1e-32.
const xs = Float32Array.from({ length: 2401 }, (_, i) => -12 + i * 0.01);

t.test('erfc approximation: relative error below 1.2e-7', async (t) => {
  let worst = 0;
  for (let x = -5; x <= 9; x += 0.001) worst = Math.max(worst, Math.abs(erfc(x) - erfcReference(x)) / erfcReference(x));
  t.ok(worst < 1.2e-7, `worst ${worst}`);
  t.ok(Math.abs(erfcReference(0.5) - 0.4795001221869535) < 1e-15, 'reference erfc(0.5) matches the tabulated value');
  t.ok(Math.abs(erfcReference(4) - 1.541725790028002e-8) < 1e-20, 'reference erfc(4) matches the tabulated value');
});

t.test('fused kernel: relative error at float32 precision, tails included', async (t) => {
  setFusedKernels(true);
  const before = tf.memory().numTensors;
  const x = tf.tensor2d(xs, [49, 49]);
  const y = gelu(x);
  t.same(y.shape, [49, 49]);
  const rel = maxRelDiff(y.dataSync(), geluReference(xs));
  t.ok(rel < 3e-7, `max relative diff ${rel}`);
  tf.dispose([x, y]);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

for (const fused of [true, false]) {
  t.test(`values and gradient (${fused ? 'fused' : 'tfjs ops'})`, async (t) => {
    setFusedKernels(fused);
    const before = tf.memory().numTensors;
    const x = tf.tensor1d(xs.filter((v) => Math.abs(v) <= 6));
    let y: tf.Tensor | undefined;
    const grad = tf.grad((v: tf.Tensor) => (y = tf.keep(gelu(v))).sum())(x);
    // tf.erf is an approximation too (1.5e-7 absolute on the cpu backend).
    const d = maxAbsDiff(y!.dataSync(), geluReference(x.dataSync()));
    t.ok(d < 1e-6, `values max |diff| ${d}`);
    const g = grad.dataSync();
    let worst = 0;
    x.dataSync().forEach((v, i) => {
      const h = 1e-4;
      const numeric = (geluReference([v + h])[0]! - geluReference([v - h])[0]!) / (2 * h);
      worst = Math.max(worst, Math.abs(g[i]! - numeric));
    });
    t.ok(worst < 1e-5, `gradient max |diff| ${worst}`);
    tf.dispose([x, grad, y!]);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    setFusedKernels(true);
  });
}
