// The fuzzer's recorded run (issue K §2): random ring-3 programs recorded through the real
// recorder, one session per program, a trace file per chunk of consecutive programs, with the
// invariants of test/util/invariants.ts checked on the live event stream, and then on the file:
//   - every session is complete and its seq gapless in the trace (0 … events-1, as many rows as the
//     machine emitted events);
//   - `replay --verify` (the analyzer's verifySession) is identical on a deterministic sample: every
//     program whose index is a multiple of `verifyEvery`, and every program that failed a check;
//   - PRAGMA integrity_check is 'ok' on every trace file written.
// Chunks are fixed ranges of program indexes, so the files, the sample and the report are the same
// whatever the number of worker threads.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openRecordWriter, openTraceForReading, record, type RecordWriter } from '../../recorder/index.js';
import { verifySession } from '../../analyzer/index.js';
import type { GuestOutcome } from '../../core/index.js';
import { fuzzProgram, type ProgramClass } from './fuzz-programs.js';
import { InvariantChecker, type Checked } from './invariants.js';
import { runChecked, sourceOf } from './randprog.js';

/** Programs per trace file. */
export const CHUNK = 250;
/** Every this many programs (by index) one is re-executed and compared (`replay --verify`). */
export const VERIFY_EVERY = 50;

/** Failure classes only the recorded run has (the others are the invariants'). */
export const TRACE_CLASSES = ['verify-mismatch', 'trace-seq-gap', 'trace-incomplete', 'integrity'] as const;

export interface ProgramResult {
  index: number;
  cpu: string;
  kind: ProgramClass;
  /** The invariants' verdict; its outcome reduced to what crosses a worker boundary. */
  checked: Omit<Checked, 'outcome'> & { outcome: Pick<GuestOutcome, 'kind' | 'code' | 'description'> | null };
  /** Whether `replay --verify` was identical; null when the program was not in the sample. */
  verified: boolean | null;
  /** What did not match (verify, the trace's seq, the session row), when something did not. */
  traceDetail: string | null;
}

export interface ChunkResult {
  first: number;
  results: ProgramResult[];
  /** The trace file; it is removed after the checks unless kept (a failure, or --keep-traces). */
  file: string;
  kept: boolean;
  integrity: string;
}

export interface ChunkOptions {
  seed: number;
  /** The chunk's first program index; it holds first … first+count-1. */
  first: number;
  count: number;
  maxInstructions: number;
  dir: string;
  writer: RecordWriter;
  verifyEvery?: number;
  keep?: boolean;
}

const slim = (c: Checked): ProgramResult['checked'] => ({ ...c, outcome: c.outcome && { kind: c.outcome.kind, code: c.outcome.code, description: c.outcome.description } });

/** Record programs first … first+count-1 into one trace file, then check the file. */
export async function recordChunk(o: ChunkOptions): Promise<ChunkResult> {
  const file = join(o.dir, `fuzz-${o.seed}-${o.first}.trace`);
  rmSync(file, { force: true });
  const sessions = new Map<number, number>(); // program index → session id
  const results: ProgramResult[] = [];
  for (let index = o.first; index < o.first + o.count; index++) {
    const p = fuzzProgram(o.seed, index);
    let checker: InvariantChecker | null = null;
    let checked: Checked;
    try {
      const s = await record(
        { program: { fileName: `fuzz-${index}.asm`, source: sourceOf(p.lines) } },
        { output: file, name: `fuzz-${index}`, cpu: p.cpu, maxInstructions: o.maxInstructions, writer: o.writer, onGuest: (g) => (checker = new InvariantChecker(g)) },
      );
      sessions.set(index, s.sessionId);
      checked = checker!.finish(s.outcome);
    } catch (e) {
      // A program that does not boot is the generator's bug (no checker yet): it is thrown. Anything
      // after boot is a JavaScript exception out of the machine, the recorder's 'failed' session.
      if (checker === null) throw e;
      checked = (checker as InvariantChecker).finish(null, e);
    }
    results.push({ index, cpu: p.cpu, kind: p.kind, checked: slim(checked), verified: null, traceDetail: null });
  }
  await o.writer.closeFile();

  const db = openTraceForReading(file);
  let integrity: string;
  try {
    integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
    checkSessions(db, results, sessions);
    for (const r of results) {
      const id = sessions.get(r.index);
      if (id === undefined || (r.index % (o.verifyEvery ?? VERIFY_EVERY) !== 0 && !r.checked.classes.length)) continue;
      const v = await verifySession(db, id);
      r.verified = v.identical;
      if (!v.identical) fail(r, 'verify-mismatch', `replay --verify: ${v.divergence ? `diverges at seq ${v.divergence.seq}` : v.note ?? 'not identical'} (${v.compared} of ${v.recorded} events identical)`);
    }
  } finally {
    db.close();
  }
  if (integrity !== 'ok') for (const r of results) fail(r, 'integrity', `PRAGMA integrity_check: ${integrity}`);
  const kept = !!o.keep || results.some((r) => r.checked.classes.length > 0);
  if (!kept) rmSync(file, { force: true });
  return { first: o.first, results, file, kept, integrity };
}

function fail(r: ProgramResult, cls: (typeof TRACE_CLASSES)[number], detail: string): void {
  if (!r.checked.classes.includes(cls)) r.checked.classes.push(cls);
  r.traceDetail = r.traceDetail ? `${r.traceDetail}; ${detail}` : detail;
}

/** Every session complete (or 'failed' when the machine threw), with seq 0 … n-1 and n = the events the machine emitted. */
function checkSessions(db: ReturnType<typeof openTraceForReading>, results: ProgramResult[], sessions: Map<number, number>): void {
  const rows = db
    .prepare(
      `SELECT s.id, s.status, s.events, coalesce(sum(x.n), 0) AS n, coalesce(min(x.seq), 0) AS lo, coalesce(max(x.last), -1) AS hi
       FROM sessions s LEFT JOIN (SELECT session_id, seq, seq AS last, 1 AS n FROM event_marks UNION ALL SELECT session_id, seq, seq + count - 1, count FROM instruction_runs) x ON x.session_id = s.id
       GROUP BY s.id`,
    )
    .all() as { id: number; status: string; events: number; n: number; lo: number; hi: number }[];
  const byId = new Map(rows.map((x) => [x.id, x]));
  for (const r of results) {
    const id = sessions.get(r.index);
    const row = id === undefined ? undefined : byId.get(id);
    if (id === undefined) continue; // threw: the js-exception class already says so
    if (!row) fail(r, 'trace-incomplete', `session ${id} is missing from the trace`);
    else if (row.status !== 'complete') fail(r, 'trace-incomplete', `session ${id} is ${row.status}`);
    else if (row.n !== r.checked.events || row.events !== r.checked.events || row.lo !== 0 || row.hi !== row.n - 1) {
      fail(r, 'trace-seq-gap', `session ${id}: ${row.n} rows with seq ${row.lo} … ${row.hi}, session row says ${row.events}, the machine emitted ${r.checked.events}`);
    }
  }
}

/** The same programs on the bare (unrecorded) guest: `npm run fuzz -- --bare`. */
export function runBareProgram(seed: number, index: number, maxInstructions: number): ProgramResult {
  const p = fuzzProgram(seed, index);
  const c = runChecked({ cpu: p.cpu, program: { fileName: `fuzz-${index}.asm`, source: sourceOf(p.lines) }, maxInstructions });
  return { index, cpu: p.cpu, kind: p.kind, checked: slim(c), verified: null, traceDetail: null };
}

export { openRecordWriter };
