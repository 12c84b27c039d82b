// The flame chart (calls over instructions, a track per guest thread) and the aggregated call
// graph of the page. One of the page's script parts (see app.js). Neither diagram shrinks its
// text to fit: the page opens at the layout's own scale (11 px labels) and pans; the flame chart
// zooms along x only, so its labels stay 11 px and show more of themselves as frames widen.

/** The canvas as tall as the drawing, up to 72% of the window: no empty space under a short chart. */
function fitCanvasHeight(canvas, height) {
  canvas.style('height', 'min(72vh, ' + Math.ceil(height + 2) + 'px)').style('min-height', Math.min(320, Math.ceil(height + 2)) + 'px');
}

/**
 * Labels cut to the width they have, measured in the font they are drawn in (a canvas measures
 * without laying the page out): the whole label, else its start and '…', else nothing.
 */
function labelFitter(svg, cls) {
  const probe = svg.append('text').attr('class', cls).text('x');
  const style = getComputedStyle(probe.node());
  const font = style.fontStyle + ' ' + style.fontWeight + ' ' + style.fontSize + ' ' + style.fontFamily;
  probe.remove();
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = font;
  const widthOf = (s) => ctx.measureText(s).width;
  return (label, width) => {
    const room = width - 6;
    if (room <= 0) return '';
    if (widthOf(label) <= room) return label;
    let lo = 0;
    let hi = label.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (widthOf(label.slice(0, mid) + '…') <= room) lo = mid;
      else hi = mid - 1;
    }
    return lo >= 2 ? label.slice(0, lo) + '…' : '';
  };
}

// ---- flame chart -------------------------------------------------------------------------------

function drawFlame(root, layout, opts) {
  const f = frame(root, layout.title, opts);
  // The page has its own heading and legend: the layout's header space (the SVG's title) is left out.
  const top = layout.tracks.length ? Math.max(0, layout.tracks[0].y0 - 8) : 0;
  fitCanvasHeight(f.canvas, layout.height - top - layout.x0 + 8); // x0 is the layout's margin
  const rects = layout.rects;
  const modules = [...new Set(rects.map((r) => r.module))];
  const shade = new Map(modules.map((m, i) => [m, i % 4]));
  const trackOf = new Map(layout.tracks.map((t) => [t.threadId, t]));

  // Collapse a function's body: hide the rectangles under it (its thread, deeper rows, inside its span).
  const collapsed = new Set();
  const EPS = 1e-6;
  const under = (r, parent) =>
    r.threadId === parent.threadId && r.y > parent.y + EPS && r.x >= parent.x - EPS && r.x + r.width <= parent.x + parent.width + EPS;
  const hasChildren = new Set();
  {
    const byX = [...rects].sort((a, b) => a.x - b.x || a.y - b.y);
    for (const p of rects) {
      for (const r of byX) {
        if (r.x > p.x + p.width) break;
        if (r !== p && under(r, p)) {
          hasChildren.add(p.id);
          break;
        }
      }
    }
  }

  let query = '';
  // The view: x = tx + k·x (zoom along time), y = ty + y (pan only).
  let view = { k: 1, tx: 0, ty: -top };
  const fitLabel = labelFitter(f.svg, 'flame-label');
  const tracksG = f.svg.append('g').attr('class', 'tracks');
  const viewport = f.svg.append('g').attr('class', 'viewport');
  // The rings in the frames' own shades (the page's ring legend is the sequence diagram's pale bands).
  for (const ring of [3, 0]) {
    legendItem(f.legend, 'ring-' + ring, ring === 3 ? 'ring 3 (user mode)' : 'ring 0 (kernel mode)', (sw) =>
      sw.append('rect').attr('class', 'flame-rect legend-ring-' + ring).attr('width', 34).attr('height', 14),
    );
  }
  legendItem(f.legend, 'failed', 'failed system call (status ≥ 0xC0000000)', (sw) => sw.append('rect').attr('class', 'flame-rect failed-swatch-own').attr('width', 34).attr('height', 14));
  legendItem(f.legend, 'in-failed', 'a frame inside a failed call', (sw) => sw.append('rect').attr('class', 'flame-rect failed-swatch-in').attr('width', 34).attr('height', 14));
  legendItem(f.legend, 'collapsed', 'a collapsed function (click to expand)', (sw) => sw.append('rect').attr('class', 'flame-rect collapsed').attr('width', 34).attr('height', 14));

  const maxK = Math.max(1, 80 / Math.max(layout.scale, 1e-9)); // up to 80 px an instruction
  const zoom = d3
    .zoom()
    .scaleExtent([1, maxK])
    .on('zoom', (event) => {
      const t = event.transform;
      const canvasH = f.svg.node().clientHeight || layout.height;
      const canvasW = f.svg.node().clientWidth || layout.width;
      // Keep some of the drawing in view: x within the zoomed content, y within the tracks.
      const tx = Math.min(0, Math.max(t.x, canvasW - layout.width * t.k));
      const ty = Math.min(0, Math.max(t.y, Math.min(0, canvasH - (layout.height - top))));
      view = { k: t.k, tx, ty: ty - top };
      render();
    });
  f.svg.call(zoom).on('dblclick.zoom', null);
  button(f.buttons, 'ntflow-expand-all', 'expand all', () => {
    collapsed.clear();
    render();
  });
  button(f.buttons, 'ntflow-reset', 'reset zoom', () => f.svg.call(zoom.transform, d3.zoomIdentity));

  const xOf = (r) => view.tx + view.k * r.x;
  const wOf = (r) => view.k * r.width;

  function renderTracks() {
    const g = tracksG
      .selectAll('g.track')
      .data(layout.tracks, (t) => t.threadId)
      .join((enter) => {
        const e = enter.append('g').attr('class', 'track').attr('data-thread', (t) => t.threadId);
        e.append('rect').attr('class', 'track-bg');
        e.append('text').attr('class', 'track-label');
        return e;
      });
    g.attr('transform', 'translate(0,' + view.ty + ')');
    g.select('rect')
      .attr('x', 0)
      .attr('y', (t) => t.y0)
      .attr('width', Math.max(layout.width * view.k, f.svg.node().clientWidth || 0))
      .attr('height', (t) => t.y1 - t.y0);
    g.select('text')
      .attr('x', layout.x0)
      .attr('y', (t) => t.y0 + 14)
      .text((t) => t.label);
  }

  function render() {
    renderTracks();
    const hiddenUnder = [...collapsed].map((id) => rects.find((r) => r.id === id));
    const visible = rects.filter((r) => !hiddenUnder.some((p) => under(r, p)));
    viewport.attr('transform', 'translate(0,' + view.ty + ')');
    const g = viewport
      .selectAll('g.frame')
      .data(visible, (r) => r.id)
      .join((enter) => {
        const e = enter.append('g').attr('data-id', (r) => r.id).attr('data-thread', (r) => r.threadId);
        e.append('rect').attr('class', 'flame-rect');
        e.append('text').attr('class', 'flame-label');
        e.on('click', (event, r) => {
          if (!hasChildren.has(r.id)) return;
          if (collapsed.has(r.id)) collapsed.delete(r.id);
          else collapsed.add(r.id);
          hideTooltip(f.tooltip);
          render();
        })
          .on('mouseenter', (event, r) => showTooltip(f.tooltip, f.canvas.node(), event, r.label, flameRows(r)))
          .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
          .on('mouseleave', () => hideTooltip(f.tooltip));
        return e;
      });
    g.attr('class', (r) => {
      let cls = 'frame ring-' + r.cpl + ' shade-' + shade.get(r.module);
      if (r.failure) cls += r.failure.own ? ' failed' : ' in-failed';
      if (hasChildren.has(r.id)) cls += collapsed.has(r.id) ? ' has-body collapsed' : ' has-body';
      // A folded function that hides a failed call says so (red border), or the failure would vanish.
      if (collapsed.has(r.id) && rects.some((x) => x.failure && under(x, r))) cls += ' holds-failure';
      if (query && (lower(r.label).includes(query) || lower(r.module).includes(query))) cls += ' match';
      return cls;
    }).attr('transform', (r) => 'translate(' + xOf(r) + ',' + r.y + ')');
    g.select('rect')
      .attr('width', (r) => Math.max(0.5, wOf(r)))
      .attr('height', (r) => Math.max(1, r.height - 1));
    g.select('text')
      .attr('x', 3)
      .attr('y', (r) => Math.min(r.height - 4, 13))
      .text((r) => fitLabel((collapsed.has(r.id) ? '▸ ' : '') + r.label, wOf(r)));
    const n = query ? g.filter('.match').size() : 0;
    f.matches.text(query ? n + (n === 1 ? ' match' : ' matches') : '');
  }

  function flameRows(r) {
    const track = trackOf.get(r.threadId);
    const rows = [
      ['module', r.module],
      ['ring', String(r.cpl)],
      ['thread', track ? track.label : String(r.threadId)],
    ];
    if (r.failure) rows.push([r.failure.own ? 'failed call' : 'inside failed call', '#' + r.failure.syscallId + ' ' + r.failure.name + ' → ' + r.failure.status]);
    return rows;
  }

  f.search.on('input', () => {
    query = lower(f.search.property('value').trim());
    render();
  });
  render();
}

// ---- aggregated call graph ---------------------------------------------------------------------

function drawGraph(root, layout, opts) {
  const f = frame(root, layout.title, opts);
  fitCanvasHeight(f.canvas, layout.height);
  markers(f.svg, f.id);
  const viewport = f.svg.append('g').attr('class', 'viewport');
  const fitNode = labelFitter(f.svg, 'node-label');
  const fitCount = labelFitter(f.svg, 'edge-count');
  ringLegend(f.legend);
  arrowLegend(f.legend, f.id, new Set(layout.edges.map((e) => e.kind)));
  legendItem(f.legend, 'count', 'edge label: how often it ran', (sw) => sw.append('text').attr('class', 'edge-count').attr('x', 2).attr('y', 11).text('×12'));
  if (layout.nodes.some((n) => n.failed && n.failed.length)) {
    legendItem(f.legend, 'failed', 'a service routine of failed calls (✗ status)', (sw) => sw.append('rect').attr('class', 'node-rect failed-swatch-node').attr('width', 34).attr('height', 14).attr('rx', 3));
  }
  // At the layout's own scale (labels 11 px); pan by dragging, the wheel zooms.
  const zoom = d3
    .zoom()
    .scaleExtent([0.2, 4])
    .on('zoom', (event) => viewport.attr('transform', event.transform.toString()));
  f.svg.call(zoom).on('dblclick.zoom', null);
  button(f.buttons, 'ntflow-reset', 'reset zoom', () => f.svg.transition().duration(200).call(zoom.transform, d3.zoomIdentity));
  const maxCount = Math.max(1, ...layout.edges.map((e) => e.count));
  const widthOf = d3.scaleLog().domain([1, maxCount]).range([1.2, 5]).clamp(true);
  let focus = null;
  let query = '';

  const gEdges = viewport.append('g').attr('class', 'edges');
  const gNodes = viewport.append('g').attr('class', 'nodes');
  const edge = gEdges
    .selectAll('g.edge')
    .data(layout.edges)
    .join('g')
    .attr('class', (e) => 'edge kind-' + e.kind + (RING_TRANSITIONS.has(e.kind) ? ' ring-transition' : ''))
    .attr('data-from', (e) => e.from)
    .attr('data-to', (e) => e.to);
  edge
    .append('path')
    .attr('class', 'arrow')
    .attr('d', (e) => e.path)
    .attr('stroke-width', (e) => widthOf(e.count))
    .attr('marker-end', (e) => 'url(#' + f.id + '-arrow-' + e.kind + ')');
  edge
    .append('path')
    .attr('class', 'hit')
    .attr('d', (e) => e.path);
  edge
    .append('rect')
    .attr('class', 'edge-label-box')
    .attr('x', (e) => e.labelBox.x)
    .attr('y', (e) => e.labelBox.y)
    .attr('width', (e) => e.labelBox.width)
    .attr('height', (e) => e.labelBox.height)
    .attr('rx', 3);
  edge
    .append('text')
    .attr('class', 'edge-count')
    .attr('x', (e) => e.labelBox.x + 4)
    .attr('y', (e) => e.labelBox.y + e.labelBox.height - 4)
    .text((e) => fitCount(e.label, e.labelBox.width - 2));
  edge
    .on('mouseenter', (event, e) =>
      showTooltip(f.tooltip, f.canvas.node(), event, e.from + ' → ' + e.to, [
        ['kind', e.kind],
        ['count', String(e.count)],
      ]),
    )
    .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
    .on('mouseleave', () => hideTooltip(f.tooltip));

  const failedText = (n) => '✗ ' + n.failed.map((x) => x.status + (x.count > 1 ? ' ×' + x.count : '')).join(', ');
  const node = gNodes
    .selectAll('g.node')
    .data(layout.nodes)
    .join('g')
    .attr('data-node', (n) => n.id)
    .attr('tabindex', 0)
    .attr('role', 'button')
    .attr('transform', (n) => 'translate(' + n.x + ',' + n.y + ')');
  node
    .append('rect')
    .attr('class', 'node-rect')
    .attr('rx', 4)
    .attr('width', (n) => n.width)
    .attr('height', (n) => n.height);
  node
    .append('text')
    .attr('class', 'node-label')
    .attr('x', (n) => n.width / 2)
    .attr('y', 18)
    .text((n) => fitNode(n.id, n.width));
  node
    .filter((n) => n.failed && n.failed.length)
    .append('text')
    .attr('class', 'node-label fail-mark')
    .attr('x', (n) => n.width / 2)
    .attr('y', 34)
    .text((n) => fitNode(failedText(n), n.width));
  node
    .on('click', (event, n) => {
      focus = focus === n.id ? null : n.id;
      render();
    })
    .on('mouseenter', (event, n) => {
      const out = layout.edges.filter((e) => e.from === n.id).reduce((a, e) => a + e.count, 0);
      const inn = layout.edges.filter((e) => e.to === n.id).reduce((a, e) => a + e.count, 0);
      const rows = [
        ['module', n.module],
        ['ring', String(n.ring)],
        ['calls in', String(inn)],
        ['calls out', String(out)],
      ];
      if (n.failed && n.failed.length) rows.push(['failed', failedText(n).slice(2)]);
      showTooltip(f.tooltip, f.canvas.node(), event, n.id, rows);
    })
    .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
    .on('mouseleave', () => hideTooltip(f.tooltip));

  function render() {
    node.attr('class', (n) => {
      let cls = 'node ring-' + n.ring;
      if (n.failed && n.failed.length) cls += ' failed';
      if (focus === n.id) cls += ' focus';
      if (query && (lower(n.id).includes(query) || lower(n.module).includes(query))) cls += ' match';
      return cls;
    });
    edge.classed('dim', (e) => focus !== null && e.from !== focus && e.to !== focus);
    const n = query ? node.filter('.match').size() : 0;
    f.matches.text(query ? n + (n === 1 ? ' match' : ' matches') : '');
  }
  f.search.on('input', () => {
    query = lower(f.search.property('value').trim());
    render();
  });
  render();
}
