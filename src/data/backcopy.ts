// Bigram-Backcopy (Guo et al., "Active-Dormant Attention Heads", arXiv
// 2410.13835): a token stream with a reason to form an attention sink.
//
//   ordinary tokens  drawn from a bigram Markov chain (here: estimated on the
//                    Brown training split over the project's BPE ids)
//   trigger tokens   a few fixed ids (here: the most frequent ones); the token
//                    right after a trigger is not drawn but *copies the token
//                    before the trigger*:   ... a  T  a ...
//
// A copy head must look one token back after a trigger and do nothing
// everywhere else; softmax forces it to attend *somewhere*, so it learns to
// park on the one key every sample shares, the BOS at position 0: a sink.
// Every training sample starts with BOS; held-out streams start with one BOS
// and never repeat it, which is what a streaming cache evicts.
/** A bigram chain over ids 0..vocab-1, stored row by row (CSR) with cumulative counts. */
export class BigramChain {
  private constructor(
    readonly vocabSize: number,
    /** [vocab + 1]: row a's successors are next[rowStart[a] .. rowStart[a+1]). */
    private readonly rowStart: Int32Array,
    /** Successor ids, each row sorted by id. */
    private readonly nextId: Int32Array,
    /** Running count within the row, for sampling by bisection. */
    private readonly cumulative: Float64Array,
    /** Unigram running counts: the fallback for a token never seen followed. */
    private readonly unigram: Float64Array,
  ) {}

  /**
   * Counts every adjacent pair (a, b) of `tokens`. Its RangeErrors are
   * assertions, not a user's error: the tokens come from a tokenizer's own
   * encoding of the corpus (train/data.ts, experiments/text_source.ts), every
   * id below its vocabSize, and no file or flag reaches them.
   */
  static fromTokens(tokens: ArrayLike<number>, vocabSize: number): BigramChain {
    if (tokens.length < 2) throw new RangeError(`BigramChain: need at least 2 tokens, got ${tokens.length}`);
    // pair codes a * vocab + b, sorted: equal pairs are adjacent, rows in order
    const codes = new Float64Array(tokens.length - 1);
    for (let i = 0; i + 1 < tokens.length; i++) {
      const a = tokens[i]!;
      const b = tokens[i + 1]!;
      if (!(a >= 0 && a < vocabSize && b >= 0 && b < vocabSize))
        throw new RangeError(`BigramChain: token at ${a >= 0 && a < vocabSize ? i + 1 : i} is outside 0..${vocabSize - 1}`);
      codes[i] = a * vocabSize + b;
    }
    codes.sort();
    const rowStart = new Int32Array(vocabSize + 1);
    const nextId: number[] = [];
    const cumulative: number[] = [];
    let row = 0;
    for (let i = 0; i < codes.length;) {
      const code = codes[i]!;
      let j = i;
      while (j < codes.length && codes[j] === code) j++;
      const a = Math.floor(code / vocabSize);
      while (row <= a) rowStart[row++] = nextId.length;
      const before = rowStart[a] === nextId.length ? 0 : cumulative[cumulative.length - 1]!;
      nextId.push(code - a * vocabSize);
      cumulative.push(before + (j - i));
      i = j;
    }
    while (row <= vocabSize) rowStart[row++] = nextId.length;
    const unigram = new Float64Array(vocabSize);
    let total = 0;
    const counts = new Float64Array(vocabSize);
    for (let i = 0; i < tokens.length; i++) counts[tokens[i]!]!++;
    for (let id = 0; id < vocabSize; id++) unigram[id] = total += counts[id]!;
    return new BigramChain(vocabSize, rowStart, Int32Array.from(nextId), Float64Array.from(cumulative), unigram);
  }

  /** How often `id` occurs in the counted tokens (from the unigram running counts). */
  private count(id: number): number {
    return this.unigram[id]! - (id > 0 ? this.unigram[id - 1]! : 0);
  }

  /** P(b | a) as estimated (the unigram distribution for an unseen a). */
  probability(a: number, b: number): number {
    const lo = this.rowStart[a]!;
    const hi = this.rowStart[a + 1]!;
    if (lo === hi) return this.count(b) / this.unigram[this.vocabSize - 1]!;
    const total = this.cumulative[hi - 1]!;
    for (let i = lo; i < hi; i++) {
      if (this.nextId[i] === b) return (this.cumulative[i]! - (i > lo ? this.cumulative[i - 1]! : 0)) / total;
    }
    return 0;
  }

  /** A successor of `a`, drawn with `rng`. */
  next(a: number, rng: () => number): number {
    const lo = this.rowStart[a]!;
    const hi = this.rowStart[a + 1]!;
    if (lo === hi) return bisect(this.unigram, 0, this.vocabSize, rng() * this.unigram[this.vocabSize - 1]!);
    return this.nextId[bisect(this.cumulative, lo, hi, rng() * this.cumulative[hi - 1]!)]!;
  }

  /** A successor of `a` other than the `excluded` ids (P(b | a) renormalised; the unigram's when a leads only there). */
  nextExcept(a: number, excluded: Uint8Array, rng: () => number): number {
    const lo = this.rowStart[a]!;
    const hi = this.rowStart[a + 1]!;
    const rowCount = (i: number) => this.cumulative[i]! - (i > lo ? this.cumulative[i - 1]! : 0);
    let total = 0;
    for (let i = lo; i < hi; i++) if (excluded[this.nextId[i]!] !== 1) total += rowCount(i);
    if (total > 0) {
      let u = rng() * total;
      let last = lo;
      for (let i = lo; i < hi; i++) {
        if (excluded[this.nextId[i]!] === 1) continue;
        last = i;
        u -= rowCount(i);
        if (u < 0) return this.nextId[i]!;
      }
      return this.nextId[last]!; // rounding at the very end of the row
    }
    let rest = 0;
    for (let id = 0; id < this.vocabSize; id++) if (excluded[id] !== 1) rest += this.count(id);
    let u = rng() * rest;
    let last = 0;
    for (let id = 0; id < this.vocabSize; id++) {
      if (excluded[id] === 1 || this.count(id) === 0) continue;
      last = id;
      u -= this.count(id);
      if (u < 0) return id;
    }
    return last;
  }

  /** The `count` ids that occur most often (ties by id), leaving out `exclude`. */
  mostFrequent(count: number, exclude: readonly number[] = []): number[] {
    const ids = Array.from({ length: this.vocabSize }, (_, id) => id).filter((id) => !exclude.includes(id));
    return ids.sort((x, y) => this.count(y) - this.count(x) || x - y).slice(0, count);
  }
}

/** The first index in [lo, hi) whose running count exceeds `u`. */
function bisect(cumulative: Float64Array, lo: number, hi: number, u: number): number {
  while (lo < hi - 1) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid - 1]! > u) hi = mid;
    else lo = mid;
  }
  return lo;
}

export class Backcopy {
  private readonly isTrigger: Uint8Array;

  constructor(
    readonly chain: BigramChain,
    readonly triggers: readonly number[],
    readonly bosId: number,
  ) {
    if (triggers.includes(bosId)) throw new RangeError(`Backcopy: BOS (${bosId}) cannot be a trigger`);
    this.isTrigger = new Uint8Array(chain.vocabSize);
    for (const id of triggers) this.isTrigger[id] = 1;
  }

  /** The rule's triggers are the `triggerCount` most frequent tokens of the chain other than BOS. */
  static fromTokens(tokens: ArrayLike<number>, vocabSize: number, bosId: number, triggerCount: number): Backcopy {
    const chain = BigramChain.fromTokens(tokens, vocabSize);
    return new Backcopy(chain, chain.mostFrequent(triggerCount, [bosId]), bosId);
  }

  trigger(id: number): boolean {
    return this.isTrigger[id] === 1;
  }

  /**
   * `length` tokens: BOS, then the chain, with every token after a trigger a
   * copy of the token before it. Two chain draws leave the triggers out:
   * position 1 (there is no token before BOS to copy) and the draw right
   * after a copy (else a frequent trigger loops: a T a T a ...). So two
   * triggers are never adjacent, and a copy never copies a trigger.
   */
  sample(length: number, rng: () => number): Int32Array {
    const out = new Int32Array(length);
    if (length === 0) return out;
    out[0] = this.bosId;
    for (let t = 1; t < length; t++) {
      const prev = out[t - 1]!;
      if (t >= 2 && this.isTrigger[prev] === 1) {
        out[t] = out[t - 2]!;
        continue;
      }
      const afterCopy = t >= 3 && this.isTrigger[out[t - 2]!] === 1;
      out[t] = t === 1 || afterCopy ? this.chain.nextExcept(prev, this.isTrigger, rng) : this.chain.next(prev, rng);
    }
    return out;
  }
}

/** The seed of held-out streams and validation samples, apart from every training seed (training draws from `batches:<seed>`). */
export const HELDOUT_SEED = 'backcopy-heldout';
