// --threads and --weights (eval, generate): where the weight products run and
// how the matrices are held. placement.ts acts on them once a model is loaded.
import { defaultThreads } from '../../kernels/threads.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../../kernels/weight_format.js';
import { defineFlags } from './args.js';

export const placementFlags = defineFlags([
  {
    name: 'threads',
    type: 'int',
    value: 'N',
    min: 1,
    max: 1024,
    help: `threads for the weight products (default: every core, ${defaultThreads()} here, for q8; 1 for f32, whose pooled loop is still slower than the backend's one-thread path: bench/RESULTS.md); 1 keeps float32 products on the backend's one thread`,
  },
  {
    name: 'weights',
    type: 'string',
    value: 'FORMAT',
    choices: WEIGHT_FORMATS,
    default: 'f32',
    help: 'weight matrices as f32, or q8: blocks of 32 int8 with a float32 scale, 1.125 bytes a weight (accuracy: README)',
  },
]);

/** The placement flags as parsed. */
export interface PlacementFlags {
  threads?: number | undefined;
  weights: WeightFormat;
}
