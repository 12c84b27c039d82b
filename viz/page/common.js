// Pieces every diagram of the page shares: the frame (title, toolbar, legend, canvas, tooltip),
// buttons, arrow markers, legend entries, the tooltip, zoom and pan, text helpers. One of the
// page's script parts: viz/html.ts joins viz/page/*.js into one script inside one function (see
// app.js), so these are plain declarations that the other parts call.

/** Arrow kinds, in the legend's order, with what each means. */
const KINDS = [
  ['call', 'call'],
  ['return', 'return'],
  ['jump', 'jump (jmp)'],
  ['sysenter', 'SYSENTER (ring 3 → 0)'],
  ['sysexit', 'SYSEXIT (ring 0 → 3)'],
  ['int', 'INT (ring 3 → 0)'],
  ['iret', 'IRETD (ring 0 → 3)'],
  ['exception', 'exception'],
];
const RING_TRANSITIONS = new Set(['sysenter', 'sysexit', 'int', 'iret', 'exception']);
/** Step kinds that open a frame (a function's body). */
const ENTERS = new Set(['call', 'sysenter', 'int']);

let uid = 0;

/** Toolbar, legend, body (canvas: svg + tooltip; room beside it). Returns the pieces. */
function frame(root, title, opts) {
  if (opts.showTitle !== false) root.append('h2').attr('class', 'ntflow-title').text(title);
  if (opts.caption) root.append('p').attr('class', 'ntflow-caption').text(opts.caption);
  const bar = root.append('div').attr('class', 'ntflow-toolbar');
  const search = bar
    .append('input')
    .attr('type', 'search')
    .attr('class', 'ntflow-search')
    .attr('placeholder', 'search symbol…')
    .attr('aria-label', 'search by symbol');
  const matches = bar.append('span').attr('class', 'ntflow-matches').attr('aria-live', 'polite');
  const buttons = bar.append('span').attr('class', 'ntflow-buttons');
  const legend = root.append('div').attr('class', 'ntflow-legend').attr('aria-label', 'legend');
  // The canvas, and beside it whatever a diagram lists (a sequence diagram's findings).
  const body = root.append('div').attr('class', 'ntflow-body');
  const canvas = body.append('div').attr('class', 'ntflow-canvas');
  const svg = canvas.append('svg').attr('class', 'ntflow-svg').attr('role', 'img').attr('aria-label', title);
  const tooltip = canvas.append('div').attr('class', 'ntflow-tooltip').attr('role', 'tooltip').style('display', 'none');
  const id = 'ntflow' + uid++;
  return { bar, search, matches, buttons, legend, body, canvas, svg, tooltip, id };
}

function button(parent, cls, text, onClick) {
  return parent.append('button').attr('type', 'button').attr('class', cls).text(text).on('click', onClick);
}

/** Arrowhead markers, one per kind and one for a failed step, ids scoped to this diagram. */
function markers(svg, id) {
  const defs = svg.append('defs');
  const heads = [...KINDS.map(([kind]) => ['kind-' + kind, id + '-arrow-' + kind, kind === 'return']), ['failed', id + '-arrow-failed', false]];
  for (const [cls, markerId, open] of heads) {
    defs
      .append('marker')
      .attr('id', markerId)
      .attr('class', 'marker ' + cls)
      .attr('viewBox', '0 0 10 10')
      .attr('refX', 9)
      .attr('refY', 5)
      .attr('markerUnits', 'userSpaceOnUse')
      .attr('markerWidth', 9)
      .attr('markerHeight', 9)
      .attr('orient', 'auto-start-reverse')
      .append('path')
      .attr('d', open ? 'M1,1 L9,5 L1,9' : 'M0,0 L10,5 L0,10 z');
  }
}

/** A legend entry: a small SVG swatch and a text. */
function legendItem(legend, cls, text, drawSwatch) {
  const item = legend.append('span').attr('class', 'ntflow-legend-item ' + cls);
  const sw = item.append('svg').attr('width', 34).attr('height', 14).attr('aria-hidden', 'true');
  drawSwatch(sw);
  item.append('span').text(text);
  return item;
}

function ringLegend(legend) {
  legendItem(legend, 'ring-3', 'ring 3 (user mode)', (sw) => sw.append('rect').attr('class', 'ring-bg ring-3').attr('width', 34).attr('height', 14));
  legendItem(legend, 'ring-0', 'ring 0 (kernel mode)', (sw) => sw.append('rect').attr('class', 'ring-bg ring-0').attr('width', 34).attr('height', 14));
}

function arrowLegend(legend, id, kinds) {
  for (const [kind, text] of KINDS) {
    if (kinds && !kinds.has(kind)) continue;
    legendItem(legend, 'kind-' + kind, text, (sw) =>
      sw
        .append('line')
        .attr('class', 'arrow kind-' + kind)
        .attr('x1', 2)
        .attr('x2', 30)
        .attr('y1', 7)
        .attr('y2', 7)
        .attr('marker-end', 'url(#' + id + '-arrow-' + kind + ')'),
    );
  }
}

function failedLegend(legend) {
  legendItem(legend, 'failed', 'failing NTSTATUS', (sw) => sw.append('rect').attr('class', 'failed-swatch').attr('y', 3).attr('width', 34).attr('height', 8));
}

/** Tooltip: a heading and key/value rows, all text. */
function showTooltip(tooltip, canvasNode, event, heading, rows) {
  tooltip.selectAll('*').remove();
  tooltip.append('div').attr('class', 'ntflow-tooltip-heading').text(heading);
  const table = tooltip.append('table');
  for (const [k, v] of rows) {
    const tr = table.append('tr');
    tr.append('th').text(k);
    tr.append('td').text(v);
  }
  tooltip.style('display', 'block');
  moveTooltip(tooltip, canvasNode, event);
}

function moveTooltip(tooltip, canvasNode, event) {
  const [px, py] = d3.pointer(event, canvasNode);
  const node = tooltip.node();
  const maxX = canvasNode.clientWidth - node.offsetWidth - 4;
  const maxY = canvasNode.clientHeight - node.offsetHeight - 4;
  tooltip.style('left', Math.max(4, Math.min(px + 16, maxX)) + 'px').style('top', Math.max(4, Math.min(py + 16, maxY)) + 'px');
}

function hideTooltip(tooltip) {
  tooltip.style('display', 'none');
}

function lower(s) {
  return String(s).toLowerCase();
}

/** Splits a label into lines of at most `max` characters, at spaces or slashes. */
function wrap(label, max) {
  const words = String(label).split(/(?<=[ /])/);
  const lines = [];
  let line = '';
  for (const w of words) {
    if (line && (line + w).trimEnd().length > max) {
      lines.push(line.trimEnd());
      line = '';
    }
    line += w;
  }
  if (line.trim()) lines.push(line.trimEnd());
  if (lines.length > 3) return [lines[0], lines[1], lines.slice(2).join(' ').slice(0, max - 1) + '…'];
  return lines;
}

/** The label cut to what fits in `width` pixels (about 6.6 px a character), or nothing. */
function fit(label, width) {
  const n = Math.floor((width - 6) / 6.6);
  if (n < 2) return '';
  return label.length <= n ? label : label.slice(0, n - 1) + '…';
}
