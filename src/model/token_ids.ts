// Token ids as the API takes them: integers in the model's vocabulary, and
// SINK_TOKEN where a sink-token model's own id lists put its learned sink.
// Checked where they enter (forward, forwardBatch, TokenStream, generate,
// scoreTokens, the eval functions), before any work and before a cache
// moves: inside the model a bad id would be a gather's zeros (wasm) or
// garbage, and as a scored target another row's logit.
import { ArgumentError } from '../errors.js';

/** Stands for the learned sink token (sinkToken models) in an id list. */
export const SINK_TOKEN = -1;

/**
 * An ArgumentError naming `argument` and the first element of `ids` that is
 * not a token id of a vocabulary of `vocabSize` ("prompt: element 1 is 96,
 * expected a token id in 0..95"); `sink`: SINK_TOKEN is one too.
 */
export function checkTokenIds(argument: string, ids: ArrayLike<number>, vocabSize: number, sink = false): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize) && !(sink && id === SINK_TOKEN)) {
      const shown = typeof id === 'number' ? String(id) : JSON.stringify(id); // (from JavaScript, anything)
      throw new ArgumentError(argument, `element ${i} is ${shown}, expected a token id in 0..${vocabSize - 1}${sink ? ` or SINK_TOKEN (${SINK_TOKEN})` : ''}`);
    }
  }
}
