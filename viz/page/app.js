// The in-page script of ntflow's HTML diagrams. viz/html.ts inlines it after d3 (d3.min.js, the
// UMD build: a global `d3`). Each <section class="ntflow-diagram" data-source="ID"> on the page is
// drawn from the JSON in <script type="application/json" id="ID">: { kind, layout, options }.
// The layout is numbers computed in Node (viz/layout.ts); this script only draws it and adds the
// interaction: zoom and pan, collapse/expand of a system call's band or a function's body, a
// tooltip with the step's detail, search by symbol, a legend.
//
// Everything that comes from a trace (labels, symbols, file names, registers) is put into the page
// with d3's .text() or .attr(), never .html() or innerHTML: a file name that looks like an img
// tag with an onerror handler is characters on the screen and runs nothing.
//
// Plain browser JavaScript, not TypeScript: the project compiles without the DOM library, and this
// file is read at run time, so it is kept dependency-free and small.
(function () {
  'use strict';
  const d3 = window.d3;

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

  for (const container of document.querySelectorAll('section.ntflow-diagram[data-source]')) {
    const source = document.getElementById(container.getAttribute('data-source'));
    if (!source) continue;
    const payload = JSON.parse(source.textContent);
    const draw = { sequence: drawSequence, flame: drawFlame, graph: drawGraph }[payload.kind];
    if (!draw) throw new Error('ntflow: unknown diagram kind ' + String(payload.kind));
    draw(d3.select(container), payload.layout, payload.options || {});
    container.setAttribute('data-ready', 'true');
  }
  document.documentElement.setAttribute('data-ntflow-ready', 'true');

  // ---- pieces every diagram shares ---------------------------------------------------------------

  /** Toolbar, legend, canvas (svg + tooltip). Returns the pieces. */
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
    const canvas = root.append('div').attr('class', 'ntflow-canvas');
    const svg = canvas.append('svg').attr('class', 'ntflow-svg').attr('role', 'img').attr('aria-label', title);
    const tooltip = canvas.append('div').attr('class', 'ntflow-tooltip').attr('role', 'tooltip').style('display', 'none');
    const id = 'ntflow' + uid++;
    return { bar, search, matches, buttons, legend, canvas, svg, tooltip, id };
  }

  function button(parent, cls, text, onClick) {
    return parent.append('button').attr('type', 'button').attr('class', cls).text(text).on('click', onClick);
  }

  /** Arrowhead markers, one per kind, ids scoped to this diagram. */
  function markers(svg, id) {
    const defs = svg.append('defs');
    for (const [kind] of KINDS) {
      defs
        .append('marker')
        .attr('id', id + '-arrow-' + kind)
        .attr('class', 'marker kind-' + kind)
        .attr('viewBox', '0 0 10 10')
        .attr('refX', 9)
        .attr('refY', 5)
        .attr('markerUnits', 'userSpaceOnUse')
        .attr('markerWidth', 9)
        .attr('markerHeight', 9)
        .attr('orient', 'auto-start-reverse')
        .append('path')
        .attr('d', kind === 'return' ? 'M1,1 L9,5 L1,9' : 'M0,0 L10,5 L0,10 z');
    }
    defs
      .append('marker')
      .attr('id', id + '-arrow-failed')
      .attr('class', 'marker failed')
      .attr('viewBox', '0 0 10 10')
      .attr('refX', 9)
      .attr('refY', 5)
      .attr('markerUnits', 'userSpaceOnUse')
      .attr('markerWidth', 9)
      .attr('markerHeight', 9)
      .attr('orient', 'auto-start-reverse')
      .append('path')
      .attr('d', 'M0,0 L10,5 L0,10 z');
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

  /** d3.zoom on the svg, the transform applied to `viewport` (and `header`, horizontally only). */
  function zoomable(svg, viewport, header, contentWidth) {
    const zoom = d3
      .zoom()
      .scaleExtent([0.05, 8])
      .on('zoom', (event) => {
        const t = event.transform;
        viewport.attr('transform', t.toString());
        if (header) header.attr('transform', 'translate(' + t.x + ',0) scale(' + t.k + ')');
      });
    svg.call(zoom).on('dblclick.zoom', null);
    const fit = () => {
      const w = svg.node().clientWidth || contentWidth;
      const k = Math.max(0.3, Math.min(1, w / (contentWidth + 16)));
      return d3.zoomIdentity.translate(8, 0).scale(k);
    };
    svg.call(zoom.transform, fit());
    return { zoom, reset: () => svg.transition().duration(200).call(zoom.transform, fit()) };
  }

  function lower(s) {
    return String(s).toLowerCase();
  }

  // ---- sequence diagram --------------------------------------------------------------------------

  function drawSequence(root, layout, opts) {
    const f = frame(root, layout.title, opts);
    const steps = layout.steps;
    const rowH = layout.rowHeight;
    const laneById = new Map(layout.lanes.map((l) => [l.id, l]));

    // A function body. A step that enters a frame (call, sysenter, int) carries the callee's frame
    // as its callId (calls.enter_seq is the entering instruction); the body is every step after it
    // up to the last step of that frame (its return), nested frames included.
    const firstIndexOfCall = new Map();
    const lastIndexOfCall = new Map();
    steps.forEach((s, i) => {
      if (s.callId === undefined || s.callId === null) return;
      if (!firstIndexOfCall.has(s.callId)) firstIndexOfCall.set(s.callId, i);
      lastIndexOfCall.set(s.callId, i);
    });
    const bodyOf = new Map(); // step index → [first, last] step index of the body
    steps.forEach((s, i) => {
      if (!ENTERS.has(s.kind) || s.callId === undefined || s.callId === null) return;
      if (firstIndexOfCall.get(s.callId) !== i) return;
      const last = lastIndexOfCall.get(s.callId);
      if (last > i) bodyOf.set(i, [i + 1, last]);
    });
    const stepsOfBand = new Map(layout.bands.map((b) => [b.syscallId, 0]));
    for (const s of steps) if (stepsOfBand.has(s.syscallId)) stepsOfBand.set(s.syscallId, stepsOfBand.get(s.syscallId) + 1);

    // Collapsed state. Many system calls: start with one row per call (each expands on a click).
    const collapse = opts.collapse || 'auto';
    // 'auto': many steps, or many bands of more than a row each, start as one row per call. (A
    // session drawn as one summary step per call is already that and starts expanded.)
    const manySteps = steps.length > 1500 || (layout.bands.length > 12 && steps.length > 2 * layout.bands.length);
    // A band of one row (a call drawn as one summary arrow) has no title row and nothing to fold.
    const foldable = (b) => stepsOfBand.get(b.syscallId) > 1 && b.y1 - b.y0 > rowH + 0.5;
    const foldableBands = layout.bands.filter(foldable);
    const collapsedBands = new Set(collapse === 'all' || (collapse === 'auto' && manySteps) ? foldableBands.map((b) => b.syscallId) : []);
    const collapsedCalls = new Set(); // step indices

    let query = '';
    let matched = new Set(); // step indices matching the search
    let current = -1; // the match Enter jumped to

    markers(f.svg, f.id);
    const viewport = f.svg.append('g').attr('class', 'viewport');
    const gRings = viewport.append('g').attr('class', 'rings');
    const gLifelines = viewport.append('g').attr('class', 'lifelines');
    const gBands = viewport.append('g').attr('class', 'bands');
    const gSteps = viewport.append('g').attr('class', 'steps');
    const header = f.svg.append('g').attr('class', 'header');

    // Header: ring groups and lane boxes stay at the top while the body pans vertically.
    header.append('rect').attr('class', 'header-bg').attr('x', -4000).attr('width', layout.width + 8000).attr('height', layout.headerHeight);
    const ringHead = header
      .selectAll('g.ring-head')
      .data(layout.rings)
      .join('g')
      .attr('class', (r) => 'ring-head ring-' + r.ring);
    ringHead
      .append('rect')
      .attr('class', (r) => 'ring-bg ring-' + r.ring)
      .attr('x', (r) => r.x0)
      .attr('width', (r) => r.x1 - r.x0)
      .attr('height', layout.headerHeight);
    ringHead
      .append('text')
      .attr('class', 'ring-label')
      .attr('x', (r) => (r.x0 + r.x1) / 2)
      .attr('y', 14)
      .text((r) => r.label);
    const laneHead = header
      .selectAll('g.lane-head')
      .data(layout.lanes)
      .join('g')
      .attr('class', (l) => 'lane-head lane ring-' + l.ring)
      .attr('data-lane', (l) => l.id);
    laneHead
      .append('rect')
      .attr('class', 'lane-box')
      .attr('x', (l) => l.x - l.width / 2 + 4)
      .attr('y', 22)
      .attr('rx', 3)
      .attr('width', (l) => Math.max(8, l.width - 8))
      .attr('height', Math.max(16, layout.headerHeight - 28));
    laneHead.each(function (l) {
      const lines = wrap(l.label, Math.max(6, Math.floor((l.width - 12) / 6.6)));
      const text = d3
        .select(this)
        .append('text')
        .attr('class', 'lane-label')
        .attr('x', l.x)
        .attr('y', 22 + (Math.max(16, layout.headerHeight - 28) - lines.length * 13) / 2 + 10);
      lines.forEach((line, i) =>
        text
          .append('tspan')
          .attr('x', l.x)
          .attr('dy', i === 0 ? 0 : 13)
          .text(line),
      );
      d3.select(this).append('title').text(l.label + ' (ring ' + l.ring + ')');
    });

    // Legend.
    ringLegend(f.legend);
    arrowLegend(f.legend, f.id, null);
    failedLegend(f.legend);
    legendItem(f.legend, 'band', 'system call (click to collapse/expand)', (sw) => sw.append('rect').attr('class', 'band-rect').attr('width', 34).attr('height', 14));

    const pan = zoomable(f.svg, viewport, header, Math.max(layout.width, opts.fitWidth || 0));
    button(f.buttons, 'ntflow-expand-all', 'expand all', () => {
      collapsedBands.clear();
      collapsedCalls.clear();
      render();
    });
    button(f.buttons, 'ntflow-collapse-all', 'collapse all', () => {
      for (const b of foldableBands) collapsedBands.add(b.syscallId);
      render();
    });
    button(f.buttons, 'ntflow-reset', 'reset zoom', () => pan.reset());

    /** The vertical intervals removed by collapsing, merged, with prefix sums for mapping y. */
    function removedIntervals() {
      const raw = [];
      for (const b of layout.bands) if (collapsedBands.has(b.syscallId)) raw.push([b.y0 + rowH, b.y1]);
      for (const i of collapsedCalls) {
        const [first, last] = bodyOf.get(i);
        raw.push([steps[first].y - rowH / 2, steps[last].y + rowH / 2]);
      }
      raw.sort((a, b) => a[0] - b[0]);
      const merged = [];
      for (const r of raw) {
        if (r[1] <= r[0]) continue;
        const top = merged[merged.length - 1];
        if (top && r[0] <= top[1]) top[1] = Math.max(top[1], r[1]);
        else merged.push([r[0], r[1]]);
      }
      const before = [0];
      for (const [a, b] of merged) before.push(before[before.length - 1] + (b - a));
      return { merged, before };
    }

    /** y after collapsing: y minus the removed length above it. */
    function mapper(removed) {
      const { merged, before } = removed;
      const map = (y) => {
        let lo = 0;
        let hi = merged.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (merged[mid][0] < y) lo = mid + 1;
          else hi = mid;
        }
        // merged[0..lo) start above y; only the last of them can contain y.
        if (lo === 0) return y;
        const [a, b] = merged[lo - 1];
        return y - before[lo - 1] - (Math.min(y, b) - a);
      };
      const hidden = (y) => {
        let lo = 0;
        let hi = merged.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (merged[mid][0] < y) lo = mid + 1;
          else hi = mid;
        }
        return lo > 0 && y < merged[lo - 1][1];
      };
      return { map, hidden };
    }

    function stepText(s, i) {
      let text = s.label;
      if (collapsedCalls.has(i)) {
        const [first, last] = bodyOf.get(i);
        text += '  ▸ ' + (last - first + 1) + ' steps';
      }
      return text;
    }

    function bandText(b) {
      const collapsed = collapsedBands.has(b.syscallId);
      const parts = ['#' + b.syscallId, b.name, b.entry, b.previousMode];
      if (b.status) parts.push(b.status.name);
      else parts.push('did not return');
      let text = (collapsed ? '▸ ' : '▾ ') + parts.filter((p) => p !== '' && p !== null && p !== undefined).join(' · ');
      if (collapsed) text += '  (' + stepsOfBand.get(b.syscallId) + ' steps)';
      return text;
    }

    function render() {
      const removed = removedIntervals();
      const { map, hidden } = mapper(removed);
      const height = map(layout.height);

      f.svg.attr('data-height', height);
      gRings
        .selectAll('rect')
        .data(layout.rings)
        .join('rect')
        .attr('class', (r) => 'ring-bg ring-' + r.ring)
        .attr('x', (r) => r.x0)
        .attr('y', layout.headerHeight)
        .attr('width', (r) => r.x1 - r.x0)
        .attr('height', Math.max(0, height - layout.headerHeight));
      gLifelines
        .selectAll('line')
        .data(layout.lanes)
        .join('line')
        .attr('class', (l) => 'lifeline ring-' + l.ring)
        .attr('x1', (l) => l.x)
        .attr('x2', (l) => l.x)
        .attr('y1', layout.headerHeight)
        .attr('y2', height);

      const visibleBands = layout.bands.filter((b) => !hidden(b.y0 + 0.5));
      const band = gBands
        .selectAll('g.band')
        .data(visibleBands, (b) => b.syscallId)
        .join((enter) => {
          const g = enter.append('g').attr('data-syscall', (b) => b.syscallId);
          g.append('rect').attr('class', 'band-rect');
          g.filter(foldable).each(function () {
            // The title row is the click target (steps sit on the rest of the band).
            const head = d3.select(this);
            head.append('rect').attr('class', 'band-head');
            head.append('text').attr('class', 'band-label');
            head.attr('tabindex', 0).attr('role', 'button');
            head.on('click', (event, b) => toggleBand(b.syscallId)).on('keydown', (event, b) => {
              if (event.key === 'Enter' || event.key === ' ') {
                event.preventDefault();
                toggleBand(b.syscallId);
              }
            });
          });
          return g;
        });
      band
        .attr('class', (b) => {
          let cls = foldable(b) ? 'band foldable' : 'band single-row';
          if (collapsedBands.has(b.syscallId)) cls += ' collapsed';
          if (b.status && b.status.failed) cls += ' failed';
          if (query && bandMatches(b)) cls += ' match';
          return cls;
        })
        .attr('aria-expanded', (b) => (foldable(b) ? String(!collapsedBands.has(b.syscallId)) : null))
        .attr('transform', (b) => 'translate(0,' + map(b.y0) + ')');
      band
        .select('rect.band-rect')
        .attr('x', 2)
        .attr('width', layout.width - 4)
        .attr('height', (b) => Math.max(rowH, map(b.y1) - map(b.y0)));
      band
        .select('rect.band-head')
        .attr('x', 2)
        .attr('width', layout.width - 4)
        .attr('height', rowH);
      band
        .select('text.band-label')
        .attr('x', 8)
        .attr('y', 13)
        .text(bandText);

      const visible = [];
      for (let i = 0; i < steps.length; i++) if (!hidden(steps[i].y)) visible.push(i);
      const step = gSteps
        .selectAll('g.step')
        .data(visible, (i) => steps[i].seq + ':' + i)
        .join((enter) => {
          const g = enter.append('g').attr('data-seq', (i) => steps[i].seq);
          g.each(function (i) {
            drawStep(d3.select(this), steps[i], i);
          });
          return g;
        });
      step
        .attr('class', (i) => {
          const s = steps[i];
          let cls = 'step kind-' + s.kind;
          if (RING_TRANSITIONS.has(s.kind)) cls += ' ring-transition';
          if (s.status && s.status.failed) cls += ' failed';
          if (bodyOf.has(i)) cls += collapsedCalls.has(i) ? ' has-body collapsed' : ' has-body';
          if (matched.has(i)) cls += ' match';
          if (i === current) cls += ' current';
          return cls;
        })
        .attr('aria-expanded', (i) => (bodyOf.has(i) ? String(!collapsedCalls.has(i)) : null))
        .attr('transform', (i) => 'translate(0,' + map(steps[i].y) + ')');
      step.select('text.label').text((i) => stepText(steps[i], i));
      step.select('text.toggle').text((i) => (collapsedCalls.has(i) ? '▸' : '▾'));
      return map;
    }

    function drawStep(g, s, i) {
      const failed = s.status && s.status.failed;
      const marker = 'url(#' + f.id + '-arrow-' + (failed ? 'failed' : s.kind) + ')';
      const x1 = s.x1;
      const x2 = s.x2;
      let labelX;
      let anchor = 'middle';
      let hitX0;
      let hitX1;
      if (s.from !== s.to) {
        g.append('line').attr('class', 'arrow').attr('x1', x1).attr('x2', x2).attr('y1', 0).attr('y2', 0).attr('marker-end', marker);
        labelX = (x1 + x2) / 2;
        hitX0 = Math.min(x1, x2);
        hitX1 = Math.max(x1, x2);
      } else if (s.kind === 'note') {
        const lane = laneById.get(s.from);
        const left = x1 - (lane ? lane.width / 2 : 40) + 6;
        g.append('circle').attr('class', 'note-dot').attr('cx', x1).attr('cy', 0).attr('r', 3);
        labelX = x1 + 8;
        anchor = 'start';
        hitX0 = left;
        hitX1 = x1 + 8 + s.label.length * 6.2;
      } else {
        // A call, jump or return within one module: a small loop on the lane.
        g.append('path')
          .attr('class', 'arrow')
          .attr('d', 'M' + x1 + ',' + -rowH * 0.3 + ' h22 v' + rowH * 0.6 + ' h-20')
          .attr('marker-end', marker);
        labelX = x1 + 28;
        anchor = 'start';
        hitX0 = x1;
        hitX1 = x1 + 28 + s.label.length * 6.2;
      }
      g.append('rect')
        .attr('class', 'hit')
        .attr('x', hitX0 - 6)
        .attr('y', -rowH / 2)
        .attr('width', Math.max(40, hitX1 - hitX0 + 12))
        .attr('height', rowH);
      g.append('text')
        .attr('class', 'label')
        .attr('x', labelX)
        .attr('y', s.from !== s.to ? -4 : 4)
        .attr('text-anchor', anchor)
        .text(s.label);
      if (bodyOf.has(i)) {
        g.append('text')
          .attr('class', 'toggle')
          .attr('x', Math.min(x1, x2) - 14)
          .attr('y', 4)
          .text('▾');
        g.attr('tabindex', 0).attr('role', 'button');
        g.on('click', () => toggleCall(i)).on('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            toggleCall(i);
          }
        });
      }
      g.on('mouseenter', (event) => showTooltip(f.tooltip, f.canvas.node(), event, s.label, stepRows(s)))
        .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
        .on('mouseleave', () => hideTooltip(f.tooltip));
    }

    function stepRows(s) {
      const from = laneById.get(s.from);
      const to = laneById.get(s.to);
      const rows = [
        ['event', 'seq ' + s.seq + ' · ' + s.kind],
        ['lanes', (from ? from.label : s.from) + (s.from === s.to ? '' : ' → ' + (to ? to.label : s.to))],
      ];
      if (s.status) rows.push(['status', s.status.name + ' (0x' + (s.status.code >>> 0).toString(16).toUpperCase().padStart(8, '0') + ')']);
      for (const [k, v] of Object.entries(s.detail || {})) rows.push([k, String(v)]);
      return rows;
    }

    function toggleBand(id) {
      if (collapsedBands.has(id)) collapsedBands.delete(id);
      else collapsedBands.add(id);
      hideTooltip(f.tooltip);
      render();
    }

    function toggleCall(i) {
      if (collapsedCalls.has(i)) collapsedCalls.delete(i);
      else collapsedCalls.add(i);
      hideTooltip(f.tooltip);
      render();
    }

    function stepMatches(s, q) {
      if (lower(s.label).includes(q)) return true;
      for (const v of Object.values(s.detail || {})) if (lower(v).includes(q)) return true;
      return false;
    }

    const bandMatchCache = new Map();
    function bandMatches(b) {
      if (!bandMatchCache.has(b.syscallId)) {
        let hit = lower(b.name).includes(query);
        if (!hit) for (const i of matched) if (steps[i].syscallId === b.syscallId) hit = true;
        bandMatchCache.set(b.syscallId, hit);
      }
      return bandMatchCache.get(b.syscallId);
    }

    function runSearch() {
      query = lower(f.search.property('value').trim());
      matched = new Set();
      bandMatchCache.clear();
      current = -1;
      if (query) steps.forEach((s, i) => stepMatches(s, query) && matched.add(i));
      f.matches.text(query ? matched.size + (matched.size === 1 ? ' match' : ' matches') + (matched.size ? ' (Enter: next)' : '') : '');
      render();
    }

    /** Enter: the next match, its band and enclosing bodies expanded, centred in view. */
    function nextMatch() {
      if (!matched.size) return;
      const order = [...matched].sort((a, b) => a - b);
      current = order.find((i) => i > current) ?? order[0];
      const s = steps[current];
      collapsedBands.delete(s.syscallId);
      for (const i of [...collapsedCalls]) {
        const [first, last] = bodyOf.get(i);
        if (current >= first && current <= last) collapsedCalls.delete(i);
      }
      const map = render();
      const svgNode = f.svg.node();
      const x = (s.x1 + s.x2) / 2;
      f.svg
        .transition()
        .duration(250)
        .call(pan.zoom.translateTo, x, map(s.y), [svgNode.clientWidth / 2, svgNode.clientHeight / 2]);
    }

    f.search.on('input', runSearch).on('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        nextMatch();
      }
    });

    render();
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

  /** The label cut to what fits in `width` pixels (about 6.6 px a character), or nothing. */
  function fit(label, width) {
    const n = Math.floor((width - 6) / 6.6);
    if (n < 2) return '';
    return label.length <= n ? label : label.slice(0, n - 1) + '…';
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
})();
