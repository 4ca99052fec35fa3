// Where an experiment's text comes from, kept apart from its tokens: the
// pre-training ablation encodes the same text with each zoo model's own
// tokenizer.
//
//   file   a text file, encoded with BOS when the tokenizer adds one (as `eval --text`)
//   ids    a JSON array of token ids, used as they are
import { UsageError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/types.js';

export type TextSource = { kind: 'file'; file: string; text: string } | { kind: 'ids'; file: string; ids: number[] };

/** A short name for reports: the file. */
export function sourceLabel(source: TextSource): string {
  return source.kind === 'file' ? source.file : `${source.file} (token ids)`;
}

/** The source's tokens for a model; `limit` keeps the first tokens only. */
export function sourceTokens(source: TextSource, tokenizer: Tokenizer | undefined, vocabSize: number, limit = Infinity): number[] {
  let ids: number[];
  if (source.kind === 'ids') {
    const bad = source.ids.findIndex((id) => id >= vocabSize);
    if (bad >= 0) throw new UsageError(`${source.file}: token ${bad} is ${source.ids[bad]}, outside this model's vocabulary of ${vocabSize}`);
    ids = source.ids;
  } else {
    if (tokenizer === undefined) throw new UsageError(`${source.file}: this model has no tokenizer to encode the text with; give --tokenizer FILE`);
    ids = tokenizer.encode(source.text, { bos: tokenizer.addsBosByDefault });
  }
  return ids.length > limit ? ids.slice(0, limit) : ids;
}
