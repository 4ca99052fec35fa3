// Where an experiment's text comes from, kept apart from its tokens: the
// pre-training ablation encodes the same text with each zoo model's own
// tokenizer.
//
//   heldout  the held-out Brown corpus texts (src/data/brown.ts), each followed
//            by the end-of-text token, as the zoo's validation stream: the default
//   file     a text file, encoded with BOS when the tokenizer adds one (as `eval --text`)
//   ids      a JSON array of token ids, used as they are
//   backcopy a held-out Bigram-Backcopy stream (src/data/backcopy.ts): BOS
//            once at the very start, then BACKCOPY_STREAM_TOKENS tokens of the
//            chain the Backcopy models were trained on, from its own seed
//
// A file is read when its tokens are asked for, and only as far as `limit`
// needs (src/text_file.ts). For a model trained with BOS first in every
// sample, the held-out texts and a text file start with BOS, as its
// training samples did (a file usually does already: the project's
// tokenizers add BOS); token ids are used as given.
import seedrandom from 'seedrandom';
import { Backcopy, HELDOUT_SEED } from '../data/backcopy.js';
import { brownTokens } from '../data/corpus.js';
import { bosOf, DEFAULT_TRIGGERS } from '../train/data.js';
import { FileFormatError, UsageError } from '../errors.js';
import { badTokenId } from '../model/token_ids.js';
import { encodeTextFile } from '../text_file.js';
import type { Tokenizer } from '../tokenizer/types.js';

export type TextSource = { kind: 'heldout' } | { kind: 'backcopy' } | { kind: 'file'; file: string } | { kind: 'ids'; file: string; ids: number[] };

/** With no text given (`heldout`), a model trained on Backcopy reads the held-out Backcopy stream: the data it knows. */
export function sourceForTrainedData(given: TextSource, trainedData: string | undefined): TextSource {
  return given.kind === 'heldout' && trainedData === 'backcopy' ? { kind: 'backcopy' } : given;
}

/** Length of the held-out Backcopy stream (the bar: at least 20K tokens). */
export const BACKCOPY_STREAM_TOKENS = 32768;

/** A short name for reports. */
export function sourceLabel(source: TextSource): string {
  switch (source.kind) {
    case 'heldout':
      return 'the held-out Brown corpus texts';
    case 'backcopy':
      return 'a held-out Bigram-Backcopy stream (BOS only at the start)';
    case 'file':
      return source.file;
    case 'ids':
      return `${source.file} (token ids)`;
  }
}

/** The source's tokens for a model; `limit` keeps the first tokens only; `bosFirst` puts that BOS first in a text that does not start with it. */
export function sourceTokens(
  source: TextSource,
  tokenizer: Tokenizer | undefined,
  vocabSize: number,
  limit = Infinity,
  options: { bosFirst?: number } = {},
): number[] {
  let ids: number[];
  if (source.kind === 'heldout') {
    if (tokenizer === undefined) throw new UsageError("the held-out Brown text needs the model's tokenizer; give --tokenizer FILE");
    // only as many texts as needed would be cheaper, but encoding all 50 takes about a second
    ids = Array.from(brownTokens(tokenizer, 'heldout'));
  } else if (source.kind === 'backcopy') {
    if (tokenizer === undefined) throw new UsageError("the Backcopy stream is built from the model's tokenizer; give --tokenizer FILE");
    const backcopy = Backcopy.fromTokens(brownTokens(tokenizer, 'train'), tokenizer.vocabSize, bosOf(tokenizer), DEFAULT_TRIGGERS);
    // its own seed, apart from the validation samples' (HELDOUT_SEED) and every training seed
    ids = Array.from(backcopy.sample(Math.min(limit, BACKCOPY_STREAM_TOKENS), seedrandom(`${HELDOUT_SEED}:stream`)));
  } else if (source.kind === 'ids') {
    const bad = badTokenId(source.ids, vocabSize);
    if (bad !== undefined) throw new FileFormatError(source.file, bad);
    ids = source.ids;
  } else {
    if (tokenizer === undefined) throw new UsageError(`${source.file}: this model has no tokenizer to encode the text with; give --tokenizer FILE`);
    ids = encodeTextFile(source.file, tokenizer, { bos: tokenizer.addsBosByDefault, limit: Number.isFinite(limit) ? limit : undefined });
  }
  const bos = options.bosFirst;
  if (bos !== undefined && (source.kind === 'heldout' || source.kind === 'file') && ids[0] !== bos) ids = [bos, ...ids];
  return ids.length > limit ? ids.slice(0, limit) : ids;
}
