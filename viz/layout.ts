// Pure layouts: the inputs of viz/types.ts in, numbers out — no DOM, no randomness, no clock, so
// the same input always gives the same coordinates (tested exactly). d3 only draws the result
// (viz/svg.ts, viz/html.ts). In the spirit of d3-hierarchy's cluster(): a few passes over plain
// data, each one computing one kind of coordinate.
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
  /** Horizontal space per lane (default 200). */
  laneWidth?: number;
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
}

const RING_LABELS: Record<0 | 3, string> = { 3: 'ring 3 (user mode)', 0: 'ring 0 (kernel mode)' };

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

export function layoutSequence(input: SequenceInput, opts: SequenceLayoutOptions = {}): SequenceLayout {
  const laneWidth = opts.laneWidth ?? 200;
  const ringGap = opts.ringGap ?? 24;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 88;
  const rowHeight = opts.rowHeight ?? 24;

  // 1. Lanes left to right, a gap where the ring changes; ring groups around them.
  const lanes: LaidLane[] = [];
  const rings: RingGroup[] = [];
  let x = margin;
  input.lanes.forEach((lane, i) => {
    if (i > 0 && lane.ring !== input.lanes[i - 1].ring) x += ringGap;
    lanes.push({ ...lane, x: x + laneWidth / 2, width: laneWidth });
    const group = rings[rings.length - 1];
    if (group && group.ring === lane.ring) group.x1 = x + laneWidth;
    else rings.push({ ring: lane.ring, label: RING_LABELS[lane.ring], x0: x, x1: x + laneWidth });
    x += laneWidth;
  });
  const laneX = new Map(lanes.map((l) => [l.id, l.x]));
  const xOf = (id: string) => {
    const v = laneX.get(id);
    if (v === undefined) throw new Error(`layoutSequence: step refers to lane '${id}', which is not in the input's lanes`);
    return v;
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

  return {
    title: input.title,
    width: x + margin,
    height: headerHeight + row * rowHeight + margin,
    headerHeight,
    rowHeight,
    lanes,
    rings,
    steps: laidSteps,
    bands: laidBands,
    findings: layoutFindings(input.findings, laidSteps),
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
export { layoutFlame, layoutCallGraph, edgeLabel, failedLine, labelWidth, type FlameLayoutOptions, type GraphLayoutOptions } from './layout-charts.js';
