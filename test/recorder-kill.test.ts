// Crash safety of `ntflow record` (issue C §1): a recording killed with SIGKILL at any moment leaves
// a file that opens, passes `pragma integrity_check`, holds its session as 'incomplete' and every
// batch committed before the kill (the first within half a second of the machine starting);
// Ctrl-C (SIGINT) writes the current batch, leaves the session 'incomplete' and exits 130; readers
// query the file while a recording runs (WAL). Runs the real CLI on a long user-mode loop.
//   npx tsc -p tsconfig.json && npx tap dist/test/recorder-kill.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTraceForReading } from '../recorder/index.js';
import { cliArgs, ntflow as runCli } from './util/cli.js';


const dir = mkdtempSync(join(tmpdir(), 'ntflow-kill-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// A loop that never ends on its own (the instruction limit is 10^12): every recording here is
// stopped by the test, however fast the recorder gets.
const LONG = join(dir, 'long.asm');
writeFileSync(
  LONG,
  `; ntflow: user
; A loop without end: 2 instructions per pass.
start:
    mov ecx, 25000000
.again:
    dec ecx
    jmp .again
`,
);

interface Running {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startRecording(file: string, extra: string[] = []): Running {
  const child = spawn(...cliArgs(['record', LONG, '-o', file, '--max-instructions', '1000000000000', ...extra]), { stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Running = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (r.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (r.stderr += d));
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until `file` exists (the recorder opened it): the moment the recording starts. */
async function fileAppears(file: string, r: Running, limitMs = 15_000): Promise<number> {
  const t0 = Date.now();
  while (!existsSync(file)) {
    if (r.child.exitCode !== null) throw new Error(`ntflow exited (${r.child.exitCode}) before creating ${file}: ${r.stderr}`);
    if (Date.now() - t0 > limitMs) throw new Error(`${file} did not appear within ${limitMs} ms`);
    await sleep(5);
  }
  return Date.now();
}

/**
 * Wait until at least `min` events of session 1 are committed (read through a read-only
 * connection, as any reader would): a moment defined by the recording's progress, not by the
 * clock, so a loaded machine only makes the wait longer. The bound is generous and only there to
 * turn a hung recorder into a failure.
 */
async function eventsLanded(file: string, r: Running, min: number, limitMs = 180_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (r.child.exitCode !== null) throw new Error(`ntflow exited (${r.child.exitCode}) before ${min} events landed: ${r.stderr}`);
    if (Date.now() - t0 > limitMs) throw new Error(`${min} events did not land within ${limitMs} ms`);
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const s = db.prepare('SELECT events FROM sessions WHERE id = 1').get() as { events: number } | undefined;
        if (s && s.events >= min) return s.events;
      } finally {
        db.close();
      }
    } catch {
      /* the schema or the session row is not committed yet */
    }
    await sleep(20);
  }
}

interface Found {
  integrity: string;
  sessions: { id: number; status: string; outcome: string | null; instructions: number; events: number; finished_at: string | null }[];
  events: number;
  instructions: number;
  maxSeq: number | null;
}

/** Open a (killed) trace with better-sqlite3 and read what a crash must preserve. */
function inspect(file: string): Found {
  const db = new Database(file, { fileMustExist: true });
  try {
    const integrity = db.pragma('integrity_check', { simple: true }) as string;
    const hasSessions = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'sessions'").get();
    if (!hasSessions) return { integrity, sessions: [], events: 0, instructions: 0, maxSeq: null };
    const sessions = db.prepare('SELECT id, status, outcome, instructions, events, finished_at FROM sessions ORDER BY id').all() as Found['sessions'];
    const ev = db.prepare('SELECT count(*) AS n, max(seq) AS hi FROM events WHERE session_id = 1').get() as { n: number; hi: number | null };
    const ins = db.prepare('SELECT count(*) AS n FROM instructions WHERE session_id = 1').get() as { n: number };
    return { integrity, sessions, events: ev.n, instructions: ins.n, maxSeq: ev.hi };
  } finally {
    db.close();
  }
}

/** What every killed file must satisfy; `rows`: batches must have landed by then. */
function checkKilled(t: Test, file: string, opts: { session: boolean; rows: boolean }): Found | null {
  if (!existsSync(file)) {
    t.notOk(opts.session, 'no file: killed before the recorder opened it');
    return null;
  }
  const f = inspect(file);
  t.equal(f.integrity, 'ok', 'pragma integrity_check is ok');
  t.ok(f.sessions.length <= 1, 'at most the one session');
  if (opts.session) t.equal(f.sessions.length, 1, 'the session row exists');
  const s = f.sessions[0];
  if (s) {
    t.equal(s.status, 'incomplete', "the session is 'incomplete'");
    t.equal(s.outcome, null, 'no outcome');
    t.equal(s.finished_at, null, 'not finished');
    t.equal(s.events, f.events, 'sessions.events = the events rows (counters land with their batch)');
    t.equal(s.instructions, f.instructions, 'sessions.instructions = the instruction rows');
    t.equal(f.maxSeq, f.events ? f.events - 1 : null, 'seq gapless from 0');
  }
  if (opts.rows) t.ok(f.events > 0, `rows are present (${f.events} events)`);
  return f;
}

// SIGKILL at several moments: measured from the spawn (still booting the guest: usually no file
// yet), from the moment the recorder creates the file (opening it, writing the schema and the
// session row), and by the recording's own progress (the first batch committed; well into the
// recording) — those two wait for the rows, never for a fixed time, so they hold on a loaded machine.
const moments: { label: string; fromSpawn?: number; fromFile?: number; afterEvents?: number; session: boolean; rows: boolean; thenAppend?: boolean }[] = [
  { label: '300 ms after the start (booting)', fromSpawn: 300, session: false, rows: false },
  { label: 'as the file appears (opening, schema, session row)', fromFile: 0, session: false, rows: false, thenAppend: true },
  { label: 'once the session row is committed', afterEvents: 0, session: true, rows: false },
  { label: 'once the first batch has landed', afterEvents: 1, session: true, rows: true },
  { label: 'well into the recording (500,000 events landed)', afterEvents: 500_000, session: true, rows: true, thenAppend: true },
];

for (const m of moments) {
  t.test(`SIGKILL ${m.label}: the file opens, integrity ok, session incomplete`, async (t) => {
    const file = join(dir, `kill-${m.fromSpawn ?? 'f'}-${m.fromFile ?? 's'}-${m.afterEvents ?? 'e'}.db`);
    const r = startRecording(file);
    if (m.fromSpawn !== undefined) await sleep(m.fromSpawn);
    else {
      await fileAppears(file, r);
      if (m.fromFile) await sleep(m.fromFile);
      if (m.afterEvents !== undefined) await eventsLanded(file, r, m.afterEvents);
    }
    r.child.kill('SIGKILL');
    const { signal } = await r.exit;
    t.equal(signal, 'SIGKILL', 'killed while recording');
    const f = checkKilled(t, file, m);
    if (!f || !m.thenAppend) return;

    // Readers and writers carry on with the killed file: `ntflow sessions` lists it, and a new
    // recording appends session 2 without touching session 1.
    const listed = await runCli(['sessions', file]);
    if (f.sessions.length) {
      t.equal(listed.code, 0, `ntflow sessions on the killed file: ${listed.stderr}`);
      t.match(listed.stdout, /\b1\s+long\s+incomplete\b/, 'session 1 listed as incomplete');
    } else {
      // Killed before the session row was committed: nothing to list, said in one line.
      t.ok(listed.code === 0 || (listed.code === 1 && listed.stderr.trim().split('\n').length === 1), `ntflow sessions: ${listed.stderr.trim() || listed.stdout.trim()}`);
    }
    const more = await runCli(['record', 'user-nt-readfile', '-o', file]);
    t.equal(more.code, 0, `a second recording into the killed file: ${more.stderr}`);
    const after = inspect(file);
    t.equal(after.integrity, 'ok');
    const ids = after.sessions.map((s) => s.id);
    t.equal(after.sessions.at(-1)?.status, 'complete', 'the new session is complete');
    if (f.sessions.length) {
      t.same(ids, [1, 2], 'sessions 1 and 2');
      t.same(after.sessions[0], f.sessions[0], 'session 1 untouched');
      t.equal(after.events, f.events, "session 1's events untouched");
    }
  });
}

t.test('Ctrl-C (SIGINT): the current batch is written, the session stays incomplete, exit 130', async (t) => {
  const file = join(dir, 'sigint.db');
  const r = startRecording(file);
  await fileAppears(file, r);
  await eventsLanded(file, r, 1);
  r.child.kill('SIGINT');
  const { code, signal } = await r.exit;
  t.equal(signal, null, 'exited by itself');
  t.equal(code, 130, 'exit status 130');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  t.match(lines[0], /interrupted.*session 1.*incomplete/i, 'it says the session stays incomplete');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.equal(r.stdout, '', 'no summary');
  const f = checkKilled(t, file, { session: true, rows: true });
  const n = Number(/with the ([\d,]+) instructions/.exec(lines[0])?.[1].replace(/,/g, ''));
  if (f) t.equal(f.instructions, n, 'every instruction it reports is in the file');
});

t.test('readers query the file while a recording runs', async (t) => {
  const file = join(dir, 'readers.db');
  const r = startRecording(file);
  t.teardown(() => {
    if (r.child.exitCode === null) r.child.kill('SIGKILL');
  });
  await fileAppears(file, r);
  const seen: number[] = [];
  const deadline = Date.now() + 180_000; // a bound against a hung recorder, not a timing
  while (seen.length < 3 && Date.now() < deadline) {
    await sleep(250);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const s = db.prepare('SELECT status, events, instructions FROM sessions WHERE id = 1').get() as { status: string; events: number; instructions: number } | undefined;
      if (!s || s.events === 0) continue;
      const n = (db.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').get() as { n: number }).n;
      const again = db.prepare('SELECT events FROM sessions WHERE id = 1').get() as { events: number };
      t.equal(s.status, 'incomplete', 'incomplete while recording');
      t.ok(n >= s.events && n <= again.events, `events rows (${n}) between the counters read around them`);
      seen.push(s.events);
    } finally {
      db.close();
    }
  }
  t.equal(seen.length, 3, 'three reads during the recording');
  t.ok(seen[2] > seen[0], `the reader sees the log grow (${seen.join(' → ')})`);
  const db = openTraceForReading(file);
  t.equal((db.prepare('SELECT status FROM sessions WHERE id = 1').get() as { status: string }).status, 'incomplete', 'openTraceForReading works on a live recording');
  db.close();
  const listed = await runCli(['sessions', file]);
  t.equal(listed.code, 0, 'ntflow sessions works on a live recording');
  t.match(listed.stdout, /\b1\s+long\s+incomplete\b/);
  t.equal(r.child.exitCode, null, 'the recording is still running');
  r.child.kill('SIGINT');
  const { code } = await r.exit;
  t.equal(code, 130, 'then stops on Ctrl-C');
  t.equal(inspect(file).integrity, 'ok');
});
