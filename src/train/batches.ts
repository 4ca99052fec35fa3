// Training batches, drawn from one or more sample sources:
//
//   WindowSource    windows of a token stream (the Brown training text) at
//                   uniformly random offsets, not aligned to text starts, so
//                   the model sees every position of a text at every position
//                   of its context; optionally with BOS put first
//   BackcopySource  fresh Bigram-Backcopy samples (src/data/backcopy.ts), BOS first
//
// A sink-token model gets its learned sink at position 0 of every sample.
// The draws are seeded and the generator state is saved with a checkpoint, so
// a resumed run draws exactly the batches the uninterrupted one would.
import seedrandom from 'seedrandom';
import { SINK_TOKEN } from '../model/transformer.js';
import { IGNORE_TARGET } from '../../kernels/cross_entropy.js';
import type { Backcopy } from '../data/backcopy.js';

/** One training sample: T input ids and the T ids they should predict. */
export interface Sample {
  inputs: number[];
  /** IGNORE_TARGET: not scored. */
  targets: number[];
}

export interface Batch {
  /** B sequences of T input ids (SINK_TOKEN first for sink-token models). */
  inputs: number[][];
  /** [B * T]: the id each input position should predict (IGNORE_TARGET: not scored). */
  targets: Int32Array;
  /** Text tokens scored. */
  scored: number;
}

/**
 * One sample of T positions: `prefix` (SINK_TOKEN and/or BOS), then tokens
 * from `offset` on. Each position predicts the token after it; the sink's own
 * prediction and any prediction of a prefix token are not scored (a model
 * cannot know the text's first token from the sink alone; BOS is given, not
 * predicted).
 */
export function sampleAt(tokens: ArrayLike<number>, offset: number, T: number, prefix: readonly number[] = []): Sample {
  const text = T - prefix.length;
  const inputs = [...prefix];
  for (let i = 0; i < text; i++) inputs.push(tokens[offset + i]!);
  const targets = inputs.map((id, i) => {
    if (id === SINK_TOKEN || i + 1 < prefix.length) return IGNORE_TARGET;
    return i + 1 < T ? inputs[i + 1]! : tokens[offset + text]!;
  });
  return { inputs, targets };
}

/** What a model puts before its text: its sink token, if it has one, then BOS where asked for. */
export function samplePrefix(sinkToken: boolean, bosId?: number): number[] {
  return [...(sinkToken ? [SINK_TOKEN] : []), ...(bosId !== undefined ? [bosId] : [])];
}

export interface SampleSource {
  /** A sample of T positions, drawn with `rng`. */
  draw(rng: () => number): Sample;
}

export class WindowSource implements SampleSource {
  constructor(
    private readonly tokens: ArrayLike<number>,
    readonly seqLen: number,
    readonly prefix: readonly number[] = [],
  ) {
    if (tokens.length < seqLen + 1) throw new Error(`WindowSource: ${tokens.length} tokens, need at least ${seqLen + 1}`);
  }

  draw(rng: () => number): Sample {
    // every window of seqLen + 1 tokens fits; offsets 0..length - seqLen - 1
    const offset = Math.floor(rng() * (this.tokens.length - this.seqLen));
    return sampleAt(this.tokens, offset, this.seqLen, this.prefix);
  }
}

export class BackcopySource implements SampleSource {
  constructor(
    private readonly backcopy: Backcopy,
    readonly seqLen: number,
    readonly sinkToken: boolean,
  ) {}

  draw(rng: () => number): Sample {
    // the generated sample carries its own BOS; T positions need T + 1 tokens (fewer after a sink)
    const prefix = samplePrefix(this.sinkToken);
    return sampleAt(this.backcopy.sample(this.seqLen + 1 - prefix.length, rng), 0, this.seqLen, prefix);
  }
}

export class BatchSampler {
  private readonly rng: seedrandom.StatefulPRNG<seedrandom.State.Arc4>;
  private readonly sources: readonly SampleSource[];

  constructor(
    /** One source, or several: each sample then comes from one of them, chosen uniformly at random. */
    sources: SampleSource | readonly SampleSource[],
    readonly batchSize: number,
    seed: number,
    /** A saved generator state (from `state()`), to resume. */
    state?: seedrandom.State.Arc4,
  ) {
    this.sources = Array.isArray(sources) ? sources : [sources as SampleSource];
    if (this.sources.length === 0) throw new Error('BatchSampler: no sample source');
    this.rng = seedrandom(`batches:${seed}`, { state: state ?? true });
  }

  next(): Batch {
    const inputs: number[][] = [];
    const targets: number[] = [];
    for (let b = 0; b < this.batchSize; b++) {
      // one source draws nothing to choose, so single-source runs keep the batches they always had
      const source = this.sources.length === 1 ? this.sources[0]! : this.sources[Math.floor(this.rng() * this.sources.length)]!;
      const s = source.draw(this.rng);
      inputs.push(s.inputs);
      targets.push(...s.targets);
    }
    return { inputs, targets: Int32Array.from(targets), scored: targets.filter((t) => t !== IGNORE_TARGET).length };
  }

  /** The generator state, to resume from. */
  state(): seedrandom.State.Arc4 {
    return this.rng.state();
  }
}
