// The CLI's output conventions (issue K §3) through the real CLI: `--json` on scenarios, sessions
// and record's summary parses and carries the facts the trace's tables hold; `flow -o -` writes a
// well-formed SVG and nothing else to stdout; session names with control characters are shown
// escaped by record and sessions; event lists ntflow prints come in seq order.
//   npx tsc -p tsconfig.json && npx tap dist/test/cli-json.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIOS } from '../core/index.js';
import { cliArgs, ntflow } from './util/cli.js';
import { wellFormed } from './util/xml.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-cli-json-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, 'two.db');
const HOSTILE = 'a\u001b[31mb\nc';

const query = (sql: string, ...args: unknown[]) => {
  const db = new Database(FILE, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...args) as Record<string, unknown>[];
  } finally {
    db.close();
  }
};

/** No raw C0 control character but the line breaks that end lines. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/;

t.test('scenarios --json: one array, an object per built-in scenario, the same names as the text list', async (t) => {
  const r = await ntflow(['scenarios', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const list = JSON.parse(r.stdout) as { name: string; summary: string; program: string; drivers: string[]; cpu: string }[];
  t.same(
    list,
    SCENARIOS.map((s) => ({ name: s.name, summary: s.summary, program: s.program, drivers: s.drivers, cpu: s.cpu })),
  );
  const text = await ntflow(['scenarios']);
  t.same(
    text.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/)[0]),
    list.map((s) => s.name),
    'the text list names the same scenarios in the same order',
  );
});

t.test('record: a session name with ESC and a line break is shown escaped', async (t) => {
  const r = await ntflow(['record', 'osr-log-user-handle', '-o', FILE, '--name', HOSTILE]);
  t.equal(r.code, 0, r.stderr);
  t.notOk(CONTROL.test(r.stdout), 'no raw control character in the summary');
  t.equal(r.stdout.split('\n')[0], "session 1 'a\\x1b[31mb\\nc': complete", 'ESC as \\x1b, the line break as \\n');
  t.equal(query('SELECT name FROM sessions WHERE id = 1')[0].name, HOSTILE, 'the trace keeps the name as given');
});

t.test('record --json: one object with the facts of the trace', async (t) => {
  const r = await ntflow(['record', 'osr-log-user-handle', '-o', FILE, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const s = JSON.parse(r.stdout);
  const [row] = query('SELECT id, name, status, outcome, instructions, events FROM sessions WHERE id = 2');
  t.same(s.session, { id: row.id, name: row.name, status: row.status });
  t.equal(s.session.status, 'complete');
  t.equal(s.outcome.kind, row.outcome);
  t.match(s.outcome, { code: 0, description: 'exited with STATUS_SUCCESS' });
  t.equal(s.instructions, row.instructions);
  t.equal(s.events, row.events);
  const [ev] = query('SELECT min(seq) AS first, max(seq) AS last, count(*) AS n FROM events WHERE session_id = 2');
  t.same(s.seq, { first: ev.first, last: ev.last });
  t.equal(ev.n, s.events, 'seq is gapless: as many events as the range holds');

  const syscalls = query('SELECT count(*) AS n FROM syscalls WHERE session_id = 2')[0].n as number;
  const failures = Object.fromEntries(
    query('SELECT status_name, count(*) AS n FROM syscalls WHERE session_id = 2 AND status >= 2147483648 GROUP BY status_name').map((x) => [x.status_name, x.n]),
  );
  t.ok(Object.keys(failures).length > 0, 'the scenario has failed calls');
  t.same(s.syscalls, { total: syscalls, failed: Object.values(failures).reduce((a: number, b) => a + (b as number), 0), failures });

  const findings = Object.fromEntries(query('SELECT kind, count(*) AS n FROM findings WHERE session_id = 2 GROUP BY kind').map((x) => [x.kind, x.n]));
  t.ok(Object.keys(findings).length > 0, 'the scenario has findings');
  t.same(s.findings, findings);

  const all = query('SELECT count(*) AS n, sum(instructions) AS i FROM sessions')[0] as { n: number; i: number };
  t.equal(s.file.path, FILE);
  t.equal(s.file.sessions, all.n);
  t.equal(s.file.bytes, statSync(FILE).size, "the file's size");
  t.ok(Math.abs(s.file.bytesPerInstruction - s.file.bytes / all.i) < 1e-9, 'bytes per instruction over all the sessions, as the text says it');
  t.type(s.seconds, 'number');
  t.ok(s.seconds > 0);
  t.ok(s.recordingSeconds > 0 && s.projectionSeconds > 0, 'the recording and the projections each took time');
  t.ok(Math.abs(s.seconds - s.recordingSeconds - s.projectionSeconds) < 1e-9, 'seconds is the two together: the projections are part of the command');
});

t.test('record builds the projections before it reports: a plain SQLite reader finds them, and the summary says what they took', async (t) => {
  const file = join(dir, 'fresh.db');
  const r = await ntflow(['record', 'kernel-nt-close', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /\n {2}time {10}[\d.]+ s \([^)]*instructions\/s\): recording [\d.]+ s, projections [\d.]+ s\n/, 'the time line splits recording and projections');
  // Opened straight after, by better-sqlite3 alone (as sqlite3 or Datasette would): nothing of ntflow runs.
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const built = db.prepare('SELECT name FROM projections WHERE session_id = 1 ORDER BY name').pluck().all();
  t.same(built, ['calls', 'findings', 'hooks', 'ring_spans', 'symbols', 'syscall_args', 'syscalls'], 'every projection is stored for the session');
  t.same(db.prepare("SELECT name, status_name FROM syscalls WHERE session_id = 1 AND name = 'NtClose' ORDER BY id").raw().all(), [['NtClose', 'STATUS_INVALID_HANDLE'], ['NtClose', 'STATUS_SUCCESS']], "with its rows: the driver's NtClose of a kernel handle fails, the program's succeeds");
});

t.test('explain and diff: a name with a newline and ESC stays on its line, escaped', async (t) => {
  const e = await ntflow(['explain', FILE, '--session', '1']);
  t.equal(e.code, 0, e.stderr);
  t.notOk(CONTROL.test(e.stdout), 'explain: no raw control character');
  t.match(e.stdout.split('\n')[0], /^session 1 'a\\x1b\[31mb\\nc': /, "explain's first line holds the whole name");
  const d = await ntflow(['diff', `${FILE}:1`, `${FILE}:2`]);
  t.equal(d.code, 0, d.stderr);
  t.notOk(CONTROL.test(d.stdout), 'diff: no raw control character');
  t.match(d.stdout.split('\n')[0], /^A .*:1 'a\\x1b\[31mb\\nc' \(/, "diff's A line holds the whole name");
  t.match(d.stdout.split('\n')[1], /^B .*:2 '/, 'and B is the next line');
});

t.test('sessions: names escaped in the table; --json the rows as they are', async (t) => {
  const r = await ntflow(['sessions', FILE]);
  t.equal(r.code, 0, r.stderr);
  t.notOk(CONTROL.test(r.stdout), 'no raw control character');
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, 4, 'header, rule and one line per session: the name did not break a line');
  t.match(lines[2], /^ 1 {2}a\\x1b\[31mb\\nc +complete/);

  const j = await ntflow(['sessions', FILE, '--json']);
  t.equal(j.code, 0, j.stderr);
  const list = JSON.parse(j.stdout);
  const rows = query(
    `SELECT s.id, s.name, s.status, s.outcome, s.instructions,
            (SELECT count(*) FROM service_enters e WHERE e.session_id = s.id) AS syscalls, s.started_at
     FROM sessions s ORDER BY s.id`,
  );
  t.same(list, rows, 'the table of the file, numbers unformatted');
  t.equal(list[0].name, HOSTILE, 'JSON carries the name itself (JSON escapes it)');
});

t.test('flow -o -: the SVG on stdout, well-formed, and nothing else', async (t) => {
  for (const kind of ['sequence', 'flame', 'graph']) {
    const r = await ntflow(['flow', FILE, '--kind', kind, '-o', '-']);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stderr, '', `${kind}: nothing on stderr`);
    t.match(r.stdout, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, `${kind}: stdout starts with the SVG`);
    t.match(r.stdout, /<\/svg>\n?$/, `${kind}: and ends with it (no summary line)`);
    t.equal(wellFormed(r.stdout), null, `${kind}: well-formed XML`);
  }
  const one = await ntflow(['flow', FILE, '--session', '2', '--syscall', '1', '-o', '-']);
  t.equal(one.code, 0, one.stderr);
  t.equal(wellFormed(one.stdout), null, 'one call: well-formed too');
});

t.test('replay, replay --verify and flow --json: the facts the text reports, as JSON', async (t) => {
  const r = await ntflow(['replay', FILE, '--json']);
  t.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { sessionId: number; events: number; projections: { name: string; rows: number; digest: string }[] }[];
  const sessions = query('SELECT id, events FROM sessions ORDER BY id');
  t.same(list.map((x) => [x.sessionId, x.events]), sessions.map((s) => [s.id, s.events]), 'one entry per session with its events');
  const digests = query("SELECT name, rows, digest FROM projections WHERE session_id = ? ORDER BY name", list[0].sessionId) as { name: string; rows: number; digest: string }[];
  t.same([...list[0].projections].sort((a, b) => a.name.localeCompare(b.name)), digests, 'the projections table holds the rows and digests printed');

  const v = await ntflow(['replay', FILE, '--verify', '--session', '1', '--json']);
  t.equal(v.code, 0, v.stderr);
  const res = JSON.parse(v.stdout) as { sessionId: number; identical: boolean; compared: number; recorded: number };
  t.same([res.sessionId, res.identical, res.compared], [1, true, sessions[0].events], 'verify: identical, every recorded event compared');

  const svg = join(dir, 'json.svg');
  const f = await ntflow(['flow', FILE, '--session', '1', '-o', svg, '--json']);
  t.equal(f.code, 0, f.stderr);
  const fr = JSON.parse(f.stdout) as { output: string; sessionId: number; kind: string; bytes: number };
  t.same([fr.output, fr.sessionId, fr.kind, fr.bytes], [svg, 1, 'sequence', statSync(svg).size], 'flow: what it wrote, where, for which session');
});

t.test("event lists come in seq order: the events view itself, and what ntflow prints", async (t) => {
  const schema = await ntflow(['query', FILE, '--schema']);
  t.match(schema.stdout, /CREATE VIEW events[\s\S]*in seq order/);
  // No ORDER BY in the query: the view's own order, session by session, gapless.
  const all = await ntflow(['query', FILE, 'SELECT session_id, seq FROM events', '--format', 'json']);
  const rows = JSON.parse(all.stdout) as { session_id: number; seq: number }[];
  const sessions = query('SELECT id, events FROM sessions ORDER BY id') as { id: number; events: number }[];
  t.same(rows, sessions.flatMap((s) => Array.from({ length: s.events }, (_, seq) => ({ session_id: s.id, seq }))), 'SELECT … FROM events: every event, in (session, seq) order');
  const some = await ntflow(['query', FILE, "SELECT seq, type FROM events WHERE session_id = 2 AND type <> 'instruction' LIMIT 40", '--format', 'json']);
  const seqs = (JSON.parse(some.stdout) as { seq: number }[]).map((x) => x.seq);
  t.ok(seqs.length === 40 && seqs.every((v, i) => i === 0 || seqs[i - 1] < v), 'filtered and limited: still in seq order');
  for (const args of [['--named', 'path', '--syscall', '2'], ['--named', 'rings'], ['--named', 'apc'], ['--named', 'ssdt'], ['--named', 'msr']]) {
    const r = await ntflow(['query', FILE, '--session', '2', ...args, '--format', 'json']);
    t.equal(r.code, 0, r.stderr);
    const seqs = (JSON.parse(r.stdout) as { seq: number }[]).map((x) => x.seq);
    t.ok(seqs.length > 0, `${args.join(' ')}: rows`);
    t.ok(
      seqs.every((v, i) => i === 0 || seqs[i - 1] <= v),
      `${args.join(' ')}: ordered by seq`,
    );
  }
});

t.test('record --json, interrupted (Ctrl-C): exit 130, the object says incomplete with what the file holds', async (t) => {
  const file = join(dir, 'interrupted.db');
  const loop = join(dir, 'long.asm');
  writeFileSync(loop, '; ntflow: user\nstart:\n    mov ecx, 25000000\n.again:\n    dec ecx\n    jnz .again\n    xor eax, eax\n    ret\n');
  const child = spawn(...cliArgs(['record', loop, '-o', file, '--max-instructions', '100000000', '--json']), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  // Ctrl-C once rows are committed: a moment of the recording's progress, not of the clock (the
  // bound only turns a hung recorder into a failure).
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ntflow exited early: ${stderr}`);
    if (Date.now() > deadline) throw new Error('no events landed');
    let events = 0;
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        events = (db.prepare('SELECT events FROM sessions WHERE id = 1').get() as { events: number } | undefined)?.events ?? 0;
      } finally {
        db.close();
      }
    } catch {
      /* not created or not committed yet */
    }
    if (events > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGINT');
  t.equal(await exit, 130, 'exit status 130');
  t.match(stderr, /interrupted.*incomplete/, 'stderr says so, in one line');
  const s = JSON.parse(stdout);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const row = db.prepare('SELECT id, status, instructions, events FROM sessions WHERE id = 1').get() as { id: number; status: string; instructions: number; events: number };
  db.close();
  t.same(s.session, { id: 1, name: 'long', status: 'incomplete' });
  t.equal(row.status, 'incomplete');
  t.equal(s.instructions, row.instructions, 'the instructions the file holds');
  t.equal(s.events, row.events, 'the events the file holds');
  t.same(s.seq, { first: 0, last: row.events - 1 });
  t.same(s.findings, {}, 'no findings for an unfinished session');
});
