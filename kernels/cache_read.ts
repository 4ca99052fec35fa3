// Reading a block's entries out of KV-cache storage: runs of slots from the
// storage and the block's own new entries, joined along the entry axis in
// stream order (src/cache/streaming.ts composes a block's view this way).
//
// As tfjs ops that is a slice per run and a concat; on wasm a slice first
// copies its whole input out of the heap, the whole cache per run. So on
// wasm/cpu one kernel copies just the rows wanted; elsewhere the ops run.
import * as tf from '@tensorflow/tfjs';
import { type JsKernel, jsKernelsAvailable, runJsKernel } from './js_kernel.js';

/** Entries [start, start + count) of a [kvHeads, n, headDim] tensor. */
export interface EntryRun {
  entries: tf.Tensor3D;
  start: number;
  count: number;
}

interface JoinAttrs {
  starts: number[];
  counts: number[];
}

/**
 * The runs one after another along the entry axis of out [kvHeads, total,
 * headDim], from its first entry: run i is entries [starts[i], starts[i] +
 * counts[i]) of sources[i] [kvHeads, sizes[i], headDim]. As arrays, for the
 * kernel below and for a cache kept outside the backend (src/cache/storage.ts).
 */
export function joinRunsInto(
  out: Float32Array,
  total: number,
  sources: Float32Array[],
  sizes: number[],
  starts: number[],
  counts: number[],
  kvHeads: number,
  headDim: number,
): void {
  for (let h = 0; h < kvHeads; h++) {
    let at = h * total * headDim;
    for (let i = 0; i < sources.length; i++) {
      const from = (h * sizes[i]! + starts[i]!) * headDim;
      out.set(sources[i]!.subarray(from, from + counts[i]! * headDim), at);
      at += counts[i]! * headDim;
    }
  }
}

const joinKernel: JsKernel<JoinAttrs> = {
  name: 'StreamllmJoinEntries',
  outputShape: ([first], { counts }) => [first![0]!, counts.reduce((a, b) => a + b, 0), first![2]!],
  run(inputs, shapes, out, { starts, counts }) {
    const total = counts.reduce((a, b) => a + b, 0);
    joinRunsInto(
      out,
      total,
      inputs,
      shapes.map((s) => s[1]!),
      starts,
      counts,
      shapes[0]![0]!,
      shapes[0]![2]!,
    );
  },
};

/** The runs, one after another: [kvHeads, sum of counts, headDim]. */
export function joinEntries(runs: EntryRun[]): tf.Tensor3D {
  for (const r of runs) {
    if (r.start < 0 || r.count < 0 || r.start + r.count > r.entries.shape[1]) {
      throw new RangeError(`joinEntries: entries [${r.start}, ${r.start + r.count}) of ${r.entries.shape[1]}`);
    }
  }
  if (jsKernelsAvailable()) {
    const attrs: JoinAttrs = { starts: runs.map((r) => r.start), counts: runs.map((r) => r.count) };
    return runJsKernel(
      joinKernel,
      runs.map((r) => r.entries),
      attrs,
    ) as tf.Tensor3D;
  }
  return tf.tidy(() => {
    const parts = runs.map(({ entries, start, count }) => {
      const [kvHeads, n, headDim] = entries.shape;
      return start === 0 && count === n ? entries : entries.slice([0, start, 0], [kvHeads, count, headDim]);
    });
    return parts.length === 1 ? tf.clone(parts[0]!) : tf.concat(parts, 1);
  });
}
