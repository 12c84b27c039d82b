// Pure layouts: the inputs of viz/types.ts in, numbers out — no DOM, no randomness, no clock, so
// the same input always gives the same coordinates (tested exactly). d3 only draws the result
// (viz/svg.ts, viz/html.ts). In the spirit of d3-hierarchy's cluster(): a few passes over plain
// data, each one computing one kind of coordinate.
import type {
  FlameInput,
  FlameLayout,
  FlameRect,
  FlowStep,
  GraphInput,
  GraphLayout,
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

// ---- flame chart ----------------------------------------------------------------------------

export interface FlameLayoutOptions {
  /** Total width (default 1200). */
  width?: number;
  margin?: number;
  /** Space for the title above the first row (default 40). */
  headerHeight?: number;
  /** One call depth per row (default 18); rectangles are 1 less, so rows stay apart. */
  rowHeight?: number;
  /** Calls narrower than this many pixels are left out (default 0.5). */
  minWidth?: number;
}

const round2 = (v: number) => Math.round(v * 100) / 100;

export function layoutFlame(input: FlameInput, opts: FlameLayoutOptions = {}): FlameLayout {
  const width = opts.width ?? 1200;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 40;
  const rowHeight = opts.rowHeight ?? 18;
  const minWidth = opts.minWidth ?? 0.5;
  const scale = (width - 2 * margin) / Math.max(input.totalIcount, 1);
  const rects: FlameRect[] = [];
  let maxDepth = -1;
  for (const c of input.calls) {
    const w = (c.endIcount - c.startIcount) * scale;
    if (w < minWidth) continue;
    maxDepth = Math.max(maxDepth, c.depth);
    rects.push({
      id: c.id,
      x: round2(margin + c.startIcount * scale),
      y: headerHeight + c.depth * rowHeight,
      width: round2(w),
      height: rowHeight - 1,
      label: c.symbol,
      module: c.module,
      cpl: c.cpl,
    });
  }
  return { title: input.title, width, height: headerHeight + (maxDepth + 1) * rowHeight + margin, rects };
}

// ---- call graph -----------------------------------------------------------------------------

export interface GraphLayoutOptions {
  nodeWidth?: number;
  nodeHeight?: number;
  /** Horizontal space between layers (default 80). */
  colGap?: number;
  /** Vertical space between nodes of a layer (default 14). */
  rowGap?: number;
  margin?: number;
  headerHeight?: number;
}

/**
 * Layers left to right by call distance from the roots (functions nobody calls; in a cycle with
 * no root, the first node), each layer ordered by the mean position of its callers; edges are
 * cubic curves from a caller's right side to a callee's left side, a loop for recursion, an arc
 * under the nodes for a call back to an earlier layer.
 */
export function layoutCallGraph(input: GraphInput, opts: GraphLayoutOptions = {}): GraphLayout {
  const nodeWidth = opts.nodeWidth ?? 200;
  const nodeHeight = opts.nodeHeight ?? 28;
  const colGap = opts.colGap ?? 80;
  const rowGap = opts.rowGap ?? 14;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 40;
  const loop = 40; // room for loops and back arcs

  // 1. Layers: breadth-first from the roots.
  const order = new Map(input.nodes.map((n, i) => [n.id, i]));
  const out = new Map<string, string[]>();
  const hasCaller = new Set<string>();
  for (const e of input.edges) {
    if (!order.has(e.from) || !order.has(e.to)) throw new Error(`layoutCallGraph: edge ${e.from} → ${e.to} names a node that is not in the input`);
    if (!out.has(e.from)) out.set(e.from, []);
    out.get(e.from)!.push(e.to);
    if (e.from !== e.to) hasCaller.add(e.to);
  }
  const layer = new Map<string, number>();
  const visit = (roots: string[]) => {
    const queue = [...roots];
    for (const r of roots) layer.set(r, 0);
    for (let q = 0; q < queue.length; q++) {
      const id = queue[q];
      for (const to of out.get(id) ?? []) {
        if (layer.has(to)) continue;
        layer.set(to, layer.get(id)! + 1);
        queue.push(to);
      }
    }
  };
  visit(input.nodes.filter((n) => !hasCaller.has(n.id)).map((n) => n.id));
  for (const n of input.nodes) if (!layer.has(n.id)) visit([n.id]);

  // 2. Order within a layer: by the mean position of callers in earlier layers, then input order.
  const layers: string[][] = [];
  for (const n of input.nodes) {
    const l = layer.get(n.id)!;
    (layers[l] ??= []).push(n.id);
  }
  const position = new Map<string, number>();
  const callers = new Map<string, string[]>();
  for (const e of input.edges) {
    if (!callers.has(e.to)) callers.set(e.to, []);
    callers.get(e.to)!.push(e.from);
  }
  layers.forEach((ids, l) => {
    const key = (id: string) => {
      const ps = (callers.get(id) ?? []).filter((p) => layer.get(p)! < l).map((p) => position.get(p)!);
      return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Infinity;
    };
    const keyed = ids.map((id) => ({ id, k: key(id), i: order.get(id)! }));
    keyed.sort((a, b) => (a.k === b.k ? a.i - b.i : a.k === Infinity ? 1 : b.k === Infinity ? -1 : a.k - b.k));
    keyed.forEach((n, i) => position.set(n.id, i));
    layers[l] = keyed.map((n) => n.id);
  });

  // 3. Coordinates: x, y are a node's top-left corner.
  const nodes = input.nodes.map((n) => ({
    ...n,
    x: margin + layer.get(n.id)! * (nodeWidth + colGap),
    y: headerHeight + position.get(n.id)! * (nodeHeight + rowGap),
    width: nodeWidth,
    height: nodeHeight,
  }));
  const at = new Map(nodes.map((n) => [n.id, n]));
  const edges = input.edges.map((e) => {
    const a = at.get(e.from)!;
    const b = at.get(e.to)!;
    let path: string;
    let labelX: number;
    let labelY: number;
    if (a === b) {
      const rx = a.x + a.width;
      path = `M${rx},${a.y + 8}C${rx + loop},${a.y - 8} ${rx + loop},${a.y + a.height + 8} ${rx},${a.y + a.height - 8}`;
      labelX = rx + loop - 6;
      labelY = a.y + a.height / 2;
    } else if (b.x > a.x) {
      const sx = a.x + a.width;
      const sy = a.y + a.height / 2;
      const tx = b.x;
      const ty = b.y + b.height / 2;
      const mx = (sx + tx) / 2;
      path = `M${sx},${sy}C${mx},${sy} ${mx},${ty} ${tx},${ty}`;
      labelX = mx;
      labelY = (sy + ty) / 2;
    } else {
      const sx = a.x + a.width / 2;
      const sy = a.y + a.height;
      const tx = b.x + b.width / 2;
      const ty = b.y + b.height;
      const dip = Math.max(sy, ty) + loop;
      path = `M${sx},${sy}C${sx},${dip} ${tx},${dip} ${tx},${ty}`;
      labelX = (sx + tx) / 2;
      labelY = dip - 10;
    }
    return { ...e, path, labelX, labelY };
  });
  const columns = Math.max(layers.length, 1);
  const rows = Math.max(1, ...layers.map((l) => l.length));
  return {
    title: input.title,
    width: margin * 2 + columns * nodeWidth + (columns - 1) * colGap + loop,
    height: headerHeight + rows * nodeHeight + (rows - 1) * rowGap + loop + margin,
    nodes,
    edges,
  };
}
