// The merge loop that BPE-style tokenizers share: given a sequence of symbol
// ids, repeatedly merge the adjacent pair with the best (lowest) rank, the
// leftmost one on ties, until no adjacent pair can merge.
//
//   symbols  [a, b, c, b, c]      ranks: (b,c) -> 0 makes X, (a,X) -> 1 makes Y
//   step 1   [a, X, b, c]         (b,c) at 1 and at 3 both rank 0: leftmost first
//   step 2   [a, X, X]
//   step 3   [Y, X]
//
// llama2.c's run.c rescans the whole sequence for every merge (quadratic in
// the text length); Hugging Face's BPE keeps a priority queue. Both choose
// the same pair at every step, so both give the same result; the queue is
// what makes long texts (a book for a perplexity run) tokenize in linear-ish
// time. Here: a doubly linked list of symbols and a binary min-heap of
// candidate merges keyed by (rank, position), checked for staleness on pop.

/** What merging the pair (left, right) gives: its rank (lower merges first) and the new id. */
export interface PairMerge {
  rank: number;
  id: number;
}

export type PairLookup = (left: number, right: number) => PairMerge | undefined;

/** Apply merges to `symbols` (not modified); returns the merged ids. */
export function mergePairs(symbols: readonly number[], lookup: PairLookup): number[] {
  const n = symbols.length;
  if (n < 2) return symbols.slice();
  const id = Int32Array.from(symbols);
  // Linked list over positions; a merged pair lives on at its left position.
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const heap = new CandidateHeap();
  const offer = (left: number): void => {
    const right = next[left]!;
    if (right < 0) return;
    const m = lookup(id[left]!, id[right]!);
    if (m !== undefined) heap.push(m.rank, left, id[left]!, id[right]!, m.id);
  };
  for (let i = 0; i + 1 < n; i++) offer(i);

  while (heap.size > 0) {
    const c = heap.pop();
    const right = next[c.left]!;
    // Stale when either side has been merged into something else since.
    if (!alive[c.left] || right < 0 || id[c.left] !== c.leftId || id[right] !== c.rightId) continue;
    id[c.left] = c.merged;
    alive[right] = 0;
    next[c.left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = c.left;
    if (prev[c.left]! >= 0) offer(prev[c.left]!);
    offer(c.left);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
  return out;
}

interface Candidate {
  rank: number;
  left: number;
  leftId: number;
  rightId: number;
  merged: number;
}

/** Min-heap on (rank, left position): the best merge, leftmost on ties. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  get size(): number {
    return this.items.length;
  }

  push(rank: number, left: number, leftId: number, rightId: number, merged: number): void {
    const items = this.items;
    items.push({ rank, left, leftId, rightId, merged });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Candidate {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && before(items[l]!, items[best]!)) best = l;
        if (r < items.length && before(items[r]!, items[best]!)) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best]!, items[i]!];
        i = best;
      }
    }
    return top;
  }
}

function before(a: Candidate, b: Candidate): boolean {
  return a.rank < b.rank || (a.rank === b.rank && a.left < b.left);
}
