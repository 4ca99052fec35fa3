// Reference loop for kernels/rope.ts, in float64. Tests only.
import type { RopeSpec } from './rope.js';

/** Rotate one head vector (length headDim) to `position`. */
export function ropeReference(v: ArrayLike<number>, position: number, spec: RopeSpec): Float64Array {
  const out = Float64Array.from(v);
  const half = spec.rotaryDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = (position / spec.scale) * Math.pow(spec.theta, -(2 * i) / spec.rotaryDim);
    const [j, k] = spec.layout === 'pairs' ? [2 * i, 2 * i + 1] : [i, i + half];
    out[j] = v[j]! * Math.cos(angle) - v[k]! * Math.sin(angle);
    out[k] = v[j]! * Math.sin(angle) + v[k]! * Math.cos(angle);
  }
  return out;
}
