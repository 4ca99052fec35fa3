// Instantiating the SIMD loops of kernels/simd/loops.wat against the memory
// of tfjs's wasm backend, so that they read and write its tensors in place.
//
// The backend is an Emscripten module; its WebAssembly.Memory is the
// `memory` export of the compiled module (Module.asm.memory). Our module
// imports that Memory object itself, so when the heap grows it sees the
// grown heap: pointers stay valid, only JavaScript views of the old buffer
// detach.
import * as tf from '@tensorflow/tfjs';
import { simdKernelsEnabled, wasmBackendMemory } from '../paths.js';
import { WASM_BASE64 } from './loops.wasm.js';

export { setSimdKernels } from '../paths.js';

/** The exports of loops.wat; pointers are byte offsets into the backend's memory. */
export interface SimdLoops {
  scores(q: number, keys: number, n: number, dim: number, scale: number, s: number): number;
  /** With store = 1 the exps replace s; returns their sum (float64). */
  exps(s: number, n: number, max: number, store: number): number;
  weightedSum(p: number, values: number, n: number, dim: number, weight: number, out: number, accumulate: number): void;
  maxOf(x: number, n: number): number;
  attendRow(plan: number, frames: number, valuesFromKeys: number, dim: number, scale: number, sink: number, s: number, out: number): void;
  swiglu(x: number, rows: number, hidden: number, out: number): void;
  /** rows runs of `bytes` (a multiple of 16) from src to dst, each stride bytes after the last. */
  copyRows(src: number, srcStride: number, dst: number, dstStride: number, rows: number, bytes: number): void;
}

// One instance per backend memory; null where instantiation failed (an engine
// without SIMD, or a shared memory, which a non-shared import cannot take).
const instances = new WeakMap<WebAssembly.Memory, SimdLoops | null>();

function instantiate(memory: WebAssembly.Memory): SimdLoops | null {
  try {
    const module = new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
    return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SimdLoops;
  } catch {
    return null;
  }
}

/** True when the SIMD loops run for tensors of the active backend. */
export function simdAvailable(): boolean {
  return simdKernelsEnabled() && activeBackendLoops() !== null;
}

// The active wasm backend's loops, found again only when tfjs's active
// backend is another object (a backend keeps its Emscripten module, so its
// memory, for good). Finding them (Module.asm.memory, then the WeakMap) cost
// a pooled decode step's caller about 3 µs a token, cold after the weights
// streamed through the CPU's caches: decodeProgramFor asks simdAvailable
// every token.
let loopsBackend: unknown;
let backendLoops: SimdLoops | null = null;

/** The loops on the active backend's memory; null off the wasm backend or where instantiation failed. */
function activeBackendLoops(): SimdLoops | null {
  if (tf.getBackend() !== 'wasm') return null;
  const backend = tf.backend();
  if (backend !== loopsBackend) {
    const memory = wasmBackendMemory();
    backendLoops = memory === undefined ? null : instanceFor(memory);
    loopsBackend = backend;
  }
  return backendLoops;
}

/** The module instantiated on `memory` (once), null where that failed. */
function instanceFor(memory: WebAssembly.Memory): SimdLoops | null {
  let instance = instances.get(memory);
  if (instance === undefined) {
    instance = instantiate(memory);
    instances.set(memory, instance);
  }
  return instance;
}

/**
 * The SIMD loops, when `views` all lie in the wasm backend's memory (so
 * their byteOffsets are pointers) and SIMD is enabled; otherwise undefined,
 * and the caller runs its JavaScript loop.
 */
export function simdLoops(views: Float32Array[]): SimdLoops | undefined {
  if (!simdKernelsEnabled()) return undefined;
  const memory = wasmBackendMemory();
  if (memory === undefined) return undefined;
  const buffer = memory.buffer;
  for (const v of views) if (v.buffer !== buffer) return undefined;
  return instanceFor(memory) ?? undefined;
}
