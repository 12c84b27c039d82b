// PE figures (issue F): how long a C program and a C driver take to load and boot — parse, map,
// relocate, bind imports, build the machine — before the first instruction (goal ≤ 0.3 s), next to
// the same scenario in assembly; and the whole `ntflow record` of a C program that loops in
// ReadFile (bench/c/readloop.exe: 4,000 calls through kernel32, ntdll and SYSENTER), whose
// instructions/s sit beside the asm loop's from the same run.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Guest, scenarioOptions } from '../core/index.js';
import { repoRoot } from './record.js';

export interface PeFigures {
  /** Guest.boot of osr-log-user-handle-c in a fresh process: the first boot (kernel images from the disk cache). */
  coldBootMs: number;
  /** The same, median of later boots in that process, C and asm side by side. */
  bootMedianMs: number;
  asmBootMedianMs: number;
  readLoop: { instructions: number; syscalls: number; seconds: number; perSecond: number; bytesPerInstruction: number };
}

const root = repoRoot();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function bootMs(name: string): number {
  const t0 = process.hrtime.bigint();
  Guest.boot(scenarioOptions(name));
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Run in a child process (`node dist/bench/pe.js --boot`): the first boot there is a cold one. */
function bootFigures(): { coldBootMs: number; bootMedianMs: number; asmBootMedianMs: number } {
  const coldBootMs = bootMs('osr-log-user-handle-c');
  const c: number[] = [];
  const asm: number[] = [];
  for (let i = 0; i < 15; i++) {
    c.push(bootMs('osr-log-user-handle-c'));
    asm.push(bootMs('osr-log-user-handle'));
  }
  return { coldBootMs, bootMedianMs: median(c), asmBootMedianMs: median(asm) };
}

export function benchPe(): PeFigures {
  const boot = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--boot'], { encoding: 'utf8' });
  if (boot.status !== 0) throw new Error(`the boot benchmark failed: ${boot.stderr}`);
  const bootFigs = JSON.parse(boot.stdout) as ReturnType<typeof bootFigures>;

  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-pe-'));
  try {
    const trace = join(dir, 'readloop.db');
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'record', join(root, 'bench', 'c', 'readloop.exe'), '-o', trace], { encoding: 'utf8' });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`ntflow record readloop.exe failed: ${r.stderr}`);
    const db = new Database(trace, { readonly: true });
    const s = db.prepare("SELECT instructions, outcome FROM sessions ORDER BY id DESC LIMIT 1").get() as { instructions: number; outcome: string };
    const syscalls = (db.prepare("SELECT count(*) AS n FROM events WHERE type = 'service-enter'").get() as { n: number }).n;
    db.close();
    if (s.outcome !== 'exited') throw new Error(`readloop.exe ended with ${s.outcome}`);
    const bytes = statSync(trace).size;
    return { ...bootFigs, readLoop: { instructions: s.instructions, syscalls, seconds, perSecond: s.instructions / seconds, bytesPerInstruction: bytes / s.instructions } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--boot') process.stdout.write(JSON.stringify(bootFigures()));
