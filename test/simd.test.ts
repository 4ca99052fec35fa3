// The WebAssembly SIMD kernels: the shipped bytes are exactly the assembled
// .wat sources, and each exported loop agrees with plain arithmetic, on
// tensors in the wasm backend's own memory (sizes that hit every tail).
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { hugePagesUnavailable } from '../kernels/huge_pages.js';
import { float32View, wasmHeapBuffer } from '../kernels/paths.js';
import { wasmHeapPageAdvice } from '../src/backend.js';
import { setSimdKernels, simdAvailable, simdLoops } from '../kernels/simd/instance.js';
import { assembleWat, generatedSource, SIMD_DIR, wasmTargets, watSources } from '../scripts/assemble_wasm.js';
import { initTestBackend, vmFlagsAt } from './helpers.js';

const backend = await initTestBackend();
const rng = seedrandom('simd');
const randn = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);

t.test('shipped bytes match the assembled .wat sources', async (t) => {
  const targets = wasmTargets();
  t.ok(watSources().includes('loops.wat'));
  t.ok(
    targets.some((x) => x.target === 'loops.shared.wasm.ts'),
    'loops.wat has a shared-memory variant',
  );
  t.equal(targets.length, watSources().length + 1);
  for (const { target, wat, source } of targets) {
    const bytes = await assembleWat(wat, source);
    const shipped = readFileSync(SIMD_DIR + target, 'utf8');
    t.equal(shipped, generatedSource(wat, bytes), `${target}: run npm run build:wasm after editing ${wat}`);
  }
});

t.test('loops against plain arithmetic', { skip: backend !== 'wasm' && 'needs the wasm backend' }, async (t) => {
  for (const [dim, n] of [
    [4, 1],
    [8, 7],
    [12, 4],
    [20, 9],
    [48, 37],
    [64, 256],
    [80, 5],
    [112, 3],
    [132, 9],
  ] as const) {
    const q = tf.tensor1d(randn(dim));
    const keys = tf.tensor1d(randn(n * dim));
    const values = tf.tensor1d(randn(n * dim));
    const s = tf.zeros([n]);
    const out = tf.tensor1d(randn(dim));
    const [qv, kv, vv, sv, ov] = [q, keys, values, s, out].map((x) => float32View(x));
    const simd = simdLoops([qv!, kv!, vv!, sv!, ov!]);
    t.ok(simd !== undefined, 'instantiated on the backend memory');
    const scale = 0.3;
    const want = Array.from({ length: n }, (_, j) => {
      let d = 0;
      for (let c = 0; c < dim; c++) d += qv![c]! * kv![j * dim + c]!;
      return d * scale;
    });
    const max = simd!.scores(qv!.byteOffset, kv!.byteOffset, n, dim, scale, sv!.byteOffset);
    t.ok(Math.max(...want.map((w, j) => Math.abs(w - sv![j]!))) < 1e-5, `scores dim ${dim} n ${n}`);
    t.ok(Math.abs(max - Math.max(...want)) < 1e-5, 'max of the scores');
    const scores = Array.from(sv!);
    t.equal(simd!.maxOf(sv!.byteOffset, n), Math.max(...scores), 'maxOf');
    const total = simd!.exps(sv!.byteOffset, n, max, 0);
    t.same(Array.from(sv!), scores, 'store = 0 leaves the scores as they are');
    const z = simd!.exps(sv!.byteOffset, n, max, 1);
    t.equal(total, z, 'the same sum either way');
    const p = want.map((w) => Math.exp(w - max));
    t.ok(Math.abs(z - p.reduce((a, b) => a + b, 0)) < 1e-5 * n, 'sum of exps');
    t.ok(Math.max(...p.map((w, j) => Math.abs(w - sv![j]!))) < 1e-6, 'exps');
    // accumulate onto what out holds, weighted
    const before = Float64Array.from(ov!);
    simd!.weightedSum(sv!.byteOffset, vv!.byteOffset, n, dim, 0.5, ov!.byteOffset, 1);
    let worst = 0;
    for (let c = 0; c < dim; c++) {
      let acc = before[c]!;
      for (let j = 0; j < n; j++) acc += 0.5 * p[j]! * vv![j * dim + c]!;
      worst = Math.max(worst, Math.abs(acc - ov![c]!));
    }
    t.ok(worst < 1e-5, `weightedSum dim ${dim} n ${n}: ${worst}`);
    // bit for bit a float32 loop that adds each column's terms in entry order,
    // whatever column blocks (64, 16, 4) the loop goes in
    const f = Math.fround;
    const exact = Array.from({ length: dim }, (_, c) => {
      let acc = f(before[c]!);
      for (let j = 0; j < n; j++) acc = f(acc + f(f(0.5 * sv![j]!) * vv![j * dim + c]!));
      return acc;
    });
    t.same(Array.from(ov!), exact, `weightedSum dim ${dim} n ${n}: float32 loop's bits`);
    simd!.weightedSum(sv!.byteOffset, vv!.byteOffset, 0, dim, 1, ov!.byteOffset, 0);
    t.same(Array.from(ov!), new Array(dim).fill(0), 'no entries and no accumulation: zeros');
    tf.dispose([q, keys, values, s, out]);
  }
});

t.test('copyRows: strided runs copied, the slots between them untouched', { skip: backend !== 'wasm' }, async (t) => {
  // three runs of 8 floats, 12 apart in src, into slot 2 of rows 20 apart in dst
  const src = tf.tensor1d(Float32Array.from({ length: 36 }, (_, i) => i + 0.5));
  const dst = tf.fill([60], -1);
  const [sv, dv] = [float32View(src), float32View(dst)];
  simdLoops([sv, dv])!.copyRows(sv.byteOffset, 48, dv.byteOffset + 8, 80, 3, 32);
  const want = Array.from({ length: 60 }, (_, i) => {
    const [row, c] = [Math.floor(i / 20), (i % 20) - 2];
    return c >= 0 && c < 8 ? row * 12 + c + 0.5 : -1;
  });
  t.same(Array.from(dv), want);
  tf.dispose([src, dst]);
});

t.test('exp: accurate from -87 to 88, about 1e-38 below and 1.7e38 above', { skip: backend !== 'wasm' }, async (t) => {
  const xs = Float32Array.from([0, -1e-8, -0.5, -0.6931, -1, -3.7, -10, -50, -80, -87, -88, -100, -1e30, 1e-8, 1, 3.7, 10, 50, 80, 88]);
  const buf = tf.tensor1d(xs);
  const view = float32View(buf);
  const simd = simdLoops([view])!;
  simd.exps(view.byteOffset, xs.length, 0, 1);
  for (let i = 0; i < xs.length; i++) {
    const want = Math.exp(xs[i]!);
    const got = view[i]!;
    t.ok(Math.abs(got - want) <= 2e-7 * want + 1e-37, `exp(${xs[i]}) = ${got}, want ${want}`);
  }
  buf.dispose();
  const big = tf.tensor1d([100, 1e30]);
  const bigView = float32View(big);
  simd.exps(bigView.byteOffset, 2, 0, 1);
  t.ok(
    bigView.every((x) => x > 1e38 && Number.isFinite(x)),
    'clamped above, still finite',
  );
  big.dispose();
});

t.test('setSimdKernels(false) and foreign memory turn the SIMD path off', { skip: backend !== 'wasm' }, async (t) => {
  const x = tf.zeros([4]);
  const view = float32View(x);
  setSimdKernels(false);
  t.equal(simdLoops([view]), undefined);
  setSimdKernels(true);
  t.ok(simdLoops([view]) !== undefined);
  t.equal(simdLoops([view, new Float32Array(4)]), undefined, 'a view outside the wasm heap');
  x.dispose();
});

t.test(
  "2 MB pages: the wasm backend's heap asks for them when the backend starts (VmFlags hg)",
  { skip: backend !== 'wasm' ? 'the wasm backend only' : (hugePagesUnavailable() ?? false) },
  async (t) => {
    const advice = wasmHeapPageAdvice();
    t.ok(advice?.hugePages, advice?.hugePages === false ? `not advised: ${advice.why}` : 'advised');
    if (advice?.hugePages === true) {
      t.match(vmFlagsAt(advice.address), /\bhg\b/, 'the mapping under the heap carries MADV_HUGEPAGE');
      t.ok(advice.bytes >= wasmHeapBuffer().byteLength && advice.bytes <= 2 ** 32, `advised ${advice.bytes} bytes: the heap's reservation, at most 4 GiB`);
    }
  },
);

// (last: it switches the active backend; simdAvailable keeps the loops it found for the active backend object)
t.test('simdAvailable follows the active backend and setSimdKernels', { skip: backend !== 'wasm' }, async (t) => {
  t.ok(simdAvailable(), 'on the wasm backend');
  setSimdKernels(false);
  t.notOk(simdAvailable(), 'turned off');
  setSimdKernels(true);
  t.ok(await tf.setBackend('cpu'), 'the cpu backend started');
  t.notOk(simdAvailable(), 'on the cpu backend');
  await tf.setBackend('wasm');
  t.ok(simdAvailable(), 'on the wasm backend again');
});
