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
  /** Fill `out` from `inputs` (row-major float32 views); `scratch` is working space of scratchSize floats. */
  run(inputs: Float32Array[], inputShapes: number[][], out: Float32Array, attrs: A, scratch: Float32Array): void;
  /**
   * Floats of working space `run` needs (default none). On wasm it lies in
   * the backend's memory, beside the tensors, for kernels that run there.
   */
  scratchSize?(inputShapes: number[][], attrs: A): number;
  /** Gradient: which inputs to save (and the output), and dy -> one gradient per differentiable input (by index). */
  gradient?: {
    save: number[];
    /** Also save the kernel's output; it comes after the saved inputs. */
    saveOutput?: boolean;
    grads(dy: tf.Tensor, saved: tf.Tensor[], attrs: A): Record<number, () => tf.Tensor>;
  };
}

/**
 * A kernel with several float32 outputs. It has no gradient, so it runs only
 * with the tape off (inference); callers keep a tfjs-ops path for training.
 */
export interface JsMultiKernel<A extends object> {
  name: string;
  /** Shapes of the float32 outputs. */
  outputShapes(inputShapes: number[][], attrs: A): number[][];
  /** Fill `outs` from `inputs` (row-major float32 views). */
  run(inputs: Float32Array[], inputShapes: number[][], outs: Float32Array[], attrs: A): void;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  disposeData(dataId: object): void;
}
interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
}

/** What registration needs of either kind of kernel: outputs, and the loop over views. */
interface KernelBody {
  name: string;
  outputShapes(inputShapes: number[][], attrs: object): number[][];
  scratchSize(inputShapes: number[][], attrs: object): number;
  run(inputs: Float32Array[], inputShapes: number[][], outs: Float32Array[], attrs: object, scratch: Float32Array): void;
}

const NO_SCRATCH = new Float32Array(0);

function inputList(args: KernelArgs): tf.TensorInfo[] {
  const list: tf.TensorInfo[] = [];
  for (let i = 0; args.inputs[`x${i}`] !== undefined; i++) list.push(args.inputs[`x${i}`] as tf.TensorInfo);
  return list;
}

// Names registered so far: looking a kernel up in tfjs's registry builds a
// key string each time, a cost paid on every op of a decode step.
const registered = new Set<string>();

function registerBody(body: KernelBody): void {
  registered.add(body.name);
  tf.registerKernel({
    kernelName: body.name,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as WasmBackendLike;
      const inputs = inputList(args);
      const attrs = args.attrs ?? {};
      const shapes = inputs.map((t) => t.shape);
      const outInfos = body.outputShapes(shapes, attrs).map((shape) => backend.makeOutput(shape, 'float32'));
      const scratchFloats = body.scratchSize(shapes, attrs);
      const scratch = scratchFloats > 0 ? backend.makeOutput([scratchFloats], 'float32') : undefined;
      // Views are taken after the allocations: a growing heap detaches older views.
      const views = inputs.map((t) => backend.typedArrayFromHeap(t));
      const outs = outInfos.map((t) => backend.typedArrayFromHeap(t));
      body.run(views, shapes, outs, attrs, scratch === undefined ? NO_SCRATCH : backend.typedArrayFromHeap(scratch));
      if (scratch !== undefined) backend.disposeData(scratch.dataId);
      return outInfos.length === 1 ? outInfos[0]! : outInfos;
    },
  });
  tf.registerKernel({
    kernelName: body.name,
    backendName: 'cpu',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as CpuBackendLike;
      const inputs = inputList(args);
      const attrs = args.attrs ?? {};
      const shapes = inputs.map((t) => t.shape);
      const outShapes = body.outputShapes(shapes, attrs);
      const outs = outShapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
      const scratch = new Float32Array(body.scratchSize(shapes, attrs));
      body.run(inputs.map((t) => backend.data.get(t.dataId).values), shapes, outs, attrs, scratch);
      const outInfos = outs.map((values, i) => backend.makeTensorInfo(outShapes[i]!, 'float32', values));
      return outInfos.length === 1 ? outInfos[0]! : outInfos;
    },
  });
}

function registerJsKernel<A extends object>(kernel: JsKernel<A>): void {
  if (registered.has(kernel.name)) return;
  registerBody({
    name: kernel.name,
    outputShapes: (shapes, attrs) => [kernel.outputShape(shapes, attrs as A)],
    scratchSize: (shapes, attrs) => kernel.scratchSize?.(shapes, attrs as A) ?? 0,
    run: (inputs, shapes, [out], attrs, scratch) => kernel.run(inputs, shapes, out!, attrs as A, scratch),
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

function registerJsMultiKernel<A extends object>(kernel: JsMultiKernel<A>): void {
  if (registered.has(kernel.name)) return;
  registerBody({
    name: kernel.name,
    outputShapes: (shapes, attrs) => kernel.outputShapes(shapes, attrs as A),
    scratchSize: () => 0,
    run: (inputs, shapes, outs, attrs) => kernel.run(inputs, shapes, outs, attrs as A),
  });
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
  return tf.engine().runKernel<tf.Tensor>(kernel.name, named, attrs as unknown as tf.NamedAttrMap);
}

export function runJsMultiKernel<A extends object>(kernel: JsMultiKernel<A>, inputs: tf.Tensor[], attrs: A): tf.Tensor[] {
  registerJsMultiKernel(kernel);
  const named: tf.NamedTensorMap = {};
  inputs.forEach((t, i) => (named[`x${i}`] = t));
  return tf.engine().runKernel(kernel.name, named, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[];
}
