// Recording figures, side by side in one run: the whole `ntflow record` command on a
// 2 M-instruction user loop (instructions/s) next to the raw limit — better-sqlite3 inserting the
// same number of 10-column rows with one prepared statement in 50 k-row transactions, WAL,
// synchronous=OFF — and the trace's bytes per instruction.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RecordFigures {
  instructions: number;
  recordSeconds: number;
  recordPerSecond: number;
  rawRows: number;
  rawSeconds: number;
  rawPerSecond: number;
  ratio: number;
  bytes: number;
  bytesPerInstruction: number;
  /** The instruction storage alone: instruction_runs' pages, and code's and code_blocks' (each distinct instruction and block once), per instruction. */
  runsBytesPerInstruction: number;
  codeBytesPerInstruction: number;
}

/** Bytes of a table's pages (dbstat), and of its runs' payload (block lists and effects). */
function storage(trace: string, sessionId?: number): { runsPages: number; codePages: number; runsPayload: number; instructions: number } {
  const db = new Database(trace, { readonly: true });
  try {
    const pages = (name: string) => (db.prepare('SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?').pluck().get(name) as number);
    const where = sessionId === undefined ? '' : ` WHERE session_id = ${sessionId}`;
    const [runsPayload, instructions] = db.prepare(`SELECT coalesce(sum(length(blocks) + coalesce(length(effects), 0)), 0), coalesce(sum(count), 0) FROM instruction_runs${where}`).raw().get() as [number, number];
    return { runsPages: pages('instruction_runs'), codePages: pages('code') + pages('code_blocks'), runsPayload, instructions };
  } finally {
    db.close();
  }
}

export interface OsrBytes {
  instructions: number;
  fileBytesPerInstruction: number;
  /** block lists + effects of its runs (the per-execution record), per instruction. */
  runsPayloadPerInstruction: number;
  runsPagesPerInstruction: number;
  codePagesPerInstruction: number;
}

/** `ntflow record osr-log-user-handle` into a fresh file: what its instructions cost. */
export function benchOsrBytes(dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-osr-'))): OsrBytes {
  try {
    const trace = join(dir, 'osr.db');
    const r = spawnSync(process.execPath, [join(repoRoot(), 'bin', 'ntflow'), 'record', 'osr-log-user-handle', '-o', trace], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ntflow record osr-log-user-handle failed: ${r.stderr}`);
    const s = storage(trace);
    return {
      instructions: s.instructions,
      fileBytesPerInstruction: statSync(trace).size / s.instructions,
      runsPayloadPerInstruction: s.runsPayload / s.instructions,
      runsPagesPerInstruction: s.runsPages / s.instructions,
      codePagesPerInstruction: s.codePages / s.instructions,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The sqlite3 CLI (no ntflow code, no extension) reading `rows` rows of the instructions view: rows/s, or null without the CLI. */
export function benchCliView(trace: string, rows = 1_000_000): { rows: number; seconds: number; perSecond: number } | null {
  const sql = `SELECT count(*), sum(length(asm)), sum(eip % 7) FROM (SELECT seq, eip, cpl, bytes, asm FROM instructions WHERE session_id = 1 LIMIT ${rows})`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sqlite3', ['-readonly', trace, sql], { encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error || r.status !== 0) return null;
  const n = Number(r.stdout.split('|')[0]);
  return { rows: n, seconds, perSecond: n / seconds };
}

const LOOP = (iterations: number) => `; ntflow: user
; A tight user-mode loop: 4 instructions per iteration.
start:
    mov ecx, ${iterations}
l:
    add eax, ecx
    xor edx, eax
    dec ecx
    jnz l
    xor eax, eax
    ret
`;

/** The repository root (the folder holding package.json), from bench/ or dist/bench/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      statSync(join(dir, 'package.json'));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('no package.json above bench/');
}

/** better-sqlite3's ceiling on this machine for rows like ours. */
function rawInsert(rows: number, file: string): number {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.exec('CREATE TABLE t (a INTEGER, b INTEGER, c INTEGER, d INTEGER, e INTEGER, f INTEGER, g INTEGER, h INTEGER, i INTEGER, j BLOB)');
  const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const blob = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const chunk = db.transaction((from: number, to: number) => {
    for (let r = from; r < to; r++) insert.run(1, r, r, 3, 0x8053a270 + (r & 0xff), 1996, r & 0xffff, 0, r >>> 4, blob);
  });
  const t0 = process.hrtime.bigint();
  for (let from = 0; from < rows; from += 50_000) chunk(from, Math.min(from + 50_000, rows));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  db.close();
  return seconds;
}

/** Record the loop with the CLI; the trace stays in `dir` for the analyzer benchmarks. */
export function benchRecord(iterations = 500_000, dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-'))): RecordFigures & { trace: string } {
  try {
    const program = join(dir, 'loop.asm');
    writeFileSync(program, LOOP(iterations));
    const trace = join(dir, 'loop.db');
    const root = repoRoot();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'record', program, '-o', trace], { encoding: 'utf8' });
    const recordSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`ntflow record failed: ${r.stderr}`);
    const db = new Database(trace, { readonly: true });
    const instructions = (db.prepare('SELECT instructions FROM sessions ORDER BY id DESC LIMIT 1').get() as { instructions: number }).instructions;
    db.close();
    const bytes = statSync(trace).size;
    const st = storage(trace);
    const rawSeconds = rawInsert(instructions, join(dir, 'raw.db'));
    const recordPerSecond = instructions / recordSeconds;
    const rawPerSecond = instructions / rawSeconds;
    return {
      trace,
      instructions,
      recordSeconds,
      recordPerSecond,
      rawRows: instructions,
      rawSeconds,
      rawPerSecond,
      ratio: recordPerSecond / rawPerSecond,
      bytes,
      bytesPerInstruction: bytes / instructions,
      runsBytesPerInstruction: st.runsPages / instructions,
      codeBytesPerInstruction: st.codePages / instructions,
    };
  } finally {
    rmSync(join(dir, 'raw.db'), { force: true });
    rmSync(join(dir, 'raw.db-wal'), { force: true });
  }
}

export { rmSync };

export interface RecordScaling {
  /** `ntflow record` of a program of a few instructions: node's start, the imports, the boot, the file, the projections. */
  floorSeconds: number;
  small: { instructions: number; seconds: number };
  large: { instructions: number; seconds: number };
  /** (large − small) instructions over (large − small) seconds: the whole command's rate once it is going. */
  marginalPerSecond: number;
}

/** The whole record command at three sizes: its fixed cost, and its rate past it. `root`: the checkout whose bin/ntflow runs (scripts/bench-side-by-side.mjs measures an older one). */
export function benchRecordScaling(smallIterations = 500_000, largeIterations = 5_000_000, root = repoRoot()): RecordScaling {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-scale-'));
  try {
    const run = (iterations: number) => {
      const program = join(dir, `loop-${iterations}.asm`);
      writeFileSync(program, LOOP(iterations));
      const trace = join(dir, `loop-${iterations}.db`);
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'record', program, '-o', trace], { encoding: 'utf8' });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`ntflow record failed: ${r.stderr}`);
      const db = new Database(trace, { readonly: true });
      const instructions = db.prepare('SELECT instructions FROM sessions ORDER BY id DESC LIMIT 1').pluck().get() as number;
      db.close();
      return { instructions, seconds };
    };
    const floor = run(1);
    const small = run(smallIterations);
    const large = run(largeIterations);
    return { floorSeconds: floor.seconds, small, large, marginalPerSecond: (large.instructions - small.instructions) / (large.seconds - small.seconds) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
