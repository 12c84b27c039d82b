// The system calls of two sessions, aligned: a weighted longest common subsequence — two calls may
// pair only when they are the same service (or the same rejected number); a pair scores more when
// they also come from the same caller function and enter the same way, so among equally long
// alignments the one that pairs like with like wins. Order is kept (it is a subsequence). Past
// MAX_CELLS cells the table would be too big: the calls are then paired greedily in order, each
// with the next call of the same service on the other side (said so in the result).

export interface AlignCall {
  id: number;
  /** The service (Nt name, or 'service 0x11C' for a rejected number). */
  service: string;
  /** The calling function, module!Name (no offset), when known. */
  caller: string | null;
  entry: string | null;
  /** The enclosing call's service, for a nested call. */
  parent: string | null;
}

export type Aligned = [number | null, number | null][];

const MAX_CELLS = 25_000_000;

function score(a: AlignCall, b: AlignCall): number {
  if (a.service !== b.service) return 0;
  return 8 + (a.caller !== null && a.caller === b.caller ? 4 : 0) + (a.entry === b.entry ? 2 : 0) + (a.parent === b.parent ? 1 : 0);
}

/** Index pairs [i in A | null, j in B | null] in order: pairs, and calls only on one side. */
export function alignCalls(A: AlignCall[], B: AlignCall[]): { pairs: Aligned; method: string } {
  const n = A.length;
  const m = B.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return { pairs: greedy(A, B), method: 'greedy in order by service (too many calls for the weighted LCS)' };
  const w = m + 1;
  const best = new Float64Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const s = score(A[i], B[j]);
      const take = s > 0 ? s + best[(i + 1) * w + j + 1] : 0;
      best[i * w + j] = Math.max(take, best[(i + 1) * w + j], best[i * w + j + 1]);
    }
  }
  const pairs: Aligned = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    const s = score(A[i], B[j]);
    if (s > 0 && best[i * w + j] === s + best[(i + 1) * w + j + 1]) {
      pairs.push([i++, j++]);
    } else if (best[(i + 1) * w + j] >= best[i * w + j + 1]) pairs.push([i++, null]);
    else pairs.push([null, j++]);
  }
  while (i < n) pairs.push([i++, null]);
  while (j < m) pairs.push([null, j++]);
  return { pairs, method: 'weighted longest common subsequence of (service, caller, entry, enclosing service)' };
}

function greedy(A: AlignCall[], B: AlignCall[]): Aligned {
  const pairs: Aligned = [];
  let j = 0;
  for (let i = 0; i < A.length; i++) {
    let k = j;
    while (k < B.length && B[k].service !== A[i].service) k++;
    if (k === B.length) {
      pairs.push([i, null]);
      continue;
    }
    while (j < k) pairs.push([null, j++]);
    pairs.push([i, j++]);
  }
  while (j < B.length) pairs.push([null, j++]);
  return pairs;
}
