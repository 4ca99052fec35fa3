// How a pooled weight matrix stores its weights (see split_products.ts), on
// its own so that the CLI can list the formats without loading tfjs.

export type WeightFormat = 'f32' | 'q8';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'q8'];
