// The in-page script of ntflow's HTML diagrams. viz/html.ts inlines it after d3 (d3.min.js, the
// UMD build: a global `d3`). Each <section class="ntflow-diagram" data-source="ID"> on the page is
// drawn from the JSON in <script type="application/json" id="ID">: { kind, layout, options }.
// The layout is numbers computed in Node (viz/layout.ts); this script only draws it and adds the
// interaction: zoom and pan, collapse/expand of a system call's band or a function's body, a
// tooltip with the step's detail, search by symbol, a legend, and the session's findings (a list
// beside the diagram, "next failure": the n key or its button).
//
// Everything that comes from a trace (labels, symbols, file names, registers) is put into the page
// with d3's .text() or .attr(), never .html() or innerHTML: a file name that looks like an img
// tag with an onerror handler is characters on the screen and runs nothing.
//
// Plain browser JavaScript, not TypeScript: the project compiles without the DOM library, and these
// files are read at run time, so they are kept dependency-free and small. viz/html.ts joins them,
// in the order of its PAGE_PARTS (common.js, charts.js, findings.js, diff.js, view.js, sequence.js, then this file),
// into one script: `(function () { 'use strict'; const d3 = window.d3; … })();`. This part, the
// last, draws every diagram on the page.

// The sequence diagrams' controls, for the keyboard: n goes to the next failure of the diagram last
// clicked or focused (else the first one with a failure), N back.
const sequences = [];
let active = null;

for (const container of document.querySelectorAll('section.ntflow-diagram[data-source]')) {
  const source = document.getElementById(container.getAttribute('data-source'));
  if (!source) continue;
  const payload = JSON.parse(source.textContent);
  const draw = { sequence: drawSequence, flame: drawFlame, graph: drawGraph }[payload.kind];
  if (!draw) throw new Error('ntflow: unknown diagram kind ' + String(payload.kind));
  const controls = draw(d3.select(container), payload.layout, payload.options || {});
  if (payload.kind === 'sequence' && controls) {
    sequences.push(controls);
    const activate = () => (active = controls);
    container.addEventListener('pointerdown', activate);
    container.addEventListener('focusin', activate);
  }
  container.setAttribute('data-ready', 'true');
}

// A comparison's two diagrams, drawn, redrawn with each other's collapse state (viz/page/diff.js).
linkReady();

document.addEventListener('keydown', (event) => {
  if (event.key !== 'n' && event.key !== 'N') return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && target.closest && target.closest('input, textarea, select, [contenteditable]')) return; // typing, e.g. a search
  const controls = active && active.failures ? active : sequences.find((c) => c.failures > 0);
  if (!controls) return;
  event.preventDefault();
  controls.nextFailure(event.key === 'N' ? -1 : 1);
});
document.documentElement.setAttribute('data-ntflow-ready', 'true');
