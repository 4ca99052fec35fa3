// Instantiating the SIMD kernels of kernels/simd/*.wat against the memory of
// tfjs's wasm backend, so that they read and write its tensors in place.
//
// The backend is an Emscripten module; its WebAssembly.Memory is the
// `memory` export of the compiled module (Module.asm.memory). Our modules
// import that Memory object itself, so when the heap grows they see the grown
// heap: pointers stay valid, only JavaScript views of the old buffer detach.
import * as tf from '@tensorflow/tfjs';
import { WASM_BASE64 as ATTENTION_WASM } from './attention.wasm.js';

/** The exports of attention.wat; pointers are byte offsets into the backend's memory. */
export interface AttentionSimd {
  scores(q: number, keys: number, n: number, dim: number, scale: number, s: number): number;
  exps(s: number, n: number, max: number): number;
  weightedSum(p: number, values: number, n: number, dim: number, weight: number, out: number, accumulate: number): void;
}

interface WasmBackendLike {
  wasm: { asm?: { memory?: WebAssembly.Memory } };
}

let simdEnabled = true;

/** Turn the SIMD kernels off (or back on): the fused kernels then run their JavaScript loops. For tests and A/B runs. */
export function setSimdKernels(enabled: boolean): void {
  simdEnabled = enabled;
}

// One instance per backend memory; null where instantiation failed (an engine
// without SIMD, or a shared memory, which a non-shared import cannot take).
const attentionInstances = new WeakMap<WebAssembly.Memory, AttentionSimd | null>();

function backendMemory(): WebAssembly.Memory | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as WasmBackendLike).wasm.asm?.memory;
}

function instantiate(base64: string, memory: WebAssembly.Memory): WebAssembly.Exports | null {
  try {
    const module = new WebAssembly.Module(Buffer.from(base64, 'base64'));
    return new WebAssembly.Instance(module, { env: { memory } }).exports;
  } catch {
    return null;
  }
}

/**
 * The SIMD attention loops, when `views` all lie in the wasm backend's
 * memory (so their byteOffsets are pointers) and SIMD kernels are enabled;
 * otherwise undefined, and the caller runs its JavaScript loop.
 */
export function attentionSimd(views: Float32Array[]): AttentionSimd | undefined {
  if (!simdEnabled) return undefined;
  const memory = backendMemory();
  if (memory === undefined || views.some((v) => v.buffer !== memory.buffer)) return undefined;
  let instance = attentionInstances.get(memory);
  if (instance === undefined) {
    instance = instantiate(ATTENTION_WASM, memory) as unknown as AttentionSimd | null;
    attentionInstances.set(memory, instance);
  }
  return instance ?? undefined;
}
