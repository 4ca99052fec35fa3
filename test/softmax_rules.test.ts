// Each softmax variant of kernels/softmax.ts, one object: its row normaliser
// (loop and ops) against the float64 reference loop, and its row gradient
// against central differences of the normaliser itself.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { extraLogitOf, extraLogitTensor, SOFTMAX_VARIANTS, softmaxRule } from '../kernels/softmax.js';
import { softmaxReference } from '../kernels/softmax.ref.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';

await initTestBackend();
const rng = seedrandom('softmax-rules');
const n = 7;
const learned = Float32Array.from([0.7, -1.5]);

for (const variant of SOFTMAX_VARIANTS) {
  t.test(`${variant}: normaliser and row gradient`, async (t) => {
    const rule = softmaxRule(variant);
    const before = tf.memory().numTensors;
    for (let h = 0; h < 2; h++) {
      const x = Float64Array.from({ length: n }, () => 4 * rng() - 2);
      const extra = extraLogitOf(variant, h, learned);
      const want = softmaxReference(x, extra === -Infinity ? undefined : extra);
      const row = Float64Array.from(x);
      rule.normaliseRow(row, n, extra);
      t.ok(maxAbsDiff(row, want) < 1e-12, `head ${h}: loop`);
      const ops = tf.tidy(() => {
        const all = extraLogitTensor(variant, [2, 1], tf.tensor1d(learned));
        const e = all === undefined ? undefined : all.slice([h, 0], [1, 1]);
        return rule.normaliseOps(tf.tensor2d(Float32Array.from(x), [1, n]), e).dataSync();
      });
      t.ok(maxAbsDiff(ops, want) < 1e-6, `head ${h}: ops`);
      // loss = sum_j w_j p_j: dp = w; check ds and d extra against central differences
      const w = Float64Array.from({ length: n }, () => rng() - 0.5);
      const loss = (xs: Float64Array, e: number) => {
        const p = Float64Array.from(xs);
        rule.normaliseRow(p, n, e);
        return p.reduce((a, v, j) => a + v * w[j]!, 0);
      };
      const ds = new Float64Array(n);
      const dExtra = rule.rowGradient(row, w, n, ds);
      const eps = 1e-6;
      const numeric = Float64Array.from({ length: n }, (_, j) => {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[j]! += eps;
        down[j]! -= eps;
        return (loss(up, extra) - loss(down, extra)) / (2 * eps);
      });
      t.ok(maxAbsDiff(ds, numeric) < 1e-8, `head ${h}: row gradient`);
      const numericExtra = extra === -Infinity ? 0 : (loss(x, extra + eps) - loss(x, extra - eps)) / (2 * eps);
      t.ok(Math.abs(dExtra - numericExtra) < 1e-8, `head ${h}: extra-logit gradient ${dExtra} vs ${numericExtra}`);
    }
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });
}
