// Diagram figures: layout + SVG render of a 1,000-syscall session (goal ≤ 3 s), from the trace.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { layoutSequence, renderSequenceSvg, sequenceInput } from '../viz/index.js';

const PROGRAM = `; ntflow: user
; 1,000 system calls: NtClose(0) in a loop.
start:
    mov esi, 1000
l:  push 0
    call ntdll!NtClose
    dec esi
    jnz l
    xor eax, eax
    ret
`;

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
    const summary = await record({ program: { fileName: 'calls.asm', source: PROGRAM } }, { output: trace });
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
