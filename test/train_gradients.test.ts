// Gradients against finite differences. Each differentiable kernel's
// gradient (as tfjs runs it on the test backend, wasm by default) is checked
// against central differences of its float64 reference loop; then the whole
// model's loss, for every attention-sink variant, against directional
// differences of the float32 loss itself.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t, { type Test } from 'tap';
import { causalAttention } from '../kernels/causal_attention.js';
import { causalAttentionReference } from '../kernels/causal_attention.ref.js';
import { crossEntropy } from '../kernels/cross_entropy.js';
import { crossEntropyReference } from '../kernels/cross_entropy.ref.js';
import { embed } from '../kernels/embedding.js';
import { matMul2d } from '../kernels/matmul.js';
import { rmsNorm } from '../kernels/rmsnorm.js';
import { rmsNormReference } from '../kernels/rmsnorm.ref.js';
import { applyRope, ropeAngles, type RopeSpec } from '../kernels/rope.js';
import { ropeReference } from '../kernels/rope.ref.js';
import { SOFTMAX_VARIANTS } from '../kernels/softmax.js';
import { swiglu } from '../kernels/swiglu.js';
import { swigluReference } from '../kernels/swiglu.ref.js';
import { BatchSampler, samplePrefix, WindowSource } from '../src/train/batches.js';
import { initTrainableModel } from '../src/train/init.js';
import { batchLoss } from '../src/train/loss.js';
import { VARIANTS, variantConfig } from '../src/train/variants.js';
import { initTestBackend } from './helpers.js';
import type { ModelConfig } from '../src/model/config.js';

await initTestBackend();

/**
 * Run `f` without tfjs's per-op leak check: on wasm it counts the copies
 * that customGrad saves for the backward pass (kernels/causal_attention.ts)
 * as leaks. The tests check tf.memory() before and after instead.
 */
function withoutOpLeakCheck(f: () => void): void {
  tf.env().set('IS_TEST', false);
  try {
    f();
  } finally {
    tf.env().set('IS_TEST', true);
  }
}
const rng = seedrandom('gradients');
const uniform = (n: number, scale = 1) => Float64Array.from({ length: n }, () => scale * (2 * rng() - 1));

/** Central differences of f at x, in float64. */
function numericGradient(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + eps;
    const up = f(x);
    x[i] = keep - eps;
    const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** max |a - b| / (1 + max |b|): float32 gradients against float64 differences. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / (1 + scale);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i]!, 0);
const f32 = (x: Float64Array) => Float32Array.from(x);

/**
 * d/dx of sum(w * kernel(x)) for the kernel's tfjs gradient and for the
 * reference's finite differences, for each input in `wrt`.
 */
function checkKernel(
  t: Test,
  label: string,
  inputs: { values: Float64Array; shape: number[] }[],
  wrt: number[],
  kernel: (...xs: tf.Tensor[]) => tf.Tensor,
  reference: (...xs: Float64Array[]) => ArrayLike<number>,
  tolerance = 1e-5,
): void {
  const out = tf.tidy(() => kernel(...inputs.map((x) => tf.tensor(f32(x.values), x.shape))).shape);
  const w = uniform(out.reduce((a, b) => a * b, 1));
  const before = tf.memory().numTensors;
  const analytic = tf.tidy(() => {
    const xs = inputs.map((x) => tf.tensor(f32(x.values), x.shape));
    const f = (...args: tf.Tensor[]) => {
      const all = xs.map((x, i) => (wrt.includes(i) ? args[wrt.indexOf(i)]! : x));
      return kernel(...all)
        .mul(tf.tensor(f32(w), out))
        .sum();
    };
    return tf
      .grads(f)(wrt.map((i) => xs[i]!))
      .map((g) => g.dataSync());
  });
  t.equal(tf.memory().numTensors, before, `${label}: no tensor leak`);
  wrt.forEach((i, k) => {
    const values = inputs.map((x) => Float64Array.from(x.values));
    const numeric = numericGradient((x) => {
      values[i] = x as Float64Array<ArrayBuffer>;
      return dot(reference(...values), w);
    }, values[i]!);
    const err = relError(analytic[k]!, numeric);
    t.ok(err < tolerance, `${label}: gradient of input ${i} (relative error ${err.toExponential(2)})`);
  });
}

t.test('rmsNorm: x and weight', async (t) => {
  const [rows, dim] = [3, 8];
  checkKernel(
    t,
    'rmsNorm',
    [
      { values: uniform(rows * dim), shape: [rows, dim] },
      { values: uniform(dim), shape: [dim] },
    ],
    [0, 1],
    (x, w) => rmsNorm(x, w as tf.Tensor1D, 1e-5),
    (x, w) => rmsNormReference(x, w, 1e-5),
  );
});

t.test('rope: both layouts, partial rotation', async (t) => {
  const [heads, T, headDim] = [2, 3, 8];
  const positions = [0, 5, 1000];
  for (const spec of [
    { theta: 10000, layout: 'pairs', rotaryDim: 8, scale: 1 },
    { theta: 10000, layout: 'halves', rotaryDim: 6, scale: 2 },
  ] as RopeSpec[]) {
    checkKernel(
      t,
      `rope ${spec.layout}`,
      [{ values: uniform(heads * T * headDim), shape: [heads, T, headDim] }],
      [0],
      (x) => applyRope(x as tf.Tensor3D, ropeAngles(positions, spec), spec),
      (x) => {
        const out = new Float64Array(x.length);
        for (let h = 0; h < heads; h++) {
          for (let i = 0; i < T; i++) {
            const at = (h * T + i) * headDim;
            out.set(ropeReference(x.subarray(at, at + headDim), positions[i]!, spec), at);
          }
        }
        return out;
      },
    );
  }
});

t.test('swiglu', async (t) => {
  checkKernel(
    t,
    'swiglu',
    [{ values: uniform(3 * 10, 3), shape: [3, 10] }],
    [0],
    (x) => swiglu(x),
    (x) => swigluReference(x, 5),
  );
});

t.test('matMul2d: both operands', async (t) => {
  const [M, K, N] = [3, 4, 5];
  const product = (a: Float64Array, b: Float64Array) => {
    const out = new Float64Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += a[i * K + k]! * b[k * N + j]!;
        out[i * N + j] = sum;
      }
    }
    return out;
  };
  checkKernel(
    t,
    'matMul2d',
    [
      { values: uniform(M * K), shape: [M, K] },
      { values: uniform(K * N), shape: [K, N] },
    ],
    [0, 1],
    (a, b) => matMul2d(a as tf.Tensor2D, b as tf.Tensor2D),
    (a, b) => product(a, b),
  );
});

t.test('embedding: scatter-add of repeated ids', async (t) => {
  const [vocab, dim] = [5, 3];
  const ids = [1, 4, 1, 0, 1];
  checkKernel(
    t,
    'embed',
    [{ values: uniform(vocab * dim), shape: [vocab, dim] }],
    [0],
    (table) => embed(table as tf.Tensor2D, ids),
    (table) => Float64Array.from(ids.flatMap((id) => Array.from(table.subarray(id * dim, (id + 1) * dim)))),
  );
});

t.test('cross-entropy, with an ignored row', async (t) => {
  const [rows, vocab] = [4, 7];
  const targets = [3, -1, 0, 6];
  checkKernel(
    t,
    'crossEntropy',
    [{ values: uniform(rows * vocab, 3), shape: [rows, vocab] }],
    [0],
    (x) => crossEntropy(x as tf.Tensor2D, targets),
    (x) => crossEntropyReference(x, vocab, targets).nll,
  );
  // The reference's own analytic gradient agrees with its differences (a check on the reference).
  const x = uniform(rows * vocab, 3);
  const { grad } = crossEntropyReference(x, vocab, targets);
  const numeric = numericGradient((v) => crossEntropyReference(v, vocab, targets).nll.reduce((a, b) => a + b, 0), x);
  t.ok(relError(grad, numeric) < 1e-8, 'reference gradient');
});

t.test('causal attention: every softmax variant, grouped heads, both RoPE layouts, sink logits', async (t) => {
  for (const variant of SOFTMAX_VARIANTS) {
    for (const [heads, kvHeads, layout] of [
      [2, 2, 'halves'],
      [4, 2, 'pairs'],
    ] as const) {
      const spec = { batch: 2, heads, kvHeads, headDim: 4, rope: { theta: 10000, layout, rotaryDim: 4, scale: 1 }, variant };
      const T = 4;
      const C = (heads + 2 * kvHeads) * spec.headDim;
      const learned = variant === 'learned-sink';
      const angles = ropeAngles(
        Int32Array.from({ length: T }, (_, i) => i),
        spec.rope,
      );
      const inputs = [{ values: uniform(spec.batch * T * C), shape: [spec.batch * T, C] }];
      if (learned) inputs.push({ values: uniform(heads, 2), shape: [heads] });
      withoutOpLeakCheck(() =>
        checkKernel(
          t,
          `${variant} heads ${heads}/${kvHeads} ${layout}`,
          inputs,
          learned ? [0, 1] : [0],
          (x, s) => causalAttention(x as tf.Tensor2D, angles, spec, s as tf.Tensor1D | undefined),
          (x, s) => causalAttentionReference(x, spec, s),
        ),
      );
      tf.dispose([angles.cos, angles.sin]);
    }
  }
});

/** Every parameter's gradient against central differences along a random direction. */
function checkWholeModel(t: Test, config: ModelConfig, label: string): void {
  const before = tf.memory().numTensors;
  const model = initTrainableModel(config, 3);
  // Larger weights than the training init, so every path carries a real gradient.
  const set = (v: tf.Variable, values: Float32Array) => tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
  for (const p of model.params) set(p.variable, f32(uniform(p.variable.size, 0.5)));
  const tokens = Int32Array.from({ length: 200 }, () => Math.floor(rng() * 40));
  const batch = new BatchSampler(new WindowSource(tokens, 6, samplePrefix(config.sinkToken)), 2, 1).next();
  const params = model.params.filter((p) => p.variable.size > 0);
  const { value, grads } = tf.variableGrads(
    () => batchLoss(model.model(), batch),
    params.map((p) => p.variable),
  );
  const lossAt = () => tf.tidy(() => batchLoss(model.model(), batch).dataSync()[0]!);
  for (const p of params) {
    // A weight the loss does not use (an attention-only layer's MLP norm) has no gradient: it must be zero.
    const g = grads[p.variable.name]?.dataSync() ?? new Float32Array(p.variable.size);
    const base = Float32Array.from(p.variable.dataSync());
    const u = uniform(base.length);
    const eps = 1e-2 / Math.sqrt(dot(u, u));
    const shifted = (sign: number) => {
      set(
        p.variable,
        Float32Array.from(base, (v, i) => v + sign * eps * u[i]!),
      );
      return lossAt();
    };
    const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
    set(p.variable, base);
    const analytic = dot(g, u);
    t.ok(Math.abs(numeric - analytic) < 2e-3 + 1e-2 * Math.abs(analytic), `${label} ${p.name}: ${analytic.toFixed(5)} vs ${numeric.toFixed(5)}`);
  }
  tf.dispose([value, ...Object.values(grads)]);
  model.dispose();
  t.equal(tf.memory().numTensors, before, `${label}: no tensor leak`);
}

t.test('whole model, every variant: directional derivatives of the batch loss', async (t) => {
  tf.env().set('IS_TEST', false); // see withoutOpLeakCheck
  t.teardown(() => tf.env().set('IS_TEST', true));
  for (const variant of VARIANTS) checkWholeModel(t, variantConfig(variant, { dim: 16, layers: 2, heads: 2, hiddenDim: 24 }, 40, 6), variant);
});

t.test('attention-only layers (hidden 0): directional derivatives of the batch loss', async (t) => {
  tf.env().set('IS_TEST', false); // see withoutOpLeakCheck
  t.teardown(() => tf.env().set('IS_TEST', true));
  for (const variant of ['softmax', 'sink-token'] as const) {
    checkWholeModel(t, variantConfig(variant, { dim: 16, layers: 2, heads: 2, hiddenDim: 0 }, 40, 6), `attention-only ${variant}`);
  }
});
