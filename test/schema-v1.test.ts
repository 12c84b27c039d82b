// A trace written by the first ntflow (trace schema 1) opens in today's (issue J §4). The fixture
// test/fixtures/schema-v1.trace was recorded by the code at commit 4e113b3, the last with
// SCHEMA_VERSION = 1 (`ntflow record user-nt-readfile`, then `kernel-nt-readfile`, into one file):
// no projections, none of the tables schema 2–4 added. Reading it upgrades it in place once (the
// upgrades add tables, columns and views, and schema 5 regroups the instructions into runs: the
// recorded instructions and events stay), builds its projections, and
// every reading command works on it; where it cannot be written, the reader says so in one line.
//   npx tsc -p tsconfig.json && npx tap dist/test/schema-v1.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCHEMA_VERSION } from '../recorder/index.js';
import { cliArgs, ntflow } from './util/cli.js';
import { repoPath } from './util/paths.js';
import { loggedInstructions } from './util/runs-edit.js';

const FIXTURE = repoPath('test', 'fixtures', 'schema-v1.trace');
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const dir = mkdtempSync(join(tmpdir(), 'ntflow-v1-'));
chmodSync(dir, 0o755);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The rows of a table as schema 1 stored them, for "the recorded rows stay". */
function rowsDigest(file: string, table: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const h = createHash('sha256');
    for (const r of db.prepare(`SELECT * FROM ${table} ORDER BY 1, 2`).raw().iterate()) h.update(JSON.stringify(r, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
    return h.digest('hex');
  } finally {
    db.close();
  }
}

/**
 * Every instruction as (session, seq, code id, effects): schema 1 to 4 kept one instruction_log row
 * each, schema 5 keeps runs (the upgrade regroups them; the instructions themselves stay).
 */
function instructionsDigest(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const h = createHash('sha256');
    // Bytes as hex, whether SQLite gave a Buffer or a decoder a Uint8Array (a Buffer's toJSON would differ).
    const put = (r: unknown[]) => h.update(JSON.stringify(r.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))));
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'instruction_log'").get()) {
      for (const r of db.prepare('SELECT session_id, seq, code_id, effects FROM instruction_log ORDER BY 1, 2').raw().iterate()) put(r as unknown[]);
    } else {
      for (const id of db.prepare('SELECT id FROM sessions ORDER BY id').pluck().all() as number[]) {
        for (const i of loggedInstructions(db, id)) put([id, i.seq, i.code, i.effects]);
      }
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}

t.test('the fixture is what the first ntflow wrote: schema 1, two sessions, no projections', async (t) => {
  // A copy: even a read-only SQLite connection leaves -shm beside a WAL-mode file.
  const pristine = join(dir, 'pristine.trace');
  copyFileSync(FIXTURE, pristine);
  const db = new Database(pristine, { readonly: true, fileMustExist: true });
  t.teardown(() => db.close());
  t.equal(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), '1');
  t.same(db.prepare('SELECT id, name, status, instructions, events FROM sessions ORDER BY id').raw().all(), [
    [1, 'user-nt-readfile', 'complete', 503, 551],
    [2, 'kernel-nt-readfile', 'complete', 753, 814],
  ]);
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  for (const later of ['exception_dispatches', 'console_outputs', 'debug_prints', 'handle_entries', 'projections', 'syscalls']) t.notOk(tables.includes(later), `no ${later} table`);
});

t.test('reading a copy upgrades it once, builds its projections, and every reading command works', async (t) => {
  const file = join(dir, 'v1.trace');
  copyFileSync(FIXTURE, file);
  const before = { code: rowsDigest(file, 'code'), log: instructionsDigest(file), pages: rowsDigest(file, 'checkpoint_pages') };
  const fixtureSha = sha(FIXTURE);

  const sessions = await ntflow(['sessions', file, '--json']);
  t.equal(sessions.code, 0, sessions.stderr);
  t.same(
    (JSON.parse(sessions.stdout) as { id: number; name: string; status: string; instructions: number }[]).map((s) => [s.id, s.name, s.status, s.instructions]),
    [
      [1, 'user-nt-readfile', 'complete', 503],
      [2, 'kernel-nt-readfile', 'complete', 753],
    ],
    'sessions lists both, as recorded',
  );
  const db = () => new Database(file, { readonly: true });
  const r = db();
  t.equal(r.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), String(SCHEMA_VERSION), `upgraded to schema ${SCHEMA_VERSION} on the first read`);
  r.close();
  t.same({ code: rowsDigest(file, 'code'), log: instructionsDigest(file), pages: rowsDigest(file, 'checkpoint_pages') }, before, 'the recorded rows are untouched');

  // The plain `instructions` view, as in the sqlite3 CLI.
  const q = await ntflow(['query', file, '--format', 'json', 'SELECT seq, eip, cpl, hex(bytes) AS bytes, asm FROM instructions WHERE session_id = 1 AND seq BETWEEN 1 AND 5']);
  t.equal(q.code, 0, q.stderr);
  const rows = JSON.parse(q.stdout) as { seq: number; eip: number; cpl: number; bytes: string; asm: string }[];
  t.same(rows.map((x) => x.seq), [1, 2, 3, 4, 5], 'five instructions (seq 0 is the first thread event)');
  t.ok(rows.every((x) => x.cpl === 3 && x.bytes.length > 0 && x.asm.length > 0), 'with their privilege level, bytes and disassembly');

  // Projections folded from the schema 1 log: session 2's failing NtReadFile calls.
  const failures = await ntflow(['query', file, '--format', 'json', "SELECT name, entry, previous_mode, status_name FROM syscalls WHERE session_id = 2 AND status <> 0 ORDER BY id"]);
  t.equal(failures.code, 0, failures.stderr);
  t.same(
    JSON.parse(failures.stdout),
    [
      { name: 'NtReadFile', entry: 'sysenter', previous_mode: 'UserMode', status_name: 'STATUS_INVALID_HANDLE' },
      { name: 'NtReadFile', entry: 'nt-direct', previous_mode: 'UserMode', status_name: 'STATUS_INVALID_HANDLE' },
    ],
    "kernel-nt-readfile's NtReadFile and the driver's direct nt!NtReadFile fail with STATUS_INVALID_HANDLE, folded from the old log",
  );

  const explain = await ntflow(['explain', file, '--session', '2', '--json']);
  t.equal(explain.code, 0, explain.stderr);
  t.match(explain.stdout, /STATUS_INVALID_HANDLE/, 'explain says why they failed');

  const state = await ntflow(['state', file, '--session', '1', '--at', '300', '--json']);
  t.equal(state.code, 0, state.stderr);
  t.type((JSON.parse(state.stdout) as { regs: { eip: number } }).regs.eip, 'number', 'state --at rebuilds the machine from the old checkpoints');

  const svg = join(dir, 'v1.svg');
  const flow = await ntflow(['flow', file, '--session', '2', '-o', svg]);
  t.equal(flow.code, 0, flow.stderr);
  t.match(readFileSync(svg, 'utf8'), /NtReadFile/, 'flow draws it');

  const again = await ntflow(['sessions', file]);
  t.equal(again.code, 0, 'a second read finds it current');
  t.equal(sha(FIXTURE), fixtureSha, 'the committed fixture itself is never written');
  t.notOk(existsSync(`${FIXTURE}-wal`) || existsSync(`${FIXTURE}-shm`), 'nor opened in place (no -wal or -shm beside it)');
});

t.test('where the old file cannot be written, a reader says so in one line (exit 1) and leaves it as it was', async (t) => {
  if (process.getuid?.() !== 0) return void t.skip('needs root, to run the CLI as user nobody on a folder nobody may not write', () => {});
  const folder = join(dir, 'locked');
  mkdirSync(folder);
  const file = join(folder, 'v1.trace');
  copyFileSync(FIXTURE, file);
  chmodSync(file, 0o644);
  chmodSync(folder, 0o555);
  const [cmd, args] = cliArgs(['sessions', file]);
  const r = spawnSync('runuser', ['-u', 'nobody', '--', cmd, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.error || /runuser: (?:cannot|failed)/.test(r.stderr ?? '')) return void t.skip(`runuser is not possible here: ${r.error?.message ?? r.stderr}`, () => {});
  t.equal(r.status, 1, 'exit 1');
  const lines = (r.stderr ?? '').trim().split('\n');
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], /has trace schema 1, which is upgraded in place the first time it is read, but it cannot be written here .*copy it to a writable folder/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.equal(sha(file), sha(FIXTURE), 'the file is as it was');
  t.notOk(existsSync(`${file}-wal`) || existsSync(`${file}-shm`), 'nothing beside it');
});
