// Export figures: a ~10 M-instruction session with many frames (a leaf function called ~125 k
// times) and 2,000 failing system calls, written in each export format by a child process of its
// own (so its peak resident memory is the export's alone): bytes, time, peak RSS.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureProjections } from '../analyzer/index.js';
import { record } from '../recorder/index.js';

export interface ExportFigure {
  format: string;
  items: number;
  bytes: number;
  seconds: number;
  peakRssMiB: number;
}

export interface ExportFigures {
  instructions: number;
  frames: number;
  syscalls: number;
  formats: ExportFigure[];
  trace: string;
}

const PROGRAM = (rounds: number, spin: number) => `; ntflow: user
; ${rounds} rounds: ${spin} calls of a 24-iteration leaf, then NtClose of a handle never opened.
start:
    mov esi, ${rounds}
round:
    mov ebx, ${spin}
spin:
    call leaf
    dec ebx
    jnz spin
    push 0x7F0
    call ntdll!NtClose
    dec esi
    jnz round
    xor eax, eax
    ret
leaf:
    mov edi, 24
.l: add eax, edi
    dec edi
    jnz .l
    ret
`;

export const BENCH_EXPORT_FORMATS = ['perfetto', 'chrome-json', 'speedscope', 'mermaid'] as const;

export async function benchExport(instructions = 10_000_000, rounds = 2000): Promise<ExportFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-export-'));
  const trace = join(dir, 'export.db');
  // A leaf call costs about 78 instructions (call, 72 in its loop, ret, dec, jnz), NtClose about 150.
  const spin = Math.max(1, Math.floor((instructions / rounds - 150) / 78));
  await record({ program: { fileName: 'export-bench.asm', source: PROGRAM(rounds, spin) } }, { output: trace, maxInstructions: instructions * 2 });
  ensureProjections(trace);
  const formats: ExportFigure[] = [];
  let facts = { instructions: 0, frames: 0, syscalls: 0 };
  for (const format of BENCH_EXPORT_FORMATS) {
    const out = join(dir, `out.${format}`);
    const child = spawnSync(process.execPath, [fileURLToPath(new URL('./export-child.js', import.meta.url)), trace, format, out], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`export child (${format}) failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout) as { items: number; bytes: number; seconds: number; maxRssKiB: number; instructions: number; frames: number; syscalls: number };
    facts = { instructions: r.instructions, frames: r.frames, syscalls: r.syscalls };
    formats.push({ format, items: r.items, bytes: r.bytes, seconds: r.seconds, peakRssMiB: r.maxRssKiB / 1024 });
  }
  return { ...facts, formats, trace };
}
