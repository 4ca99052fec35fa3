// Training batches: windows of the concatenated training tokens, each
// starting at a uniformly random offset (not aligned to text starts, so the
// model sees every position of a text at every position of its context).
// The order is seeded and its generator state is saved with a checkpoint,
// so a resumed run draws exactly the batches the uninterrupted one would.
import seedrandom from 'seedrandom';
import { SINK_TOKEN } from '../model/transformer.js';
import { IGNORE_TARGET } from '../../kernels/cross_entropy.js';

export interface Batch {
  /** B sequences of T input ids (SINK_TOKEN first for sink-token models). */
  inputs: number[][];
  /** [B * T]: the id each input position should predict (IGNORE_TARGET: not scored). */
  targets: Int32Array;
  /** Text tokens scored. */
  scored: number;
}

/**
 * One sample from `tokens` at `offset`: T inputs and the T next tokens. With
 * a sink token, the sink takes position 0, the text positions 1..T-1, and the
 * sink's own prediction (of the first text token, from nothing) is not scored.
 */
export function sampleAt(tokens: ArrayLike<number>, offset: number, T: number, sinkToken: boolean): { inputs: number[]; targets: number[] } {
  const text = sinkToken ? T - 1 : T;
  const inputs: number[] = sinkToken ? [SINK_TOKEN] : [];
  const targets: number[] = sinkToken ? [IGNORE_TARGET] : [];
  for (let i = 0; i < text; i++) {
    inputs.push(tokens[offset + i]!);
    targets.push(tokens[offset + i + 1]!);
  }
  return { inputs, targets };
}

export class BatchSampler {
  private readonly rng: seedrandom.StatefulPRNG<seedrandom.State.Arc4>;

  constructor(
    private readonly tokens: ArrayLike<number>,
    readonly seqLen: number,
    readonly batchSize: number,
    readonly sinkToken: boolean,
    seed: number,
    /** A saved generator state (from `state()`), to resume. */
    state?: seedrandom.State.Arc4,
  ) {
    if (tokens.length < seqLen + 1) throw new Error(`BatchSampler: ${tokens.length} tokens, need at least ${seqLen + 1}`);
    this.rng = seedrandom(`batches:${seed}`, { state: state ?? true });
  }

  next(): Batch {
    const inputs: number[][] = [];
    const targets = new Int32Array(this.batchSize * this.seqLen);
    // every window of seqLen + 1 tokens fits; offsets 0..length - seqLen - 1
    const offsets = this.tokens.length - this.seqLen;
    let scored = 0;
    for (let b = 0; b < this.batchSize; b++) {
      const offset = Math.floor(this.rng() * offsets);
      const s = sampleAt(this.tokens, offset, this.seqLen, this.sinkToken);
      inputs.push(s.inputs);
      targets.set(s.targets, b * this.seqLen);
      scored += s.targets.filter((t) => t !== IGNORE_TARGET).length;
    }
    return { inputs, targets, scored };
  }

  /** The generator state, to resume from. */
  state(): seedrandom.State.Arc4 {
    return this.rng.state();
  }
}
