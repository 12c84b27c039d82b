// A comparison page (`ntflow diff A B -o diff.html`): two sequence diagrams whose rows were aligned
// in Node (viz/diff-layout.ts) — each pair of calls starts on the same row on both sides, a call
// only on one side leaves a gap on the other. This part keeps them aligned while they are used:
// the two diagrams share one collapse state (a call folds together with its partner, and whatever
// rows one side takes away the other takes away too), one view (a pan or zoom of either moves
// both), and the table of pairs above them brings a pair into view. It also draws the gaps and the
// legend of the comparison's marks. One of the page's script parts (see app.js); drawSequence
// (sequence.js) calls linkOf, drawGaps and diffLegend.

/** The comparisons on the page by group name: { collapsed: Set of keys, members: [], busy }. */
const linkGroups = new Map();

/**
 * The link of a diagram drawn with options.link = { group, side, keys } (keys: syscalls.id → the
 * key it shares with its partner, 'pair 3', or its own, 'a 5'). Returns the shared collapse set
 * (by syscall id), and the calls the diagram makes: join(member) once drawn, rendered() after
 * each drawing, zoomed(transform) on each change of view, otherIntervals().
 */
function linkOf(spec) {
  let group = linkGroups.get(spec.group);
  if (!group) {
    group = { collapsed: new Set(), members: [], busy: false };
    linkGroups.set(spec.group, group);
  }
  const keys = spec.keys || {};
  const key = (id) => (Object.prototype.hasOwnProperty.call(keys, id) ? keys[id] : spec.side + ' ' + id);
  let self = null;
  const others = () => group.members.filter((m) => m !== self);
  /** Runs `f` on the other members, once: what they do in turn does not come back here. */
  const tellOthers = (f) => {
    if (group.busy || !self) return;
    group.busy = true;
    try {
      for (const m of others()) f(m);
    } finally {
      group.busy = false;
    }
  };
  return {
    bands: {
      has: (id) => group.collapsed.has(key(id)),
      add: (id) => group.collapsed.add(key(id)),
      delete: (id) => group.collapsed.delete(key(id)),
      clear: () => group.collapsed.clear(),
    },
    join(member) {
      self = member;
      group.members.push(member);
    },
    otherIntervals: () => others().flatMap((m) => m.bandIntervals()),
    rendered: () => tellOthers((m) => m.render()),
    zoomed: (t) => tellOthers((m) => m.zoomTo(t)),
  };
}

/**
 * The linked diagrams' canvases start at one height on the page (their legends may wrap into a
 * different number of lines), so aligned rows sit side by side on the screen too — when they are
 * side by side (viz/page/style.css stacks them in a narrow window).
 */
function alignCanvasTops(group) {
  for (const m of group.members) m.body.style.marginTop = '0px';
  // Stacked (a narrow window: one diagram above the other) there is nothing to line up.
  const lefts = group.members.map((m) => Math.round(m.body.getBoundingClientRect().left));
  if (new Set(lefts).size < lefts.length) return;
  const tops = group.members.map((m) => m.body.getBoundingClientRect().top);
  const top = Math.max(...tops);
  group.members.forEach((m, i) => (m.body.style.marginTop = top - tops[i] + 'px'));
}

/** Once every diagram is drawn: each linked one again, with the collapse state of its partners. */
function linkReady() {
  for (const group of linkGroups.values()) {
    group.busy = true;
    try {
      for (const m of group.members) m.render();
    } finally {
      group.busy = false;
    }
    alignCanvasTops(group);
    window.addEventListener('resize', () => alignCanvasTops(group));
  }
  // The table of pairs: a click on a pair's row brings its calls into view (both sides follow).
  for (const row of document.querySelectorAll('tr[data-diff-group]')) {
    const group = linkGroups.get(row.getAttribute('data-diff-group'));
    if (!group) continue;
    const show = () => {
      for (const side of ['a', 'b']) {
        const id = row.getAttribute('data-' + side);
        const member = group.members.find((m) => m.side === side);
        if (id && member && member.showBand(Number(id))) return;
      }
    };
    row.addEventListener('click', show);
    row.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        show();
      }
    });
  }
}

/** The gaps of a comparison's diagram: space where the other side has rows (labelled with what). */
function drawGaps(g, layout, map, hidden) {
  const gaps = (layout.gaps || []).filter((x) => map(x.y1) - map(x.y0) >= 1 && !(hidden(x.y0 + 0.5) && hidden(x.y1 - 0.5)));
  const gap = g
    .selectAll('g.gap')
    .data(gaps, (x) => x.y0)
    .join((enter) => {
      const e = enter.append('g').attr('class', 'gap');
      e.append('rect').attr('class', 'gap-rect');
      e.append('text').attr('class', 'gap-label');
      e.append('title');
      return e;
    })
    .attr('data-others', (x) => x.others.join(' '))
    .attr('data-y0', (x) => x.y0)
    .attr('data-y1', (x) => x.y1)
    .attr('transform', (x) => 'translate(0,' + map(x.y0) + ')');
  gap
    .select('rect.gap-rect')
    .attr('x', 6)
    .attr('width', Math.max(0, layout.width - 12))
    .attr('height', (x) => Math.max(1, map(x.y1) - map(x.y0)));
  gap
    .select('text.gap-label')
    .attr('x', layout.width / 2)
    .attr('y', (x) => Math.min(layout.rowHeight / 2 + 4, (map(x.y1) - map(x.y0)) / 2 + 4))
    .text((x) => (map(x.y1) - map(x.y0) >= layout.rowHeight ? x.label : ''));
  gap.select('title').text((x) => x.label || 'rows the other side has here');
}

/** Legend entries for a comparison's marks and gaps: when the diagram has them, or always for a linked one (both legends alike). */
function diffLegend(legend, layout, linked) {
  const kinds = new Set(layout.steps.filter((s) => s.diff).map((s) => s.diff.kind));
  if (linked) ['diverge', 'join'].forEach((k) => kinds.add(k));
  if (kinds.has('diverge')) {
    legendItem(legend, 'diff-diverge', 'where the paths part (≠)', (sw) => sw.append('rect').attr('class', 'diff-box diverge').attr('x', 1).attr('y', 1).attr('rx', 3).attr('width', 32).attr('height', 12));
  }
  if (kinds.has('join')) {
    legendItem(legend, 'diff-join', 'where they join again (=)', (sw) => sw.append('rect').attr('class', 'diff-box join').attr('x', 1).attr('y', 1).attr('rx', 3).attr('width', 32).attr('height', 12));
  }
  if (linked || (layout.gaps && layout.gaps.length)) {
    legendItem(legend, 'gap', 'rows only the other side has', (sw) => sw.append('rect').attr('class', 'gap-rect').attr('x', 1).attr('y', 1).attr('width', 32).attr('height', 12));
  }
}
