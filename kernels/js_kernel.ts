// Custom tfjs kernels written as plain loops over Float32Arrays, registered
// for the wasm and cpu backends. They fuse the small per-token steps of a
// decode (a norm, a rotation, attention over the cache) into one kernel each,
// because on these backends the fixed cost of dispatching a tfjs op (about
// 10 us) is larger than the arithmetic of such a step. Running through
// engine.runKernel keeps them visible to tf.tidy, tf.memory and tf.profile,
// and a kernel's gradient is registered the standard tfjs way, so the tape
// saves what it needs without copies.
import * as tf from '@tensorflow/tfjs';

export interface JsKernel<A extends object> {
  name: string;
  /** Shape of the single float32 output. */
  outputShape(inputShapes: number[][], attrs: A): number[];
  /** Fill `out` from `inputs` (row-major float32 views). */
  run(inputs: Float32Array[], inputShapes: number[][], out: Float32Array, attrs: A): void;
  /** Gradient: which inputs to save (and the output), and dy -> one gradient per differentiable input (by index). */
  gradient?: {
    save: number[];
    /** Also save the kernel's output; it comes after the saved inputs. */
    saveOutput?: boolean;
    grads(dy: tf.Tensor, saved: tf.Tensor[], attrs: A): Record<number, () => tf.Tensor>;
  };
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}
interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
}

function inputList(args: KernelArgs): tf.TensorInfo[] {
  const list: tf.TensorInfo[] = [];
  for (let i = 0; args.inputs[`x${i}`] !== undefined; i++) list.push(args.inputs[`x${i}`] as tf.TensorInfo);
  return list;
}

function registerJsKernel<A extends object>(kernel: JsKernel<A>): void {
  if (tf.getKernel(kernel.name, 'wasm') !== undefined) return;
  tf.registerKernel({
    kernelName: kernel.name,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as WasmBackendLike;
      const inputs = inputList(args);
      const attrs = args.attrs as unknown as A;
      const shapes = inputs.map((t) => t.shape);
      const outInfo = backend.makeOutput(kernel.outputShape(shapes, attrs), 'float32');
      // Views are taken after the allocation: a growing heap detaches older views.
      const views = inputs.map((t) => backend.typedArrayFromHeap(t));
      kernel.run(views, shapes, backend.typedArrayFromHeap(outInfo), attrs);
      return outInfo;
    },
  });
  tf.registerKernel({
    kernelName: kernel.name,
    backendName: 'cpu',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as CpuBackendLike;
      const inputs = inputList(args);
      const attrs = args.attrs as unknown as A;
      const shapes = inputs.map((t) => t.shape);
      const outShape = kernel.outputShape(shapes, attrs);
      const out = new Float32Array(outShape.reduce((a, b) => a * b, 1));
      kernel.run(inputs.map((t) => backend.data.get(t.dataId).values), shapes, out, attrs);
      return backend.makeTensorInfo(outShape, 'float32', out);
    },
  });
  const gradient = kernel.gradient;
  if (gradient !== undefined) {
    tf.registerGradient({
      kernelName: kernel.name,
      inputsToSave: gradient.save.map((i) => `x${i}`),
      ...(gradient.saveOutput ? { outputsToSave: [true] } : {}),
      gradFunc: (dy, saved, attrs) => {
        const byIndex = gradient.grads(dy as tf.Tensor, saved, attrs as unknown as A);
        return Object.fromEntries(Object.entries(byIndex).map(([i, f]) => [`x${i}`, f]));
      },
    });
  }
}

let fusedKernelsEnabled = true;

/**
 * Turn the fused kernels off (or back on): every step then runs as plain tfjs
 * ops, the path the tensorflow backend takes. For tests and ablations.
 */
export function setFusedKernels(enabled: boolean): void {
  fusedKernelsEnabled = enabled;
}

/** True when registered JS kernels run on the active backend and are enabled. */
export function jsKernelsAvailable(): boolean {
  const name = tf.getBackend();
  return fusedKernelsEnabled && (name === 'wasm' || name === 'cpu');
}

export function runJsKernel<A extends object>(kernel: JsKernel<A>, inputs: tf.Tensor[], attrs: A): tf.Tensor {
  registerJsKernel(kernel);
  const named: tf.NamedTensorMap = {};
  inputs.forEach((t, i) => (named[`x${i}`] = t));
  return tf.engine().runKernel(kernel.name, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}
