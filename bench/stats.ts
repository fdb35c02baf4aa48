// Summaries of repeated measurements: medians, because one disturbed repetition
// on a shared 2-core VM must not move the reported figure; spread, so the reader
// sees how far apart the repetitions were.

export function median(values: number[]): number {
  if (values.length === 0) throw new Error("median of no values");
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** (max - min) / median: 0.1 means the repetitions lay within 10% of each other. */
export function relativeSpread(values: number[]): number {
  const m = median(values);
  return m === 0 ? 0 : (Math.max(...values) - Math.min(...values)) / m;
}

/** a / b, or null when b is zero (a ratio to nothing is no figure). */
export function ratio(a: number, b: number): number | null {
  return b === 0 ? null : a / b;
}
