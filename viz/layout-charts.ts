// Pure layouts of the flame chart and the call graph: inputs of viz/types.ts in, numbers out — no
// DOM, no randomness, no clock (dagre is deterministic for one input order), so the same input
// always gives the same coordinates (tested exactly). The sequence diagram's layout is layout.ts.
import dagre from '@dagrejs/dagre';
// @ts-ignore -- d3 7 ships no type declarations; only d3-shape's line and curveBasis are used here.
import * as d3untyped from 'd3';
import { textWidth } from './text-width.js';
import type { FlameInput, FlameLayout, FlameRect, FlameTrack, GraphInput, GraphLayout } from './types.js';

const d3 = d3untyped as unknown as {
  line(): { curve(c: unknown): (points: [number, number][]) => string | null };
  curveBasis: unknown;
};

const round2 = (v: number) => Math.round(v * 100) / 100;

// ---- flame chart ----------------------------------------------------------------------------

export interface FlameLayoutOptions {
  /** Total width (default 1200). */
  width?: number;
  margin?: number;
  /** Space for the title and the legend above the first track (default 48). */
  headerHeight?: number;
  /** One call depth per row (default 18); rectangles are 1 less, so rows stay apart. */
  rowHeight?: number;
  /** A track's label row above its frames (default 20). */
  trackLabelHeight?: number;
  /** Space between tracks (default 12). */
  trackGap?: number;
  /** Calls narrower than this many pixels are left out (default 0.5). */
  minWidth?: number;
}

/**
 * One track per guest thread, top to bottom in the input's order: a label row, then a row per
 * call depth. The x axis (instruction count) is shared by every track, so a System worker
 * thread's work item sits under the moment the program's thread waited for it. This is what
 * d3.partition would give for frames that fill their parent; a flame chart over time leaves gaps
 * (a function's own instructions), so x comes from the icounts directly.
 */
export function layoutFlame(input: FlameInput, opts: FlameLayoutOptions = {}): FlameLayout {
  const width = opts.width ?? 1200;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 48;
  const rowHeight = opts.rowHeight ?? 18;
  const labelHeight = opts.trackLabelHeight ?? 20;
  const trackGap = opts.trackGap ?? 12;
  const minWidth = opts.minWidth ?? 0.5;
  const from = input.fromIcount ?? 0;
  const scale = (width - 2 * margin) / Math.max(input.totalIcount - from, 1);

  const threads = [...input.threads];
  for (const c of input.calls) if (!threads.some((t) => t.id === c.threadId)) threads.push({ id: c.threadId, label: `thread ${c.threadId}` });
  const tracks: FlameTrack[] = [];
  const rects: FlameRect[] = [];
  let y = headerHeight;
  for (const thread of threads) {
    const calls = input.calls.filter((c) => c.threadId === thread.id);
    if (!calls.length) continue;
    const top = y + labelHeight;
    let rows = 1;
    for (const c of calls) {
      const w = (c.endIcount - c.startIcount) * scale;
      if (w < minWidth) continue;
      rows = Math.max(rows, c.depth + 1);
      rects.push({
        id: c.id,
        threadId: c.threadId,
        x: round2(margin + (c.startIcount - from) * scale),
        y: top + c.depth * rowHeight,
        width: round2(w),
        height: rowHeight - 1,
        label: c.symbol,
        module: c.module,
        cpl: c.cpl,
        ...(c.failure ? { failure: c.failure } : {}),
      });
    }
    tracks.push({ threadId: thread.id, label: thread.label, y0: y, y1: top + rows * rowHeight });
    y = top + rows * rowHeight + trackGap;
  }
  const bottom = tracks.length ? tracks[tracks.length - 1].y1 : headerHeight;
  return { title: input.title, width, height: bottom + margin, x0: margin, scale, fromIcount: from, totalIcount: input.totalIcount, tracks, rects };
}

// ---- call graph -----------------------------------------------------------------------------

/** A basis curve (d3.curveBasis) through `points`, sampled: the line as drawn, not its control polygon. */
function basisSamples(points: { x: number; y: number }[], perSegment = 16): { x: number; y: number }[] {
  const p = [points[0], points[0], ...points, points[points.length - 1], points[points.length - 1]];
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i + 3 < p.length; i++) {
    for (let k = 0; k <= perSegment; k++) {
      const t = k / perSegment;
      const b0 = (1 - t) ** 3 / 6;
      const b1 = (3 * t ** 3 - 6 * t ** 2 + 4) / 6;
      const b2 = (-3 * t ** 3 + 3 * t ** 2 + 3 * t + 1) / 6;
      const b3 = t ** 3 / 6;
      out.push({ x: b0 * p[i].x + b1 * p[i + 1].x + b2 * p[i + 2].x + b3 * p[i + 3].x, y: b0 * p[i].y + b1 * p[i + 1].y + b2 * p[i + 2].y + b3 * p[i + 3].y });
    }
  }
  return out;
}

export interface GraphLayoutOptions {
  /** A node's height (default 28; a failed service's node has a second line, 16 more). */
  nodeHeight?: number;
  /** The room beside a node's label (default 20: 10 px each side). */
  padding?: number;
  /** dagre's spacing: between nodes of a rank, between edges, between ranks (defaults 36, 16, 44). */
  nodesep?: number;
  edgesep?: number;
  ranksep?: number;
  margin?: number;
  headerHeight?: number;
}

/** What an edge's label says: its count, with its kind unless a plain call. */
export function edgeLabel(e: { kind: string; count: number }): string {
  return `${e.kind === 'call' ? '' : `${e.kind} `}×${e.count}`;
}

/** A failed service's second line: ✗ and its statuses. */
export function failedLine(failed: { status: string; count: number }[]): string {
  return `✗ ${failed.map((f) => `${f.status}${f.count > 1 ? ` ×${f.count}` : ''}`).join(', ')}`;
}

/**
 * dagre starts an edge where the line from the node's centre to the next point leaves the node:
 * for a shallow line that is the node's side, and the first segment then runs along the rank,
 * through the nodes beside it. An edge going to another rank leaves (and enters) through the
 * bottom or top border instead, above or below its next point as far as the node reaches, so the
 * segment runs in the space between the ranks.
 */
function leaveThroughTopOrBottom(points: { x: number; y: number }[], from: Box, to: Box): void {
  const attach = (end: { x: number; y: number }, next: { x: number; y: number }, n: Box) => {
    const inset = Math.min(8, n.width / 4);
    const x = round2(Math.min(n.x + n.width - inset, Math.max(n.x + inset, next.x)));
    if (next.y >= n.y + n.height) Object.assign(end, { x, y: n.y + n.height });
    else if (next.y <= n.y) Object.assign(end, { x, y: n.y });
  };
  if (points.length < 2) return;
  attach(points[0], points[1], from);
  attach(points[points.length - 1], points[points.length - 2], to);
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * dagre's layered layout, top to bottom: nodes sized to their labels, each edge a polyline around
 * the nodes (dagre's points) drawn as a basis curve, each edge label a box dagre keeps clear of
 * nodes. The label is given to dagre twice as wide as it is, centred on the edge (labelpos 'c'),
 * and drawn in one half — the right, or the left where the drawn curve bends into the right — so
 * it sits beside the line, in space no node takes. (dagre's own labelpos 'r' shifts the label by
 * half its width past the space it reserved, onto whatever is beside it.) A call of a function by
 * itself is a loop on the node's right, its room reserved by widening the node for dagre.
 */
export function layoutCallGraph(input: GraphInput, opts: GraphLayoutOptions = {}): GraphLayout {
  const nodeHeight = opts.nodeHeight ?? 28;
  const padding = opts.padding ?? 20;
  const margin = opts.margin ?? 20;
  const headerHeight = opts.headerHeight ?? 40;
  const labelHeight = 16;
  const labelGap = 6; // between a line and its label
  const loop = 26; // how far a self-call's loop reaches out
  const width = (s: string) => textWidth(s, 11);

  const ids = new Set(input.nodes.map((n) => n.id));
  for (const e of input.edges) {
    if (!ids.has(e.from) || !ids.has(e.to)) throw new Error(`layoutCallGraph: edge ${e.from} → ${e.to} names a node that is not in the input`);
  }
  const size = new Map(
    input.nodes.map((n) => {
      const w = Math.max(width(n.id), n.failed?.length ? width(failedLine(n.failed)) : 0) + padding;
      return [n.id, { width: Math.ceil(Math.max(60, w)), height: nodeHeight + (n.failed?.length ? 16 : 0) }];
    }),
  );
  const countWidth = (e: { kind: string; count: number }) => Math.ceil(width(edgeLabel(e)) + 8);
  // Room on a node's right for its self-call loops' labels, mirrored on its left (dagre centres the node).
  const selfRoom = new Map<string, number>();
  for (const e of input.edges) if (e.from === e.to) selfRoom.set(e.from, Math.max(selfRoom.get(e.from) ?? 0, loop + 4 + countWidth(e)));

  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: opts.nodesep ?? 36, edgesep: opts.edgesep ?? 16, ranksep: opts.ranksep ?? 44, marginx: margin, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of input.nodes) {
    const s = size.get(n.id)!;
    g.setNode(n.id, { width: s.width + 2 * (selfRoom.get(n.id) ?? 0), height: s.height });
  }
  input.edges.forEach((e, i) => {
    if (e.from === e.to) return;
    g.setEdge(e.from, e.to, { width: 2 * (countWidth(e) + labelGap), height: labelHeight, labelpos: 'c', minlen: 1 }, String(i));
  });
  dagre.layout(g);

  const nodes = input.nodes.map((n) => {
    const c = g.node(n.id) as unknown as { x: number; y: number };
    const s = size.get(n.id)!;
    return { ...n, x: round2(c.x - s.width / 2), y: round2(headerHeight + c.y - s.height / 2), width: s.width, height: s.height };
  });
  const at = new Map(nodes.map((n) => [n.id, n]));
  const curve = d3.line().curve(d3.curveBasis);
  const edges = input.edges.map((e, i) => {
    const label = edgeLabel(e);
    const lw = countWidth(e);
    let points: { x: number; y: number }[];
    let labelBox: { x: number; y: number; width: number; height: number };
    if (e.from === e.to) {
      const n = at.get(e.from)!;
      const r = n.x + n.width;
      const cy = n.y + n.height / 2;
      points = [
        { x: r, y: cy - 7 },
        { x: r + loop, y: cy - 14 },
        { x: r + loop, y: cy + 14 },
        { x: r, y: cy + 7 },
      ];
      labelBox = { x: r + loop + 4, y: round2(cy - labelHeight / 2), width: lw, height: labelHeight };
    } else {
      const d = g.edge(e.from, e.to, String(i)) as unknown as { points: { x: number; y: number }[]; x: number; y: number };
      points = d.points.map((p) => ({ x: round2(p.x), y: round2(headerHeight + p.y) }));
      leaveThroughTopOrBottom(points, at.get(e.from)!, at.get(e.to)!);
      // Right of the line, or left where the curve (which cuts the polyline's corners) bends right.
      const y = round2(headerHeight + d.y - labelHeight / 2);
      const right = { x: round2(d.x + labelGap), y, width: lw, height: labelHeight };
      const left = { x: round2(d.x - labelGap - lw), y, width: lw, height: labelHeight };
      const curvePoints = basisSamples(points);
      const hits = (b: Box) => curvePoints.filter((p) => p.x > b.x - 2 && p.x < b.x + b.width + 2 && p.y > b.y - 2 && p.y < b.y + b.height + 2).length;
      labelBox = hits(right) > 0 && hits(left) < hits(right) ? left : right;
    }
    const path = curve(points.map((p) => [p.x, p.y]))!.replace(/\d+\.\d+/g, (m) => String(round2(Number(m))));
    return { ...e, points, path, label, labelBox };
  });
  const graph = g.graph() as { width?: number; height?: number };
  if (!Number.isFinite(graph.height)) graph.height = 0; // no nodes: dagre's bounds are infinite
  const right = Math.max(Number.isFinite(graph.width) ? graph.width! : 0, ...edges.map((e) => e.labelBox.x + e.labelBox.width + margin), ...nodes.map((n) => n.x + n.width + margin));
  return {
    title: input.title,
    width: Math.ceil(Math.max(right, 320)),
    height: Math.ceil(headerHeight + (graph.height ?? 0) + margin),
    nodes,
    edges,
  };
}
