// AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from
// the gradient. For each parameter p with gradient g, at step t (from 1):
//
//   m = b1 m + (1 - b1) g                 first moment
//   v = b2 v + (1 - b2) g^2               second moment
//   p = p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) - lr wd p
//
// The decay term shrinks the weight directly rather than entering m and v
// (which would scale it by the adaptive step size). Parameters marked
// `decay: false` (norm gains, sink logits, the sink embedding) are not decayed.
//
// The master weights and both moments live on the host as Float32Arrays:
// the update is a plain loop (one pass, no tensor-op dispatch per
// parameter), the state is trivially saved for a checkpoint, and the model's
// tf.Variables receive the new values once per step.
import * as tf from '@tensorflow/tfjs';
import * as fdlibm from '../../kernels/fdlibm.js';
import type { Param } from './params.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export interface ParamState {
  /** Master copy of the parameter. */
  value: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export class AdamW {
  /** Updates done so far. */
  step = 0;
  readonly state: ParamState[];

  constructor(
    readonly params: readonly Param[],
    readonly options: AdamWOptions = ADAMW_DEFAULTS,
  ) {
    this.state = params.map((p) => ({
      value: Float32Array.from(p.variable.dataSync() as Float32Array),
      m: new Float32Array(p.variable.size),
      v: new Float32Array(p.variable.size),
    }));
  }

  /** Apply one update with gradients (one per parameter, in order) scaled by `gradScale`. */
  update(grads: readonly Float32Array[], lr: number, gradScale = 1): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.step++;
    // (fdlibm's pow, Node 20's Math.pow: Node 24's differs in the last bit of some, and so would the run)
    const c1 = 1 - fdlibm.pow(beta1, this.step);
    const c2 = 1 - fdlibm.pow(beta2, this.step);
    this.params.forEach((p, i) => {
      const { value, m, v } = this.state[i]!;
      const g = grads[i]!;
      const shrink = 1 - lr * (p.decay ? weightDecay : 0);
      for (let j = 0; j < value.length; j++) {
        const gj = g[j]! * gradScale;
        m[j] = beta1 * m[j]! + (1 - beta1) * gj;
        v[j] = beta2 * v[j]! + (1 - beta2) * gj * gj;
        value[j] = value[j]! * shrink - (lr * (m[j]! / c1)) / (Math.sqrt(v[j]! / c2) + eps);
      }
      tf.tidy(() => p.variable.assign(tf.tensor(value, p.variable.shape)));
    });
  }
}
