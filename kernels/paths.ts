// Which implementation of a step runs where, and every reach into tfjs's
// internals: one file, so that a tfjs upgrade or a new backend is checked
// here and nowhere else.
//
// Paths, by backend and by whether the tape is recording (a gradient is
// being taken):
//
//   step                    wasm                      cpu                tensorflow    tape on
//   fused JS kernels        yes (SIMD loops inside)   yes (JS loops)     no: tfjs ops  only those with a gradient
//   attention (decode)      fused: SIMD any block,    fused up to 4      tfjs ops      tfjs ops
//                           JS loop up to 4 queries   queries, else ops
//   attention, a block of   the worker pool's         same (SIMD on the  -             tfjs ops
//   16+ queries, a model    threads (SIMD loop,       pool's memory)
//   with a pool             softmax family)
//   attention over a cache  the pool's threads, in    16+ queries: the   -             tfjs ops (a copy
//   in the pool's memory    place, any T (a decode    pool's; fewer: the               in tensors)
//                           step: split over heads)   JS loop, in place
//   causal batch (training) causalAttention kernel    same               tfjs ops      yes (own gradient)
//   cache writes            in place                  in place           new tensor    -
//   matrix products         2-D, untransposed         2-D                plain ops     same
//
// setFusedKernels(false) and setSimdKernels(false) close the fused and SIMD
// paths, for tests and A/B runs: every step then takes the next one down.
//
// Internals used (tfjs 4.22): the wasm backend's `wasm.HEAPU8`,
// `wasm.asm.memory`, `wasm._malloc`, `dataIdMap` (memoryOffset), `makeOutput`,
// `typedArrayFromHeap`, `disposeData`; the cpu backend's `data` map and
// `makeTensorInfo`; the engine's `runKernel` and `isTapeOn`.
import * as tf from '@tensorflow/tfjs';
import type { WorkerPool } from './pool.js';
import { type SoftmaxVariant, softmaxRule } from './softmax.js';

// ---- path selection ----------------------------------------------------

let fusedKernelsEnabled = true;
let simdEnabled = true;

/**
 * Turn the fused kernels off (or back on): every step then runs as plain tfjs
 * ops, the path the tensorflow backend takes. For tests and ablations.
 */
export function setFusedKernels(enabled: boolean): void {
  fusedKernelsEnabled = enabled;
}

/** Turn the SIMD loops off (or back on): the fused kernels then run their JavaScript loops. For tests and A/B runs. */
export function setSimdKernels(enabled: boolean): void {
  simdEnabled = enabled;
}

export function simdKernelsEnabled(): boolean {
  return simdEnabled;
}

/** True when registered JS kernels run on the active backend and are enabled. */
export function jsKernelsAvailable(): boolean {
  const name = tf.getBackend();
  return fusedKernelsEnabled && (name === 'wasm' || name === 'cpu');
}

/** True while a gradient is being recorded: kernels without a gradient must not run. */
export function tapeIsOn(): boolean {
  return tf.engine().isTapeOn();
}

/** The fused inference kernels (no gradient) may run: JS kernels here and no tape. */
export function fusedInference(): boolean {
  return jsKernelsAvailable() && !tapeIsOn();
}

/**
 * Largest query block for which the fused JavaScript attention loop beats
 * matrix products. The SIMD loop takes any block: it computes only the
 * scores each row sees, in place, where the op path slices heads apart
 * (copies on wasm), scores every entry, masks and softmaxes the lot.
 */
export const FUSED_MAX_QUERIES = 4;

/**
 * Fewest queries in a block for which attention goes to the worker pool: its
 * operands are copied into the pool's memory, a cost that a block of scoring
 * spreads over its many queries and a decode step (T = 1) does not.
 */
export const POOLED_ATTENTION_MIN_QUERIES = 16;

/**
 * Attention over a cache for a block of T queries runs on a model's worker
 * pool (kernels/pooled_attention.ts): inference, tensors readable in place,
 * the SIMD loop's variants (the softmax family, headDim a multiple of 4),
 * and a pool of several threads, or of one where the backend's own kernel
 * does not run the same SIMD loop (cpu: tfjs ops). So a model's numbers do
 * not depend on its thread count: on wasm one thread runs the SIMD loop in
 * the fused kernel, several run it in the pool; on cpu the pool runs it for
 * any number (on one thread, tfjs ops gave other roundings).
 */
export function pooledAttentionRuns(pool: WorkerPool | undefined, T: number, headDim: number, variant: SoftmaxVariant, simdAvailable: () => boolean): boolean {
  return (
    pool !== undefined &&
    (pool.threads > 1 || !simdAvailable()) &&
    fusedInference() &&
    simdEnabled &&
    hasDirectMemory() &&
    T >= POOLED_ATTENTION_MIN_QUERIES &&
    headDim % 4 === 0 &&
    softmaxRule(variant).softmaxFamily
  );
}

/**
 * The pool's attention loop (kernels/pooled_attention.ts attendInPool) runs
 * on entries that already lie in its memory, for a block of T queries:
 * inference, the SIMD loop's variants, and where the fused kernel would run
 * the same SIMD loop (wasm) or the block is one for the pool anyway (on cpu
 * the fused kernel is the JavaScript loop in float64: a decode step there
 * keeps those numbers). Otherwise the fused kernel's JavaScript loop runs.
 */
export function poolAttends(T: number, headDim: number, variant: SoftmaxVariant, simdAvailable: () => boolean): boolean {
  return fusedInference() && simdEnabled && headDim % 4 === 0 && softmaxRule(variant).softmaxFamily && (T >= POOLED_ATTENTION_MIN_QUERIES || simdAvailable());
}

/**
 * hasDirectMemory() && poolAttends(1, headDim, variant, simdAvailable): a
 * decode step's one query attends in the pool's memory, asked every token
 * (transformer.ts decodeProgramFor). The same answer with one look at
 * tfjs's engine instead of four calls that each look it up: a decode
 * step's JavaScript runs with the CPU's caches cold from the weights that
 * streamed through them, and each object it touches costs a read from
 * memory (for one query simdAvailable is asked, and it holds only on wasm).
 */
export function poolAttendsOneQuery(headDim: number, variant: SoftmaxVariant, simdAvailable: () => boolean): boolean {
  if (!(fusedKernelsEnabled && simdEnabled && headDim % 4 === 0)) return false;
  const engine = tf.engine();
  return engine.backendName === 'wasm' && !engine.isTapeOn() && softmaxRule(variant).softmaxFamily && simdAvailable();
}

/** Where attention over a cache runs for a block of T queries: the fused kernel or tfjs ops. */
export function attentionPath(T: number, simdAvailable: () => boolean): 'fused' | 'ops' {
  return fusedInference() && (T <= FUSED_MAX_QUERIES || simdAvailable()) ? 'fused' : 'ops';
}

/** The batched causal kernel (kernels/causal_attention.ts, with its own gradient) runs: JS kernels here, tape on or off. */
export function causalKernelAvailable(): boolean {
  return jsKernelsAvailable();
}

/** Batched products are split into 2-D ones (XNNPACK's fast path) everywhere but the tensorflow backend. */
export function splitsBatchedProducts(): boolean {
  return tf.getBackend() !== 'tensorflow';
}

/** True when float32View works on the active backend (cache writes in place). */
export function hasDirectMemory(): boolean {
  const name = tf.getBackend();
  return name === 'wasm' || name === 'cpu';
}

// ---- tfjs internals ----------------------------------------------------

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array; asm?: { memory?: WebAssembly.Memory }; _malloc(bytes: number): number; _free(offset: number): void };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  disposeData(dataId: object): void;
}
interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
}

/** The wasm backend's heap: the buffer of its WebAssembly memory (for kernels/huge_pages.ts). */
export function wasmHeapBuffer(): ArrayBufferLike {
  if (tf.getBackend() !== 'wasm') throw new Error(`wasmHeapBuffer: the backend is '${tf.getBackend()}', not wasm`);
  return (tf.backend() as unknown as WasmBackendLike).wasm.HEAPU8.buffer;
}

/**
 * A Float32Array aliasing the tensor's storage. On wasm the view is only
 * valid until the next allocation (the heap can grow and move), so take it,
 * use it, and drop it.
 */
export function float32View(t: tf.TensorInfo): Float32Array {
  const backend = tf.backend() as unknown;
  const size = t.shape.reduce((a, b) => a * b, 1);
  switch (tf.getBackend()) {
    case 'wasm': {
      const wasm = backend as WasmBackendLike;
      const offset = wasm.dataIdMap.get(t.dataId).memoryOffset;
      return new Float32Array(wasm.wasm.HEAPU8.buffer, offset, size);
    }
    case 'cpu': {
      const values = (backend as CpuBackendLike).data.get(t.dataId).values;
      if (!(values instanceof Float32Array)) throw new Error('float32View: tensor is not float32');
      return values;
    }
    default:
      throw new Error(`float32View: backend '${tf.getBackend()}' keeps tensors out of reach`);
  }
}

/** The WebAssembly.Memory of the wasm backend (the SIMD loops import it), when it runs. */
export function wasmBackendMemory(): WebAssembly.Memory | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as WasmBackendLike).wasm.asm?.memory;
}

// Per backend: working space malloc'ed on its heap (see wasmScratch).
const heapScratch = new WeakMap<object, { offset: number; floats: number }>();

/**
 * `floats` floats of working space on the wasm backend's heap, outside any
 * tensor (so tf.memory does not count it), for loops that run there
 * without a kernel call (kernels/attention_fused.ts's attendDirect). Grown,
 * never shrunk, and reused by the next call: the view is valid until the
 * next call or allocation on the heap. Undefined off the wasm backend.
 */
export function wasmScratch(floats: number): Float32Array | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as WasmBackendLike;
  let have = heapScratch.get(backend);
  if (have === undefined || have.floats < floats) {
    if (have !== undefined) backend.wasm._free(have.offset);
    const grown = Math.max(floats, 2 * (have?.floats ?? 0), 4096);
    have = { offset: backend.wasm._malloc(4 * grown) >>> 0, floats: grown };
    heapScratch.set(backend, have);
  }
  return new Float32Array(backend.wasm.HEAPU8.buffer, have.offset, floats);
}

/** What registration needs of a loop kernel: its outputs, and the loop over views. */
export interface KernelBody {
  name: string;
  outputShapes(inputShapes: number[][], attrs: object): number[][];
  scratchSize(inputShapes: number[][], attrs: object): number;
  run(inputs: Float32Array[], inputShapes: number[][], outs: Float32Array[], attrs: object, scratch: Float32Array): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

const NO_SCRATCH = new Float32Array(0);

/** A loop kernel's call: its inputs x0, x1, ..., their shapes and the attributes. */
function loopCall(args: KernelArgs): { inputs: tf.TensorInfo[]; shapes: number[][]; attrs: object } {
  const inputs: tf.TensorInfo[] = [];
  for (let i = 0; args.inputs[`x${i}`] !== undefined; i++) inputs.push(args.inputs[`x${i}`] as tf.TensorInfo);
  return { inputs, shapes: inputs.map((t) => t.shape), attrs: args.attrs ?? {} };
}

/** One output as itself, several as a list (what a kernelFunc returns). */
function kernelResult(outs: tf.TensorInfo[]): tf.TensorInfo | tf.TensorInfo[] {
  return outs.length === 1 ? outs[0]! : outs;
}

/** Register a loop kernel for wasm (on the heap, in place) and cpu (on its typed arrays). */
export function registerLoopKernel(body: KernelBody): void {
  tf.registerKernel({
    kernelName: body.name,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as WasmBackendLike;
      const { inputs, shapes, attrs } = loopCall(args);
      const outInfos = body.outputShapes(shapes, attrs).map((shape) => backend.makeOutput(shape, 'float32'));
      const scratchFloats = body.scratchSize(shapes, attrs);
      const scratch = scratchFloats > 0 ? backend.makeOutput([scratchFloats], 'float32') : undefined;
      // Views are taken after the allocations: a growing heap detaches older views.
      const views = inputs.map((t) => backend.typedArrayFromHeap(t));
      const outs = outInfos.map((t) => backend.typedArrayFromHeap(t));
      body.run(views, shapes, outs, attrs, scratch === undefined ? NO_SCRATCH : backend.typedArrayFromHeap(scratch));
      if (scratch !== undefined) backend.disposeData(scratch.dataId);
      return kernelResult(outInfos);
    },
  });
  tf.registerKernel({
    kernelName: body.name,
    backendName: 'cpu',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as CpuBackendLike;
      const { inputs, shapes, attrs } = loopCall(args);
      const outShapes = body.outputShapes(shapes, attrs);
      const outs = outShapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
      const scratch = new Float32Array(body.scratchSize(shapes, attrs));
      body.run(
        inputs.map((t) => backend.data.get(t.dataId).values as Float32Array),
        shapes,
        outs,
        attrs,
        scratch,
      );
      const outInfos = outs.map((values, i) => backend.makeTensorInfo(outShapes[i]!, 'float32', values));
      return kernelResult(outInfos);
    },
  });
}

/** Run a registered kernel on named inputs through the engine. */
export function runNamedKernel<T extends tf.Tensor>(name: string, inputs: tf.NamedTensorMap, attrs: object = {}): T {
  return tf.engine().runKernel<T>(name, inputs, attrs as unknown as tf.NamedAttrMap);
}

/** Run a registered kernel on tensors x0, x1, ... through the engine (visible to tidy, memory and profile). */
export function runRegisteredKernel(name: string, inputs: tf.Tensor[], attrs: object): tf.Tensor | tf.Tensor[] {
  const named: tf.NamedTensorMap = {};
  inputs.forEach((t, i) => (named[`x${i}`] = t));
  return tf.engine().runKernel<tf.Tensor | tf.Tensor[]>(name, named, attrs as unknown as tf.NamedAttrMap);
}
