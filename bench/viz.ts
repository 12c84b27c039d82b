// Diagram figures: layout + SVG render of a 1,000-syscall session (goal ≤ 3 s), from the trace;
// and `ntflow flow` of two sessions of about a million instructions (goal ≤ 3 s each, SVG and
// HTML; issue I item 3): bench/c/readloop.exe (4,004 system calls) and an asm loop with two. Run
// alone: `node dist/bench/viz.js --large`; with NTFLOW_BENCH_VIZ_BASELINE=/path/to/another/checkout
// (built) that checkout's `ntflow flow` is timed on the same traces in the same run, for before/after.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProgramSource } from '../core/index.js';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { layoutSequence, renderSequenceSvg, sequenceInput } from '../viz/index.js';
import { renderSequenceHtml } from '../viz/html.js';
import { repoRoot } from './record.js';

/** 1,000 system calls, NtClose(0) in a loop (each fails: STATUS_INVALID_HANDLE); test/util/mermaid.ts draws it too. */
export const THOUSAND_CLOSES: ProgramSource = {
  fileName: 'calls.asm',
  source: `; ntflow: user
; 1,000 system calls: NtClose(0) in a loop.
start:
    mov esi, 1000
l:  push 0
    call ntdll!NtClose
    dec esi
    jnz l
    xor eax, eax
    ret
`,
};

export interface VizFigures {
  syscalls: number;
  events: number;
  dataMs: number;
  layoutMs: number;
  svgMs: number;
  totalMs: number;
  svgBytes: number;
}

export async function benchViz(): Promise<VizFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-viz-'));
  try {
    const trace = join(dir, 'calls.db');
    const summary = await record({ program: THOUSAND_CLOSES }, { output: trace });
    replayFile(trace);
    const db = new Database(trace, { readonly: true });
    try {
      const t0 = performance.now();
      const input = sequenceInput(db, summary.sessionId, {});
      const t1 = performance.now();
      const layout = layoutSequence(input);
      const t2 = performance.now();
      const svg = renderSequenceSvg(layout);
      const t3 = performance.now();
      return { syscalls: summary.syscalls, events: summary.events, dataMs: t1 - t0, layoutMs: t2 - t1, svgMs: t3 - t2, totalMs: t3 - t0, svgBytes: svg.length };
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- a million instructions -------------------------------------------------------------------

/** About a million instructions in one routine, then one NtClose(0): few calls, one long straight run. */
const LOOP_1M = `; ntflow: user
; 999 k instructions in a tight loop, then NtClose(0).
start:
    mov ecx, 333000
l:  add eax, ecx
    dec ecx
    jnz l
    push 0
    call ntdll!NtClose
    xor eax, eax
    ret
`;

export interface LargeVizFigure {
  session: string;
  instructions: number;
  syscalls: number;
  /** Rows drawn (steps after aggregation). */
  steps: number;
  /** In-process phases of the sequence diagram. */
  dataMs: number;
  layoutMs: number;
  svgMs: number;
  htmlMs: number;
  /** The whole `ntflow flow FILE -o x.svg` / `-o x.html` command (best of `runs`), and its output's size. */
  flowSvgSeconds: number;
  flowHtmlSeconds: number;
  svgBytes: number;
  htmlBytes: number;
  /** The same commands of NTFLOW_BENCH_VIZ_BASELINE's checkout, when given. */
  baseline?: { flowSvgSeconds: number; flowHtmlSeconds: number; svgBytes: number; htmlBytes: number };
}

/** Best wall time of `runs` runs of `ntflow flow trace -o out` from checkout `root`, and the output's size. */
function timeFlow(root: string, trace: string, out: string, runs: number, args: string[]): { seconds: number; bytes: number } {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'flow', trace, ...args, '-o', out], { encoding: 'utf8' });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`ntflow flow ${trace} -o ${out} (${root}) failed: ${r.stderr}`);
    best = Math.min(best, seconds);
  }
  return { seconds: best, bytes: statSync(out).size };
}

/** `query`: draw the calls it returns step by step (`ntflow flow --query`), instead of the default drawing. */
function figure(root: string, baselineRoot: string | null, name: string, trace: string, runs: number, query?: string): LargeVizFigure {
  const args = query ? ['--query', query] : [];
  const db = new Database(trace, { readonly: true });
  let phases: Omit<LargeVizFigure, 'flowSvgSeconds' | 'flowHtmlSeconds' | 'svgBytes' | 'htmlBytes' | 'baseline'>;
  try {
    const s = db.prepare('SELECT id, instructions FROM sessions ORDER BY id DESC LIMIT 1').get() as { id: number; instructions: number };
    const syscalls = db.prepare('SELECT count(*) FROM syscalls WHERE session_id = ?').pluck().get(s.id) as number;
    const t0 = performance.now();
    const syscallIds = query ? (db.prepare(query).pluck().all() as number[]) : undefined;
    const input = sequenceInput(db, s.id, { syscallIds });
    const t1 = performance.now();
    const layout = layoutSequence(input);
    const t2 = performance.now();
    renderSequenceSvg(layout);
    const t3 = performance.now();
    renderSequenceHtml(layout);
    const t4 = performance.now();
    phases = { session: name, instructions: s.instructions, syscalls, steps: layout.steps.length, dataMs: t1 - t0, layoutMs: t2 - t1, svgMs: t3 - t2, htmlMs: t4 - t3 };
  } finally {
    db.close();
  }
  const out = (ext: string, who: string) => trace.replace(/\.db$/, `-${who}.${ext}`);
  const svg = timeFlow(root, trace, out('svg', 'now'), runs, args);
  const html = timeFlow(root, trace, out('html', 'now'), runs, args);
  const fig: LargeVizFigure = { ...phases, flowSvgSeconds: svg.seconds, flowHtmlSeconds: html.seconds, svgBytes: svg.bytes, htmlBytes: html.bytes };
  if (baselineRoot) {
    // Step by step, the baseline took close to a minute: one run of it.
    const bs = timeFlow(baselineRoot, trace, out('svg', 'baseline'), query ? 1 : runs, args);
    const bh = timeFlow(baselineRoot, trace, out('html', 'baseline'), query ? 1 : runs, args);
    fig.baseline = { flowSvgSeconds: bs.seconds, flowHtmlSeconds: bh.seconds, svgBytes: bs.bytes, htmlBytes: bh.bytes };
  }
  return fig;
}

/** readloop.exe (recorded with `ntflow record`) and the 1 M-instruction asm loop, each drawn as SVG and HTML. */
export async function benchVizLarge(runs = 3): Promise<LargeVizFigure[]> {
  const root = repoRoot();
  const baselineRoot = process.env.NTFLOW_BENCH_VIZ_BASELINE ?? null;
  if (baselineRoot && !existsSync(join(baselineRoot, 'bin', 'ntflow'))) throw new Error(`NTFLOW_BENCH_VIZ_BASELINE=${baselineRoot}: no bin/ntflow there`);
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-viz-large-'));
  try {
    const readloop = join(dir, 'readloop.db');
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'record', join(root, 'bench', 'c', 'readloop.exe'), '-o', readloop], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ntflow record readloop.exe failed: ${r.stderr}`);
    const loop = join(dir, 'loop.db');
    await record({ program: { fileName: 'loop.asm', source: LOOP_1M } }, { output: loop });
    replayFile(loop); // the projections, as \`ntflow record\` leaves them
    return [
      figure(root, baselineRoot, 'readloop.exe', readloop, runs),
      figure(root, baselineRoot, "readloop.exe, every call step by step (--query 'SELECT id FROM syscalls')", readloop, runs, 'SELECT id FROM syscalls'),
      figure(root, baselineRoot, '1 M-instruction asm loop', loop, runs),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures as the bench prints them. */
export function printVizLarge(figures: LargeVizFigure[]): void {
  for (const f of figures) {
    console.log(`ntflow bench — diagrams: ${f.session}, ${f.instructions.toLocaleString('en')} instructions, ${f.syscalls.toLocaleString('en')} system calls, sequence diagram of ${f.steps.toLocaleString('en')} rows`);
    console.log(`  phases                              data ${f.dataMs.toFixed(0)} ms, layout ${f.layoutMs.toFixed(0)} ms, SVG ${f.svgMs.toFixed(0)} ms, HTML ${f.htmlMs.toFixed(0)} ms`);
    const was = (s: number | undefined, b: number | undefined) => (s === undefined ? '' : `; baseline ${s.toFixed(2)} s, ${((b ?? 0) / 1024).toFixed(0)} KiB`);
    console.log(`  ntflow flow -o x.svg                ${f.flowSvgSeconds.toFixed(2).padStart(7)} s  (${(f.svgBytes / 1024).toFixed(0)} KiB; goal <= 3 s${was(f.baseline?.flowSvgSeconds, f.baseline?.svgBytes)})`);
    console.log(`  ntflow flow -o x.html               ${f.flowHtmlSeconds.toFixed(2).padStart(7)} s  (${(f.htmlBytes / 1024).toFixed(0)} KiB; goal <= 3 s${was(f.baseline?.flowHtmlSeconds, f.baseline?.htmlBytes)})`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--large') {
  const figures = await benchVizLarge(Number(process.env.NTFLOW_BENCH_VIZ_RUNS ?? 3));
  printVizLarge(figures);
  console.log(JSON.stringify({ bench: 'ntflow-viz-large', node: process.version, figures }));
}
