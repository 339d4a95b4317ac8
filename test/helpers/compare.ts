/** Comparisons against the reference tensors, browser-safe (the bundled page uses them too). */

/** max |got - want| / max |want| over arrays of equal length; NaN anywhere gives NaN (never a pass). */
export function maxRelativeDiff(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != expected ${want.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    const diff = Math.abs(got[i] - want[i]);
    if (Number.isNaN(diff)) return Number.NaN;
    maxDiff = Math.max(maxDiff, diff);
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

/** Smallest cosine similarity between matching rows of [rows, dim] matrices. */
export function minRowCosine(got: Float32Array, want: Float32Array, dim: number): number {
  let min = Infinity;
  for (let r = 0; r < want.length / dim; r++) {
    let dot = 0;
    let a = 0;
    let b = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) {
      dot += got[i] * want[i];
      a += got[i] * got[i];
      b += want[i] * want[i];
    }
    min = Math.min(min, dot / Math.sqrt(a * b));
  }
  return min;
}
