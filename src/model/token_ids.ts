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
 * The first element of `ids` that is not a token id of a vocabulary of
 * `vocabSize` (without one: any integer >= 0), in the words every bad token
 * id is refused with, whoever names the file, field or argument before them
 * ("element 1 is 96, expected a token id in 0..95"); undefined when every
 * element is one. `sink`: SINK_TOKEN is one too.
 */
export function badTokenId(ids: ArrayLike<unknown>, vocabSize = Infinity, sink = false): string | undefined {
  for (let i = 0; i < ids.length; i++) {
    const bad = notTokenId(ids[i], vocabSize, sink);
    if (bad !== undefined) return `element ${i} ${bad}`;
  }
  return undefined;
}

/** Why `id` is not a token id of a vocabulary of `vocabSize`, in badTokenId's words ("is 96, expected a token id in 0..95"); undefined where it is one. */
function notTokenId(id: unknown, vocabSize: number, sink: boolean): string | undefined {
  if ((typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < vocabSize) || (sink && id === SINK_TOKEN)) return undefined;
  const shown = typeof id === 'number' ? String(id) : JSON.stringify(id); // (from JavaScript or a JSON file, anything)
  const expected = vocabSize === Infinity ? '(an integer >= 0)' : `in 0..${vocabSize - 1}${sink ? ` or SINK_TOKEN (${SINK_TOKEN})` : ''}`;
  return `is ${shown}, expected a token id ${expected}`;
}

/** One id, as a tokenizer's stream decoder takes them: an ArgumentError naming `argument` ("id: is 96, expected a token id in 0..95"). */
export function checkTokenId(argument: string, id: number, vocabSize: number): void {
  const bad = notTokenId(id, vocabSize, false);
  if (bad !== undefined) throw new ArgumentError(argument, bad);
}

/**
 * At least one id, where a forward pass or a prompt takes them: a block of
 * none has nothing to compute (tfjs ran the model's products on 0 rows, and
 * the wasm backend printed an XNNPACK status line for each), an ArgumentError
 * naming `argument`.
 */
export function checkSomeTokenIds(argument: string, ids: ArrayLike<unknown>): void {
  if (ids.length === 0) throw new ArgumentError(argument, 'expected at least one token id, got none');
}

/**
 * An ArgumentError naming `argument` and the first element of `ids` that is
 * not a token id of a vocabulary of `vocabSize` ("prompt: element 1 is 96,
 * expected a token id in 0..95"); `sink`: SINK_TOKEN is one too.
 */
export function checkTokenIds(argument: string, ids: ArrayLike<number>, vocabSize: number, sink = false): void {
  const bad = badTokenId(ids, vocabSize, sink);
  if (bad !== undefined) throw new ArgumentError(argument, bad);
}
