// A trace where it cannot be written (issue K §5): on a read-only mount, and in a folder the user
// may not write. Every reading command works on it in place (SQLite cannot create the WAL's -shm
// file there: the file is read as immutable, and projections it lacks are folded for the command
// only), the file stays byte for byte the same and gains no -wal or -shm beside it; the writing
// commands say in one line why they cannot, exit 1.
//
// Tests run as root, which ignores permissions, so the two places are made for real: a read-only
// bind mount in a private mount namespace (unshare -m), and the CLI run as user nobody
// (runuser) on a folder owned by root with mode 555. Each is skipped, with the reason, where the
// machine does not allow it.
//   npx tsc -p tsconfig.json && npx tap dist/test/readonly-trace.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NTFLOW, ntflow } from './util/cli.js';

// Under /tmp with mode 755 all along the path: user nobody must reach the files.
const dir = mkdtempSync(join(tmpdir(), 'ntflow-ro-'));
chmodSync(dir, 0o755);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const out = join(dir, 'out'); // where the reading commands write their drawings and exports
mkdirSync(out, { mode: 0o777 });
chmodSync(out, 0o777);

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Run the CLI the way `how` makes the trace folder unwritable; the CLI's output. */
type Runner = (args: string[]) => { code: number | null; stdout: string; stderr: string };

function run(command: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The CLI's command line, without the NODE_OPTIONS tap puts in every child's environment (see util/cli.ts). */
const cli = (args: string[]) => ['/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, NTFLOW, ...args];

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The CLI in a private mount namespace where `folder` is a read-only bind mount of itself. */
const readOnlyMount =
  (folder: string): Runner =>
  (args) =>
    run('unshare', ['-m', 'sh', '-c', `mount --bind ${quote(folder)} ${quote(folder)} && mount -o remount,ro,bind ${quote(folder)} && exec "$@"`, 'sh', ...cli(args)]);

/** The CLI as user nobody. */
const asNobody: Runner = (args) => run('runuser', ['-u', 'nobody', '--', ...cli(args)]);

/** Why a runner cannot be used here (null when it can): tried on a command that must succeed. */
function unavailable(runner: Runner, folder: string, probe: string): string | null {
  if (process.getuid?.() !== 0) return 'needs root (to mount, or to run as nobody)';
  const r = runner(['sessions', probe]);
  if (r.code !== 0) return `not possible on this machine: ${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}`;
  return existsSync(folder) ? null : 'no folder';
}

// Two traces: one as `record` leaves it (projections stored), one whose projections were never
// stored (the first reader would build them: here it cannot write, so it folds them itself).
const source = join(dir, 'source');
mkdirSync(source);
const built = join(source, 'built.db');
const unbuilt = join(source, 'unbuilt.db');

t.before(async () => {
  const r = await ntflow(['record', 'user-nt-readfile', '-o', built]);
  if (r.code !== 0) throw new Error(`record failed: ${r.stderr}`);
  copyFileSync(built, unbuilt);
  const db = new Database(unbuilt);
  for (const table of ['projections', 'syscalls', 'syscall_args', 'calls', 'ring_spans', 'symbols', 'findings', 'hooks']) db.exec(`DROP TABLE IF EXISTS ${table}`);
  db.close(); // the last connection: the WAL is folded in and removed
});

/** A copy of the traces in a fresh folder, which `place` then makes unwritable. */
function placeTraces(name: string, mode: number): { folder: string; built: string; unbuilt: string } {
  const folder = join(dir, name);
  mkdirSync(folder);
  for (const f of [built, unbuilt]) copyFileSync(f, join(folder, f.slice(source.length + 1)));
  chmodSync(folder, mode);
  return { folder, built: join(folder, 'built.db'), unbuilt: join(folder, 'unbuilt.db') };
}

function oneLineError(t: Test, what: string, r: { code: number | null; stderr: string }, pattern: RegExp): void {
  t.equal(r.code, 1, `${what}: exit 1`);
  t.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line`);
  t.notMatch(r.stderr, /\n\s+at |internal error/, `${what}: no stack trace`);
  t.match(r.stderr, pattern, `${what}: says why (${r.stderr.trim()})`);
}

function checkPlace(t: Test, runner: Runner, place: { folder: string; built: string; unbuilt: string }, why: RegExp): void {
  const before = new Map(readdirSync(place.folder).map((f) => [f, sha(join(place.folder, f))]));
  // Every reading command on the trace without projections (which also opens the other, in
  // diff); the stored projections of the other are compared through a query.
  const file = place.unbuilt;
  const stem = place.folder.slice(dir.length + 1);
  const reading: [string, string[]][] = [
    ['query', ['query', place.built, 'SELECT count(*) AS n FROM calls WHERE session_id = :session']],
    ['query', ['query', file, 'SELECT count(*) AS n FROM calls WHERE session_id = :session']],
    ['sessions', ['sessions', file]],
    ['query --schema', ['query', file, '--schema']],
    ['query --named syscalls', ['query', file, '--named', 'syscalls']],
    ['state', ['state', file, '--at', '100', '--k']],
    ['flow', ['flow', file, '-o', join(out, `${stem}.svg`)]],
    ['explain', ['explain', file]],
    ['diff', ['diff', file, place.built]],
    ['export', ['export', file, '-o', join(out, `${stem}.json`)]],
    ['replay --verify', ['replay', file, '--verify']],
  ];
  let calls: string | null = null;
  for (const [what, args] of reading) {
    const r = runner(args);
    const label = `${what} ${args[1].slice(place.folder.length + 1)}`;
    t.equal(r.code, 0, `${label} works (${r.stderr.trim().split('\n')[0] ?? ''})`);
    if (what === 'query') {
      // The folded projections are the stored ones: the same count of calls in both files.
      const n = r.stdout.split('\n')[2]?.trim();
      t.ok(Number(n) > 0, `${label}: ${n} calls`);
      if (calls === null) calls = n;
      else t.equal(n, calls, `${label}: the same calls as the stored projections`);
    }
  }
  oneLineError(t, 'record into it', runner(['record', 'user-nt-readfile', '-o', place.built]), why);
  oneLineError(t, 'replay (storing projections)', runner(['replay', place.unbuilt]), why);
  const after = new Map(readdirSync(place.folder).map((f) => [f, sha(join(place.folder, f))]));
  t.same(after, before, 'the folder is as it was: the same bytes, no -wal or -shm file');
}

t.test('on a read-only mount', async (t) => {
  const place = placeTraces('mounted', 0o755);
  const runner = readOnlyMount(place.folder);
  const skip = unavailable(runner, place.folder, place.built);
  if (skip) return void t.skip(`read-only bind mount: ${skip}`, () => {});
  checkPlace(t, runner, place, /read-only file system/);
});

t.test('in a folder the user may not write', async (t) => {
  const place = placeTraces('locked', 0o555);
  const skip = unavailable(asNobody, place.folder, place.built);
  if (skip) return void t.skip(`run as nobody: ${skip}`, () => {});
  checkPlace(t, asNobody, place, /not writable by this user/);
});
