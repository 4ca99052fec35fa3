// What a run trains and validates on. The data kinds:
//
//   brown     windows of the Brown training text at random offsets (the zoo's
//             first recipe); optionally with BOS put first in every sample
//   backcopy  Bigram-Backcopy samples (src/data/backcopy.ts): a bigram chain
//             estimated on the Brown training text, a few trigger tokens
//             whose successor copies the token before them, BOS first
//   mix       each sample one of the two, chosen at random (BOS first in
//             both), to carry a sink learned on Backcopy over to text
//
// Validation: brown and mix score held-out Brown windows (with BOS first
// where training had it); backcopy scores fixed held-out Backcopy samples
// drawn from their own seed.
import seedrandom from 'seedrandom';
import { Backcopy, HELDOUT_SEED } from '../data/backcopy.js';
import { brownTokens } from '../data/corpus.js';
import { UsageError } from '../errors.js';
import { loadTokenizer } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { BackcopySource, type Sample, type SampleSource, sampleAt, samplePrefix, WindowSource } from './batches.js';
import { dataKind, DEFAULT_TRIGGERS, samplesStartWithBos, type TrainOptions } from './options.js';
import { validationOffsets } from './validate.js';

export { DATA_KINDS, type DataKind, dataKind, DEFAULT_TRIGGERS } from './options.js';
/** Held-out Backcopy samples in the final validation. */
export const FINAL_BACKCOPY_SAMPLES = 256;

export interface TrainData {
  tokenizer: Tokenizer;
  /** The Brown training text as one stream (also the bigram chain's source for Backcopy). */
  train: Int32Array;
  heldout: Int32Array;
}

/**
 * The tokenizer and both corpus parts as token streams. The training part
 * (nine tenths of the corpus) is encoded when first read: validating a
 * Brown-trained model, as `publish` does, reads the held-out part alone.
 */
export function loadTrainData(tokenizerPath: string, tokenizer = loadTokenizer(tokenizerPath)): TrainData {
  let train: Int32Array | undefined;
  return {
    tokenizer,
    get train() {
      return (train ??= brownTokens(tokenizer, 'train'));
    },
    heldout: brownTokens(tokenizer, 'heldout'),
  };
}

/** The token every sample starts with: the tokenizer's BOS, else its end-of-text token (GPT-2 style). */
export function bosOf(tokenizer: Tokenizer): number {
  const id = tokenizer.bosId ?? tokenizer.eosId;
  if (id === undefined) throw new UsageError('this tokenizer has neither a BOS nor an end-of-text token to start every sample with');
  return id;
}

/** The Backcopy generator of a run: the bigram chain of the training text, its most frequent tokens as triggers. */
export function backcopyOf(data: TrainData, options: TrainOptions): Backcopy {
  return Backcopy.fromTokens(data.train, data.tokenizer.vocabSize, bosOf(data.tokenizer), options.triggers ?? DEFAULT_TRIGGERS);
}

function windowPrefix(data: TrainData, options: TrainOptions, sinkToken: boolean): number[] {
  // (only Brown windows take this prefix; Backcopy samples put BOS first themselves)
  return samplePrefix(sinkToken, samplesStartWithBos(options.data, options.bosFirst) ? bosOf(data.tokenizer) : undefined);
}

/** The sources training samples are drawn from. */
export function trainSources(data: TrainData, options: TrainOptions, sinkToken: boolean, backcopy?: Backcopy): SampleSource[] {
  const windows = () => new WindowSource(data.train, options.seqLen, windowPrefix(data, options, sinkToken));
  const copies = () => new BackcopySource(backcopy ?? backcopyOf(data, options), options.seqLen, sinkToken);
  switch (dataKind(options)) {
    case 'brown':
      return [windows()];
    case 'backcopy':
      return [copies()];
    case 'mix':
      return [copies(), windows()];
  }
}

/** Held-out samples: `count` of them, or the final set when undefined (every Brown window; FINAL_BACKCOPY_SAMPLES Backcopy samples). */
export function validationSamples(data: TrainData, options: TrainOptions, sinkToken: boolean, count?: number, backcopy?: Backcopy): Sample[] {
  const T = options.seqLen;
  if (dataKind(options) === 'backcopy') {
    const source = new BackcopySource(backcopy ?? backcopyOf(data, options), T, sinkToken);
    const rng = seedrandom(HELDOUT_SEED);
    return Array.from({ length: count ?? FINAL_BACKCOPY_SAMPLES }, () => source.draw(rng));
  }
  const prefix = windowPrefix(data, options, sinkToken);
  return validationOffsets(data.heldout.length, T, count).map((o) => sampleAt(data.heldout, o, T, prefix));
}
