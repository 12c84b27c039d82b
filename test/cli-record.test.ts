// `ntflow record` and `ntflow sessions` (issue C §2) through the real CLI: the summary, the
// default output path, programs with drivers, --cpu and --max-instructions, the session table, the
// progress bar on a terminal (and its absence otherwise), and every bad-input case of §1 and §2 —
// each one stderr line, exit status 1, no stack trace, and no damage to an existing trace.
//   npx tsc -p tsconfig.json && npx tap dist/test/cli-record.test.js
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scenarioDir } from '../core/guest/scenarios.js';
import { NTFLOW, ntflow, type CliOutput as Out } from './util/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-cli-record-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const LOOP = join(dir, 'loop.asm');
writeFileSync(LOOP, '; ntflow: user\nstart:\n    mov ecx, 1000000\n.again:\n    dec ecx\n    jnz .again\n    xor eax, eax\n    ret\n');
const SCEN = scenarioDir();

const query = (file: string, sql: string, ...args: unknown[]) => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...args) as Record<string, unknown>[];
  } finally {
    db.close();
  }
};

/** Parse the summary's "  key   value" lines. */
function summaryFields(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n').slice(1)) {
    const m = /^ {2}(\S+(?: \S+)?) {2,}(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

const num = (s: string | undefined) => Number((s ?? '').split(/\s/)[0].replace(/,/g, ''));

// ---- recordings ---------------------------------------------------------------------------------

// Sessions 1, 2, 3 of one file: the summary of each, then `ntflow sessions` lists them.
const SHARED = join(dir, 'shared.db');

t.test('ntflow --version (and -V): the version package.json and the trace files carry, exit 0', async (t) => {
  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = await ntflow([flag]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, `${version}\n`, flag);
    t.equal(r.stderr, '');
  }
});

t.test('record a scenario: summary on stdout, nothing on stderr when it is not a terminal', async (t) => {
  const file = SHARED;
  const r = await ntflow(['record', 'user-nt-readfile', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '', 'no progress bar, no noise');
  t.match(r.stdout, /^session 1 'user-nt-readfile': complete\n/);
  const f = summaryFields(r.stdout);
  t.match(f.outcome, /exited with STATUS_SUCCESS/);
  const [row] = query(file, 'SELECT id, name, status, outcome, instructions, events FROM sessions');
  t.same(row, { id: 1, name: 'user-nt-readfile', status: 'complete', outcome: 'exited', instructions: num(f.instructions), events: num(f.events) });
  t.ok(num(f.instructions) > 100, `instructions ${f.instructions}`);
  const syscalls = query(file, 'SELECT count(*) AS n FROM service_enters')[0].n;
  t.match(f['system calls'], new RegExp(`^${syscalls}, none failed`), 'system calls: count, none failed');
  t.equal(f.findings, undefined, 'no findings line when there are none');
  const size = readFileSync(file).length;
  t.match(f.file, file, 'the file');
  t.match(f.file, /KiB|MiB|bytes/, 'its size');
  const per = Number(/([\d.]+) bytes per instruction/.exec(f.file)?.[1]);
  t.ok(Math.abs(per - size / num(f.instructions)) < 0.1, `bytes per instruction ${per} = size / instructions`);
});

t.test('failures by status name in the summary; a second session in the file', async (t) => {
  const file = SHARED;
  const r = await ntflow(['record', 'osr-log-user-handle', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^session 2 'osr-log-user-handle': complete\n/, 'appended as session 2');
  const f = summaryFields(r.stdout);
  const size = readFileSync(file).length;
  const all = query(file, 'SELECT sum(instructions) AS n FROM sessions')[0].n as number;
  const per = Number(/2 sessions, ([\d.]+) bytes per instruction over all of them/.exec(f.file)?.[1]);
  t.ok(Math.abs(per - size / all) < 0.1, `bytes per instruction over the file's sessions: ${f.file}`);
  const failed = query(file, "SELECT status_name AS s, count(*) AS n FROM service_exits WHERE session_id = 2 AND status >= 3221225472 GROUP BY status_name ORDER BY n DESC, s");
  t.ok(failed.length > 0, 'the scenario has failing calls');
  const total = failed.reduce((n, r) => n + (r.n as number), 0);
  t.match(f['system calls'], new RegExp(`, ${total} failed: `));
  for (const x of failed) t.match(f['system calls'], `${x.s} ×${x.n}`, `${x.s} ×${x.n}`);
  // The findings are in the file already, and the summary points at them.
  t.equal(f.findings, `3 failed calls explained, 1 handle left open: ntflow explain ${file} --session 2`);
  t.equal(query(file, "SELECT count(*) AS n FROM findings WHERE session_id = 2 AND kind = 'failure-cause'")[0].n, 3);
});

t.test('a guest that dies of an exception is a complete recording: exit 0', async (t) => {
  const file = SHARED;
  const r = await ntflow(['record', 'zw-protect-virtual-memory', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(summaryFields(r.stdout).outcome, /^exception: .*STATUS_ACCESS_VIOLATION/);
  t.same(query(file, 'SELECT status, outcome, outcome_code FROM sessions WHERE id = 3'), [{ status: 'complete', outcome: 'exception', outcome_code: 0xc0000005 }]);
});

t.test('-o defaults to traces/<name>.db; --name names the session and the file', async (t) => {
  const cwd = join(dir, 'cwd');
  mkdirSync(cwd);
  const a = await ntflow(['record', 'user-apc'], cwd);
  t.equal(a.code, 0, a.stderr);
  t.ok(existsSync(join(cwd, 'traces', 'user-apc.db')), 'traces/user-apc.db');
  const b = await ntflow(['record', 'user-apc', '--name', 'my apc run'], cwd);
  t.equal(b.code, 0, b.stderr);
  const file = join(cwd, 'traces', 'my-apc-run.db');
  t.ok(existsSync(file), 'traces/my-apc-run.db');
  t.same(query(file, 'SELECT name, program FROM sessions'), [{ name: 'my apc run', program: 'user-apc' }]);
});

t.test('a program file with --driver records like the scenario made of them', async (t) => {
  const file = join(dir, 'prog.db');
  const prog = join(SCEN, 'device-read.asm');
  const drv = join(SCEN, 'zw-reader.asm');
  const a = await ntflow(['record', prog, '--driver', drv, '-o', file]);
  t.equal(a.code, 0, a.stderr);
  t.match(a.stdout, /^session 1 'device-read': complete/, 'named after the program file');
  const b = await ntflow(['record', 'kernel-zw-readfile', '-o', file]);
  t.equal(b.code, 0, b.stderr);
  const rows = query(file, 'SELECT id, program, outcome, instructions, events, scenario, program_file, drivers FROM sessions ORDER BY id');
  t.equal(rows.length, 2);
  t.equal(rows[0].program, prog, 'program: the file');
  t.equal(rows[0].scenario, null, 'no scenario');
  t.same(
    (JSON.parse(rows[0].drivers as string) as { file: string }[]).map((d) => d.file),
    [drv],
    'the driver stored with its source',
  );
  t.equal(rows[0].instructions, rows[1].instructions, 'the same instructions as kernel-zw-readfile');
  t.equal(rows[0].events, rows[1].events, 'the same events');
  t.equal(rows[0].outcome, rows[1].outcome);
});

t.test('--driver is repeatable; --cpu int2e takes the legacy INT 2Eh path', async (t) => {
  const file = join(dir, 'int2e.db');
  const prog = join(SCEN, 'user-nt-readfile.asm');
  const r = await ntflow(['record', prog, '--driver', join(SCEN, 'ssdt-hook.asm'), '--driver', join(SCEN, 'zw-reader.asm'), '--cpu', 'int2e', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  const [row] = query(file, 'SELECT cpu, status, outcome, drivers, options FROM sessions');
  t.same({ cpu: row.cpu, status: row.status, outcome: row.outcome }, { cpu: 'int2e', status: 'complete', outcome: 'exited' });
  t.equal((JSON.parse(row.drivers as string) as unknown[]).length, 2, 'both drivers stored');
  t.equal(JSON.parse(row.options as string).cpu, 'int2e', 'the CPU model in the options');
  const mech = query(file, 'SELECT DISTINCT mechanism AS m FROM ring_transitions ORDER BY m').map((x) => x.m);
  t.ok(mech.includes('int') && mech.includes('iret'), `INT and IRETD (${mech.join(', ')})`);
  t.notOk(mech.includes('sysenter'), 'no SYSENTER');
  const hooked = query(file, "SELECT count(*) AS n FROM ssdt_lookups WHERE service_index = 183 AND target_symbol NOT LIKE 'nt!NtReadFile%'")[0].n as number;
  t.ok(hooked > 0, 'NtReadFile dispatched through the hook the first driver installed');
});

t.test('--max-instructions stops the machine: a complete recording, exit 0', async (t) => {
  const file = join(dir, 'limit.db');
  const r = await ntflow(['record', LOOP, '--max-instructions', '5k', '-o', file]);
  t.equal(r.code, 0, r.stderr);
  const f = summaryFields(r.stdout);
  t.match(f.outcome, /^instruction-limit/);
  t.equal(num(f.instructions), 5000);
  t.same(query(file, 'SELECT status, outcome, instructions FROM sessions'), [{ status: 'complete', outcome: 'instruction-limit', instructions: 5000 }]);
  t.equal(JSON.parse(query(file, 'SELECT options FROM sessions')[0].options as string).maxInstructions, 5000);
});

t.test('ntflow sessions: a table of the sessions', async (t) => {
  const file = SHARED;
  const r = await ntflow(['sessions', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^id\s+name\s+status\s+outcome\s+instructions\s+syscalls\s+started_at$/, 'the header');
  t.equal(lines.length, 5, 'header, rule, the three sessions recorded above');
  const rows = query(file, 'SELECT s.id, s.name, s.status, s.outcome, s.instructions, (SELECT count(*) FROM service_enters e WHERE e.session_id = s.id) AS syscalls, s.started_at FROM sessions s ORDER BY id');
  rows.forEach((row, i) => {
    const cells = lines[2 + i].trim().split(/\s{2,}/);
    t.same(cells, [String(row.id), row.name, row.status, row.outcome, (row.instructions as number).toLocaleString('en-US'), String(row.syscalls), row.started_at], `row ${row.id}`);
  });
});

t.test('on a terminal, a progress bar (instructions, events/s, syscalls, elapsed) on stderr', async (t) => {
  if (!existsSync('/usr/bin/script')) return t.plan(0, 'util-linux script(1) is not installed: no pseudo-terminal to test with');
  const file = join(dir, 'tty.db');
  const cmd = ['/usr/bin/env', '-u', 'NODE_OPTIONS', process.execPath, NTFLOW, 'record', LOOP, '--max-instructions', '600000', '-o', file].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('/usr/bin/script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  t.match(out, /recording .* [\d,]+ instructions \| [\d.]+ [kM]? ?events\/s \| \d+ syscalls \| [\d.]+ s/, 'the bar shows instructions, events/s, syscalls, elapsed');
  t.match(out, /session 1 'loop': complete/, 'then the summary');
  t.ok(out.indexOf('recording') < out.lastIndexOf("session 1 'loop'"), 'the bar comes first and is cleared before the summary');
});

// ---- bad input: one line, exit 1, no stack, nothing damaged ------------------------------------------

const TRACE = join(dir, 'precious.db');
let traceBytes: Buffer;
t.before(async () => {
  const r = await ntflow(['record', 'user-nt-readfile', '-o', TRACE]);
  if (r.code !== 0) throw new Error(`cannot record the reference trace: ${r.stderr}`);
  traceBytes = readFileSync(TRACE);
});

function oneLineError(t: Test, r: Out, pattern: RegExp): void {
  t.equal(r.code, 1, 'exit status 1');
  const lines = r.stderr.replace(/\n$/, '').split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  t.match(lines[0], pattern, 'the message says what was wrong');
  t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  t.notMatch(r.stderr, /internal error/, 'not an internal error');
  t.equal(r.stdout, '', 'nothing on stdout');
}

function traceUntouched(t: Test): void {
  t.ok(readFileSync(TRACE).equals(traceBytes), 'the existing trace is byte for byte unchanged');
  t.same(query(TRACE, 'SELECT id, status FROM sessions'), [{ id: 1, status: 'complete' }], 'its sessions unchanged');
}

const BAD_ASM = join(dir, 'bad.asm');
writeFileSync(BAD_ASM, '; ntflow: user\nstart:\n    mov eax, ebx,\n    ret\n');
const BAD_SYMBOL = join(dir, 'bad-symbol.asm');
writeFileSync(BAD_SYMBOL, '; ntflow: user\nstart:\n    call ntdll!NtReadFiel\n    ret\n');

const recordCases: { name: string; args: string[]; error: RegExp }[] = [
  { name: 'unknown scenario: with the nearest name', args: ['record', 'user-nt-redfile'], error: /unknown scenario 'user-nt-redfile'; did you mean 'user-nt-readfile'\?/ },
  { name: 'missing .asm file', args: ['record', join(dir, 'nope.asm')], error: /nope\.asm does not exist/ },
  { name: 'a program with a syntax error: file:line:col', args: ['record', BAD_ASM], error: /bad\.asm:3:\d+: / },
  { name: 'a program with an unknown guest symbol: file:line:col and a suggestion', args: ['record', BAD_SYMBOL], error: /bad-symbol\.asm:3:\d+: .*NtReadFiel.*did you mean 'ntdll!NtReadFile'/ },
  { name: 'a missing --driver file', args: ['record', LOOP, '--driver', join(dir, 'nodrv.asm')], error: /nodrv\.asm does not exist/ },
  { name: '--driver with a scenario', args: ['record', 'user-nt-readfile', '--driver', join(SCEN, 'zw-reader.asm')], error: /--driver goes with a program file/ },
  { name: '--cpu bogus', args: ['record', 'user-nt-readfile', '--cpu', 'bogus'], error: /--cpu.*'bogus'.*sysenter, int2e/ },
  { name: '--max-instructions 0', args: ['record', 'user-nt-readfile', '--max-instructions', '0'], error: /--max-instructions.*'0'.*positive whole number/ },
  { name: '--max-instructions abc', args: ['record', 'user-nt-readfile', '--max-instructions', 'abc'], error: /--max-instructions.*'abc'.*positive whole number/ },
  { name: '--max-instructions 1.5', args: ['record', 'user-nt-readfile', '--max-instructions', '1.5'], error: /--max-instructions.*'1\.5'/ },
  { name: 'no argument', args: ['record'], error: /missing required argument/ },
];

for (const c of recordCases) {
  t.test(`bad input: ${c.name}`, async (t) => {
    // Aimed at an existing trace: it must come out untouched.
    const r = await ntflow([...c.args, '-o', TRACE]);
    oneLineError(t, r, c.error);
    traceUntouched(t);
  });
}

t.test('bad input: -o a directory', async (t) => {
  const d = join(dir, 'a-directory');
  mkdirSync(d);
  oneLineError(t, await ntflow(['record', 'user-nt-readfile', '-o', d]), /is a directory/);
  t.same(readdirSync(d), [], 'nothing written into it');
});

t.test('bad input: -o under a path whose parent is a regular file (/etc/passwd/x.db)', async (t) => {
  const before = readFileSync('/etc/passwd');
  oneLineError(t, await ntflow(['record', 'user-nt-readfile', '-o', '/etc/passwd/x.db']), /\/etc\/passwd/);
  t.ok(readFileSync('/etc/passwd').equals(before), '/etc/passwd unchanged');
});

t.test('bad input: -o where no file can be created (/proc/ntflow-test.db)', async (t) => {
  oneLineError(t, await ntflow(['record', 'user-nt-readfile', '-o', '/proc/ntflow-test.db']), /\/proc\/ntflow-test\.db/);
  t.notOk(existsSync('/proc/ntflow-test.db'));
});

t.test('bad input: -o an existing file that is not SQLite (unchanged)', async (t) => {
  const f = join(dir, 'notes.txt');
  const text = Buffer.from('my notes, not a database\n'.repeat(100));
  writeFileSync(f, text);
  oneLineError(t, await ntflow(['record', 'user-nt-readfile', '-o', f]), /not an SQLite file/);
  t.ok(readFileSync(f).equals(text), 'byte for byte unchanged');
  t.notOk(existsSync(`${f}-wal`) || existsSync(`${f}-journal`), 'no journal left beside it');
});

t.test('bad input: -o an SQLite database that is not an ntflow trace (unchanged)', async (t) => {
  const f = join(dir, 'other.sqlite');
  const db = new Database(f);
  db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('ada'), ('grace')");
  db.close();
  const bytes = readFileSync(f);
  oneLineError(t, await ntflow(['record', 'user-nt-readfile', '-o', f]), /not an ntflow trace/);
  t.ok(readFileSync(f).equals(bytes), 'byte for byte unchanged');
  t.same(query(f, "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"), [{ name: 'customers' }], 'the same tables');
  t.same(query(f, 'SELECT name FROM customers ORDER BY id'), [{ name: 'ada' }, { name: 'grace' }], 'the same rows');
});

t.test('bad input: sessions on a missing file', async (t) => {
  oneLineError(t, await ntflow(['sessions', join(dir, 'missing.db')]), /missing\.db does not exist/);
  t.notOk(existsSync(join(dir, 'missing.db')), 'not created');
});

t.test('bad input: sessions on a file that is not SQLite', async (t) => {
  const f = join(dir, 'plain.txt');
  writeFileSync(f, 'hello\n');
  oneLineError(t, await ntflow(['sessions', f]), /not an SQLite file/);
});

t.test('bad input: sessions on an SQLite database that is not an ntflow trace', async (t) => {
  const f = join(dir, 'foreign.sqlite');
  const db = new Database(f);
  db.exec('CREATE TABLE t (x)');
  db.close();
  oneLineError(t, await ntflow(['sessions', f]), /not an ntflow trace/);
});

t.test('bad input: sessions on a directory', async (t) => {
  oneLineError(t, await ntflow(['sessions', dir]), /is a directory/);
});

t.test('full disk: one line, exit 1, the earlier session intact', async (t) => {
  const mnt = join(dir, 'small-disk');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) return t.plan(0, `cannot mount a small tmpfs to fill (${(m.stderr || m.error?.message || '').trim()}); needs root`);
  t.teardown(() => {
    spawnSync('umount', [mnt]);
  });
  const file = join(mnt, 'trace.db');
  const first = await ntflow(['record', 'user-nt-readfile', '-o', file]);
  t.equal(first.code, 0, first.stderr);
  const before = query(file, 'SELECT * FROM sessions');
  const beforeEvents = query(file, 'SELECT count(*) AS n FROM events WHERE session_id = 1');
  const r = await ntflow(['record', LOOP, '--max-instructions', '3000000', '-o', file]);
  oneLineError(t, r, /disk is full/);
  const db = new Database(file);
  t.teardown(() => db.close());
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'integrity ok');
  t.same(db.prepare('SELECT * FROM sessions WHERE id = 1').all(), before, 'session 1 unchanged');
  t.same(db.prepare('SELECT count(*) AS n FROM events WHERE session_id = 1').all(), beforeEvents, 'its events unchanged');
  const s2 = db.prepare('SELECT status, events FROM sessions WHERE id = 2').get() as { status: string; events: number } | undefined;
  if (s2) {
    t.equal(s2.status, 'incomplete', "the session that filled the disk stays 'incomplete'");
    t.equal((db.prepare('SELECT count(*) AS n FROM events WHERE session_id = 2').get() as { n: number }).n, s2.events, 'with exactly the batches it committed');
  }
});

t.test('an instruction ntflow does not emulate ends the session as outcome unsupported, complete, exit 0', async (t) => {
  const prog = join(dir, 'idle-x87.asm');
  const drv = join(dir, 'x87drv.asm');
  writeFileSync(prog, '; ntflow: user\nstart:\n    xor eax, eax\n    ret\n');
  // A driver switches CR0.EM off and runs an x87 instruction on a CPU model without an FPU.
  writeFileSync(drv, '; ntflow: driver\nDriverEntry:\n    mov eax, cr0\n    and eax, ~4\n    mov cr0, eax\n    fld1\n    xor eax, eax\n    ret 8\n');
  const out = join(dir, 'x87.db');
  const r = await ntflow(['record', prog, '--driver', drv, '-o', out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /outcome {7}unsupported: x87 instruction 'fld1'.*bytes d9 e8/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const db = new Database(out, { readonly: true });
  t.teardown(() => db.close());
  t.match(db.prepare('SELECT status, outcome, outcome_detail FROM sessions').get(), { status: 'complete', outcome: 'unsupported', outcome_detail: /fld1/ });
  t.match(db.prepare('SELECT reason FROM machine_stops').get(), { reason: 'unsupported' }, 'the trace ends with its machine-stop');
});
