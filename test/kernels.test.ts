// Each kernel against its plain-loop reference on random shapes, through the
// fused kernels and through plain tfjs ops; gradients of the custom-gradient
// kernels against tfjs's own.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { embed } from '../kernels/embedding.js';
import { WorkerPool } from '../kernels/pool.js';
import { setFusedKernels } from '../kernels/js_kernel.js';
import { setSimdKernels } from '../kernels/simd/instance.js';
import { batchMatMul, linear, matMul2d } from '../kernels/matmul.js';
import { qkvHeads } from '../kernels/qkv_heads.js';
import { tokenNll } from '../kernels/token_nll.js';
import { joinEntries } from '../kernels/cache_read.js';
import { nllOfRows } from '../src/eval/nll.js';
import { rmsNorm } from '../kernels/rmsnorm.js';
import { rmsNormReference } from '../kernels/rmsnorm.ref.js';
import { applyRope, ropeAngles, type RopeSpec } from '../kernels/rope.js';
import { ropeReference } from '../kernels/rope.ref.js';
import { softmaxWithSink } from '../kernels/softmax.js';
import { softmaxReference } from '../kernels/softmax.ref.js';
import { swiglu, swigluRows } from '../kernels/swiglu.js';
import { swigluReference } from '../kernels/swiglu.ref.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';

const backend = await initTestBackend();
const rng = seedrandom('kernels');
const randn = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);

for (const fused of [true, false]) {
  const mode = fused ? 'fused' : 'tfjs ops';
  t.beforeEach(() => setFusedKernels(fused));

  t.test(`rmsNorm (${mode})`, async (t) => {
    for (const [rows, dim] of [
      [1, 8],
      [5, 48],
      [3, 7],
    ] as const) {
      const x = randn(rows * dim);
      const w = randn(dim);
      const got = tf.tidy(() => rmsNorm(tf.tensor2d(x, [rows, dim]), tf.tensor1d(w), 1e-5).dataSync());
      t.ok(maxAbsDiff(got, rmsNormReference(x, w, 1e-5)) < 1e-5, `[${rows}, ${dim}]`);
    }
  });

  t.test(`rope, both layouts, partial rotation, large positions (${mode})`, async (t) => {
    const specs: RopeSpec[] = [
      { theta: 10000, layout: 'pairs', rotaryDim: 16, scale: 1 },
      { theta: 10000, layout: 'halves', rotaryDim: 16, scale: 1 },
      { theta: 1e6, layout: 'halves', rotaryDim: 8, scale: 4 },
      { theta: 10000, layout: 'pairs', rotaryDim: 6, scale: 1 },
    ];
    const [heads, T, headDim] = [3, 4, 16];
    const positions = [0, 7, 1000, 1_234_567];
    for (const spec of specs) {
      const x = randn(heads * T * headDim);
      const got = tf.tidy(() => applyRope(tf.tensor3d(x, [heads, T, headDim]), ropeAngles(positions, spec), spec).dataSync());
      const want = new Float64Array(x.length);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < T; i++) {
          const at = (h * T + i) * headDim;
          want.set(ropeReference(x.subarray(at, at + headDim), positions[i]!, spec), at);
        }
      }
      t.ok(maxAbsDiff(got, want) < 2e-5, `${spec.layout} rotaryDim ${spec.rotaryDim} scale ${spec.scale}: ${maxAbsDiff(got, want)}`);
    }
  });

  t.test(`swiglu (${mode})`, async (t) => {
    // hidden 10 runs the JavaScript loop; multiples of 4 the SIMD one on wasm
    for (const [rows, hidden] of [
      [3, 10],
      [5, 12],
      [2, 768],
    ] as const) {
      const x = randn(rows * 2 * hidden).map((v) => 12 * v); // past where exp(-g) is tiny or huge
      for (const simd of [true, false]) {
        setSimdKernels(simd);
        const got = tf.tidy(() => swiglu(tf.tensor2d(x, [rows, 2 * hidden])).dataSync());
        const want = swigluReference(x, hidden);
        const worst = Math.max(...Array.from(got, (g, i) => Math.abs(g - want[i]!) / Math.max(1, Math.abs(want[i]!))));
        t.ok(worst < 1e-6, `[${rows}, 2 * ${hidden}], simd ${simd}: relative error ${worst}`);
        // the same loop over arrays outside tfjs (the pooled layers): the kernel's bits, whichever loop it ran
        const rowsOut = new Float32Array(rows * hidden);
        swigluRows(x, rows, hidden, rowsOut);
        if (fused) t.same(Array.from(rowsOut), Array.from(got), `swigluRows: the kernel bit for bit (simd ${simd})`);
        else t.ok(Math.max(...Array.from(rowsOut, (g, i) => Math.abs(g - want[i]!) / Math.max(1, Math.abs(want[i]!)))) < 1e-6, 'swigluRows: the reference');
      }
      setSimdKernels(true);
    }
  });
}

t.test('softmax variants: rows sum to 1, or to less than 1 with a sink', async (t) => {
  const logits = randn(4 * 9);
  for (const sink of [undefined, 0, 1.5]) {
    const got = tf.tidy(() => softmaxWithSink(tf.tensor2d(logits, [4, 9]), sink === undefined ? undefined : tf.fill([4, 1], sink)).dataSync());
    for (let r = 0; r < 4; r++) {
      const row = got.slice(r * 9, r * 9 + 9);
      t.ok(maxAbsDiff(row, softmaxReference(logits.slice(r * 9, r * 9 + 9), sink)) < 1e-6);
      const total = Array.from(row).reduce((a, b) => a + b, 0);
      if (sink === undefined) t.ok(Math.abs(total - 1) < 1e-5);
      else t.ok(total < 1 - 1e-3, `row sum ${total} < 1`);
    }
  }
});

t.test('gradients: custom kernels agree with tfjs autodiff of the plain ops', async (t) => {
  setFusedKernels(true);
  const x = tf.tensor2d(randn(5 * 12), [5, 12]);
  const w = tf.tensor1d(randn(12));
  const dy = tf.tensor2d(randn(5 * 12), [5, 12]);
  const grads = (fused: boolean) =>
    tf.tidy(() => {
      setFusedKernels(fused);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5))([x, w], dy);
      return g.map((t) => t.dataSync());
    });
  const [fx, fw] = grads(true);
  const [ox, ow] = grads(false);
  t.ok(maxAbsDiff(fx!, ox!) < 1e-4, 'rmsNorm dx');
  t.ok(maxAbsDiff(fw!, ow!) < 1e-4, 'rmsNorm dweight');

  const spec: RopeSpec = { theta: 10000, layout: 'pairs', rotaryDim: 4, scale: 1 };
  const r = tf.tensor3d(randn(2 * 3 * 4), [2, 3, 4]);
  const dr = tf.tensor3d(randn(2 * 3 * 4), [2, 3, 4]);
  const ropeGrad = (fused: boolean) =>
    tf.tidy(() => {
      setFusedKernels(fused);
      const angles = ropeAngles([1, 5, 9], spec);
      return tf
        .grad((a: tf.Tensor) => applyRope(a as tf.Tensor3D, angles, spec))(r, dr)
        .dataSync();
    });
  t.ok(maxAbsDiff(ropeGrad(true), ropeGrad(false)) < 1e-5, 'rope');

  const a = tf.tensor2d(randn(3 * 4), [3, 4]);
  const b = tf.tensor2d(randn(4 * 5), [4, 5]);
  const dc = tf.tensor2d(randn(3 * 5), [3, 5]);
  const ours = tf.grads((p: tf.Tensor, q: tf.Tensor) => matMul2d(p as tf.Tensor2D, q as tf.Tensor2D))([a, b], dc);
  const theirs = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q))([a, b], dc);
  t.ok(maxAbsDiff(ours[0]!.dataSync(), theirs[0]!.dataSync()) < 1e-5, 'matMul2d dA');
  t.ok(maxAbsDiff(ours[1]!.dataSync(), theirs[1]!.dataSync()) < 1e-5, 'matMul2d dB');

  const table = tf.tensor2d(randn(6 * 3), [6, 3]);
  const ids = [4, 1, 4, 0];
  const de = tf.tensor2d(randn(4 * 3), [4, 3]);
  const dTable = tf
    .grad((tb: tf.Tensor) => embed(tb as tf.Tensor2D, ids))(table, de)
    .dataSync();
  const want = new Float64Array(18);
  const dRows = de.dataSync();
  ids.forEach((id, i) => [0, 1, 2].forEach((c) => (want[id * 3 + c]! += dRows[i * 3 + c]!)));
  t.ok(maxAbsDiff(dTable, want) < 1e-6, 'embedding scatter-add gradient');
  tf.dispose([x, w, dy, r, dr, a, b, dc, table, de, ...ours, ...theirs]);
});

t.test('linear and batchMatMul match tf.matMul', async (t) => {
  const x = tf.tensor3d(randn(2 * 3 * 4), [2, 3, 4]);
  const w = tf.tensor2d(randn(4 * 5), [4, 5]);
  const bias = tf.tensor1d(randn(5));
  const y = linear(x, w, bias);
  const want = tf.tidy(() =>
    tf
      .matMul(x.reshape([6, 4]), w)
      .add(bias)
      .reshape([2, 3, 5]),
  );
  t.same(y.shape, [2, 3, 5]);
  t.ok(maxAbsDiff(y.dataSync(), want.dataSync()) < 1e-5);
  const b3 = tf.tensor3d(randn(2 * 4 * 2), [2, 4, 2]);
  const got = batchMatMul(x, b3);
  const ref = tf.matMul(x, b3);
  t.ok(maxAbsDiff(got.dataSync(), ref.dataSync()) < 1e-5);
  tf.dispose([x, w, bias, y, want, b3, got, ref]);
});

t.test('qkvHeads: the fused kernel equals split + head transposes + rotations', async (t) => {
  const counts = { heads: 4, kvHeads: 2, headDim: 8 };
  const width = (counts.heads + 2 * counts.kvHeads) * counts.headDim;
  const specs: RopeSpec[] = [
    { theta: 10000, layout: 'pairs', rotaryDim: 8, scale: 1 },
    { theta: 500, layout: 'halves', rotaryDim: 4, scale: 2 },
  ];
  for (const spec of specs) {
    for (const [rows, rowStart, T] of [
      [1, 0, 1],
      [5, 0, 5],
      [7, 3, 2],
    ] as const) {
      const before = tf.memory().numTensors;
      const qkv = tf.tensor2d(randn(rows * width), [rows, width]);
      const keyAngles = ropeAngles(
        Array.from({ length: T }, (_, i) => 10 + i),
        spec,
      );
      const frameAngles = [
        ropeAngles(
          Array.from({ length: T }, (_, i) => 3 * i),
          spec,
        ),
        ropeAngles(
          Array.from({ length: T }, () => 1_000_000),
          spec,
        ),
      ];
      const run = (fused: boolean) => {
        setFusedKernels(fused);
        const r = qkvHeads(qkv, rowStart, T, counts, keyAngles, frameAngles, spec);
        const values = [r.keys, r.values, ...r.queries].map((x) => ({ shape: x.shape, data: x.dataSync() }));
        tf.dispose([r.keys, r.values, ...r.queries]);
        return values;
      };
      const fused = run(true);
      const ops = run(false);
      setFusedKernels(true);
      t.equal(fused.length, 4, 'keys, values and one query tensor per frame');
      t.same(
        fused.map((x) => x.shape),
        ops.map((x) => x.shape),
      );
      t.ok(Math.max(...fused.map((x, i) => maxAbsDiff(x.data, ops[i]!.data))) < 1e-6, `${spec.layout}, rows ${rowStart}..${rowStart + T} of ${rows}`);
      tf.dispose([qkv, keyAngles.cos, keyAngles.sin, ...frameAngles.flatMap((a) => [a.cos, a.sin])]);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    }
  }
});

t.test('tokenNll: SIMD, JavaScript, tfjs ops and on a pool against the float64 reference', async (t) => {
  // every row on its own share, however few
  const pool = new WorkerPool(3, { splitMinBytes: 0 });
  t.teardown(() => pool.dispose());
  await pool.ready();
  const poolBytes = pool.allocatedBytes;
  const before = tf.memory().numTensors;
  for (const [rows, vocab] of [
    [3, 7],
    [4, 32],
    [2, 1001],
    [12, 333],
  ] as const) {
    const logits = tf.tensor2d(
      randn(rows * vocab).map((v) => 20 * v),
      [rows, vocab],
    );
    const targets = Array.from({ length: rows - 1 }, (_, i) => ([vocab - 1, 0, 3][i % 3]! + (i >> 2)) % vocab);
    const want = new Float64Array(targets.length);
    nllOfRows((logits.dataSync() as Float32Array).subarray(vocab), vocab, targets, want, 0);
    const simd = tf.tidy(() => tokenNll(logits, targets, 1).dataSync());
    for (const mode of ['simd', 'js', 'tfjs ops', 'pool'] as const) {
      setFusedKernels(mode !== 'tfjs ops');
      setSimdKernels(mode === 'simd' || mode === 'pool');
      const got = tf.tidy(() => tokenNll(logits, targets, 1, mode === 'pool' ? pool : undefined).dataSync());
      t.ok(maxAbsDiff(got, want) < 2e-5, `[${rows}, ${vocab}] ${mode}: ${maxAbsDiff(got, want)}`);
      // on wasm the kernel runs the same SIMD loop (on cpu, JavaScript)
      if (mode === 'pool' && backend === 'wasm') t.same(got, simd, 'on the pool: the SIMD kernel, bit for bit');
    }
    setFusedKernels(true);
    setSimdKernels(true);
    t.throws(() => tokenNll(logits, [vocab]), /outside the vocabulary/);
    t.throws(() => tokenNll(logits, new Array(rows + 1).fill(0)), /rows/);
    logits.dispose();
  }
  t.ok(pool.allocatedBytes > poolBytes, 'the rows went to the pool');
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

t.test('joinEntries: runs of entries joined in order, fused and as tfjs ops', async (t) => {
  const a = tf.tensor3d(randn(2 * 6 * 4), [2, 6, 4]);
  const b = tf.tensor3d(randn(2 * 3 * 4), [2, 3, 4]);
  const runs = [
    { entries: a, start: 4, count: 2 },
    { entries: a, start: 0, count: 1 },
    { entries: b, start: 0, count: 3 },
  ];
  const want = tf.tidy(() => tf.concat([a.slice([0, 4, 0], [2, 2, 4]), a.slice([0, 0, 0], [2, 1, 4]), b], 1).dataSync());
  for (const fused of [true, false]) {
    setFusedKernels(fused);
    const got = joinEntries(runs);
    t.same(got.shape, [2, 6, 4]);
    t.same(Array.from(got.dataSync()), Array.from(want), fused ? 'fused' : 'tfjs ops');
    got.dispose();
  }
  setFusedKernels(true);
  t.throws(() => joinEntries([{ entries: b, start: 2, count: 2 }]), /entries \[2, 4\) of 3/);
  tf.dispose([a, b]);
});

t.test('embed: the fused lookup equals tf.gather; bad ids are a RangeError', async (t) => {
  const table = tf.tensor2d(randn(7 * 5), [7, 5]);
  const ids = [6, 0, 3, 3];
  const want = tf.tidy(() => tf.gather(table, tf.tensor1d(ids, 'int32')).dataSync());
  for (const fused of [true, false]) {
    setFusedKernels(fused);
    const got = embed(table, ids);
    t.same(got.shape, [4, 5]);
    t.same(Array.from(got.dataSync()), Array.from(want), fused ? 'fused' : 'tfjs ops');
    got.dispose();
  }
  setFusedKernels(true);
  t.throws(() => embed(table, [7]), /outside the vocabulary/);
  table.dispose();
});
