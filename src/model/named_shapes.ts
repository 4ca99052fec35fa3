// The shapes of llama2.c's "stories" models, by name: `streamllm init
// --shape` and the benchmarks build random models of them.
import type { LlamaShape } from '../checkpoint/llama2c.js';

export const NAMED_SHAPES: Record<string, Omit<LlamaShape, 'sharedClassifier'>> = {
  '260K': { dim: 64, hiddenDim: 172, layers: 5, heads: 8, kvHeads: 4, vocabSize: 512, maxSeqLen: 512 },
  '15M': { dim: 288, hiddenDim: 768, layers: 6, heads: 6, kvHeads: 6, vocabSize: 32000, maxSeqLen: 256 },
  '42M': { dim: 512, hiddenDim: 1376, layers: 8, heads: 8, kvHeads: 8, vocabSize: 32000, maxSeqLen: 1024 },
  '110M': { dim: 768, hiddenDim: 2048, layers: 12, heads: 12, kvHeads: 12, vocabSize: 32000, maxSeqLen: 1024 },
};
