// Direct access to a tensor's storage on the backends that keep it in this
// process (wasm: the WebAssembly heap; cpu: a JavaScript typed array).
//
// tfjs tensors are immutable, so appending to a KV cache the tfjs way copies
// the whole cache every token. Writing into the cache's own storage instead
// keeps a decode step O(1) in the stream length. Only the cache writer and
// the fused kernels use this; everything else stays on tfjs ops.
import * as tf from '@tensorflow/tfjs';

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
}
interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
}

/** True when float32View works on the active backend. */
export function hasDirectMemory(): boolean {
  const name = tf.getBackend();
  return name === 'wasm' || name === 'cpu';
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
