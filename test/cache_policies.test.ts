// The cache policies against independent references, a section each in a
// block of its own: what each query of the position-based policies sees
// (docs/streamingllm.md), then H2O and TOVA against the papers' rules run on a
// float64 forward pass.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { attention } from '../kernels/attention.js';
import { attentionReference, type ReferenceEntry } from '../kernels/attention.ref.js';
import { setFusedKernels } from '../kernels/js_kernel.js';
import { POOLED_ATTENTION_MIN_QUERIES } from '../kernels/paths.js';
import { POOL_MAX_BYTES, WorkerPool } from '../kernels/pool.js';
import { applyRope, ropeAngles, type RopeSpec } from '../kernels/rope.js';
import { setSimdKernels } from '../kernels/simd/instance.js';
import type { SoftmaxVariant } from '../kernels/softmax.js';
import { CausalBlock } from '../src/cache/causal_block.js';
import { DenseCache } from '../src/cache/dense.js';
import { createCache } from '../src/cache/index.js';
import { CACHE_KIND_SUMMARIES, CACHE_KINDS, type KVCachePolicy, policyBound, policyFromName, policyLabel, policySpan } from '../src/cache/policies.js';
import type { ScoredCache } from '../src/cache/scored.js';
import type { EntryStorage } from '../src/cache/storage.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { type CacheShape, entryTensors, type KVCache, type LayerView, type MemoryEntries } from '../src/cache/types.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { poolEntryMemory } from '../src/model/pooled_layers.js';
import { writeLlama2c } from '../src/checkpoint/llama2c.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { cacheShape } from '../src/model/config.js';
import { loadModel } from '../src/model/load.js';
import { forward, forwardBatch } from '../src/model/transformer.js';
import { disposeModel } from '../src/model/weights.js';
import { initTestBackend, maxAbsDiff } from './helpers.js';
import { hfReferenceLogits } from './hf_reference.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, rng, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

const backend = await initTestBackend();

// The cache policies' views, fed through RoPE and the attention kernel, give
// exactly what docs/streamingllm.md defines: token t sees its sinks and its
// window, in stream order at positions 0..n-1, with the query at n-1. Checked
// against the plain-loop reference for every variant, in blocks and token by
// token, with the fused kernels, with plain tfjs ops, and on the worker
// pool's threads (kernels/pooled_attention.ts, which blocks of 16 queries
// take when a pool is given).
{
  const dims = { heads: 4, kvHeads: 2, headDim: 8 };
  const N = 40;
  const rng = seedrandom('cache-semantics');
  const randn = (n: number) => Float32Array.from({ length: n }, () => 2 * rng() - 1);
  const q = Array.from({ length: N }, () => randn(dims.heads * dims.headDim));
  const k = Array.from({ length: N }, () => randn(dims.kvHeads * dims.headDim));
  const v = Array.from({ length: N }, () => randn(dims.kvHeads * dims.headDim));
  const sinkLogits = Float32Array.from([0.5, -1, 2, 0]);

  /** The doc's visible set of token t: sinks then window, no duplicates, stream order. */
  function visible(t: number, sinks: number, window: number): number[] {
    const set = new Set<number>();
    for (let i = 0; i < Math.min(sinks, t + 1); i++) set.add(i);
    for (let j = Math.max(0, t - window + 1); j <= t; j++) set.add(j);
    return [...set].sort((a, b) => a - b);
  }

  function reference(t: number, sinks: number, window: number, rope: RopeSpec, variant: SoftmaxVariant): Float64Array {
    const seen = visible(t, sinks, window);
    const entries: ReferenceEntry[] = seen.map((j, position) => ({ key: k[j]!, value: v[j]!, position }));
    return attentionReference(q[t]!, seen.length - 1, entries, dims, rope, variant, sinkLogits);
  }

  /** [n, T, headDim] from T rows of [n * headDim] */
  function heads(rows: Float32Array[], n: number): tf.Tensor3D {
    return tf.tidy(() =>
      tf
        .tensor3d(
          rows.flatMap((r) => Array.from(r)),
          [rows.length, n, dims.headDim],
        )
        .transpose([1, 0, 2]),
    );
  }

  /** Each token's attention output through the cache, fed in blocks of `block` tokens (a list: their lengths in turn, cycling). */
  function viaCache(cache: KVCache, block: number | readonly number[], rope: RopeSpec, variant: SoftmaxVariant, pool?: WorkerPool): Float32Array[] {
    const outputs: Float32Array[] = [];
    const sink = tf.tensor1d(sinkLogits);
    const lengths = typeof block === 'number' ? [block] : block;
    for (let start = 0, b = 0; start < N; b++) {
      const T = Math.min(lengths[b % lengths.length]!, N - start);
      const view = cache.begin(T).layer(0);
      const out = tf.tidy(() => {
        const keys = applyRope(heads(k.slice(start, start + T), dims.kvHeads), ropeAngles(view.keyPositions, rope), rope);
        const entries = entryTensors(cache.store(0, keys, heads(v.slice(start, start + T), dims.kvHeads)));
        const queries = heads(q.slice(start, start + T), dims.heads);
        const frames = view.frames.map((f) => ({ ...f, queries: applyRope(queries, ropeAngles(f.queryPositions, rope), rope) }));
        return attention(frames, entries.keys, entries.values, { variant, sinkLogits: sink }, pool).transpose([1, 0, 2]);
      });
      cache.end();
      const values = out.dataSync() as Float32Array;
      out.dispose();
      for (let i = 0; i < T; i++) outputs.push(values.slice(i * dims.heads * dims.headDim, (i + 1) * dims.heads * dims.headDim));
      start += T;
    }
    sink.dispose();
    return outputs;
  }

  // (mode 'pool memory' sets entryMemory: the caches keep their entries in the pool's memory)
  const shape: CacheShape = { layers: 1, kvHeads: dims.kvHeads, headDim: dims.headDim };
  const policies: { name: string; sinks: number; window: number; make: () => KVCache }[] = [
    { name: 'dense', sinks: 0, window: Infinity, make: () => new DenseCache(shape, 4) },
    { name: 'window 0+6', sinks: 0, window: 6, make: () => new StreamingCache(0, 6, shape) },
    { name: 'streaming 1+5', sinks: 1, window: 5, make: () => new StreamingCache(1, 5, shape) },
    { name: 'streaming 3+4', sinks: 3, window: 4, make: () => new StreamingCache(3, 4, shape) },
    // storage that starts at 1 slot and grows with the stream
    { name: 'streaming 2+5, growing', sinks: 2, window: 5, make: () => new StreamingCache(2, 5, shape, 1) },
    { name: 'window 0+7, growing', sinks: 0, window: 7, make: () => new StreamingCache(0, 7, shape, 2) },
    { name: 'streaming 4+1', sinks: 4, window: 1, make: () => new StreamingCache(4, 1, shape) },
  ];
  const ropes: RopeSpec[] = [
    { theta: 10000, layout: 'pairs', rotaryDim: 8, scale: 1 },
    { theta: 500, layout: 'halves', rotaryDim: 4, scale: 2 },
  ];

  // every item of a pooled block on its own share, however small
  const pool = new WorkerPool(3, { splitMinBytes: 0 });
  t.teardown(() => pool.dispose());
  await pool.ready();

  for (const mode of ['simd', 'fused js', 'tfjs ops', 'pool', 'pool memory'] as const) {
    for (const p of policies) {
      for (const variant of ['softmax', 'softmax1', 'learned-sink'] as const) {
        t.test(`${p.name}, ${variant}, ${mode}`, async (t) => {
          setFusedKernels(mode !== 'tfjs ops');
          setSimdKernels(mode === 'simd' || mode === 'pool' || mode === 'pool memory');
          shape.entryMemory = mode === 'pool memory' ? poolEntryMemory(pool) : undefined;
          const before = tf.memory().numTensors;
          for (const rope of ropes) {
            const want = Array.from({ length: N }, (_, i) => reference(i, p.sinks, p.window, rope, variant));
            // (blocks of changing length: a cache that rewrites its view block after block remakes its arrays)
            for (const block of [1, 3, POOLED_ATTENTION_MIN_QUERIES, [1, 1, 3, 1, 2, 2, 1]]) {
              const cache = p.make();
              const got = viaCache(cache, block, rope, variant, mode.startsWith('pool') ? pool : undefined);
              cache.dispose();
              t.equal(poolRegions(pool).heldBytes, 0, 'nothing held in the pool after dispose');
              const worst = Math.max(...got.map((g, i) => maxAbsDiff(g, want[i]!)));
              t.ok(worst < 1e-5, `${rope.layout} rope, blocks of ${String(block)}: max |diff| ${worst.toExponential(2)}`);
            }
          }
          t.equal(tf.memory().numTensors, before, 'no tensor leak');
          setFusedKernels(true);
          setSimdKernels(true);
          delete shape.entryMemory;
        });
      }
    }
  }

  t.test(
    'a cache in an entry memory holds what its storage takes: what it outgrows given back, its storage kept on reset, all given back on dispose',
    async (t) => {
      const regions = poolRegions(pool);
      const memory = poolEntryMemory(pool);
      const before = tf.memory().numTensors;
      const feed = (cache: KVCache, T: number, from: number) => {
        cache.begin(T);
        tf.tidy(() => {
          const kv = heads(k.slice(from, from + T), dims.kvHeads);
          cache.store(0, kv, kv);
        });
        cache.end();
      };
      const dense = new DenseCache({ ...shape, entryMemory: memory }, 1);
      const top = pool.allocatedBytes;
      for (let j = 0; j < 20; j++) {
        feed(dense, 1, j);
        t.equal(regions.heldBytes, dense.byteSize, `dense after ${j + 1} tokens: ${dense.byteSize} bytes held, no more`);
      }
      const held = regions.heldBytes;
      dense.reset();
      for (let j = 0; j < 20; j++) feed(dense, 1, j);
      t.equal(regions.heldBytes, held, 'after a reset, the same storage');
      dense.dispose();
      t.equal(regions.heldBytes, 0, 'dense: all given back');
      // a block of a streaming cache joins its entries in a buffer of the memory, kept from block to block
      const streaming = new StreamingCache(2, 5, { ...shape, entryMemory: memory }, 1);
      for (let j = 0; j < 30; j += 3) feed(streaming, 3, j);
      t.ok(regions.heldBytes > streaming.byteSize, "streaming: its storage and its blocks' buffer");
      streaming.dispose();
      t.equal(regions.heldBytes, 0, 'streaming: all given back');
      for (let i = 0; i < 10; i++) {
        const c = new StreamingCache(2, 5, { ...shape, entryMemory: memory }, 1);
        for (let j = 0; j < 30; j += 3) feed(c, 3, j);
        c.dispose();
      }
      t.ok(pool.allocatedBytes - top <= 64 * 1024, `ten more caches grew and went: the pool's memory grew ${pool.allocatedBytes - top} bytes in all`);
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    },
  );

  // An entry memory may hold less than the backend (a pooled model's 4 GiB
  // hold its weights too): a cache that outgrows its room goes on in tensors.
  /** An entry memory of `bytes` in all, in plain arrays, that knows what it holds. */
  const smallMemory = (bytes: number) => {
    const held = new Set<Float32Array>();
    let used = 0;
    return {
      held,
      alloc(floats: number) {
        const a = new Float32Array(floats);
        held.add(a);
        used += 4 * floats;
        return a;
      },
      free(a: Float32Array) {
        if (!held.delete(a)) throw new Error('free: not from this memory');
        used -= 4 * a.length;
      },
      get room() {
        return bytes - used;
      },
    };
  };
  t.test('a cache that outgrows the room of its entry memory moves its entries to tensors: the same outputs, the memory given back', async (t) => {
    const slotBytes = 2 * dims.kvHeads * dims.headDim * 4; // keys and values of one entry, one layer
    const rope = ropes[0]!;
    // (blocks of 1 or 3: the storage outgrows the room as it grows; a
    // streaming cache full from the start: its blocks' joined copy does)
    const cases: [string, number, number, (s: CacheShape) => KVCache, number[]][] = [
      ['dense from 1 slot', 0, Infinity, (s) => new DenseCache(s, 1), [1, 3]],
      ['streaming 2+5 from 1 slot', 2, 5, (s) => new StreamingCache(2, 5, s, 1), [1, 3]],
      ['window 0+7 from 2 slots', 0, 7, (s) => new StreamingCache(0, 7, s, 2), [1, 3]],
      ['streaming 2+5 from 7 slots', 2, 5, (s) => new StreamingCache(2, 5, s), [3]],
    ];
    for (const [name, sinks, window, make, blocks] of cases) {
      const want = Array.from({ length: N }, (_, i) => reference(i, sinks, window, rope, 'softmax'));
      for (const block of blocks) {
        const before = tf.memory().numTensors;
        const memory = smallMemory(8 * slotBytes);
        const cache = make({ ...shape, entryMemory: memory });
        t.ok(memory.held.size > 0, `${name}, blocks of ${block}: the cache starts in the memory`);
        const kinds = new Set<string>();
        const store = cache.store.bind(cache);
        cache.store = (layer, keys, values) => {
          const entries = store(layer, keys, values);
          kinds.add('memory' in entries ? 'memory' : 'tensors');
          return entries;
        };
        const got = viaCache(cache, block, rope, 'softmax');
        t.equal([...kinds].at(-1), 'tensors', `${name}, blocks of ${block}: entries (${[...kinds].join(', ')}) end in tensors`);
        t.equal(memory.held.size, 0, `${name}, blocks of ${block}: the memory's arrays given back on the move`);
        const worst = Math.max(...got.map((g, i) => maxAbsDiff(g, want[i]!)));
        t.ok(worst < 1e-5, `${name}, blocks of ${block}: max |diff| ${worst.toExponential(2)}`);
        cache.dispose();
        t.equal(tf.memory().numTensors, before, 'no tensor leak');
      }
    }
  });

  // Dense and streaming caches rewrite one view block after block
  // (src/cache/reused_view.ts): a decode step makes none. Each block's
  // positions are still its own (and every view's contents are checked
  // against the reference above, in blocks of changing length).
  t.test('dense and streaming views: the same objects for blocks of one length, rewritten; new arrays for another length', async (t) => {
    for (const p of policies) {
      const cache = p.make();
      const arrays = (view: LayerView) => [view.keyPositions, ...view.frames.flatMap((f) => [f.queryPositions, f.rowRanges])];
      const first = cache.begin(1);
      const firstArrays = arrays(first.layer(0));
      cache.end();
      let reused = 0;
      let starts = 0;
      for (let j = 1; j < 12; j++) {
        const block = cache.begin(1);
        const view = block.layer(0);
        if (block === first && view === first.layer(0) && arrays(view).every((a, i) => a === firstArrays[i])) reused++;
        if (block.start === j && view.keyPositions[0] === j && view.frames[0]!.queryPositions[0] === j) starts++;
        cache.end();
      }
      t.equal(reused, 11, `${p.name}: blocks of 1 token: the first block's view and arrays`);
      t.equal(starts, 11, `${p.name}: each at its own position`);
      const three = cache.begin(3).layer(0);
      t.same([three.keyPositions.length, three.frames[0]!.rowRanges.length], [3, 6], `${p.name}: a block of 3: arrays of 3 tokens`);
      t.same(Array.from(three.keyPositions), [12, 13, 14], `${p.name}: at its positions`);
      cache.end();
      cache.dispose();
    }
  });

  // KVCache.place: for a decode step, the entries where they lie and the
  // new token's slot, which the model fills itself (a decode-step program
  // asks for every layer's before any runs). Token by token through two
  // caches alike, one storing and one placing, over a stream that fills the
  // storage (growing it) and wraps the ring: the same entries bit for bit,
  // the same attention, and the doc's attention.
  t.test('place: a token written into its slot gives the entries and attention of store bit for bit; undefined where a cache cannot place', async (t) => {
    const rope = ropes[0]!;
    const layers = 3;
    const sink = tf.tensor1d(sinkLogits);
    const spec = { variant: 'learned-sink' as const, sinkLogits: sink };
    // grows: the storage starts at 1 or 2 slots
    const cases: [string, number, number, (s: CacheShape) => KVCache, boolean][] = [
      ['dense from 2 slots', 0, Infinity, (s) => new DenseCache(s, 2), true],
      ['window 0+6', 0, 6, (s) => new StreamingCache(0, 6, s), false],
      ['streaming 3+4', 3, 4, (s) => new StreamingCache(3, 4, s), false],
      ['streaming 2+5 from 1 slot', 2, 5, (s) => new StreamingCache(2, 5, s, 1), true],
      ['streaming 4+1', 4, 1, (s) => new StreamingCache(4, 1, s), false],
    ];
    /** The same bits (a float compare would take -0 for 0). */
    const sameBits = (a: Float32Array, b: Float32Array) =>
      Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    // layer l of token j stores key k[(j + 7l) % N] (rotated to j) and value v[(j + 7l) % N]
    const input = (j: number, l: number) => (j + 7 * l) % N;
    for (const [name, sinks, window, make, grows] of cases) {
      for (const [kind, memory] of [
        ['', poolEntryMemory(pool)],
        [', plain arrays', smallMemory(1 << 20)],
      ] as const) {
        const before = tf.memory().numTensors;
        const storing = make({ ...shape, layers, entryMemory: memory });
        const placing = make({ ...shape, layers, entryMemory: memory });
        t.throws(() => placing.place!(0), /call begin\(\) first/, `${name}: place before begin`);
        let entryMismatches = 0;
        let attentionMismatches = 0;
        let worst = 0;
        // a layer's entries are the object given the token before exactly while their arrays and size are (a decode step asks for them every token: no new objects while nothing moved)
        let lastEntries: (MemoryEntries | undefined)[] = [];
        let identityMismatches = 0;
        let sameObjects = 0;
        for (let j = 0; j < N; j++) {
          const view = storing.begin(1).layer(0);
          placing.begin(1);
          const placed = Array.from({ length: layers }, (_, l) => placing.place!(l));
          if (placed.some((p) => p === undefined)) {
            t.fail(`${name}, token ${j}: a cache in its entry memory places a single token`);
            break;
          }
          placed.forEach((p, l) => {
            const was = lastEntries[l];
            if (was === undefined) return;
            const same = was === p!.entries;
            const alike = was.keys === p!.entries.keys && was.values === p!.entries.values && String(was.shape) === String(p!.entries.shape);
            if (same !== alike) identityMismatches++;
            if (same) sameObjects++;
          });
          lastEntries = placed.map((p) => p!.entries);
          for (let l = 0; l < layers; l++) {
            const { entries, at } = placed[l]!;
            const outs = tf.tidy(() => {
              const keys = applyRope(heads([k[input(j, l)]!], dims.kvHeads), ropeAngles(view.keyPositions, rope), rope); // [kvHeads, 1, headDim]
              const stored = storing.store(l, keys, heads([v[input(j, l)]!], dims.kvHeads));
              // the model's write: kv head g's rotated key and its value to [g, at, :]
              const [kvHeads, slots, headDim] = entries.shape;
              const keyRows = keys.dataSync();
              for (let g = 0; g < kvHeads; g++) {
                entries.keys.set(keyRows.subarray(g * headDim, (g + 1) * headDim), (g * slots + at) * headDim);
                entries.values.set(v[input(j, l)]!.subarray(g * headDim, (g + 1) * headDim), (g * slots + at) * headDim);
              }
              if (!('memory' in stored) || stored.memory !== entries.memory || String(stored.shape) !== String(entries.shape)) entryMismatches++;
              else if (!sameBits(stored.keys, entries.keys) || !sameBits(stored.values, entries.values)) entryMismatches++;
              const queries = heads([q[j]!], dims.heads);
              const frames = view.frames.map((f) => ({ ...f, queries: applyRope(queries, ropeAngles(f.queryPositions, rope), rope) }));
              return [stored, entries].map((e) => {
                const { keys, values } = entryTensors(e);
                return attention(frames, keys, values, spec).dataSync() as Float32Array;
              });
            });
            if (!sameBits(outs[0]!, outs[1]!)) attentionMismatches++;
            if (l === 0) worst = Math.max(worst, maxAbsDiff(outs[1]!, reference(j, sinks, window, rope, 'learned-sink')));
          }
          storing.end();
          placing.end();
        }
        t.equal(entryMismatches, 0, `${name}${kind}: ${N} tokens x ${layers} layers, the entries of store bit for bit`);
        t.equal(identityMismatches, 0, `${name}${kind}: the same entries object exactly while the same arrays and size`);
        t.ok(sameObjects > 0, `${name}${kind}: the same object for ${sameObjects} of ${(N - 1) * layers}`);
        t.equal(attentionMismatches, 0, `${name}${kind}: and their attention`);
        t.ok(worst < 1e-5, `${name}${kind}: the reference's attention, max |diff| ${worst.toExponential(2)}`);
        // a block of more tokens is stored
        placing.begin(3);
        t.same(
          [0, 1, 2].map((l) => placing.place!(l)),
          [undefined, undefined, undefined],
          `${name}: a block of 3 is not placed`,
        );
        placing.end();
        storing.dispose();
        placing.dispose();
        t.equal(tf.memory().numTensors, before, 'no tensor leak');
      }
      // entries in tensors: none to place, from the start or once moved there
      const inTensors = make({ ...shape, layers });
      inTensors.begin(1);
      t.equal(inTensors.place!(0), undefined, `${name}: a cache in tensors`);
      inTensors.end();
      inTensors.dispose();
      if (!grows) continue;
      // room for the keys and values of 2 slots of every layer
      const moving = make({ ...shape, layers, entryMemory: smallMemory(2 * layers * 2 * dims.kvHeads * dims.headDim * 4) });
      const placedAt: boolean[] = [];
      for (let j = 0; j < 12; j++) {
        moving.begin(1);
        const placed = moving.place!(0);
        placedAt.push(placed !== undefined);
        tf.tidy(() => {
          const kv = heads([k[j]!], dims.kvHeads);
          for (let l = 0; l < layers; l++) moving.store(l, kv, kv);
        });
        moving.end();
      }
      moving.dispose();
      t.equal(placedAt[0], true, `${name}: placed while in its memory`);
      t.equal(placedAt.at(-1), false, `${name}: not once moved to tensors`);
    }
    // the policies that rank entries through tensors have no slots to give
    for (const policy of [
      { kind: 'h2o', budget: 8, recent: 4 },
      { kind: 'tova', budget: 8 },
    ] as const) {
      const cache = createCache(policy, { ...shape, entryMemory: poolEntryMemory(pool) });
      cache.begin(1);
      t.equal(cache.place?.(0), undefined, `${policy.kind}: nothing placed`);
      cache.end();
      cache.dispose();
    }
    sink.dispose();
  });

  // (on cpu the fused kernel is the JavaScript loop, in float64: the pool's SIMD loop agrees within rounding, and with itself bit for bit)
  t.test('a block on the pool equals the fused SIMD kernel bit for bit, on 1, 2 or 3 threads; small blocks stay off the pool', async (t) => {
    const rope = ropes[0]!;
    const run = (p: (typeof policies)[number], block: number, variant: SoftmaxVariant, on?: WorkerPool) => {
      const cache = p.make();
      const out = viaCache(cache, block, rope, variant, on);
      cache.dispose();
      return out;
    };
    const pools = [new WorkerPool(1), new WorkerPool(2, { splitMinBytes: 0 }), pool];
    t.teardown(() => Promise.all(pools.slice(0, 2).map((p) => p.dispose())));
    await Promise.all(pools.map((p) => p.ready()));
    const before = tf.memory().numTensors;
    for (const p of [policies[2]!, policies[3]!]) {
      for (const variant of ['softmax', 'learned-sink'] as const) {
        const fused = run(p, 20, variant);
        const pooled = run(p, 20, variant, pool);
        for (const on of pools) {
          const bytes = on.allocatedBytes;
          const got = run(p, 20, variant, on);
          if (backend === 'wasm' || on.threads === 1) t.same(got, fused, `${p.name}, ${variant}, ${on.threads} thread(s)`);
          else {
            t.same(got, pooled, `${p.name}, ${variant}, ${on.threads} threads: as on 3`);
            t.ok(Math.max(...got.map((g, i) => maxAbsDiff(g, fused[i]!))) < 1e-6, 'the JavaScript loop within rounding');
          }
          // one thread gains nothing from the pool: attention stays on the fused kernel, and the pool's memory untouched
          if (on.threads === 1) t.equal(on.allocatedBytes, bytes, 'one thread: not on the pool');
        }
      }
    }
    const small = new WorkerPool(2, { splitMinBytes: 0 });
    await small.ready();
    const bytes = small.allocatedBytes;
    run(policies[2]!, POOLED_ATTENTION_MIN_QUERIES - 1, 'softmax', small);
    t.equal(small.allocatedBytes, bytes, `blocks of ${POOLED_ATTENTION_MIN_QUERIES - 1} queries stay on the fused kernel`);
    run(policies[2]!, POOLED_ATTENTION_MIN_QUERIES, 'softmax', small);
    t.ok(small.allocatedBytes > bytes, `blocks of ${POOLED_ATTENTION_MIN_QUERIES} go to the pool (its memory holds their operands)`);
    await small.dispose();
    // a pool whose memory is full (a large model's weights): the block stays on the fused kernel
    // (the untouched pages of the 4 GiB cost address space, not memory)
    const full = new WorkerPool(2, { splitMinBytes: 0 });
    await full.ready();
    full.alloc(POOL_MAX_BYTES - full.allocatedBytes - 1024);
    const fullBytes = full.allocatedBytes;
    t.same(run(policies[2]!, 20, 'softmax', full), run(policies[2]!, 20, 'softmax'), 'a full pool: the numbers of the fused kernel');
    t.equal(full.allocatedBytes, fullBytes, 'nothing more asked of the full pool');
    await full.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  t.test('policies by name: the defaults at a trained length of 64, their labels, spans and bounds; errors name the argument', async (t) => {
    // written out from the README and policyFromName's comment: every policy lets a query see the trained length
    const want = {
      dense: [{ kind: 'dense' }, 'dense', Infinity, undefined],
      window: [{ kind: 'window', windowSize: 64 }, 'window(64)', 64, { setting: 'windowSize', value: 64 }],
      streaming: [{ kind: 'streaming', sinkCount: 4, windowSize: 60 }, 'streaming(4+60)', 64, { setting: 'windowSize', value: 60 }],
      recompute: [{ kind: 'recompute', windowSize: 64 }, 'recompute(64)', 64, { setting: 'windowSize', value: 64 }],
      h2o: [{ kind: 'h2o', budget: 64, recent: 32 }, 'h2o(32+32)', 64, { setting: 'budget', value: 64 }],
      tova: [{ kind: 'tova', budget: 64 }, 'tova(64)', 64, { setting: 'budget', value: 64 }],
    } as const;
    t.same([...CACHE_KINDS].sort(), Object.keys(want).sort(), 'every kind, and no other');
    for (const kind of CACHE_KINDS) {
      const [policy, label, span, bound] = want[kind];
      const p = policyFromName(kind, 64);
      t.same(p, policy, kind);
      t.equal(policyLabel(p), label);
      t.equal(policySpan(p), span);
      t.same(policyBound(p), bound);
      t.ok(CACHE_KIND_SUMMARIES[kind].length > 0, `${kind} has a summary`);
    }
    t.same(policyFromName('streaming', 64, { sinkCount: 2, windowSize: 10 }), { kind: 'streaming', sinkCount: 2, windowSize: 10 });
    t.same(policyFromName('h2o', 64, { budget: 20, recent: 5 }), { kind: 'h2o', budget: 20, recent: 5 });
    for (const [kind, options, argument] of [
      ['nope', {}, 'kind'],
      ['window', { windowSize: 0 }, 'windowSize'],
      ['streaming', { sinkCount: 1.5 }, 'sinkCount'],
      ['streaming', { sinkCount: 64 }, 'sinkCount'],
      ['h2o', { budget: 8, recent: 8 }, 'recent'],
      ['tova', { budget: -1 }, 'budget'],
    ] as const) {
      t.throws(() => policyFromName(kind, 64, options), { name: 'ArgumentError', argument }, `${kind} ${JSON.stringify(options)}: names ${argument}`);
    }
  });
}

// H2O and TOVA against an independent reference: test/hf_reference.ts's
// float64 forward pass, run token by token, with the policy written out as
// the papers describe it in a few plain loops here (held lists, scores, one
// eviction per token once full). The engine, stepwise and blocked, must give
// the same NLLs and keep the same tokens in every layer and kv head.
{
  const shape = { dim: 24, hiddenDim: 40, layers: 2, heads: 6, kvHeads: 2, vocabSize: 31, maxSeqLen: 32, sharedClassifier: true };
  const H = shape.heads;
  const group = shape.heads / shape.kvHeads;
  const tensors = randomLlama2c(shape, 'scored-caches');
  const dir = tempDir();
  writeLlama2c(join(dir, 'model.bin'), tensors);
  const r = rng('scored-ids');
  const ids = Array.from({ length: 48 }, () => 3 + Math.floor(r() * (shape.vocabSize - 3)));

  /** A policy as the reference runs it: what each layer and kv head keeps, and what happens after each head's probabilities. */
  interface ReferencePolicy {
    held: number[][][]; // [layer][kvHead]: stream indices, in order
    /** The smallest gap between the evicted entry's score and the next candidate's, over the run. */
    margin: number;
    observe(layer: number, t: number, head: number, probs: Float64Array): void;
  }

  /** H2O: accumulated attention per layer and kv head; the `recent` newest never evicted. */
  function referenceH2O(budget: number, recent: number): ReferencePolicy {
    const held = Array.from({ length: shape.layers }, () => Array.from({ length: shape.kvHeads }, () => [] as number[]));
    const score = Array.from({ length: shape.layers }, () => Array.from({ length: shape.kvHeads }, () => new Map<number, number>()));
    const p: ReferencePolicy = {
      held,
      margin: Infinity,
      observe(l, t, h, probs) {
        const g = Math.floor(h / group);
        held[l]![g]!.forEach((j, i) => score[l]![g]!.set(j, (score[l]![g]!.get(j) ?? 0) + probs[i]!));
        if (h !== H - 1) return; // every head of the layer has attended
        for (let kv = 0; kv < shape.kvHeads; kv++) {
          const list = held[l]![kv]!;
          if (list.length < budget) continue;
          const candidates = list.filter((j) => j <= t - recent).sort((a, b) => score[l]![kv]!.get(a)! - score[l]![kv]!.get(b)! || a - b);
          const victim = candidates[0]!;
          if (candidates.length > 1) p.margin = Math.min(p.margin, score[l]![kv]!.get(candidates[1]!)! - score[l]![kv]!.get(victim)!);
          list.splice(list.indexOf(victim), 1);
          score[l]![kv]!.delete(victim);
        }
      },
    };
    return p;
  }

  /** TOVA: the current query's attention averaged over the layer's heads; one list per layer. */
  function referenceTova(budget: number): ReferencePolicy {
    const lists = Array.from({ length: shape.layers }, () => [] as number[]);
    const held = lists.map((list) => Array.from({ length: shape.kvHeads }, () => list)); // every kv head shares the layer's list
    let sums: number[] = [];
    const p: ReferencePolicy = {
      held,
      margin: Infinity,
      observe(l, _t, h, probs) {
        if (h === 0) sums = new Array<number>(probs.length).fill(0);
        probs.forEach((v, i) => (sums[i]! += v / H));
        if (h !== H - 1) return;
        const list = lists[l]!;
        if (list.length < budget) return;
        const order = list.map((j, i) => [j, sums[i]!] as const).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
        p.margin = Math.min(p.margin, order[1]![1] - order[0]![1]);
        list.splice(list.indexOf(order[0]![0]), 1);
      },
    };
    return p;
  }

  /** Reference NLLs of ids under the policy, and what it keeps at the end. */
  function reference(policy: ReferencePolicy): { nll: number[]; held: number[][][]; margin: number } {
    const config = llamaConfigJson(shape);
    const logits = hfReferenceLogits(
      config,
      llama2cToHf(tensors),
      ids,
      (t, l, g) => {
        const list = policy.held[l]![g]!;
        if (list[list.length - 1] !== t) list.push(t); // TOVA's kv heads share one list
        return [...list];
      },
      (l, t, h, probs) => policy.observe(l, t, h, probs),
    );
    const nll = ids.slice(1).map((target, i) => {
      const row = logits[i]!;
      const m = Math.max(...row);
      const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
      return -(row[target]! - m - Math.log(z));
    });
    return { nll, held: policy.held.map((layer) => layer.map((list) => [...list])), margin: policy.margin };
  }

  // writeHfDir is the halves layout; the reference reads HF tensors, the engine the .bin: the same model both ways.
  writeHfDir(dir, llamaConfigJson(shape), llama2cToHf(tensors));
  const model = loadModel(join(dir, 'model.bin'));

  const cases: { policy: Extract<KVCachePolicy, { budget: number }>; ref: () => ReferencePolicy }[] = [
    { policy: { kind: 'h2o', budget: 8, recent: 3 }, ref: () => referenceH2O(8, 3) },
    { policy: { kind: 'h2o', budget: 6, recent: 0 }, ref: () => referenceH2O(6, 0) },
    { policy: { kind: 'tova', budget: 8 }, ref: () => referenceTova(8) },
    { policy: { kind: 'tova', budget: 3 }, ref: () => referenceTova(3) },
  ];

  for (const { policy, ref } of cases) {
    const want = reference(ref());
    const label = JSON.stringify(policy);
    t.test(`${label}: NLLs stepwise and blocked, and the tokens kept, against the reference loop`, async (t) => {
      t.ok(want.margin > 1e-6, `every eviction is decided by a margin the float32 engine resolves (smallest ${want.margin.toExponential(2)})`);
      const window = ids.length - 1 - (policy.budget - 2);
      const onlyRecent = want.held.every((layer) => layer.every((list) => list[0]! >= window));
      t.notOk(onlyRecent, 'the reference keeps something older than a window would: the test tells the policy from a window');
      const before = tf.memory().numTensors;
      for (const [mode, blockSize] of [
        ['stepwise', 1],
        ['blocked', 5],
        ['blocked', 64],
      ] as const) {
        const result = await scoreTokens(model, ids, policy, { mode, blockSize });
        const diff = maxAbsDiff(result.nll, want.nll);
        t.ok(diff < 1e-4, `${mode}${mode === 'blocked' ? ` (blocks of ${blockSize})` : ''}: max |diff| ${diff.toExponential(2)}`);
      }
      // Fed in blocks through forward(), the cache keeps what the reference keeps.
      const cache = createCache(policy, cacheShape(model.config)) as ScoredCache;
      for (const [from, to] of [
        [0, 5],
        [5, 20],
        [20, 21],
        [21, ids.length],
      ] as const)
        forward(model, ids.slice(from, to), cache, 'last').dispose();
      const kept = want.held.map((layer, l) => layer.map((_, g) => cache.kept(l, g)));
      t.same(kept, want.held, 'kept tokens per layer and kv head');
      t.equal(cache.size, policy.budget - 1);
      t.equal(cache.length, ids.length);
      cache.dispose();
      t.equal(tf.memory().numTensors, before, 'no tensor leak');
    });
  }

  t.test('H2O keeps different tokens per kv head; TOVA the same in every kv head', async (t) => {
    const h2o = reference(referenceH2O(6, 0)).held;
    t.ok(
      h2o.some((layer) => JSON.stringify(layer[0]) !== JSON.stringify(layer[1])),
      `h2o: ${JSON.stringify(h2o)}`,
    );
    const tova = reference(referenceTova(8)).held;
    t.ok(tova.every((layer) => JSON.stringify(layer[0]) === JSON.stringify(layer[1])));
  });

  t.test('the contract: bounded blocks, observed layers, argument errors', async (t) => {
    const cache = createCache({ kind: 'tova', budget: 4 }, cacheShape(model.config));
    t.equal(cache.blockLimit, 4);
    t.throws(() => cache.begin(5), /at most 4 now/);
    forward(model, ids.slice(0, 4), cache).dispose();
    t.equal(cache.blockLimit, 1, 'full: one token per block');
    cache.begin(1);
    cache.end(); // no layer observed
    t.throws(() => cache.begin(1), /without its attention observed/);
    cache.reset();
    t.equal(cache.blockLimit, 4);
    cache.dispose();
    t.throws(() => createCache({ kind: 'h2o', budget: 4, recent: 4 }, cacheShape(model.config)), /^recent: expected an integer in 0\.\.3/);
    t.throws(() => createCache({ kind: 'tova', budget: 0 }, cacheShape(model.config)), /^budget: expected an integer >= 1, got 0/);
  });

  /** A cache of each policy, small: 13 tokens fill each (rings wrapped, evictions made). */
  const smallPolicies: KVCachePolicy[] = [
    { kind: 'dense' },
    { kind: 'window', windowSize: 5 },
    { kind: 'streaming', sinkCount: 2, windowSize: 5 },
    { kind: 'h2o', budget: 8, recent: 3 },
    { kind: 'tova', budget: 5 },
  ];

  // KVCache.abandon (types.ts, Failing): a block whose forward pass throws
  // after the caches began (here an attention observer throwing once a layer
  // stored, attended and, for h2o and tova, scored and evicted) leaves each
  // policy's cache as if the block had never come: the tokens after it give
  // the logits of a cache that never saw it, value for value. In tensors and
  // in a pool's entry memory; failing in the first layer or the last; a block
  // of one token, and of four (a streaming cache's ring then overwrites kept
  // entries a later block sees).
  t.test("a block whose forward pass throws leaves every policy's cache as if it had never begun: the same logits after", async (t) => {
    const pool = new WorkerPool(2, { splitMinBytes: 0 });
    t.teardown(() => pool.dispose());
    const prefix = ids.slice(0, 13); // fills every policy below: rings wrapped, evictions made
    const failed = ids.slice(30, 36);
    const after = ids.slice(13, 30);
    // (h2o's scores, read inside: its evictions here are settled by wide margins, so scores left with a failed query's attention would not show in the logits)
    const scoresOf = (cache: KVCache) =>
      cache.policy?.kind === 'h2o' ? (cache as unknown as { scores: Float64Array[] }).scores.map((s) => Array.from(s)) : [];
    /** The logits of `after` fed in a block of 3 then token by token (all of them, [17 * vocab]). */
    const afterLogits = (cache: KVCache): Float32Array => {
      const rows = [after.slice(0, 3), ...after.slice(3).map((id) => [id])].map((block) => {
        const logits = forward(model, block, cache);
        const values = logits.dataSync() as Float32Array;
        logits.dispose();
        return values;
      });
      return Float32Array.from(rows.flatMap((r) => Array.from(r)));
    };
    for (const policy of smallPolicies) {
      const memories = policy.kind === 'h2o' || policy.kind === 'tova' ? [undefined] : [undefined, poolEntryMemory(pool)];
      for (const entryMemory of memories) {
        const shape = { ...cacheShape(model.config), entryMemory };
        const reference = createCache(policy, shape);
        forward(model, prefix, reference).dispose();
        const wantScores = scoresOf(reference);
        const want = afterLogits(reference);
        reference.dispose();
        for (const T of [1, 4])
          for (const failingLayer of [0, model.config.layers - 1]) {
            const label = `${policyLabel(policy)}${entryMemory === undefined ? '' : ' in pool memory'}, a block of ${T} failing in layer ${failingLayer}`;
            const before = tf.memory().numTensors;
            const cache = createCache(policy, shape);
            forward(model, prefix, cache).dispose();
            const onAttention = (layer: number) => {
              if (layer === failingLayer) throw new Error('injected');
            };
            // (three in a row: h2o adds each failed query's attention to its scores, which must go too)
            for (let k = 0; k < 3; k++) t.throws(() => forward(model, failed.slice(k, k + T), cache, 'all', { onAttention }), /^injected$/, `${label}: thrown`);
            t.equal(cache.length, prefix.length, `${label}: length as before`);
            t.same(scoresOf(cache), wantScores, `${label}: h2o's scores as before`);
            const got = afterLogits(cache);
            t.equal(maxAbsDiff(got, want), 0, `${label}: the logits after, value for value`);
            cache.dispose();
            t.equal(tf.memory().numTensors, before, `${label}: no tensor leak`);
          }
      }
    }
  });

  // A batch whose block fails: a cache whose abandon throws too (its restore failing, say) neither hides the block's
  // error nor leaves the caches after it begun
  t.test("a failed block's abandon that throws: the block's error reported, the other caches abandoned", async (t) => {
    const before = tf.memory().numTensors;
    const shape = cacheShape(model.config);
    const [first, second, reference] = [new DenseCache(shape), new DenseCache(shape), new DenseCache(shape)];
    first.abandon = () => {
      throw new Error('abandon failed');
    };
    const onAttention = () => {
      throw new Error('injected');
    };
    t.throws(() => forwardBatch(model, [ids.slice(0, 4), ids.slice(4, 8)], [first, second], 'all', { onAttention }), /^injected$/, "the block's error");
    t.equal(second.length, 0, 'the second cache: length as before');
    const got = forward(model, ids.slice(8, 12), second); // [4, vocab]
    const want = forward(model, ids.slice(8, 12), reference);
    t.equal(maxAbsDiff(got.dataSync(), want.dataSync()), 0, 'the second cache goes on as a fresh one, value for value');
    tf.dispose([got, want]);
    [first, second, reference].forEach((c) => c.dispose());
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  // end or abandon with no block begun (never, or the block already ended or abandoned) is a caller's mistake:
  // an Error naming the cache and the call, from every cache alike (CausalBlock's abandon passed unseen, and
  // made a finished block's CausalBlock begin again)
  t.test('end or abandon with no block begun: an Error naming the cache, from every cache', async (t) => {
    const before = tf.memory().numTensors;
    const shape = cacheShape(model.config);
    const caches: [string, () => KVCache][] = [
      ...smallPolicies.map((p): [string, () => KVCache] => [policyLabel(p), () => createCache(p, shape)]),
      ['causal', () => new CausalBlock()],
    ];
    for (const [label, make] of caches) {
      const cache = make();
      const name = cache.constructor.name;
      for (const call of ['end', 'abandon'] as const)
        t.throws(() => cache[call](), new Error(`${name}.${call}: no block begun`), `${label}: ${call}, never begun`);
      forward(model, ids.slice(0, 3), cache).dispose(); // begun and ended
      for (const call of ['end', 'abandon'] as const)
        t.throws(() => cache[call](), new Error(`${name}.${call}: no block begun`), `${label}: ${call}, the block ended`);
      cache.dispose();
      const again = make(); // (a CausalBlock that ended begins no other block)
      again.begin(2);
      again.abandon();
      t.throws(() => again.abandon(), new Error(`${name}.abandon: no block begun`), `${label}: abandon twice`);
      again.dispose();
    }
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  // EntryStorage.restore (a streaming cache's abandon puts back the kept entries a block of several tokens overwrote)
  // makes a tensor each of the keys and values it writes back: disposed where the write throws too
  t.test('a restore whose write throws leaks neither of its tensors', async (t) => {
    const before = tf.memory().numTensors;
    const cache = new StreamingCache(2, 5, cacheShape(model.config));
    forward(model, ids.slice(0, 13), cache).dispose(); // the ring wrapped: a block of 4 overwrites kept entries
    const storage = (cache as unknown as { storage: EntryStorage }).storage;
    let restores = 0;
    const onAttention = () => {
      // (once the block stored: only restore writes after this)
      storage.write = () => {
        restores++;
        throw new Error('write failed');
      };
      throw new Error('injected');
    };
    t.throws(() => forward(model, ids.slice(13, 17), cache, 'all', { onAttention }), /^injected$/, "the block's error");
    t.equal(restores, 1, 'abandon restored, and its write threw');
    cache.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  // ... and the block is over all the same (it stayed begun: every later begin threw 'the previous block was not
  // ended', and a second abandon restored again); the window's overwritten entries are not all back, so the cache
  // refuses another block until reset(), after which it is a fresh cache's, value for value
  t.test("a streaming cache whose abandon's restore throws: the block ended, the cache refusing until reset()", async (t) => {
    const before = tf.memory().numTensors;
    const cache = new StreamingCache(2, 5, cacheShape(model.config));
    forward(model, ids.slice(0, 13), cache).dispose(); // the ring wrapped: a block of 4 overwrites kept entries
    const storage = (cache as unknown as { storage: EntryStorage }).storage;
    const restore = storage.restore;
    const onAttention = () => {
      storage.restore = () => {
        throw new Error('restore failed');
      };
      throw new Error('injected');
    };
    t.throws(() => forward(model, ids.slice(13, 17), cache, 'all', { onAttention }), /^injected$/, "the block's error");
    storage.restore = restore;
    t.equal(cache.length, 13, 'length as before');
    t.throws(() => cache.abandon(), new Error('StreamingCache.abandon: no block begun'), 'no block left begun');
    const refusal = 'StreamingCache.begin: an abandoned block overwrote kept entries that could not be put back; reset() the cache';
    t.throws(() => cache.begin(1), new Error(refusal), 'begin refuses');
    cache.reset();
    const reference = new StreamingCache(2, 5, cacheShape(model.config));
    const [got, want] = [cache, reference].map((c) => forward(model, ids.slice(0, 9), c));
    t.equal(maxAbsDiff(got!.dataSync(), want!.dataSync()), 0, 'after reset(), a fresh cache, value for value');
    tf.dispose([got!, want!]);
    [cache, reference].forEach((c) => c.dispose());
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });

  // forward() splits a block longer than a full h2o or tova cache takes into blocks of one token: where the
  // second throws, the cache keeps the first (its length says so) and the logits already computed are disposed
  t.test('a split block whose second part throws: the cache keeps the first part, nothing leaks', async (t) => {
    for (const policy of [
      { kind: 'h2o', budget: 6, recent: 2 },
      { kind: 'tova', budget: 5 },
    ] as const) {
      const before = tf.memory().numTensors;
      const shape = cacheShape(model.config);
      const last = (cache: KVCache, block: number[]) => {
        const logits = forward(model, block, cache, 'last');
        const values = Array.from(logits.dataSync());
        logits.dispose();
        return values;
      };
      const reference = createCache(policy, shape);
      forward(model, ids.slice(0, 11), reference).dispose();
      const want = last(reference, ids.slice(11, 14));
      reference.dispose();
      const cache = createCache(policy, shape);
      forward(model, ids.slice(0, 10), cache).dispose();
      t.equal(cache.blockLimit, 1, `${policyLabel(policy)}: full, one token a block`);
      let calls = 0;
      const onAttention = () => {
        if (calls++ === model.config.layers) throw new Error('injected'); // the second block's first layer
      };
      t.throws(() => forward(model, ids.slice(10, 13), cache, 'all', { onAttention }), /^injected$/);
      t.equal(cache.length, 11, `${policyLabel(policy)}: the first block kept`);
      t.same(last(cache, ids.slice(11, 14)), want, `${policyLabel(policy)}: then as a cache fed it alone, value for value`);
      cache.dispose();
      t.equal(tf.memory().numTensors, before, `${policyLabel(policy)}: no tensor leak`);
    }
  });

  t.teardown(() => disposeModel(model));
}
