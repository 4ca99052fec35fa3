// Thinning a long curve before it is drawn, without changing what it looks
// like. A 20K-token curve on a 640-unit-wide plot puts 30 points in each unit
// of width: the SVG grows to megabytes and Vega slows to seconds, for no
// visible detail. So the x range is cut into one bucket per unit of width and
// each bucket keeps at most four points, in their original order: its first,
// its lowest, its highest and its last. Every spike and dip survives at the
// resolution of the figure (this is M4 aggregation, Jugel et al., VLDB 2014);
// what is dropped is the in-between points no eye can separate. Exact values
// belong in the data file the figure was made from, not in the figure.

/** Indices of the points to keep, ascending, given points sorted by x. */
export function downsampleMinMax(x: ArrayLike<number>, y: ArrayLike<number>, buckets: number, transform: (v: number) => number = (v) => v): number[] {
  const n = x.length;
  if (n <= 4 * buckets) return Array.from({ length: n }, (_, i) => i);
  const lo = transform(x[0]!);
  const span = transform(x[n - 1]!) - lo || 1;
  const keep: number[] = [];
  let start = 0;
  while (start < n) {
    const bucket = Math.min(buckets - 1, Math.floor(((transform(x[start]!) - lo) / span) * buckets));
    let end = start + 1;
    let min = start;
    let max = start;
    while (end < n && Math.min(buckets - 1, Math.floor(((transform(x[end]!) - lo) / span) * buckets)) === bucket) {
      if (y[end]! < y[min]!) min = end;
      if (y[end]! > y[max]!) max = end;
      end++;
    }
    // first, min, max, last: sorted and without repeats
    for (const i of [start, min, max, end - 1].sort((a, b) => a - b)) {
      if (keep[keep.length - 1] !== i) keep.push(i);
    }
    start = end;
  }
  return keep;
}
