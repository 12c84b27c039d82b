// What ntflow found in the session (the findings projection), beside a sequence diagram: a list of
// the findings — severity and title; the explanation when an item is opened, and as its tooltip;
// a click on an item brings its note into view — and the order in which "next failure" visits the
// failed calls: each failed call's red note, or its band when the diagram has no note for it.
// One of the page's script parts (see app.js); drawSequence (sequence.js) uses these.

/** The mark before a finding's severity, as on its note. */
const SEVERITY_MARKS = { error: '✗', warning: '⚠', info: 'ℹ' };

/**
 * The failed calls of a sequence layout in the order they appear (top to bottom): for a band
 * whose own call failed, the red note of its failure-cause finding, else the band itself. A band
 * marked only because a call inside it failed is no stop: that call is.
 */
function failureStops(layout) {
  const stops = [];
  for (const b of layout.bands) {
    if (!b.failure || !b.failure.own) continue;
    const i = layout.steps.findIndex((s) => s.finding && s.finding.kind === 'failure-cause' && s.syscallId === b.syscallId);
    if (i >= 0) stops.push({ step: i, band: null, y: layout.steps[i].y, findingId: layout.steps[i].finding.id });
    else stops.push({ step: null, band: b.syscallId, y: b.y0, findingId: null });
  }
  return stops.sort((a, b) => a.y - b.y);
}

/** Legend entries for the kinds of finding notes the diagram has. */
function findingLegend(legend, findings) {
  const severities = new Set(findings.filter((x) => x.stepIndex !== null && x.stepIndex !== undefined).map((x) => x.severity));
  const texts = { error: 'why a call failed (a finding)', warning: 'a hook in the path (a finding)', info: 'a handle left open (a finding)' };
  for (const severity of ['error', 'warning', 'info']) {
    if (!severities.has(severity)) continue;
    legendItem(legend, 'finding severity-' + severity, texts[severity], (sw) =>
      sw.append('rect').attr('class', 'finding-box').attr('x', 1).attr('y', 1).attr('rx', 3).attr('width', 32).attr('height', 12),
    );
  }
}

/**
 * The list of findings in `parent` (beside the canvas). `onSelect(finding)` runs when an item's
 * title is clicked (the item also opens to show the explanation). Returns { mark(id) }, which
 * highlights the item of finding `id` (null: none).
 */
function findingsPanel(parent, findings, onSelect) {
  const aside = parent.append('aside').attr('class', 'ntflow-findings').attr('aria-label', 'findings');
  const counts = {};
  for (const x of findings) counts[x.severity] = (counts[x.severity] || 0) + 1;
  aside
    .append('h3')
    .text('Findings (' + findings.length + ')')
    .append('span')
    .attr('class', 'ntflow-finding-counts')
    .text(
      ' ' +
        ['error', 'warning', 'info']
          .filter((k) => counts[k])
          .map((k) => counts[k] + ' ' + k + (counts[k] > 1 ? 's' : ''))
          .join(', '),
    );
  const items = aside
    .append('ol')
    .attr('class', 'ntflow-finding-list')
    .selectAll('li')
    .data(findings)
    .join('li')
    .attr('class', (x) => 'ntflow-finding severity-' + x.severity + (x.stepIndex === null || x.stepIndex === undefined ? ' not-drawn' : ''))
    .attr('data-finding', (x) => x.id)
    .attr('title', (x) => x.detail);
  const details = items.append('details');
  const summary = details.append('summary');
  summary
    .append('span')
    .attr('class', 'ntflow-finding-severity')
    .text((x) => (SEVERITY_MARKS[x.severity] || '•') + ' ' + x.severity);
  summary
    .append('span')
    .attr('class', 'ntflow-finding-title')
    .text((x) => x.title);
  details
    .append('p')
    .attr('class', 'ntflow-finding-detail')
    .text((x) => x.detail);
  details
    .append('p')
    .attr('class', 'ntflow-finding-where')
    .text((x) =>
      x.stepIndex === null || x.stepIndex === undefined
        ? 'Not drawn here: its event is outside the calls this diagram shows.'
        : 'seq ' + (x.noteSeq === null ? x.seq : x.noteSeq) + (x.syscallId === null ? '' : ', in #' + x.syscallId) + ' · evidence: seq ' + x.evidence.join(', '),
    );
  summary.on('click', (event, x) => onSelect(x)); // the summary's own toggle opens the explanation
  return {
    mark(id) {
      items.classed('spotlight', (x) => x.id === id);
    },
  };
}
