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
// Plain browser JavaScript, not TypeScript: the project compiles without the DOM library, and these
// files are read at run time, so they are kept dependency-free and small. viz/html.ts joins them,
// in the order of its PAGE_PARTS (common.js, charts.js, sequence.js, then this file),
// into one script: `(function () { 'use strict'; const d3 = window.d3; … })();`. This part, the
// last, draws every diagram on the page.

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
