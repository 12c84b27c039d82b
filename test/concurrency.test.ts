// Readers and writers of one trace file at the same time (issue K §5): readers hammering a long
// recording never stop it (they fold a session still recording for themselves and write nothing
// to the file), and two recordings appending to one file at once both finish, with readers
// reading meanwhile. Runs the real CLI.
//   npx tsc -p tsconfig.json && npx tap dist/test/concurrency.test.js
// The 30 M-event recording takes about a minute and a half on a loaded 2-core machine, and each
// reader folds the whole log so far; the file's time limit is raised above tap's 300 s for that.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTraceForReading } from '../recorder/index.js';
import { cliArgs, ntflow, type CliOutput } from './util/cli.js';

t.setTimeout(900_000);
const dir = mkdtempSync(join(tmpdir(), 'ntflow-conc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** A user-mode loop of `passes` passes: 2 instructions each, one event per instruction. */
function loop(name: string, passes: number): string {
  const file = join(dir, `${name}.asm`);
  writeFileSync(file, `; ntflow: user\nstart:\n    mov ecx, ${passes}\n.again:\n    dec ecx\n    jnz .again\n    xor eax, eax\n    ret\n`);
  return file;
}

interface Running {
  child: ChildProcess;
  out: CliOutput;
  exit: Promise<CliOutput>;
}

function startRecording(program: string, file: string, name: string): Running {
  const child = spawn(...cliArgs(['record', program, '-o', file, '--name', name, '--max-instructions', '100000000']), { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: CliOutput = { code: null, stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const exit = new Promise<CliOutput>((resolve) => child.on('close', (code) => resolve({ ...out, code })));
  return { child, out, exit };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const running = (r: Running) => r.child.exitCode === null && r.child.signalCode === null;

/** What session `name` of `file` looks like now (null before its row is committed). */
function sessionNow(file: string, name: string): { id: number; status: string; events: number; storedProjections: number } | null {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const s = db.prepare('SELECT id, status, events FROM sessions WHERE name = ?').get(name) as { id: number; status: string; events: number } | undefined;
      if (!s) return null;
      const hasProjections = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'projections'").get();
      const storedProjections = hasProjections ? (db.prepare('SELECT count(*) FROM projections WHERE session_id = ?').pluck().get(s.id) as number) : 0;
      return { ...s, storedProjections };
    } finally {
      db.close();
    }
  } catch {
    return null; // the file or its schema is not committed yet
  }
}

/** Wait (polling, bounded against a hung recorder) until `name` has committed some events. */
async function recordingUnderWay(file: string, name: string, r: Running, limitMs = 180_000): Promise<void> {
  const t0 = Date.now();
  while (!((sessionNow(file, name)?.events ?? 0) > 0)) {
    if (!running(r)) throw new Error(`the recorder exited (${r.child.exitCode}) before recording: ${r.out.stderr}`);
    if (Date.now() - t0 > limitMs) throw new Error(`no events of ${name} within ${limitMs} ms`);
    await sleep(20);
  }
}

/** A reader's result is acceptable: success, or a one-line message with exit 1 — never a stack trace. */
function checkReader(t: Test, what: string, r: CliOutput): void {
  if (r.code === 0) return;
  const lines = r.stderr.trimEnd().split('\n');
  t.ok(r.code === 1 && lines.length === 1 && !/\n\s+at |internal error/.test(r.stderr), `${what}: exit ${r.code} with one line (${lines[0]})`);
}

/** The session's log has no gap: every seq 0 … events-1 once, in the instruction log or a mark. */
function checkGapless(t: Test, file: string, name: string): number {
  const db = openTraceForReading(file);
  try {
    const s = db.prepare('SELECT id, status, events FROM sessions WHERE name = ?').get(name) as { id: number; status: string; events: number };
    t.equal(s.status, 'complete', `${name}: complete`);
    const [n, lo, hi] = db
      .prepare('SELECT sum(n), min(seq), max(last) FROM (SELECT seq, seq + count - 1 AS last, count AS n FROM instruction_runs WHERE session_id = ? UNION ALL SELECT seq, seq, 1 FROM event_marks WHERE session_id = ?)')
      .raw()
      .get(s.id, s.id) as [number, number, number];
    t.same([n, lo, hi], [s.events, 0, s.events - 1], `${name}: ${s.events} events, seq 0 … ${s.events - 1} without a gap`);
    return s.events;
  } finally {
    db.close();
  }
}

t.test('readers hammering a 30 M-event recording never stop it', async (t) => {
  const file = join(dir, 'long.db');
  const rec = startRecording(loop('long', 15_000_000), file, 'long');
  t.teardown(() => {
    if (running(rec)) rec.child.kill('SIGKILL');
  });
  await recordingUnderWay(file, 'long', rec);

  // One reader at a time, query, flow and explain in turn, for as long as the recording runs.
  const readers: [string, string[]][] = [
    ['query', ['query', file, 'SELECT count(*) AS calls FROM calls WHERE session_id = :session']],
    ['flow', ['flow', file, '-o', join(dir, 'long.svg')]],
    ['explain', ['explain', file]],
  ];
  let runs = 0;
  let succeeded = 0;
  let storedWhileRecording = 0;
  while (running(rec)) {
    const [what, args] = readers[runs % readers.length];
    const r = await ntflow(args);
    runs++;
    if (r.code === 0) succeeded++;
    checkReader(t, `${what} #${runs}`, r);
    // A reader stores nothing for a session still recording.
    const s = sessionNow(file, 'long');
    if (s?.status === 'incomplete') storedWhileRecording += s.storedProjections;
  }
  const done = await rec.exit;
  t.equal(done.code, 0, `the recording finished (${done.stderr.trim().split('\n')[0] ?? ''})`);
  t.match(done.stdout, /'long': complete/);
  t.notMatch(done.stderr, /locked|internal error|\n\s+at /, 'no lock error, no stack trace');
  t.ok(runs >= 2, `readers ran during the recording (${runs}, ${succeeded} succeeded)`);
  t.equal(storedWhileRecording, 0, 'no projections stored for the session while it was recording');
  const events = checkGapless(t, file, 'long');
  t.ok(events >= 30_000_000, `at least 30 M events (${events.toLocaleString('en')})`);
  t.comment(`${events} events recorded while ${runs} reader commands ran (${succeeded} exit 0)`);

  // Read once finished: the projections are stored now, and they are the log's.
  const after = await ntflow(['query', file, 'SELECT name, last_seq, digest FROM projections WHERE session_id = :session ORDER BY name', '--format', 'json']);
  t.equal(after.code, 0, after.stderr);
  const stored = JSON.parse(after.stdout) as { name: string; last_seq: number; digest: string }[];
  t.ok(stored.length === 7 && stored.every((p) => p.last_seq === events - 1), 'all 7 projections stored, covering the whole log');
});

t.test('two recordings appending to one file at once, readers meanwhile', async (t) => {
  const file = join(dir, 'shared.db');
  const program = loop('short', 1_000_000);
  // The first one creates the file; the second starts once it has a session (two processes
  // creating the schema of one new file at once is not what this tests).
  const a = startRecording(program, file, 'a');
  await recordingUnderWay(file, 'a', a);
  const b = startRecording(program, file, 'b');
  t.teardown(() => {
    for (const r of [a, b]) if (running(r)) r.child.kill('SIGKILL');
  });
  let reads = 0;
  while (running(a) || running(b)) {
    const r = await ntflow(['query', file, 'SELECT name, status, events FROM sessions ORDER BY id']);
    checkReader(t, `query #${++reads}`, r);
  }
  for (const [name, r] of [['a', a], ['b', b]] as const) {
    const done = await r.exit;
    t.equal(done.code, 0, `recording ${name} finished: ${done.stderr.trim()}`);
    t.match(done.stdout, new RegExp(`'${name}': complete`));
  }
  t.equal(checkGapless(t, file, 'a'), checkGapless(t, file, 'b'), 'both sessions whole, the same length');
  t.comment(`${reads} queries ran during the two recordings`);
});
