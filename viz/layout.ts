// Pure layouts: the inputs of viz/types.ts in, numbers out — no DOM, no randomness, no clock, so
// the same input always gives the same coordinates (tested exactly). d3 only draws the result
// (viz/svg.ts, viz/html.ts). In the spirit of d3-hierarchy's cluster(): a few passes over plain
// data, each one computing one kind of coordinate.
import { textWidth } from './text-width.js';
import type {
  FlowStep,
  LaidBand,
  LaidFinding,
  LaidLane,
  LaidStep,
  RingGroup,
  SequenceInput,
  SequenceLayout,
  SessionFinding,
} from './types.js';

// ---- sequence diagram -----------------------------------------------------------------------

export interface SequenceLayoutOptions {
  /** The narrowest a lane gets (default 120); lanes widen to their header label, gaps to the arrows' labels. */
  laneWidth?: number;
  /** The widest a lane's header box gets (default 200); a longer header label wraps. */
  maxLaneWidth?: number;
  /** Extra space between the ring 3 and the ring 0 groups (default 24). */
  ringGap?: number;
  /** Space around the diagram (default 20). */
  margin?: number;
  /** Title, ring labels and lane headers (default 88); the first row starts there. */
  headerHeight?: number;
  /** One step (or a band's title) per row (default 24). */
  rowHeight?: number;
  /** Bands (syscalls.id) drawn as a single row: their steps become one summary arrow. */
  collapsed?: number[];
  /** The most a note's or a loop's label may add to the drawing's width (default 560); a longer one is cut with an ellipsis where drawn. */
  maxLabelWidth?: number;
}

const RING_LABELS: Record<0 | 3, string> = { 3: 'ring 3 (user mode)', 0: 'ring 0 (kernel mode)' };

/** The font size and weight the pages draw a step's label in (viz/page/style.css). */
function stepLabelWidth(s: FlowStep): number {
  const bold = s.kind === 'sysenter' || s.kind === 'sysexit' || s.kind === 'int' || s.kind === 'iret' || s.kind === 'exception' || s.status?.failed === true || s.finding !== undefined || s.diff !== undefined;
  return textWidth(s.label, 11.5, bold);
}

/** The one arrow a collapsed band shows: its first step's lane to the service routine's lane (or its deepest). */
function summaryStep(band: SequenceInput['bands'][number], steps: FlowStep[]): FlowStep {
  const first = steps[0];
  const service = steps.find((s) => s.to === 'nt-service')?.to ?? steps.find((s) => s.kind === 'sysenter' || s.kind === 'int')?.to ?? first.to;
  const status = band.status ?? undefined;
  return {
    seq: band.firstSeq,
    kind: 'call',
    from: first.from,
    to: service,
    label: `${band.name}${status ? ` → ${status.name}` : ''} (${steps.length} steps collapsed)`,
    detail: { ...first.detail, entry: band.entry, PreviousMode: band.previousMode, status: status ? status.name : 'never returned' },
    status,
    syscallId: band.syscallId,
  };
}

/** What a band's title row says (viz/page/sequence.js draws the same text, with ▾/▸ and the step count when collapsed). */
function bandTitleWidth(b: SequenceInput['bands'][number], steps: number): number {
  const title = `▾ #${b.syscallId} · ${b.name} · ${b.entry} · ${b.previousMode} · ${b.status ? b.status.name : 'did not return'}  (${steps} steps)`;
  return textWidth(title, 11.5, true) + (b.failure ? textWidth(b.failure.label, 11.5, true) + 24 : 0);
}

/**
 * Lanes left to right, each as wide as its header label needs (between laneWidth and
 * maxLaneWidth), a ringGap where the ring changes; then the gaps between lane centres widened
 * until every arrow's label fits between its two lanes (the shortest spans first, a deficit shared
 * evenly by the gaps an arrow crosses). No fixed width: a diagram is as wide as its labels.
 */
function laneCentres(input: SequenceInput, steps: FlowStep[], minLane: number, maxLane: number, ringGap: number, margin: number): { lanes: LaidLane[]; rings: RingGroup[] } {
  const widths = input.lanes.map((l) => Math.min(maxLane, Math.max(minLane, textWidth(l.label, 11, true) + 16)));
  const gaps = input.lanes.slice(1).map((l, i) => (widths[i] + widths[i + 1]) / 2 + (l.ring !== input.lanes[i].ring ? ringGap : 0));
  const index = new Map(input.lanes.map((l, i) => [l.id, i]));
  const spans: { lo: number; hi: number; need: number }[] = [];
  for (const s of steps) {
    const a = index.get(s.from);
    const b = index.get(s.to);
    if (a === undefined || b === undefined || a === b) continue;
    // The label is centred over the arrow; 24 px for the arrowhead and air.
    spans.push({ lo: Math.min(a, b), hi: Math.max(a, b), need: stepLabelWidth(s) + 24 });
  }
  spans.sort((p, q) => p.hi - p.lo - (q.hi - q.lo) || p.lo - q.lo || p.need - q.need);
  for (const { lo, hi, need } of spans) {
    let have = 0;
    for (let i = lo; i < hi; i++) have += gaps[i];
    if (have >= need) continue;
    const more = (need - have) / (hi - lo);
    for (let i = lo; i < hi; i++) gaps[i] = Math.ceil(gaps[i] + more);
  }
  const lanes: LaidLane[] = [];
  let x = margin + widths[0] / 2;
  input.lanes.forEach((lane, i) => {
    if (i > 0) x += gaps[i - 1];
    lanes.push({ ...lane, x, width: widths[i] });
  });
  // Ring groups: from the outer lanes' edges; where the ring changes, the gap between the two
  // lanes is split in the middle (ringGap left empty), so the groups have no hole between them.
  const rings: RingGroup[] = [];
  lanes.forEach((lane, i) => {
    const group = rings[rings.length - 1];
    if (group && group.ring === lane.ring) return;
    const x0 = i === 0 ? lane.x - lane.width / 2 : (lanes[i - 1].x + lane.x) / 2 + ringGap / 2;
    if (group) group.x1 = (lanes[i - 1].x + lane.x) / 2 - ringGap / 2;
    rings.push({ ring: lane.ring, label: RING_LABELS[lane.ring], x0, x1: 0 });
  });
  const last = lanes[lanes.length - 1];
  rings[rings.length - 1].x1 = last.x + last.width / 2;
  return { lanes, rings };
}

export function layoutSequence(input: SequenceInput, opts: SequenceLayoutOptions = {}): SequenceLayout {
  const minLane = opts.laneWidth ?? 120;
  const maxLane = Math.max(minLane, opts.maxLaneWidth ?? 200);
  const ringGap = opts.ringGap ?? 24;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 88;
  const rowHeight = opts.rowHeight ?? 24;
  const maxLabel = opts.maxLabelWidth ?? 560;

  // 1. Lanes and ring groups (below, once the steps are known: their labels set the gaps).
  const laneIds = new Set(input.lanes.map((l) => l.id));
  const xOfCheck = (id: string) => {
    if (!laneIds.has(id)) throw new Error(`layoutSequence: step refers to lane '${id}', which is not in the input's lanes`);
  };

  // 2. Collapse: a collapsed band's steps become one row.
  const bands = [...input.bands].sort((a, b) => a.firstSeq - b.firstSeq || a.syscallId - b.syscallId);
  const collapsed = new Set(opts.collapsed ?? []);
  let steps: FlowStep[] = input.steps;
  if (collapsed.size) {
    const out: FlowStep[] = [];
    const done = new Set<number>();
    for (const s of input.steps) {
      const band = bands.find((b) => collapsed.has(b.syscallId) && b.firstSeq <= s.seq && s.seq <= b.lastSeq);
      if (!band) out.push(s);
      else if (!done.has(band.syscallId)) {
        done.add(band.syscallId);
        out.push(summaryStep(band, input.steps.filter((t) => band.firstSeq <= t.seq && t.seq <= band.lastSeq)));
      }
    }
    steps = out;
  }

  // 3. Rows top to bottom: a band's title row before its first step (none when the band is a
  // single row: a collapsed call's arrow says it all), then one row per step.
  const seqs = steps.map((s) => s.seq);
  const firstAtOrAfter = (seq: number) => {
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const stepsIn = (b: SequenceInput['bands'][number]) => firstAtOrAfter(b.lastSeq + 1) - firstAtOrAfter(b.firstSeq);
  for (const s of steps) {
    xOfCheck(s.from);
    xOfCheck(s.to);
  }
  const { lanes, rings } = input.lanes.length ? laneCentres(input, steps, minLane, maxLane, ringGap, margin) : { lanes: [], rings: [] };
  const laneX = new Map(lanes.map((l) => [l.id, l.x]));
  const xOf = (id: string) => laneX.get(id)!;
  const laidSteps: LaidStep[] = [];
  const laidBands: LaidBand[] = [];
  const open = new Map<number, LaidBand>();
  let row = 0;
  let nextBand = 0;
  steps.forEach((s, index) => {
    while (nextBand < bands.length && bands[nextBand].firstSeq <= s.seq) {
      const b = bands[nextBand++];
      if (b.lastSeq < s.seq) continue; // no step inside it
      const laid: LaidBand = { ...b, y0: headerHeight + row * rowHeight, y1: 0 };
      laidBands.push(laid);
      open.set(b.syscallId, laid);
      if (stepsIn(b) > 1) row++;
    }
    const y = headerHeight + row * rowHeight + rowHeight / 2;
    laidSteps.push({ ...s, index, y, x1: xOf(s.from), x2: xOf(s.to) });
    for (const b of open.values()) {
      if (s.seq <= b.lastSeq) b.y1 = headerHeight + (row + 1) * rowHeight;
      else open.delete(b.syscallId); // steps come in seq order: nothing later is inside it
    }
    row++;
  });

  // 4. The width: the lanes, and whatever a label reaches to the right of its lane — a note (its
  // box from 8 px right of the lifeline), a loop (from 28 px) — up to maxLabel; and the bands' titles.
  let right = rings.length ? rings[rings.length - 1].x1 : margin;
  for (const s of laidSteps) {
    if (s.from !== s.to) continue;
    const reach = s.kind === 'note' ? 8 + (s.finding || s.diff ? 24 : 0) : 34;
    right = Math.max(right, s.x1 + Math.min(maxLabel, reach + stepLabelWidth(s)));
  }
  for (const b of laidBands) right = Math.max(right, margin + Math.min(2 * maxLabel, bandTitleWidth(b, stepsIn(b))));
  return {
    title: input.title,
    width: Math.ceil(right + margin),
    height: headerHeight + row * rowHeight + margin,
    headerHeight,
    rowHeight,
    lanes,
    rings,
    steps: laidSteps,
    bands: laidBands,
    findings: layoutFindings(input.findings, laidSteps),
    ...(input.notice?.length ? { notice: input.notice } : {}),
  };
}

/** The input's findings with the index of the step that draws each one's note (null: not drawn, or inside a collapsed band). */
export function layoutFindings(findings: readonly SessionFinding[] | undefined, steps: readonly LaidStep[]): LaidFinding[] {
  if (!findings?.length) return [];
  const at = new Map<number, number>();
  for (const s of steps) if (s.finding && !at.has(s.finding.id)) at.set(s.finding.id, s.index);
  return findings.map((f) => ({ ...f, stepIndex: at.get(f.id) ?? null }));
}

// The flame chart's and the call graph's layouts live in layout-charts.ts.
export { textWidth, fitText } from './text-width.js';
export { layoutFlame, layoutCallGraph, edgeLabel, failedLine, type FlameLayoutOptions, type GraphLayoutOptions } from './layout-charts.js';
