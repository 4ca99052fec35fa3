// Each kernel against its float64 plain-loop reference, a section each: the
// softmax variants' rules, layer norm and GELU (each in a block of its own),
// then every other kernel on random shapes through the fused kernels and
// through plain tfjs ops, with the gradients of the custom-gradient kernels.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { joinEntries } from '../kernels/cache_read.js';
import { embed } from '../kernels/embedding.js';
import * as fdlibm from '../kernels/fdlibm.js';
import { erfc, gelu } from '../kernels/gelu.js';
import { erfcReference, geluReference } from '../kernels/gelu.ref.js';
import { setFusedKernels } from '../kernels/js_kernel.js';
import { hasDirectMemory, poolAttends, poolAttendsOneQuery } from '../kernels/paths.js';
import { layerNorm } from '../kernels/layernorm.js';
import { layerNormReference } from '../kernels/layernorm.ref.js';
import { batchMatMul, linear, matMul2d } from '../kernels/matmul.js';
import { qkvHeads, qkvHeadsInto } from '../kernels/qkv_heads.js';
import { rmsNorm } from '../kernels/rmsnorm.js';
import { rmsNormReference } from '../kernels/rmsnorm.ref.js';
import { POOL_MAX_BYTES, WorkerPool } from '../kernels/pool.js';
import { allocMatrix, pooledProduct, productTensor, residentOffset, writeRow } from '../kernels/split_products.js';
import { applyRope, ropeAngleArrays, ropeAngles, type RopeSpec, rotateRow } from '../kernels/rope.js';
import { ropeReference } from '../kernels/rope.ref.js';
import { setSimdKernels, simdAvailable } from '../kernels/simd/instance.js';
import { extraLogitOf, extraLogitTensor, SOFTMAX_VARIANTS, softmaxRule, softmaxWithSink } from '../kernels/softmax.js';
import { softmaxReference } from '../kernels/softmax.ref.js';
import { swiglu, swigluRows } from '../kernels/swiglu.js';
import { swigluReference } from '../kernels/swiglu.ref.js';
import { tokenNll } from '../kernels/token_nll.js';
import { nllOfRows } from '../src/eval/nll.js';
import { pooledSwiglu } from '../kernels/pooled_swiglu.js';
import { float64Hex, initTestBackend, maxAbsDiff } from './helpers.js';
import { randomArray, rng as seededRng } from './tiny_checkpoints.js';

const backend = await initTestBackend();

// Each softmax variant of kernels/softmax.ts, one object: its row normaliser
// (loop and ops) against the float64 reference loop, and its row gradient
// against central differences of the normaliser itself.
{
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
}

// kernels/layernorm.ts against its float64 reference, through the fused
// kernel and through tfjs ops: values, and gradients against finite
// differences of the reference.
{
  const r = seededRng('layernorm');
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
}

// kernels/gelu.ts against its float64 reference, through the fused kernel and
// through tfjs ops: values and gradients.
{
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
}

// kernels/fdlibm.ts: Node 20's Math.cos, Math.sin, Math.log and Math.pow
// (V8 11.3's fdlibm) in JavaScript, so that RoPE's frequencies and angles,
// seeded weights and a training run are the same bits on every Node (Node
// 24's Math.pow is the C library's). On V8 11.3 the port is Math.*, bit for
// bit, over millions of arguments; on every Node it gives values pinned from
// Node 20's Math.*, and test/pool.test.ts compares its cos and sin with
// loops.wat's copy (ropeAngles).
{
  const v8 = process.versions.v8;
  const node20 = v8.startsWith('11.3.');
  t.test(
    'fdlibm: cos, sin, log and pow are Math.cos, Math.sin, Math.log and Math.pow bit for bit on V8 11.3 (Node 20)',
    {
      skip:
        !node20 &&
        `V8 ${v8} is not Node 20's 11.3, whose Math.* the port copies (Node 24's Math.pow differs in the last bit of ~10%): the pinned values and loops.wat's copy check it here`,
    },
    async (t) => {
      const rng = seedrandom('fdlibm');
      // 2^e for e in [-1074, 1023], exactly (no pow)
      const powers: number[] = [];
      for (let e = 0, v = 5e-324; e < 2098; e++, v *= 2) powers.push(v);
      const twoTo = (lo: number, hi: number) => powers[1074 + lo + Math.floor(rng() * (hi - lo))]!;
      const differ = { cos: [] as number[], sin: [] as number[], log: [] as number[], pow: [] as number[][] };
      const cosSin = new Float64Array(2);
      const f32 = { cos: new Float32Array(1), sin: new Float32Array(1) };
      let compared = 0;
      const trig = (x: number) => {
        compared++;
        fdlibm.cosSinPair(x, cosSin, 0);
        fdlibm.cosSinInto(x, f32.cos, 0, f32.sin, 0);
        const c = Math.cos(x);
        const s = Math.sin(x);
        if (!Object.is(fdlibm.cos(x), c) || !Object.is(cosSin[0], c) || !Object.is(f32.cos[0], Math.fround(c))) differ.cos.push(x);
        if (!Object.is(fdlibm.sin(x), s) || !Object.is(cosSin[1], s) || !Object.is(f32.sin[0], Math.fround(s))) differ.sin.push(x);
      };
      for (let k = 0; k < 400000; k++) {
        // angles of every size up to and past 2^20 pi/2, either sign, and near multiples of pi/2 (the reduction's cancellations)
        trig((rng() - 0.5) * twoTo(-40, 22));
        trig((1 + Math.floor(rng() * 1048576)) * (Math.PI / 2) * (1 + (rng() - 0.5) * 2 ** -40));
        const l = rng() < 0.5 ? twoTo(-1074, 1023) * (1 + rng()) : 1 + (rng() - 0.5) * twoTo(-60, 0);
        if (!Object.is(fdlibm.log(l), Math.log(l))) differ.log.push(l);
        // bases of every size and near 1, either sign; integer and other exponents
        const x = (rng() < 0.2 ? -1 : 1) * (rng() < 0.5 ? twoTo(-40, 40) * (1 + rng()) : 1 + (rng() - 0.5) * twoTo(-40, 0));
        const y = rng() < 0.3 ? Math.floor((rng() - 0.5) * 400) : (rng() - 0.5) * twoTo(-12, 14);
        if (!Object.is(fdlibm.pow(x, y), Math.pow(x, y))) differ.pow.push([x, y]);
      }
      // every multiple of pi/2 in range as a float64 (k (pi/2) rounded): |x| - n pi/2 cancels past 49 bits, the
      // reduction's third round, which the angles above (2^-40 from a multiple) never reach
      for (let k = 1; k <= 1048576; k++) trig(k * (Math.PI / 2));
      const specials = [0, -0, 1, -1, 2, -2, 0.5, -0.5, 3, -3, 0.1, 1e308, -1e308, 5e-324, -5e-324, 1e-310, 2 ** 31 + 1, 2 ** 53, 2 ** 64 + 2 ** 12];
      for (const v of [...specials, Infinity, -Infinity, NaN, 1 + 2 ** -52, 1 - 2 ** -53, Math.PI / 4, (3 * Math.PI) / 4, 823549.6 * Math.PI]) {
        trig(v);
        if (!Object.is(fdlibm.log(v), Math.log(v))) differ.log.push(v);
        for (const w of [...specials, Infinity, -Infinity, NaN, 1.5, -1.5, 1075, -1075])
          if (!Object.is(fdlibm.pow(v, w), Math.pow(v, w))) differ.pow.push([v, w]);
      }
      // what the project computes with them: RoPE's frequencies, AdamW's bias corrections
      for (const theta of [10000, 500000, 1e6]) {
        for (const d of [32, 48, 64, 80, 96, 128])
          for (let i = 0; i < d / 2; i++) if (!Object.is(fdlibm.pow(theta, (2 * i) / d), Math.pow(theta, (2 * i) / d))) differ.pow.push([theta, (2 * i) / d]);
      }
      for (let step = 1; step <= 20000; step++)
        for (const b of [0.9, 0.95, 0.99, 0.999]) if (!Object.is(fdlibm.pow(b, step), Math.pow(b, step))) differ.pow.push([b, step]);
      t.ok(compared > 800000, `${compared} angles`);
      t.same(differ.cos, [], 'cos: the same bits (float64; and as float32)');
      t.same(differ.sin, [], 'sin: the same bits');
      t.same(differ.log, [], 'log: the same bits');
      t.same(differ.pow.slice(0, 10), [], 'pow: the same bits');
    },
  );

  t.test("fdlibm: values pinned from Node 20's Math.* (V8 11.3.244.8), on every Node", async (t) => {
    // (each computed by Math.pow, Math.log, Math.cos and Math.sin on Node 20.20.2, V8 11.3's own fdlibm in C++, not by
    // this port; the first five pow values are among those Node 24's Math.pow gives an ulp apart)
    const pow: [number, number, string][] = [
      [10000, 1 / 24, '3ff77c1b15b87900'],
      [10000, 0.125, '40094c583ada5b52'],
      [10000, 7 / 24, '402d5b21db269740'],
      [10000, 1 / 3, '40358b5a51868c62'],
      [500000, 0.109375, '4010cd8c5b849754'],
      [0.999, 1000, '3fd788526411ed72'],
      [0.95, 63, '3fa43939a9197d42'],
      [2.5, -3.75, '3fa07b3f176b0a79'],
      [1e-5, 0.3, '3fa030dc4ea03a73'],
    ];
    for (const [x, y, want] of pow) t.equal(float64Hex(fdlibm.pow(x, y)), want, `pow(${x}, ${y})`);
    const log: [number, string][] = [
      [0.3, 'bff34378fcbda721'],
      [1e-300, 'c085963447f87fb5'],
      [1 + 2 ** -30, '3e0fffffffc00000'],
      [123456.789, '40277281cad8a844'],
      [5e-324, 'c0874385446d71c3'],
      [0.7071, 'bfd62e6b3842a25e'],
    ];
    for (const [x, want] of log) t.equal(float64Hex(fdlibm.log(x)), want, `log(${x})`);
    const trig: [number, string, string][] = [
      [0.5, '3fec1528065b7d50', '3fdeaee8744b05f0'],
      [2.5, 'bfe9a2f7ef858b7d', '3fe326af0dcfcab0'],
      [1000.25, '3fd5c7d948a31cf2', '3fee1702343c0531'],
      [1647099, '3fee4831257a62da', 'bfd4b02e5be91e9e'],
      [-77777.7, 'bfd1b1b858397664', '3feec0b10c6c0fc6'],
      [1e-9, '3ff0000000000000', '3e112e0be826d695'],
      [(3 * Math.PI) / 2, 'bcaa79394c9e8a0a', 'bff0000000000000'],
      [Math.PI / 2, '3c91a62633145c07', '3ff0000000000000'], // (the n = 1 reduction's near-pi/2 branch)
      [41609 * (Math.PI / 2), 'bd355a7a4ef1f799', '3ff0000000000000'], // (the third round of the reduction)
    ];
    for (const [x, c, s] of trig) t.same([float64Hex(fdlibm.cos(x)), float64Hex(fdlibm.sin(x))], [c, s], `cos and sin of ${x}`);
  });
}

t.test(`ropeAngleArrays: ropeAngles' numbers, every call; a spec changed in place is not served its old frequencies`, async (t) => {
  const spec: RopeSpec = { theta: 10000, layout: 'pairs', rotaryDim: 8, scale: 1 };
  const positions = [0, 3, 1_234_567];
  const tensors = () => {
    const { cos, sin } = ropeAngles(positions, spec);
    const values = [...cos.dataSync(), ...sin.dataSync()];
    tf.dispose([cos, sin]);
    return values;
  };
  const arrays = () => {
    const { cos, sin } = ropeAngleArrays(positions, spec);
    return [...cos, ...sin];
  };
  // the angles in float64, rounded to float32 once: what ropeAngleArrays promises (fdlibm's pow, cos and sin, Node
  // 20's Math.*: the fdlibm section above checks them)
  const reference = () => {
    const cos: number[] = [];
    const sin: number[] = [];
    for (const p of positions) {
      for (let i = 0; i < spec.rotaryDim / 2; i++) {
        const angle = (p / spec.scale) * (1 / fdlibm.pow(spec.theta, (2 * i) / spec.rotaryDim));
        cos.push(Math.fround(fdlibm.cos(angle)));
        sin.push(Math.fround(fdlibm.sin(angle)));
      }
    }
    return [...cos, ...sin];
  };
  const first = arrays();
  t.same(first, reference(), 'the float64 angles, rounded once');
  t.same(arrays(), first, 'the same on the second call (frequencies kept)');
  t.same(tensors(), first, 'ropeAngles holds the same numbers');
  spec.theta = 500000;
  t.same(arrays(), reference(), 'theta changed: the new frequencies');
  t.notSame(arrays(), first, 'and so other angles');
});

// Each kernel against its plain-loop reference on random shapes, through the
// fused kernels and through plain tfjs ops; gradients of the custom-gradient
// kernels against tfjs's own. Last: its beforeEach hooks stay on the root, so
// they would also run before any test below them.
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
        // the JavaScript loop over arrays outside tfjs (the pooled layers): the kernel's bits where the kernel runs it
        const rowsOut = new Float32Array(rows * hidden);
        swigluRows(x, rows, hidden, rowsOut);
        if (fused && !(simd && hidden % 4 === 0)) t.same(Array.from(rowsOut), Array.from(got), 'swigluRows: the kernel bit for bit');
        t.ok(Math.max(...Array.from(rowsOut, (g, i) => Math.abs(g - want[i]!) / Math.max(1, Math.abs(want[i]!)))) < 1e-6, 'swigluRows: the reference');
      }
      setSimdKernels(true);
    }
  });
}

t.test('pooledSwiglu: the SIMD kernel bit for bit, on 1, 2 and 3 threads', { skip: backend !== 'wasm' && 'the SIMD kernel runs on wasm' }, async (t) => {
  setFusedKernels(true); // (the tests above leave their beforeEach's last setting)
  const pools = [new WorkerPool(1), new WorkerPool(2, { splitMinBytes: 0 }), new WorkerPool(3, { splitMinBytes: 0 })];
  t.teardown(() => Promise.all(pools.map((p) => p.dispose())));
  await Promise.all(pools.map((p) => p.ready()));
  const before = tf.memory().numTensors;
  for (const [rows, hidden] of [
    [1, 4],
    [5, 12],
    [9, 768],
  ] as const) {
    const x = randn(rows * 2 * hidden).map((v) => 12 * v); // past where exp(-g) is tiny or huge
    const want = tf.tidy(() => swiglu(tf.tensor2d(x, [rows, 2 * hidden])).dataSync());
    for (const pool of pools) {
      const at = pool.alloc(4 * x.length);
      const gateUp = new Float32Array(pool.memory.buffer, at, x.length);
      gateUp.set(x);
      t.same(pooledSwiglu(pool, gateUp, rows, hidden), want, `[${rows}, 2 * ${hidden}] on ${pool.threads} thread(s)`);
    }
  }
  t.throws(() => pooledSwiglu(pools[0]!, new Float32Array(8), 1, 4), /view of the pool memory/);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

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
      [4, 2, 1],
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

t.test("qkvHeadsInto: every head's rows as the rope kernel's loop (rotateRow) rotates them, bit for bit", async (t) => {
  const bits = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
  for (const [heads, kvHeads, headDim, rotaryDim, layout] of [
    [4, 2, 8, 8, 'pairs'],
    [6, 6, 48, 48, 'pairs'],
    [3, 1, 12, 8, 'halves'],
  ] as const) {
    const spec: RopeSpec = { theta: 10000, layout, rotaryDim, scale: 1 };
    const width = (heads + 2 * kvHeads) * headDim;
    for (const [rows, rowStart, T] of [
      [1, 0, 1],
      [5, 1, 3],
    ] as const) {
      const qkv = Float32Array.from(randn(rows * width));
      const keyAngles = ropeAngleArrays(
        Array.from({ length: T }, (_, i) => 700 + i),
        spec,
      );
      const frameAngles = ropeAngleArrays(
        Array.from({ length: T }, (_, i) => 5 * i),
        spec,
      );
      const keys = new Float32Array(kvHeads * T * headDim);
      const values = new Float32Array(kvHeads * T * headDim);
      const queries = [new Float32Array(heads * T * headDim)];
      const rotation = { pairs: layout === 'pairs', rotaryDim };
      qkvHeadsInto(
        qkv,
        rowStart,
        T,
        { heads, kvHeads, headDim },
        rotation,
        keyAngles.cos,
        keyAngles.sin,
        [frameAngles.cos, frameAngles.sin],
        keys,
        values,
        queries,
      );
      const want = { keys: new Float32Array(keys.length), values: new Float32Array(values.length), queries: new Float32Array(queries[0]!.length) };
      const row = { ...rotation, headDim, direction: 1 };
      for (let t = 0; t < T; t++) {
        const at = (rowStart + t) * width;
        for (let h = 0; h < heads; h++) rotateRow(qkv, at + h * headDim, want.queries, (h * T + t) * headDim, frameAngles.cos, frameAngles.sin, t, row);
        for (let g = 0; g < kvHeads; g++) {
          rotateRow(qkv, at + (heads + g) * headDim, want.keys, (g * T + t) * headDim, keyAngles.cos, keyAngles.sin, t, row);
          want.values.set(qkv.subarray(at + (heads + kvHeads + g) * headDim, at + (heads + kvHeads + g + 1) * headDim), (g * T + t) * headDim);
        }
      }
      const name = `${heads}/${kvHeads} heads of ${headDim}, ${layout} ${rotaryDim}, rows ${rowStart}..${rowStart + T}`;
      t.same(bits(keys), bits(want.keys), `${name}: keys`);
      t.same(bits(values), bits(want.values), `${name}: values`);
      t.same(bits(queries[0]!), bits(want.queries), `${name}: queries`);
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
    setFusedKernels(true);
    setSimdKernels(true);
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
  // logits straight from a pooled product are read where they lie in the pool, until its next product
  {
    const [rows, cols, vocab] = [5, 32, 700];
    const m = allocMatrix(pool, 'f32', vocab, cols);
    const w = randn(vocab * cols);
    for (let r = 0; r < vocab; r++) writeRow(m, r, w, r * cols);
    const logits = productTensor(pooledProduct(m, randn(rows * cols), rows), [rows, vocab]);
    const targets = [3, 699, 0, 42];
    const kernel = tf.tidy(() => tokenNll(logits, targets, 1).dataSync());
    t.ok(residentOffset(logits, pool) !== undefined, 'the logits still lie in the pool');
    // (on wasm the kernel's SIMD loop bit for bit; on cpu the kernel is the JavaScript loop, in float64)
    const same = (got: ArrayLike<number>, what: string) =>
      backend === 'wasm' ? t.same(got, kernel, what) : t.ok(maxAbsDiff(got, kernel) < 1e-5, `${what}: within rounding`);
    same(
      tf.tidy(() => tokenNll(logits, targets, 1, pool).dataSync()),
      'read in place: the numbers of the kernel',
    );
    pooledProduct(m, randn(cols), 1);
    t.equal(residentOffset(logits, pool), undefined, 'not after the next product');
    same(
      tf.tidy(() => tokenNll(logits, targets, 1, pool).dataSync()),
      'copied in: the same numbers',
    );
    logits.dispose();
  }
  // a pool whose memory is full (untouched pages cost address space, not memory): the kernel runs instead
  const full = new WorkerPool(2, { splitMinBytes: 0 });
  await full.ready();
  full.alloc(POOL_MAX_BYTES - full.allocatedBytes - 1024);
  const logits = tf.tensor2d(randn(6 * 500), [6, 500]);
  const fullBytes = full.allocatedBytes;
  t.same(
    tf.tidy(() => tokenNll(logits, [1, 2, 3], 2, full).dataSync()),
    tf.tidy(() => tokenNll(logits, [1, 2, 3], 2).dataSync()),
    'a full pool: the numbers of the kernel',
  );
  t.equal(full.allocatedBytes, fullBytes, 'nothing more asked of the full pool');
  logits.dispose();
  await full.dispose();
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

// poolAttendsOneQuery (a decode step's check, every token) is
// hasDirectMemory() && poolAttends(1, ...) in fewer looks at tfjs: the same
// answer for every setting it reads.
t.test('poolAttendsOneQuery answers as hasDirectMemory() && poolAttends(1, ...)', async (t) => {
  const cases: string[] = [];
  let agreed = 0;
  let open = 0;
  try {
    for (const fused of [true, false])
      for (const simd of [true, false])
        for (const headDim of [8, 6])
          for (const variant of SOFTMAX_VARIANTS)
            for (const taped of [false, true]) {
              setFusedKernels(fused);
              setSimdKernels(simd);
              const ask = () => [poolAttendsOneQuery(headDim, variant, simdAvailable), hasDirectMemory() && poolAttends(1, headDim, variant, simdAvailable)];
              let answers: boolean[] = [];
              if (taped)
                tf.grad((x: tf.Tensor) => {
                  answers = ask();
                  return x.sum();
                })(tf.ones([1])).dispose();
              else answers = ask();
              const name = `${backend} fused ${fused} simd ${simd} headDim ${headDim} ${variant}${taped ? ' under a tape' : ''}`;
              if (answers[0] === answers[1]) agreed++;
              else cases.push(`${name}: ${answers[0]}, not ${answers[1]}`);
              if (answers[1]) open++;
            }
  } finally {
    setFusedKernels(true);
    setSimdKernels(true);
  }
  t.same(cases, [], 'no setting where they differ');
  t.equal(agreed, 2 * 2 * 2 * SOFTMAX_VARIANTS.length * 2);
  // (on wasm some settings let a step attend in the pool; the cpu backend none)
  if (backend === 'wasm') t.ok(open > 0, `open for ${open} settings`);
  else t.equal(open, 0);
});
