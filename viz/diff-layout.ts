// Two sequence layouts of a comparison (`ntflow diff … -o diff.html`) with their rows aligned: each
// pair of aligned calls starts on the same row on both sides, the places where their paths part and
// join again (the comparison's notes, FlowStep.diff) sit on the same rows, and a call only on one
// side leaves a gap of its height on the other. Pure: two layouts and the pairs in, two layouts with
// shifted rows and their gaps out — no DOM, no clock — and tested with exact numbers.
//
// How: an anchor is a pair of row boundaries (one y on each side) that must end up at the same y —
// the top of a pair's band, the top of a divergence or join note present on both sides, the bottom
// of a pair's bands, and for a call only on one side its band's top and bottom against one point of
// the other side. The anchors kept form a chain, increasing on both sides (one that would cross
// the chain is left out, the most important kinds taken first). Walking the chain, whichever side
// is higher gets space inserted at its anchor; everything from there down moves by that much.
import type { LaidBand, LaidGap, LaidStep, SequenceLayout } from './types.js';

/** The calls of one pair of a comparison, by syscalls.id on each side (null: the call is only on the other side). */
export interface PairIds {
  a: number | null;
  b: number | null;
}

type Side = 'a' | 'b';

interface Anchor {
  a: number;
  b: number;
  /**
   * Per side: the position is a band's bottom, not a row's top. Space inserted there later leaves
   * the band's bottom where it is (see shifter), so an anchor that follows may share it.
   */
  bottom: Record<Side, boolean>;
  /** Anchors of one group (calls only on one side, against one point of the other) may share a position. */
  group: number | string;
}

/** Space inserted on one side: at boundary `p` (pre-alignment y), `d` pixels; `at` is where it starts once aligned. */
interface Insertion {
  p: number;
  d: number;
  at: number;
}

/**
 * The anchors kept: ordered by a, then b, neither decreasing. Two anchors at one position of a
 * side are kept only when the first is a band's bottom there (or both are of one group): space
 * inserted for the second would otherwise move the row the first aligned.
 */
class Chain {
  readonly list: Anchor[] = [];

  private fits(x: Anchor, at: number): boolean {
    const prev = this.list[at - 1];
    const next = this.list[at];
    if ((prev && (prev.a > x.a || prev.b > x.b)) || (next && (next.a < x.a || next.b < x.b))) return false;
    for (const k of ['a', 'b'] as const) {
      if (prev && prev[k] === x[k] && prev.group !== x.group && !prev.bottom[k]) return false;
      if (next && next[k] === x[k] && next.group !== x.group && !x.bottom[k]) return false;
    }
    return true;
  }

  private place(x: Anchor): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.list[mid];
      if (m.a < x.a || (m.a === x.a && m.b <= x.b)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds the anchors (all or none) unless one would cross or touch one already kept; true when added. */
  add(...xs: Anchor[]): boolean {
    const added: Anchor[] = [];
    for (const x of xs) {
      const at = this.place(x);
      const prev = this.list[at - 1];
      if (prev && prev.a === x.a && prev.b === x.b) continue; // already there
      if (!this.fits(x, at)) {
        for (const y of added) this.list.splice(this.list.indexOf(y), 1);
        return false;
      }
      this.list.splice(at, 0, x);
      added.push(x);
    }
    return true;
  }

  /** The last anchor whose `side` position is at or above y. */
  lastAtOrAbove(side: Side, y: number): Anchor | undefined {
    // The chain never decreases on either side: binary search.
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid][side] <= y) lo = mid + 1;
      else hi = mid;
    }
    return this.list[lo - 1];
  }
}

/** The key of a comparison note: which mark of which pair ('diverge:2:0'). */
const markKey = (s: LaidStep) => (s.diff ? `${s.diff.kind}:${s.diff.pair ?? '-'}:${s.diff.index}` : null);

/** y after the insertions: moved by each at or above it (`strict`: strictly above — a band's bottom stays above a gap that starts there). */
function shifter(ins: readonly Insertion[]): (y: number, strict: boolean) => number {
  // The insertions come in order of p (the walk goes down the chain): prefix sums, binary search.
  const before = [0];
  for (const x of ins) before.push(before[before.length - 1] + x.d);
  return (y, strict) => {
    let lo = 0;
    let hi = ins.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ins[mid].p < y || (!strict && ins[mid].p === y)) lo = mid + 1;
      else hi = mid;
    }
    return y + before[lo];
  };
}

/**
 * Aligns the rows of side A's and side B's layouts for the pairs of a comparison (in the order of
 * the diff). Returns new layouts (the inputs are not changed) of one height, each with its gaps.
 */
export function alignLayouts(a: SequenceLayout, b: SequenceLayout, pairs: readonly PairIds[], names: { a: string; b: string } = { a: 'A', b: 'B' }): { a: SequenceLayout; b: SequenceLayout } {
  const side = { a, b };
  const bands = { a: new Map(a.bands.map((x) => [x.syscallId, x])), b: new Map(b.bands.map((x) => [x.syscallId, x])) };
  const marks = { a: new Map<string, number>(), b: new Map<string, number>() };
  for (const s of ['a', 'b'] as const) {
    const half = side[s].rowHeight / 2;
    for (const step of side[s].steps) {
      const key = markKey(step);
      if (key !== null && !marks[s].has(key)) marks[s].set(key, step.y - half);
    }
  }
  const chain = new Chain();
  const both = pairs.flatMap((p) => {
    const x = p.a === null ? undefined : bands.a.get(p.a);
    const y = p.b === null ? undefined : bands.b.get(p.b);
    return x && y ? [[x, y] as [LaidBand, LaidBand]] : [];
  });
  const only: { side: Side; band: LaidBand }[] = [];
  for (const p of pairs) {
    if (p.a !== null && p.b === null && bands.a.has(p.a)) only.push({ side: 'a', band: bands.a.get(p.a)! });
    if (p.b !== null && p.a === null && bands.b.has(p.b)) only.push({ side: 'b', band: bands.b.get(p.b)! });
  }
  only.sort((x, y) => (x.side === y.side ? x.band.y0 - y.band.y0 : 0));
  // A note inside a call only on its side is no anchor: that call's gap on the other side comes first.
  const insideOnly = (s: Side, y: number) => only.some((x) => x.side === s && x.band.y0 < y && y < x.band.y1);

  // 1. Each pair's first rows; 2. the notes on both sides (in order); 3. each pair's last rows.
  let group = 0;
  const tops = { a: false, b: false };
  for (const [x, y] of both) chain.add({ a: x.y0, b: y.y0, bottom: tops, group: group++ });
  for (const [key, ya] of marks.a) {
    const yb = marks.b.get(key);
    if (yb !== undefined && !insideOnly('a', ya) && !insideOnly('b', yb)) chain.add({ a: ya, b: yb, bottom: tops, group: group++ });
  }
  for (const [x, y] of both) chain.add({ a: x.y1, b: y.y1, bottom: { a: true, b: true }, group: group++ });
  // 4. A call only on one side: its band against the point of the other side just after the
  // anchor above it (after that anchor's row, unless the anchor is a band's bottom).
  for (const { side: s, band } of only) {
    const o: Side = s === 'a' ? 'b' : 'a';
    const above = chain.lastAtOrAbove(s, band.y0);
    const q = above ? above[o] + (above.bottom[o] ? 0 : side[o].rowHeight) : side[o].headerHeight;
    const g = `only ${o} ${q}`;
    const at = (y: number, bottom: boolean): Anchor => ({ ...(s === 'a' ? { a: y, b: q } : { a: q, b: y }), bottom: { [s]: bottom, [o]: false } as Record<Side, boolean>, group: g });
    chain.add(at(band.y0, false), at(band.y1, true));
  }

  // The walk: the higher side gets space at its anchor.
  const ins: Record<Side, Insertion[]> = { a: [], b: [] };
  let da = 0;
  let db = 0;
  for (const x of chain.list) {
    const ya = x.a + da;
    const yb = x.b + db;
    if (ya < yb) {
      ins.a.push({ p: x.a, d: yb - ya, at: ya });
      da += yb - ya;
    } else if (yb < ya) {
      ins.b.push({ p: x.b, d: ya - yb, at: yb });
      db += ya - yb;
    }
  }
  const height = Math.max(a.height + da, b.height + db);
  const moved = { a: moveLayout(a, ins.a, height), b: moveLayout(b, ins.b, height) };
  // Each side's gaps, labelled with what the other side has there.
  for (const s of ['a', 'b'] as const) {
    const o: Side = s === 'a' ? 'b' : 'a';
    const ids = new Set(only.filter((x) => x.side === o).map((x) => x.band.syscallId));
    const onlyThere = moved[o].bands.filter((x) => ids.has(x.syscallId));
    moved[s].gaps = mergeGaps(ins[s]).map(([y0, y1]) => gapAt(y0, y1, moved[o], onlyThere, names[o]));
  }
  return moved;
}

/** A layout with its rows moved down by the insertions above them, `height` tall. */
function moveLayout(layout: SequenceLayout, ins: Insertion[], height: number): SequenceLayout {
  const shift = shifter(ins);
  const half = layout.rowHeight / 2;
  return {
    ...layout,
    height,
    steps: layout.steps.map((s) => ({ ...s, y: shift(s.y - half, false) + half })),
    bands: layout.bands.map((x) => ({ ...x, y0: shift(x.y0, false), y1: shift(x.y1, true) })),
  };
}

/** The insertions of one side as intervals once aligned, touching ones merged. */
function mergeGaps(ins: readonly Insertion[]): [number, number][] {
  const out: [number, number][] = [];
  for (const x of [...ins].sort((p, q) => p.at - q.at)) {
    const last = out[out.length - 1];
    if (last && x.at <= last[1]) last[1] = Math.max(last[1], x.at + x.d);
    else out.push([x.at, x.at + x.d]);
  }
  return out;
}

/** A gap from y0 to y1 on one side, and what the other side (`other`, already aligned) draws there. */
function gapAt(y0: number, y1: number, other: SequenceLayout, onlyThere: readonly LaidBand[], name: string): LaidGap {
  const calls = onlyThere.filter((x) => x.y0 < y1 && x.y1 > y0);
  // Steps are in row order: how many lie strictly between y0 and y1, by binary search.
  const above = (y: number, orAt: boolean) => {
    let lo = 0;
    let hi = other.steps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (other.steps[mid].y < y || (orAt && other.steps[mid].y === y)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const steps = Math.max(0, above(y1, false) - above(y0, true));
  const label = calls.length
    ? `only in ${name}: ${calls.map((x) => `#${x.syscallId} ${x.name}`).join(', ')}`
    : steps
      ? `${name}: ${steps} more step${steps === 1 ? '' : 's'} here`
      : '';
  return { y0, y1, label, others: calls.map((x) => x.syscallId) };
}
