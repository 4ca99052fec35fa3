// Training a byte-level BPE (GPT-2 style) from text.
//
// 1. Count words: pre-tokenize every text (byte_level.ts) and count each
//    distinct word; the literal "<|endoftext|>" is cut out first, as encode
//    does, so it never takes part in a merge.
// 2. Start from the 256 bytes (ids 0..255 = bytes 0..255) and repeatedly merge
//    the most frequent adjacent pair, counted over the distinct words weighted
//    by their counts, until the vocabulary is full or no pair is left.
// 3. "<|endoftext|>" takes the last id.
//
// Ties: among pairs with the same count, the one with the smallest (left id,
// right id) merges first, so the result depends only on the corpus and the
// vocabulary size, never on hash or iteration order.
//
// Speed: pair counts are kept up to date incrementally. Each pair knows the
// words it occurs in; a merge rewrites only those words and adjusts the
// counts of the pairs they lose and gain. A max-heap on (count, pair) gives
// the next merge; entries whose count has since changed are re-queued when
// they surface (lazy deletion), which is correct because a count only grows
// for the pairs that the new token forms, and those are pushed anew.
import { UsageError } from '../errors.js';
import { BYTE_TO_CHAR, pretokenize } from './byte_level.js';
import { BpeTokenizer, END_OF_TEXT } from './bpe.js';

export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + learned merges + "<|endoftext|>" (at least 257). */
  vocabSize: number;
}

const PAIR_SHIFT = 2 ** 21;
const MAX_VOCAB = PAIR_SHIFT;

export function trainBpe(texts: Iterable<string>, options: BpeTrainOptions): BpeTokenizer {
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > MAX_VOCAB) {
    throw new UsageError(`vocabSize: expected an integer in [257, ${MAX_VOCAB}] (256 bytes + merges + ${END_OF_TEXT}), got ${vocabSize}`);
  }

  // 1. Distinct words and their counts.
  const wordCounts = new Map<string, number>();
  let index = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new UsageError(`texts[${index}]: expected a string, got ${typeof text}`);
    for (const part of text.split(END_OF_TEXT)) {
      for (const word of pretokenize(part)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    }
    index++;
  }
  const symbols: Int32Array[] = [];
  const freq: number[] = [];
  for (const [word, count] of wordCounts) {
    symbols.push(Int32Array.from(Buffer.from(word, 'utf8')));
    freq.push(count);
  }
  wordCounts.clear();

  // 2. Pair counts, where each pair occurs, and the queue of candidates.
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  symbols.forEach((sym, w) => {
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i]! * PAIR_SHIFT + sym[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + freq[w]!);
      const where = pairWords.get(key);
      if (where === undefined) pairWords.set(key, [w]);
      else if (where[where.length - 1] !== w) where.push(w);
    }
  });
  const queue = new PairQueue();
  for (const [key, count] of pairCount) queue.push(count, key);

  const tokens: string[] = BYTE_TO_CHAR.slice();
  const idOf = new Map<string, number>(tokens.map((t, id) => [t, id]));
  const merges: [string, string][] = [];
  const seenAt = new Int32Array(symbols.length).fill(-1);

  while (tokens.length < vocabSize - 1) {
    const best = popCurrent(queue, pairCount);
    if (best === undefined) break; // every word is a single token
    const left = Math.floor(best / PAIR_SHIFT);
    const right = best % PAIR_SHIFT;
    const text = tokens[left]! + tokens[right]!;
    // Two different splits can spell the same token ("ab"+"c", "a"+"bc"): one id.
    let merged = idOf.get(text);
    if (merged === undefined) {
      merged = tokens.length;
      tokens.push(text);
      idOf.set(text, merged);
    }
    merges.push([tokens[left]!, tokens[right]!]);

    const delta = new Map<number, number>();
    const step = merges.length;
    for (const w of pairWords.get(best)!) {
      if (seenAt[w] === step) continue;
      seenAt[w] = step;
      const sym = symbols[w]!;
      const out = new Int32Array(sym.length);
      let n = 0;
      for (let i = 0; i < sym.length;) {
        if (i + 1 < sym.length && sym[i] === left && sym[i + 1] === right) {
          out[n++] = merged;
          i += 2;
        } else out[n++] = sym[i++]!;
      }
      if (n === sym.length) continue; // the pair has left this word since it was indexed
      const f = freq[w]!;
      for (let i = 0; i + 1 < sym.length; i++) bump(delta, sym[i]! * PAIR_SHIFT + sym[i + 1]!, -f);
      for (let i = 0; i + 1 < n; i++) {
        const key = out[i]! * PAIR_SHIFT + out[i + 1]!;
        bump(delta, key, f);
        // Pairs without the new token were in the word before and are indexed.
        if (out[i] === merged || out[i + 1] === merged) {
          const where = pairWords.get(key);
          if (where === undefined) pairWords.set(key, [w]);
          else if (where[where.length - 1] !== w) where.push(w);
        }
      }
      symbols[w] = out.slice(0, n);
    }
    pairWords.delete(best);
    for (const [key, d] of delta) {
      if (d === 0) continue;
      const count = (pairCount.get(key) ?? 0) + d;
      if (count <= 0) {
        pairCount.delete(key);
        pairWords.delete(key);
      } else {
        pairCount.set(key, count);
        if (d > 0) queue.push(count, key);
      }
    }
  }

  // 3. The document separator, last.
  const vocab = new Map<string, number>(tokens.map((t, id) => [t, id]));
  const endId = tokens.length;
  vocab.set(END_OF_TEXT, endId);
  return new BpeTokenizer(vocab, merges, [{ id: endId, content: END_OF_TEXT, special: true }]);
}

function bump(delta: Map<number, number>, key: number, by: number): void {
  delta.set(key, (delta.get(key) ?? 0) + by);
}

/** The best pair whose queued count is still its count; stale entries are re-queued or dropped. */
function popCurrent(queue: PairQueue, pairCount: Map<number, number>): number | undefined {
  while (queue.size > 0) {
    const [count, key] = queue.pop();
    const actual = pairCount.get(key) ?? 0;
    if (actual === count) return key;
    if (actual > 0) queue.push(actual, key);
  }
  return undefined;
}

/** Max-heap on count; on equal counts the smaller pair key (left id, then right id) first. */
class PairQueue {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.before(l, best)) best = l;
        if (r < n && this.before(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }
}
