// Sliding window with re-computation: the paper's stable but slow baseline.
// It keeps no keys or values at all, only the last W token ids; for every
// new token the whole window is run through the model from scratch, at
// positions 0..n-1. Quadratic work per token, which is what StreamingLLM's
// up-to-22x speed-up is measured against.
//
// With `keepFirst` the stream's first id stays at the front of every window:
// a sink-token model's learned sink, which it saw at position 0 of every
// training sample, so the window is the sink plus the last W - 1 tokens.
//
// It is a policy (RecomputePolicy in types.ts) but not a KVCache: what it
// keeps is ids. TokenStream realises it, running each window through a
// scratch DenseCache.
import { ArgumentError } from '../errors.js';
export class RecomputeWindow {
  private readonly ids: number[] = [];
  private streamLength = 0;

  constructor(
    readonly windowSize: number,
    readonly keepFirst = false,
  ) {
    if (!Number.isInteger(windowSize) || windowSize < 1) throw new ArgumentError('windowSize', `expected an integer >= 1, got ${windowSize}`);
  }

  /** Tokens the stream has seen. */
  get length(): number {
    return this.streamLength;
  }

  /** Append a token; returns the window to re-run, ending with it. */
  push(id: number): readonly number[] {
    this.ids.push(id);
    if (this.ids.length > this.windowSize) this.ids.splice(this.keepFirst ? 1 : 0, 1);
    this.streamLength++;
    return this.ids;
  }

  /** The window now (the ids push returned last). */
  get window(): readonly number[] {
    return this.ids;
  }

  /** The window and length now, to go back to with restore (a feed that failed). */
  save(): { ids: number[]; length: number } {
    return { ids: [...this.ids], length: this.streamLength };
  }

  restore(saved: { ids: readonly number[]; length: number }): void {
    this.ids.length = 0;
    for (const id of saved.ids) this.ids.push(id); // (not push(...ids): a window of 200,000 ids is more arguments than a call takes)
    this.streamLength = saved.length;
  }

  reset(): void {
    this.ids.length = 0;
    this.streamLength = 0;
  }
}
