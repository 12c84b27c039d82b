// The sequence diagram of the page: lanes by ring, one row per step, system-call bands that
// collapse, function bodies that fold, search, and the findings — notes by severity, failed bands
// marked even when collapsed, a "next failure" control and the findings list (viz/page/findings.js).
// On a comparison page (options.link) also where the two sessions' paths part and join again, the
// gaps left for rows only the other side has, and the collapse state and view shared with the other
// diagram (viz/page/diff.js). One of the page's script parts (see app.js).

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
  // On a comparison page the rows of the two diagrams line up: a system call folds on both sides
  // at once (its partner folds with it), a function body, which has no partner, does not fold.
  const link = opts.link ? linkOf(opts.link) : null;
  if (link) bodyOf.clear();
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
  const startCollapsed = collapse === 'all' || (collapse === 'auto' && manySteps) ? foldableBands.map((b) => b.syscallId) : [];
  const collapsedBands = link ? link.bands : new Set();
  for (const id of startCollapsed) collapsedBands.add(id);
  const collapsedCalls = new Set(); // step indices

  let query = '';
  const SEARCH_OPENS = 40; // bands a search opens at most
  let isHidden = () => false; // whether drawing y is folded away, as last drawn
  let matched = new Set(); // step indices matching the search
  let current = -1; // the match Enter jumped to

  // Findings: the list beside the drawing, the failed calls in order for "next failure", and the
  // one thing in the spotlight (a finding's note or a failed band), if any.
  const findings = layout.findings || [];
  const stops = failureStops(layout);
  let stop = -1; // the failure "next failure" went to
  let spot = null; // { step: index } or { band: syscallId }

  markers(f.svg, f.id);
  const viewport = f.svg.append('g').attr('class', 'viewport');
  // The drawing's box: every label stays inside it (cut with an ellipsis where it would not).
  const area = viewport.append('rect').attr('class', 'drawing-area').attr('x', 0).attr('y', 0).attr('width', layout.width);
  let drawnHeight = layout.height;
  const gRings = viewport.append('g').attr('class', 'rings');
  const gLifelines = viewport.append('g').attr('class', 'lifelines');
  const gBands = viewport.append('g').attr('class', 'bands');
  const gGaps = viewport.append('g').attr('class', 'gaps');
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
  findingLegend(f.legend, findings);
  diffLegend(f.legend, layout, link !== null);
  legendItem(f.legend, 'band', 'system call (click to collapse/expand)', (sw) => sw.append('rect').attr('class', 'band-rect').attr('width', 34).attr('height', 14));

  // At its own size (scale 1: every label at its CSS font size, 11 px and up); it pans, it does not shrink.
  const pan = sequenceView(f.svg, viewport, header, () => ({ width: Math.max(layout.width, opts.fitWidth || 0), height: drawnHeight }), link ? (t) => link.zoomed(t) : null);
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
  const nextButton = button(f.buttons, 'ntflow-next-failure', stops.length ? 'next failure (n)' : 'no failures', () => nextFailure(1))
    .attr('title', stops.length ? 'the next failed call: its red note, or its band (key n; N goes back)' : 'every call of this diagram succeeded')
    .property('disabled', stops.length === 0);
  const stopText = f.buttons.append('span').attr('class', 'ntflow-failure-pos').attr('aria-live', 'polite');
  const panel = findings.length ? findingsPanel(f.body, findings, selectFinding) : null;

  /** The rows its collapsed bands take away (below each one's title row). */
  function bandIntervals() {
    return layout.bands.filter((b) => collapsedBands.has(b.syscallId)).map((b) => [b.y0 + rowH, b.y1]);
  }

  /** The vertical intervals removed by collapsing, merged, with prefix sums for mapping y. */
  function removedIntervals() {
    // On a comparison page, also what the other diagram's collapsed bands take away: the same rows.
    const raw = link ? [...bandIntervals(), ...link.otherIntervals()] : bandIntervals();
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
    // How many merged ranges start above y (binary search: they are sorted and disjoint).
    const startsAbove = (y) => {
      let lo = 0;
      let hi = merged.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (merged[mid][0] < y) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const map = (y) => {
      const n = startsAbove(y);
      // merged[0..n) start above y; only the last of them can contain y.
      if (n === 0) return y;
      const [a, b] = merged[n - 1];
      return y - before[n - 1] - (Math.min(y, b) - a);
    };
    const hidden = (y) => {
      const n = startsAbove(y);
      return n > 0 && y < merged[n - 1][1];
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
    isHidden = hidden;
    const height = map(layout.height);
    drawnHeight = height;
    area.attr('height', height);

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
        // A failed call, or one holding a failed call: a red bar and '✗ STATUS_…', collapsed or not.
        g.filter((b) => b.failure).each(function (b) {
          const mark = d3.select(this);
          mark.append('rect').attr('class', 'fail-bar');
          mark.append('text').attr('class', 'fail-mark').text(b.failure.label);
        });
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
        if ((b.status && b.status.failed) || b.failure) cls += ' failed';
        if (query && bandMatches(b)) cls += ' match';
        if (spot && spot.band === b.syscallId) cls += ' spotlight';
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
      .select('rect.fail-bar')
      .attr('x', 2)
      .attr('width', 4)
      .attr('height', (b) => Math.max(rowH, map(b.y1) - map(b.y0)));
    band.select('text.fail-mark').attr('x', layout.width - 10).attr('y', rowH / 2 + 4);
    // The title, cut (whole in its tooltip) where it would reach the failure mark or the edge.
    band.select('text.band-label').attr('x', 8).attr('y', 13).each(function (b) {
      const text = bandText(b);
      if (this.__label === text) return;
      this.__label = text;
      // The mark's width is measured only when the two might meet (measuring forces a layout).
      const mayMeet = b.failure && (text.length + b.failure.label.length) * 11 > layout.width - 30;
      const mark = mayMeet ? d3.select(this.parentNode).select('text.fail-mark').node() : null;
      const markWidth = mark ? mark.getComputedTextLength() + 16 : b.failure ? b.failure.label.length * 11 + 16 : 0;
      fitLabel(d3.select(this), text, 8, 'start', 4, layout.width - 10 - markWidth);
    });

    const visible = [];
    for (let i = 0; i < steps.length; i++) if (!hidden(steps[i].y)) visible.push(i);
    const step = gSteps
      .selectAll('g.step')
      .data(visible, (i) => steps[i].seq + ':' + i)
      .join((enter) => {
        // Classed before it is drawn: the label is measured in the font its class gives it.
        const g = enter.append('g').attr('data-seq', (i) => steps[i].seq).attr('class', stepClass);
        g.each(function (i) {
          drawStep(d3.select(this), steps[i], i);
        });
        return g;
      });
    step
      .attr('class', stepClass)
      .attr('aria-expanded', (i) => (bodyOf.has(i) ? String(!collapsedCalls.has(i)) : null))
      .attr('transform', (i) => 'translate(0,' + map(steps[i].y) + ')');
    step.each(function (i) {
      const text = stepText(steps[i], i);
      if (this.__label !== text) setLabel(d3.select(this), steps[i], text);
    });
    step.select('text.toggle').text((i) => (collapsedCalls.has(i) ? '▸' : '▾'));
    drawGaps(gGaps, layout, map, hidden);
    if (link) link.rendered();
    if (panel) panel.mark(spot && spot.step !== undefined && steps[spot.step].finding ? steps[spot.step].finding.id : null);
    stopText.text(stop >= 0 ? 'failure ' + (stop + 1) + ' of ' + stops.length : stops.length ? stops.length + (stops.length === 1 ? ' failure' : ' failures') : '');
    return map;
  }

  function stepClass(i) {
    const s = steps[i];
    let cls = 'step kind-' + s.kind;
    if (RING_TRANSITIONS.has(s.kind)) cls += ' ring-transition';
    if (s.status && s.status.failed) cls += ' failed';
    if (bodyOf.has(i)) cls += collapsedCalls.has(i) ? ' has-body collapsed' : ' has-body';
    if (s.finding) cls += ' finding severity-' + s.finding.severity;
    if (s.diff) cls += ' diff-mark diff-' + s.diff.kind;
    if (matched.has(i)) cls += ' match';
    if (i === current) cls += ' current';
    if (spot && spot.step === i) cls += ' spotlight';
    return cls;
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
      // A finding's note is a box coloured by its severity, a comparison's (where the paths part
      // or join again) a box outlined in magenta; drawn under the dot and the label, sized to the
      // label once it is drawn (setLabel). A comparison's note that would run past the drawing's
      // right edge opens to the left of its dot instead.
      const boxWidth = s.label.length * 6.6 + 24;
      const flip = s.diff && x1 - 8 + boxWidth > layout.width && x1 + 8 - boxWidth >= 0;
      if (s.finding) g.append('rect').attr('class', 'finding-box note-box').attr('y', -rowH / 2 + 3).attr('rx', 4).attr('height', rowH - 6);
      if (s.diff) g.append('rect').attr('class', 'diff-box note-box').attr('y', -rowH / 2 + 2).attr('rx', 4).attr('height', rowH - 4);
      g.append('circle').attr('class', 'note-dot').attr('cx', x1).attr('cy', 0).attr('r', 3);
      labelX = flip ? x1 - 8 : x1 + 8;
      anchor = flip ? 'end' : 'start';
      const boxed = s.finding || s.diff;
      hitX0 = flip ? x1 + 2 - boxWidth : boxed ? x1 - 2 : left; // a finding's (or a comparison note's) hit area is its box
      hitX1 = flip ? x1 + 2 : boxed ? x1 + 10 + s.label.length * 6.6 : x1 + 8 + s.label.length * 6.2;
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
      .attr('x', Math.max(0, hitX0 - 6))
      .attr('y', -rowH / 2)
      .attr('width', Math.max(40, Math.min(layout.width, hitX1 + 6) - Math.max(0, hitX0 - 6)))
      .attr('height', rowH);
    g.append('text')
      .attr('class', 'label')
      .attr('x', labelX)
      .attr('y', s.from !== s.to ? -4 : 4)
      .attr('text-anchor', anchor);
    const node = g.node();
    node.__labelX = labelX;
    node.__anchor = anchor;
    setLabel(g, s, stepText(s, i));
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
    if (s.finding) g.attr('data-finding', s.finding.id);
    if (s.syscallId !== undefined && s.syscallId !== null) g.attr('data-syscall', s.syscallId);
    if (s.diff) g.attr('data-diff', s.diff.kind).attr('data-pair', s.diff.pair === null ? 'none' : s.diff.pair).attr('data-diff-index', s.diff.index);
    g.on('mouseenter', (event) => showTooltip(f.tooltip, f.canvas.node(), event, s.finding ? s.finding.title : s.label, stepRows(s)))
      .on('mousemove', (event) => moveTooltip(f.tooltip, f.canvas.node(), event))
      .on('mouseleave', () => hideTooltip(f.tooltip));
  }

  /**
   * A step's label, cut where it would leave the drawing (the whole text in its <title>); a
   * note's box fits the label as drawn.
   */
  function setLabel(g, s, text) {
    const node = g.node();
    node.__label = text;
    const x = node.__labelX;
    const anchor = node.__anchor;
    const box = g.select('rect.note-box');
    const width = fitLabel(g.select('text.label'), text, x, anchor, box.empty() ? 4 : 12, layout.width - (box.empty() ? 4 : 12), !box.empty());
    if (!box.empty()) {
      const x0 = anchor === 'end' ? x - width - 8 : x - 16;
      box.attr('x', x0).attr('width', width + 24);
      // A boxed note's hit area is its box.
      g.select('rect.hit').attr('x', x0 - 4).attr('width', width + 32);
    }
  }

  function stepRows(s) {
    const from = laneById.get(s.from);
    const to = laneById.get(s.to);
    const rows = s.finding ? [['why', s.finding.detail]] : [];
    rows.push(
      ['event', 'seq ' + s.seq + ' · ' + s.kind],
      ['lanes', (from ? from.label : s.from) + (s.from === s.to ? '' : ' → ' + (to ? to.label : s.to))],
    );
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

  /**
   * Search as you type: every step whose label or detail holds the text is marked; the bands and
   * function bodies hiding the first matches are opened (up to SEARCH_OPENS bands, so a search
   * that matches every call of a large session does not unfold all of it), and the first match
   * is brought into view. The count says how many marked steps are drawn, and how many more the
   * folded parts hold (Enter goes on to them).
   */
  function runSearch() {
    query = lower(f.search.property('value').trim());
    matched = new Set();
    bandMatchCache.clear();
    current = -1;
    if (query) steps.forEach((s, i) => stepMatches(s, query) && matched.add(i));
    const opened = new Set();
    for (const i of matched) {
      const s = steps[i];
      const hiding = layout.bands.filter((b) => collapsedBands.has(b.syscallId) && !opened.has(b.syscallId) && b.y0 < s.y && s.y < b.y1);
      if (opened.size + hiding.length > SEARCH_OPENS) break;
      for (const b of hiding) {
        opened.add(b.syscallId);
        collapsedBands.delete(b.syscallId);
      }
      for (const k of [...collapsedCalls]) {
        const [first, last] = bodyOf.get(k);
        if (i >= first && i <= last) collapsedCalls.delete(k);
      }
    }
    const map = render();
    const shown = [...matched].filter((i) => !isHidden(steps[i].y));
    const folded = matched.size - shown.length;
    f.matches.text(
      query
        ? shown.length + (shown.length === 1 ? ' match' : ' matches') + (folded ? ', ' + folded + ' more in folded calls' : '') + (matched.size ? ' (Enter: next)' : '')
        : '',
    );
    f.matches.attr('data-shown', query ? shown.length : null).attr('data-folded', query ? folded : null);
    if (shown.length) {
      current = shown[0];
      render();
      const [x0, x1] = stepSpan(steps[current]);
      pan.show(x0, x1, map(steps[current].y), layout.headerHeight);
    }
  }

  /** Enter: the next match, its band and enclosing bodies expanded, centred in view. */
  function nextMatch() {
    if (!matched.size) return;
    const order = [...matched].sort((a, b) => a - b);
    current = order.find((i) => i > current) ?? order[0];
    reveal(current);
  }

  /** Expands what hides step i (the bands around it, the bodies holding it), draws, and centres it. */
  function reveal(i) {
    const s = steps[i];
    for (const b of layout.bands) if (b.syscallId === s.syscallId || (b.y0 < s.y && s.y < b.y1)) collapsedBands.delete(b.syscallId);
    for (const k of [...collapsedCalls]) {
      const [first, last] = bodyOf.get(k);
      if (i >= first && i <= last) collapsedCalls.delete(k);
    }
    centre(s, s.y);
  }

  /** Expands the bands around band `id` (it stays as it is), draws, and centres its title row. */
  function revealBand(id) {
    const band = layout.bands.find((b) => b.syscallId === id);
    for (const b of layout.bands) if (b.syscallId !== id && b.y0 < band.y0 + 0.5 && band.y0 + 0.5 < b.y1) collapsedBands.delete(b.syscallId);
    centre(null, band.y0 + rowH / 2);
  }

  /** Draws, then brings step s (its arrow and label) at drawing height y into view (s null: wherever the view is sideways). */
  function centre(s, y) {
    hideTooltip(f.tooltip);
    const map = render();
    const [x0, x1] = s ? stepSpan(s) : [null, null];
    pan.show(x0, x1, map(y), layout.headerHeight);
  }

  /** Where a step is drawn sideways: its arrow, or its loop or note with the label beside it (about 7 px a character). */
  function stepSpan(s) {
    if (s.from !== s.to) return [Math.min(s.x1, s.x2), Math.max(s.x1, s.x2)];
    return [s.x1 - 8, Math.min(layout.width, s.x1 + 28 + s.label.length * 7)];
  }

  /** "next failure" (n) and back (N): the failed calls in the order they appear, round and round. */
  function nextFailure(direction) {
    if (!stops.length) return;
    stop = stop < 0 ? (direction > 0 ? 0 : stops.length - 1) : (stop + direction + stops.length) % stops.length;
    goTo(stops[stop]);
  }

  function goTo(target) {
    if (target.step !== null && target.step !== undefined) {
      spot = { step: target.step };
      reveal(target.step);
    } else {
      spot = { band: target.band };
      revealBand(target.band);
    }
  }

  /** A finding clicked in the list: its note, or the band of its call when the note is not drawn. */
  function selectFinding(finding) {
    const k = stops.findIndex((t) => t.findingId === finding.id);
    if (k >= 0) stop = k;
    if (finding.stepIndex !== null && finding.stepIndex !== undefined) goTo({ step: finding.stepIndex });
    else if (layout.bands.some((b) => b.syscallId === finding.syscallId)) goTo({ band: finding.syscallId });
  }

  f.search.on('input', runSearch).on('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      nextMatch();
    }
  });

  /** A band brought into view (a comparison's table of pairs asks for it); false when it is not drawn. */
  function showBand(id) {
    if (!layout.bands.some((b) => b.syscallId === id)) return false;
    spot = { band: id };
    revealBand(id);
    return true;
  }

  render();
  if (link) link.join({ side: opts.link.side, body: f.body.node(), render, bandIntervals, showBand, zoomTo: (t) => f.svg.call(pan.zoom.transform, t) });
  return { nextFailure, failures: stops.length, button: nextButton, showBand };
}
