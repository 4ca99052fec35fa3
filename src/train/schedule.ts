// The learning-rate schedule: linear warm-up from 0 to the peak over the
// first `warmupSteps`, then a half cosine from the peak down to `minLr` at
// `totalSteps` (and `minLr` after that). fdlibm's cos (kernels/fdlibm.ts):
// the same rates, and so the same run, on every Node.
import * as fdlibm from '../../kernels/fdlibm.js';

export interface Schedule {
  peakLr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** Learning rate for update number `step` (1-based). */
export function learningRate(s: Schedule, step: number): number {
  if (step <= s.warmupSteps) return (s.peakLr * step) / s.warmupSteps;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  return s.minLr + 0.5 * (s.peakLr - s.minLr) * (1 + fdlibm.cos(Math.PI * progress));
}
