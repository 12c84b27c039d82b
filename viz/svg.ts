// Rendering: a layout (numbers) drawn by d3 into a server-side DOM (linkedom) and serialised as
// SVG. Nothing here computes a position: each coordinate comes from the layout. Text from the
// trace goes into the document only as text nodes (labels, <title> tooltips), so the DOM escapes
// it; attributes hold numbers and fixed names only.
// @ts-ignore -- d3 7 ships no type declarations and @types/d3 is not a dependency; the small
// part of the selection API used here is typed below.
import * as d3untyped from 'd3';
import { createRequire } from 'node:module';
import { fitText, textWidth } from './text-width.js';
import type { FlameLayout, GraphLayout, LaidStep, SequenceLayout } from './types.js';
import { failedLine } from './layout-charts.js';
import { wrapNotice } from './elide.js';
import { visibleControls } from './html.js';

type Value = string | number;
/** The part of d3-selection used here. */
interface Selection<D = unknown> {
  append(name: string): Selection<D>;
  attr(name: string, value: Value | ((d: D, i: number) => Value)): Selection<D>;
  text(value: Value | ((d: D, i: number) => Value)): Selection<D>;
  node(): { toString(): string } | null;
}
const d3 = d3untyped as unknown as { select(node: unknown): Selection };

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Colours: ring 3 blue, ring 0 orange, ring transitions purple, failures red, warnings (hooks) amber. */
export const COLORS = {
  ring3: '#e8f1fb',
  ring0: '#fcefe2',
  ring3Box: '#cfe2f7',
  ring0Box: '#f8d9bb',
  lifeline: '#9aa5b1',
  arrow: '#37474f',
  transition: '#7b2cbf',
  fail: '#c62828',
  failFill: '#fdecea',
  warn: '#b26a00',
  warnFill: '#fff3d6',
  info: '#1e5f9e',
  infoFill: '#e8f1fb',
  note: '#fffde7',
  band: '#ffffff',
  text: '#1b1f23',
} as const;

// linkedom (the server-side DOM) loads on the first drawing, through its CommonJS build: importing
// it costs about 0.2 s, which every other command (record, query, …) would pay at start.
type ParseHtml = typeof import('linkedom').parseHTML;
let parseHtml: ParseHtml | null = null;
const loadParseHtml = (): ParseHtml => (parseHtml ??= (createRequire(import.meta.url)('linkedom') as { parseHTML: ParseHtml }).parseHTML);

/** A fresh <svg> in a server-side document, with the arrow markers every diagram uses. */
function newSvg(width: number, height: number, kind: string): Selection {
  const { document } = loadParseHtml()('<!doctype html><html><head></head><body></body></html>');
  const svg = d3
    .select(document.body)
    .append('svg')
    .attr('xmlns', SVG_NS)
    .attr('width', width)
    .attr('height', height)
    .attr('viewBox', `0 0 ${width} ${height}`)
    .attr('class', `ntflow ntflow-${kind}`)
    .attr('font-family', 'DejaVu Sans, Verdana, sans-serif')
    .attr('font-size', 11);
  const defs = svg.append('defs');
  const markers: [string, string][] = [
    ['arrow', COLORS.arrow],
    ['arrow-transition', COLORS.transition],
    ['arrow-fail', COLORS.fail],
  ];
  for (const [id, color] of markers) {
    defs
      .append('marker')
      .attr('id', id)
      .attr('viewBox', '0 0 10 10')
      .attr('refX', 9)
      .attr('refY', 5)
      .attr('markerUnits', 'userSpaceOnUse')
      .attr('markerWidth', 9)
      .attr('markerHeight', 9)
      .attr('orient', 'auto-start-reverse')
      .append('path')
      .attr('d', 'M0,0L10,5L0,10z')
      .attr('fill', color);
  }
  svg.append('rect').attr('class', 'background').attr('width', width).attr('height', height).attr('fill', '#ffffff');
  return svg;
}

/**
 * One `tag` child of `parent` per item, drawn by `draw`. A plain loop of appends rather than
 * selectAll().data().join(): on linkedom, join's inserts take time proportional to the children
 * already there, which made a 15,000-step diagram take seconds.
 */
function appendEach<T>(parent: Selection, items: readonly T[], tag: string, draw: (g: Selection, item: T, i: number) => void): void {
  items.forEach((item, i) => draw(parent.append(tag), item, i));
}

function serialise(svg: Selection): string {
  return `${visibleControls(svg.node()!.toString())}\n`;
}

const TRANSITIONS = new Set(['sysenter', 'sysexit', 'int', 'iret', 'exception']);

/** A step's tooltip: its label, then `key: value` lines; a finding's note: its title and explanation. */
function tooltip(s: LaidStep): string {
  if (s.finding) return `${s.finding.title}\n${s.finding.detail}`;
  return [s.label, ...Object.entries(s.detail).map(([k, v]) => `${k}: ${v}`)].join('\n');
}

/** A finding note's stroke and fill by severity: error red, warning amber, info blue. */
function findingColors(severity: string): { stroke: string; fill: string } {
  if (severity === 'error') return { stroke: COLORS.fail, fill: COLORS.failFill };
  if (severity === 'warning') return { stroke: COLORS.warn, fill: COLORS.warnFill };
  return { stroke: COLORS.info, fill: COLORS.infoFill };
}

/**
 * The label cut to `room` pixels (by layout.ts's width estimate) with an ellipsis; the step's
 * <title> keeps the whole text. The page (viz/page/view.js) does the same with measured widths.
 */
function cut(label: string, room: number, bold: boolean): string {
  return fitText(label, room, 11, bold) || label.slice(0, 1) + '…';
}

function stepColor(s: LaidStep): string {
  if (s.status?.failed) return COLORS.fail;
  return TRANSITIONS.has(s.kind) ? COLORS.transition : COLORS.arrow;
}

function markerOf(s: LaidStep): string {
  if (s.status?.failed) return 'url(#arrow-fail)';
  return TRANSITIONS.has(s.kind) ? 'url(#arrow-transition)' : 'url(#arrow)';
}

/** Draw one step into its group: a note box, a loop back into the same lane, or an arrow. */
function drawStep(g: Selection, s: LaidStep, laneWidth: number, svgWidth: number): void {
  const color = stepColor(s);
  g.append('title').text(tooltip(s));
  if (s.kind === 'note') {
    // Centred on its lane, but kept inside the drawing (a note on the first or last lane would
    // otherwise be cut off), and at most two lanes wide (a finding's, three): a longer label is
    // shortened here and stays whole in the tooltip. Bold text takes about 7 px a character.
    const finding = s.finding ? findingColors(s.finding.severity) : null;
    const strong = s.status?.failed || finding !== null;
    const charWidth = strong ? 7.1 : 6.2;
    const w = Math.min(laneWidth * (finding ? 3 : 2) - 16, s.label.length * charWidth + 14, svgWidth - 8);
    const fits = Math.max(4, Math.floor((w - 14) / charWidth));
    const label = s.label.length > fits ? s.label.slice(0, fits - 1) + '…' : s.label;
    const x = Math.max(4, Math.min(s.x1 - w / 2, svgWidth - 4 - w));
    g.append('rect')
      .attr('x', x)
      .attr('y', s.y - 9)
      .attr('width', w)
      .attr('height', 18)
      .attr('rx', 4)
      .attr('fill', finding ? finding.fill : s.status?.failed ? COLORS.failFill : COLORS.note)
      .attr('stroke', finding ? finding.stroke : s.status?.failed ? COLORS.fail : '#c9b458')
      .attr('stroke-width', finding ? 1.8 : 1);
    g.append('text')
      .attr('x', x + w / 2)
      .attr('y', s.y + 4)
      .attr('text-anchor', 'middle')
      .attr('fill', finding ? finding.stroke : s.status?.failed ? COLORS.fail : COLORS.text)
      .attr('font-weight', strong ? 'bold' : 'normal')
      .text(label);
    return;
  }
  const transition = TRANSITIONS.has(s.kind);
  const strokeWidth = transition ? 2.5 : 1.3;
  if (s.x1 === s.x2) {
    g.append('path')
      .attr('d', `M${s.x1},${s.y - 6}h28v12h-28`)
      .attr('fill', 'none')
      .attr('stroke', color)
      .attr('stroke-width', strokeWidth)
      .attr('marker-end', markerOf(s));
    g.append('text')
      .attr('x', s.x1 + 34)
      .attr('y', s.y + 4)
      .attr('fill', color)
      .text(cut(s.label, svgWidth - 4 - (s.x1 + 34), false));
    return;
  }
  const line = g
    .append('line')
    .attr('x1', s.x1)
    .attr('y1', s.y)
    .attr('x2', s.x2)
    .attr('y2', s.y)
    .attr('stroke', color)
    .attr('stroke-width', strokeWidth)
    .attr('marker-end', markerOf(s));
  if (s.kind === 'return') line.attr('stroke-dasharray', '5,3');
  if (s.kind === 'jump') line.attr('stroke-dasharray', '2,2');
  g.append('text')
    .attr('x', (s.x1 + s.x2) / 2)
    .attr('y', s.y - 4)
    .attr('text-anchor', 'middle')
    .attr('fill', color)
    .attr('font-weight', transition || s.status?.failed ? 'bold' : 'normal')
    .text(cut(s.label, 2 * Math.min((s.x1 + s.x2) / 2 - 4, svgWidth - 4 - (s.x1 + s.x2) / 2), transition || s.status?.failed === true));
}

export function renderSequenceSvg(layout: SequenceLayout): string {
  // A large session's notice (what was aggregated or elided: viz/elide.ts) goes under the title;
  // the diagram moves down by its height.
  const notice = wrapNotice(layout.notice ?? [], Math.floor((layout.width - 40) / 6.5));
  const noticeHeight = notice.length ? notice.length * 15 + 6 : 0;
  const root = newSvg(layout.width, layout.height + noticeHeight, 'sequence');
  const svg = noticeHeight ? root.append('g').attr('class', 'diagram').attr('transform', `translate(0,${noticeHeight})`) : root;
  const top = 30;
  const bottom = layout.height - 8;
  const left = layout.rings.length ? layout.rings[0].x0 : 0;
  const right = layout.rings.length ? layout.rings[layout.rings.length - 1].x1 : layout.width;
  const laneWidth = layout.lanes.length ? layout.lanes[0].width : 180;

  root.append('text').attr('class', 'title').attr('x', left).attr('y', 20).attr('font-size', 14).attr('font-weight', 'bold').text(layout.title);
  if (notice.length) {
    appendEach(root.append('g').attr('class', 'notice'), notice, 'text', (t, line, i) => {
      t.attr('x', left).attr('y', 38 + i * 15).attr('fill', COLORS.info).text(line);
    });
  }

  appendEach(svg.append('g').attr('class', 'rings'), layout.rings, 'g', (g, r) => {
    g.append('rect')
      .attr('x', r.x0)
      .attr('y', top)
      .attr('width', r.x1 - r.x0)
      .attr('height', bottom - top)
      .attr('fill', r.ring === 3 ? COLORS.ring3 : COLORS.ring0);
    g.append('text')
      .attr('x', r.x0 + 6)
      .attr('y', top + 16)
      .attr('font-weight', 'bold')
      .attr('fill', r.ring === 3 ? '#1e4e8c' : '#9a4a00')
      .text(r.label);
  });

  appendEach(svg.append('g').attr('class', 'bands'), layout.bands, 'g', (g, b) => {
    // Failed: the call's own status, or a call nested in it (b.failure) — marked on a collapsed,
    // single-row band too: a red border, a red bar on the left and '✗ STATUS_…' on the right.
    const failed = (b.status?.failed ?? false) || b.failure !== undefined;
    g.attr('class', `band${failed ? ' failed' : ''}`)
      .attr('data-syscall', b.syscallId);
    g.append('rect')
      .attr('x', left)
      .attr('y', b.y0)
      .attr('width', right - left)
      .attr('height', b.y1 - b.y0)
      .attr('fill', failed ? COLORS.failFill : COLORS.band)
      .attr('fill-opacity', 0.55)
      .attr('stroke', failed ? COLORS.fail : '#b0bec5');
    if (b.failure) {
      g.append('rect').attr('class', 'fail-bar').attr('x', left).attr('y', b.y0).attr('width', 4).attr('height', b.y1 - b.y0).attr('fill', COLORS.fail);
      g.append('text')
        .attr('class', 'fail-mark')
        .attr('x', right - 6)
        .attr('y', b.y0 + Math.min(layout.rowHeight, b.y1 - b.y0) / 2 + 4)
        .attr('text-anchor', 'end')
        .attr('font-weight', 'bold')
        .attr('fill', COLORS.fail)
        .text(b.failure.label);
    }
    if (b.y1 - b.y0 <= layout.rowHeight) return; // a single row: its arrow carries the label
    const status = b.status ? b.status.name : 'never returned';
    g.append('text')
      .attr('x', left + 6)
      .attr('y', b.y0 + layout.rowHeight / 2 + 4)
      .attr('font-weight', 'bold')
      .attr('fill', failed ? COLORS.fail : COLORS.text)
      .text(`#${b.syscallId} ${b.name} · ${b.entry} · PreviousMode ${b.previousMode || '?'} → ${status}`);
  });

  appendEach(svg.append('g').attr('class', 'lanes'), layout.lanes, 'g', (g, l) => {
    g.attr('class', `lane ring${l.ring}`);
    g.append('line')
      .attr('x1', l.x)
      .attr('y1', layout.headerHeight - 8)
      .attr('x2', l.x)
      .attr('y2', bottom)
      .attr('stroke', COLORS.lifeline)
      .attr('stroke-dasharray', '4,4');
    g.append('rect')
      .attr('x', l.x - l.width / 2 + 6)
      .attr('y', top + 26)
      .attr('width', l.width - 12)
      .attr('height', 26)
      .attr('rx', 5)
      .attr('fill', l.ring === 3 ? COLORS.ring3Box : COLORS.ring0Box)
      .attr('stroke', '#607d8b');
    g.append('text')
      .attr('x', l.x)
      .attr('y', top + 43)
      .attr('text-anchor', 'middle')
      .attr('font-weight', 'bold')
      .text(l.label);
  });

  appendEach(svg.append('g').attr('class', 'steps'), layout.steps, 'g', (g, s) => {
    g.attr('class', `step ${s.kind}${TRANSITIONS.has(s.kind) ? ' transition' : ''}${s.status?.failed ? ' failed' : ''}${s.finding ? ` finding severity-${s.finding.severity}` : ''}`)
      .attr('data-seq', s.seq)
      .attr('data-index', s.index);
    if (s.finding) g.attr('data-finding', s.finding.id);
    if (s.syscallId !== undefined) g.attr('data-syscall', s.syscallId);
    drawStep(g, s, laneWidth, layout.width);
  });

  return serialise(root);
}

/** Flame rectangle colours: ring 3 blues, ring 0 oranges, by module. */
function flameColor(cpl: 0 | 3, module: string): string {
  let h = 0;
  for (let i = 0; i < module.length; i++) h = (h * 31 + module.charCodeAt(i)) >>> 0;
  const shades = cpl === 3 ? ['#9ecae1', '#6baed6', '#c6dbef', '#4292c6'] : ['#fdae6b', '#fd8d3c', '#fdd0a2', '#f16913'];
  return shades[h % shades.length];
}


/** A legend entry drawn into the SVG: a swatch and a text; returns the x after it. */
function svgLegendItem(parent: Selection, x: number, y: number, fill: string, stroke: string, text: string): number {
  parent.append('rect').attr('x', x).attr('y', y - 10).attr('width', 22).attr('height', 12).attr('fill', fill).attr('stroke', stroke);
  parent.append('text').attr('x', x + 28).attr('y', y).text(text);
  return x + 28 + textWidth(text, 11) + 18;
}

/** A flame frame's tooltip: its symbol, module and ring, and the failed call it belongs to. */
function frameTooltip(r: FlameLayout['rects'][number]): string {
  const lines = [`${r.label} (${r.module}, ring ${r.cpl})`];
  if (r.failure) lines.push(`${r.failure.own ? 'failed' : 'inside failed'} system call #${r.failure.syscallId} ${r.failure.name} → ${r.failure.status}`);
  return lines.join('\n');
}

export function renderFlameSvg(layout: FlameLayout): string {
  const svg = newSvg(layout.width, layout.height, 'flame');
  svg.append('text').attr('class', 'title').attr('x', 20).attr('y', 20).attr('font-size', 14).attr('font-weight', 'bold').text(layout.title);
  const legend = svg.append('g').attr('class', 'legend');
  let lx = 20;
  lx = svgLegendItem(legend, lx, 36, flameColor(3, 'ntdll'), '#ffffff', 'ring 3 (user mode)');
  lx = svgLegendItem(legend, lx, 36, flameColor(0, 'nt'), '#ffffff', 'ring 0 (kernel mode)');
  lx = svgLegendItem(legend, lx, 36, COLORS.fail, COLORS.fail, 'failed system call (status ≥ 0xC0000000)');
  svgLegendItem(legend, lx, 36, COLORS.failFill, COLORS.fail, 'a frame inside it');
  appendEach(svg.append('g').attr('class', 'tracks'), layout.tracks, 'g', (g, t) => {
    g.attr('class', 'track').attr('data-thread', t.threadId);
    g.append('rect')
      .attr('x', 0)
      .attr('y', t.y0)
      .attr('width', layout.width)
      .attr('height', t.y1 - t.y0)
      .attr('fill', '#f5f7fa');
    g.append('text').attr('class', 'track-label').attr('x', layout.x0).attr('y', t.y0 + 14).attr('font-weight', 'bold').text(t.label);
  });
  appendEach(svg.append('g').attr('class', 'frames'), layout.rects, 'g', (g, r) => {
    const failed = r.failure ? (r.failure.own ? ' failed' : ' in-failed') : '';
    g.attr('class', `frame ring${r.cpl}${failed}`)
      .attr('data-call', r.id)
      .attr('data-thread', r.threadId);
    g.append('title').text(frameTooltip(r));
    const fill = r.failure ? (r.failure.own ? COLORS.fail : COLORS.failFill) : flameColor(r.cpl, r.module);
    g.append('rect')
      .attr('x', r.x)
      .attr('y', r.y)
      .attr('width', r.width)
      .attr('height', r.height)
      .attr('fill', fill)
      .attr('stroke', r.failure ? COLORS.fail : r.width >= 3 ? '#ffffff' : 'none')
      .attr('stroke-width', r.failure ? 1 : 0.5);
    const text = fitText(r.label, r.width - 6); // 3 px each side
    if (text) {
      g.append('text')
        .attr('x', r.x + 3)
        .attr('y', r.y + r.height - 5)
        .attr('fill', r.failure?.own ? '#ffffff' : COLORS.text)
        .text(text);
    }
  });
  return serialise(svg);
}

export function renderGraphSvg(layout: GraphLayout): string {
  const svg = newSvg(layout.width, layout.height, 'graph');
  svg.append('text').attr('class', 'title').attr('x', 20).attr('y', 22).attr('font-size', 14).attr('font-weight', 'bold').text(layout.title);
  appendEach(svg.append('g').attr('class', 'edges'), layout.edges, 'g', (g, e) => {
    g.attr('class', `edge ${e.kind}${TRANSITIONS.has(e.kind) ? ' transition' : ''}`);
    const transition = TRANSITIONS.has(e.kind);
    const color = transition ? COLORS.transition : COLORS.arrow;
    g.append('title').text(`${e.from} → ${e.to}: ${e.kind} ×${e.count}`);
    g.append('path')
      .attr('d', e.path)
      .attr('fill', 'none')
      .attr('stroke', color)
      .attr('stroke-width', Math.min(1 + Math.log2(e.count), 6))
      .attr('marker-end', transition ? 'url(#arrow-transition)' : 'url(#arrow)');
    const b = e.labelBox;
    g.append('rect').attr('class', 'edge-label-box').attr('x', b.x).attr('y', b.y).attr('width', b.width).attr('height', b.height).attr('rx', 3).attr('fill', '#ffffff').attr('fill-opacity', 0.9);
    g.append('text')
      .attr('class', 'edge-count')
      .attr('x', b.x + 4)
      .attr('y', b.y + b.height - 4)
      .attr('fill', color)
      .text(e.label);
  });
  appendEach(svg.append('g').attr('class', 'nodes'), layout.nodes, 'g', (g, n) => {
    const failed = n.failed?.length ? failedLine(n.failed) : null;
    g.attr('class', `node ring${n.ring}${failed ? ' failed' : ''}`);
    g.append('title').text(`${n.id} (${n.module}, ring ${n.ring})${failed ? `\n${failed}` : ''}`);
    g.append('rect')
      .attr('x', n.x)
      .attr('y', n.y)
      .attr('width', n.width)
      .attr('height', n.height)
      .attr('rx', 5)
      .attr('fill', failed ? COLORS.failFill : n.ring === 3 ? COLORS.ring3Box : COLORS.ring0Box)
      .attr('stroke', failed ? COLORS.fail : '#607d8b')
      .attr('stroke-width', failed ? 2 : 1);
    g.append('text')
      .attr('x', n.x + n.width / 2)
      .attr('y', n.y + 18)
      .attr('text-anchor', 'middle')
      .text(n.id);
    if (failed) {
      g.append('text')
        .attr('class', 'fail-mark')
        .attr('x', n.x + n.width / 2)
        .attr('y', n.y + 34)
        .attr('text-anchor', 'middle')
        .attr('fill', COLORS.fail)
        .text(failed);
    }
  });
  return serialise(svg);
}
