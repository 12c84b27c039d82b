// The flame chart (calls over instructions) and the aggregated call graph of the page. One of the
// page's script parts (see app.js).

// ---- flame chart -------------------------------------------------------------------------------

function drawFlame(root, layout, opts) {
  const f = frame(root, layout.title, opts);
  const rects = layout.rects;
  const GEOMETRY = new Set(['id', 'x', 'y', 'width', 'height', 'label', 'module', 'cpl']);
  const modules = [...new Set(rects.map((r) => r.module))];
  const shade = new Map(modules.map((m, i) => [m, i % 4]));

  // Collapse a function's body: hide the rectangles under it (deeper rows, inside its span).
  const collapsed = new Set();
  const EPS = 1e-6;
  const under = (r, parent) => r.y > parent.y + EPS && r.x >= parent.x - EPS && r.x + r.width <= parent.x + parent.width + EPS;
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
  const viewport = f.svg.append('g').attr('class', 'viewport');
  ringLegend(f.legend);
  legendItem(f.legend, 'collapsed', 'a collapsed function (click to expand)', (sw) => sw.append('rect').attr('class', 'flame-rect collapsed').attr('width', 34).attr('height', 14));
  const pan = zoomable(f.svg, viewport, null, layout.width);
  button(f.buttons, 'ntflow-expand-all', 'expand all', () => {
    collapsed.clear();
    render();
  });
  button(f.buttons, 'ntflow-reset', 'reset zoom', () => pan.reset());

  function render() {
    const hiddenUnder = [...collapsed].map((id) => rects.find((r) => r.id === id));
    const visible = rects.filter((r) => !hiddenUnder.some((p) => under(r, p)));
    const g = viewport
      .selectAll('g.frame')
      .data(visible, (r) => r.id)
      .join((enter) => {
        const e = enter.append('g').attr('data-id', (r) => r.id);
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
      if (hasChildren.has(r.id)) cls += collapsed.has(r.id) ? ' has-body collapsed' : ' has-body';
      if (query && (lower(r.label).includes(query) || lower(r.module).includes(query))) cls += ' match';
      return cls;
    }).attr('transform', (r) => 'translate(' + r.x + ',' + r.y + ')');
    g.select('rect')
      .attr('width', (r) => Math.max(0.5, r.width))
      .attr('height', (r) => Math.max(1, r.height - 1));
    g.select('text')
      .attr('x', 3)
      .attr('y', (r) => Math.min(r.height - 4, 13))
      .text((r) => fit((collapsed.has(r.id) ? '▸ ' : '') + r.label, r.width));
    const n = query ? g.filter('.match').size() : 0;
    f.matches.text(query ? n + (n === 1 ? ' match' : ' matches') : '');
  }

  function flameRows(r) {
    const rows = [
      ['module', r.module],
      ['ring', String(r.cpl)],
    ];
    for (const [k, v] of Object.entries(r)) if (!GEOMETRY.has(k)) rows.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
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
  markers(f.svg, f.id);
  const viewport = f.svg.append('g').attr('class', 'viewport');
  ringLegend(f.legend);
  arrowLegend(f.legend, f.id, new Set(layout.edges.map((e) => e.kind)));
  legendItem(f.legend, 'count', 'edge label: how often it ran', (sw) => sw.append('text').attr('class', 'edge-count').attr('x', 2).attr('y', 11).text('×12'));
  const pan = zoomable(f.svg, viewport, null, layout.width);
  button(f.buttons, 'ntflow-reset', 'reset zoom', () => pan.reset());
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
    .append('text')
    .attr('class', 'edge-count')
    .attr('x', (e) => e.labelX)
    .attr('y', (e) => e.labelY)
    .text((e) => '×' + e.count);
  edge
    .on('mouseenter', (event, e) =>
      showTooltip(f.tooltip, f.canvas.node(), event, e.from + ' → ' + e.to, [
        ['kind', e.kind],
        ['count', String(e.count)],
      ]),
    )
    .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
    .on('mouseleave', () => hideTooltip(f.tooltip));

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
    .attr('y', (n) => n.height / 2 + 4)
    .text((n) => fit(n.id, n.width + 6));
  node
    .on('click', (event, n) => {
      focus = focus === n.id ? null : n.id;
      render();
    })
    .on('mouseenter', (event, n) => {
      const out = layout.edges.filter((e) => e.from === n.id).reduce((a, e) => a + e.count, 0);
      const inn = layout.edges.filter((e) => e.to === n.id).reduce((a, e) => a + e.count, 0);
      showTooltip(f.tooltip, f.canvas.node(), event, n.id, [
        ['module', n.module],
        ['ring', String(n.ring)],
        ['calls in', String(inn)],
        ['calls out', String(out)],
      ]);
    })
    .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
    .on('mouseleave', () => hideTooltip(f.tooltip));

  function render() {
    node.attr('class', (n) => {
      let cls = 'node ring-' + n.ring;
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
