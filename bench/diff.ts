// Diff figures: two 10 M-instruction sessions of the same program that differ in one instruction
// in the middle — recorded here, then compared in a child process of its own so that its peak
// resident memory is the diff's alone.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureProjections } from '../analyzer/index.js';
import { record } from '../recorder/index.js';

export interface DiffFigures {
  instructions: number;
  divergences: number;
  seconds: number;
  peakRssMiB: number;
  trace: string;
}

const PROGRAM = (iterations: number, immediate: number) => `; ntflow: user
start:
    mov ecx, ${iterations}
a:  add eax, ecx
    xor edx, eax
    dec ecx
    jnz a
    add ebx, ${immediate}
    mov ecx, ${iterations}
b:  add eax, ecx
    xor edx, eax
    dec ecx
    jnz b
    xor eax, eax
    ret
`;

export async function benchDiff(instructions = 10_000_000): Promise<DiffFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-diff-'));
  const trace = join(dir, 'diff.db');
  const iterations = Math.ceil(instructions / 8);
  for (const immediate of [1, 2]) {
    await record({ program: { fileName: 'diff-bench.asm', source: PROGRAM(iterations, immediate) } }, { output: trace, name: `add ebx,${immediate}`, maxInstructions: instructions * 2 });
  }
  ensureProjections(trace);
  const child = spawnSync(process.execPath, [fileURLToPath(new URL('./diff-child.js', import.meta.url)), trace], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`diff child failed: ${child.stderr}`);
  const r = JSON.parse(child.stdout) as { instructions: number; divergences: number; seconds: number; maxRssKiB: number };
  return { instructions: r.instructions, divergences: r.divergences, seconds: r.seconds, peakRssMiB: r.maxRssKiB / 1024, trace };
}
