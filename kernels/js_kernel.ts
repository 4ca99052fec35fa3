// Custom tfjs kernels written as plain loops over Float32Arrays, registered
// for the wasm and cpu backends. They fuse the small per-token steps of a
// decode (a norm, a rotation, attention over the cache) into one kernel each,
// because on these backends the fixed cost of dispatching a tfjs op (about
// 10 us) is larger than the arithmetic of such a step. Running through
// engine.runKernel keeps them visible to tf.tidy, tf.memory and tf.profile,
// and a kernel's gradient is registered the standard tfjs way, so the tape
// saves what it needs without copies. Where they run, and the backend
// internals their registration needs, are in kernels/paths.ts.
import * as tf from '@tensorflow/tfjs';
import { type KernelBody, registerLoopKernel, runRegisteredKernel } from './paths.js';

export { jsKernelsAvailable, setFusedKernels } from './paths.js';

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

// Names registered so far: looking a kernel up in tfjs's registry builds a
// key string each time, a cost paid on every op of a decode step.
const registered = new Set<string>();

function registerBody(body: KernelBody): void {
  registered.add(body.name);
  registerLoopKernel(body);
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

export function runJsKernel<A extends object>(kernel: JsKernel<A>, inputs: tf.Tensor[], attrs: A): tf.Tensor {
  registerJsKernel(kernel);
  return runRegisteredKernel(kernel.name, inputs, attrs) as tf.Tensor;
}

export function runJsMultiKernel<A extends object>(kernel: JsMultiKernel<A>, inputs: tf.Tensor[], attrs: A): tf.Tensor[] {
  registerJsMultiKernel(kernel);
  return runRegisteredKernel(kernel.name, inputs, attrs) as tf.Tensor[];
}
