// A corpus part as one token stream: every text encoded on its own and
// followed by the end-of-text token, in corpus order. Training samples are
// windows of this stream (src/train/batches.ts), so a window may span the
// end of one text and the start of the next, as in GPT-2's training.
import type { Tokenizer } from '../tokenizer/types.js';
import { type BrownPart, loadBrown } from './brown.js';

export function brownTokens(tokenizer: Tokenizer, part: BrownPart): Int32Array {
  const ids: number[] = [];
  for (const text of loadBrown(part)) {
    for (const id of tokenizer.encode(text.text)) ids.push(id);
    if (tokenizer.eosId !== undefined) ids.push(tokenizer.eosId);
  }
  return Int32Array.from(ids);
}
