// `ntflow explain` as a user runs it: the sentences and evidence for the OSR scenario and a hook
// scenario, --json for tools, --syscall for one call, a clean session, and bad input as one line
// with exit status 1 (the trace untouched).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ntflow } from './util/cli.js';
import { DRIVER, PROGRAM, buildDir } from './util/mingw.js';
import { repoPath } from './util/paths.js';

const dir = t.testdir();
const trace = join(dir, 'explain.db');

t.before(async () => {
  for (const s of ['osr-log-user-handle', 'ssdt-hook', 'user-nt-readfile']) {
    const r = await ntflow(['record', s, '-o', trace]);
    if (r.code !== 0) throw new Error(`record ${s}: ${r.stderr}`);
  }
});

t.test('the OSR driver with a user handle: three failures explained, with evidence', async (t) => {
  const r = await ntflow(['explain', trace, '--session', 'osr-log-user-handle']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^session 1 'osr-log-user-handle': 3 failed calls explained, 1 handle left open, 0 hooks\n\n/);
  t.match(r.stdout, /\[error\] #5 NtWriteFile → STATUS_ACCESS_VIOLATION: ProbeForWrite\(IoStatusBlock F8A0018C\): kernel address\n/);
  // The sentence a driver developer needs, wrapped for the terminal.
  const flat = r.stdout.replace(/\n {4}(?! )/g, ' ');
  t.match(flat, /NtWriteFile was called directly from osr-log-user-handle!WriteBoth\+0x1d, so PreviousMode stayed UserMode from the program's NtReadFile \(sysenter, seq \d+\); ProbeForWrite of the IoStatusBlock at F8A0018C \(8 bytes\) failed with STATUS_ACCESS_VIOLATION: a kernel address seen from UserMode/);
  t.match(flat, /ZwWriteFile would have set PreviousMode = KernelMode\./);
  t.match(r.stdout, /\n {6}seq \d+ {2}probe +nt!NtWriteFile\+0x[0-9a-f]+: ProbeForWrite\(f8a0018c, 8, 1\) → STATUS_ACCESS_VIOLATION\n/);
  t.match(r.stdout, /\n {6}seq \d+ {2}ring-transition +SharedUserData!SystemCallStub\+0x2: sysenter: ring 3 → 0, to nt!KiFastCallEntry/);
  t.match(r.stdout, /\[error\] #8 NtWriteFile → STATUS_INVALID_HANDLE: handle 8 of osr-log-user\.exe used from a System thread/);
  t.match(r.stdout, /\[error\] #9 ZwWriteFile → STATUS_INVALID_HANDLE/);
  t.match(r.stdout, /\[info\] handle 8 \(File \\osrlog\.txt\) is still open when the session ends/);
});

t.test('--syscall: only the findings about that call; --json for tools', async (t) => {
  const one = await ntflow(['explain', trace, '--session', '1', '--syscall', '8']);
  t.equal(one.code, 0, one.stderr);
  t.equal((one.stdout.match(/^\[/gm) ?? []).length, 1, 'one finding');
  t.match(one.stdout, /#8 NtWriteFile/);
  const j = await ntflow(['explain', trace, '--session', 'ssdt-hook', '--json']);
  t.equal(j.code, 0, j.stderr);
  const parsed = JSON.parse(j.stdout) as { session: { id: number; name: string }; counts: Record<string, number>; findings: Record<string, unknown>[] };
  t.same(parsed.session, { id: 2, name: 'ssdt-hook' });
  t.same(parsed.counts, { 'failure-cause': 0, 'handle-leak': 0, hook: 1 });
  const f = parsed.findings[0] as { kind: string; cause: string; evidence: number[]; events: { seq: number; type: string }[]; hook: Record<string, unknown> };
  t.equal(f.kind, 'hook');
  t.equal(f.cause, 'ssdt');
  t.same(f.events.map((e) => e.seq), f.evidence, 'each evidence seq described');
  t.same(f.events.slice(0, 2).map((e) => e.type), ['instruction', 'ssdt-lookup'], 'the write that installed it, the lookup that first ran through it');
  t.match(f.hook, { hook_type: 'ssdt', table_name: 'KiServiceTable', entry_index: 0xb7, function: 'nt!NtReadFile', owner: 'ssdt-hook' });
});

t.test('a clean session says so', async (t) => {
  const r = await ntflow(['explain', trace]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, "session 3 'user-nt-readfile': 0 failed calls explained, 0 handles left open, 0 hooks.\n");
});

t.test("the README's C example, built with MinGW: the driver's NtWriteFile explained, and no hook — though program and driver share the name 'hello'", async (t) => {
  const b = buildDir();
  t.teardown(() => b.remove());
  const ex = (name: string) => repoPath('examples', 'c', name);
  b.gcc('hello.exe', [...PROGRAM, '-O1', ex('hello.c'), '-lkernel32']);
  b.gcc('hello.sys', [...DRIVER, '-O1', ex('hello-driver.c'), '-lntoskrnl', '-lhal']);
  const file = b.path('hello.db');
  const rec = await ntflow(['record', b.path('hello.exe'), '--driver', b.path('hello.sys'), '-o', file]);
  t.equal(rec.code, 0, rec.stderr);
  t.match(rec.stdout, /\n {2}findings {6}1 failed call explained: ntflow explain .*hello\.db --session 1\n$/);
  const r = await ntflow(['explain', file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^session 1 'hello': 1 failed call explained, 0 handles left open, 0 hooks\n/);
  const flat = r.stdout.replace(/\n {4}(?! )/g, ' ');
  t.match(flat, /\[error\] #\d+ NtWriteFile → STATUS_INVALID_HANDLE: kernel handle 80000004 used with PreviousMode UserMode/);
  t.match(flat, /NtWriteFile was called directly from hello!DeviceControl\+0x[0-9a-f]+, so PreviousMode stayed UserMode from the program's NtDeviceIoControlFile \(sysenter, seq \d+\); handle 80000004 has bit 31 set, a kernel handle \(created by #\d+ ZwCreateFile from hello!DeviceControl\+0x[0-9a-f]+, seq \d+\)/);
});

t.test('bad input: one line, exit 1, the trace untouched', async (t) => {
  const before = readFileSync(trace);
  const cases: [string[], RegExp][] = [
    [['explain', join(dir, 'missing.db')], /^ntflow: .*missing\.db does not exist; record one with 'ntflow record <scenario> -o /],
    [['explain', trace, '--session', 'nope'], /^ntflow: no session 'nope' in this trace \(sessions: 1 osr-log-user-handle, 2 ssdt-hook, 3 user-nt-readfile\)/],
    [['explain', trace, '--session', '1', '--syscall', 'x'], /^ntflow: --syscall: 'x' is not a syscall reference \(ID or SESSION:ID/],
    [['explain', trace, '--session', '1', '--syscall', '99'], /^ntflow: no syscall 99 in session 1 \(its ids run 1 … \d+; see --named syscalls\)/],
    [['explain'], /^ntflow explain: missing required argument 'trace\.db'; see 'ntflow explain --help'/],
  ];
  for (const [args, message] of cases) {
    const r = await ntflow(args);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.match(r.stderr, message, `${args.join(' ')}: names what was wrong`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  t.ok(readFileSync(trace).equals(before), 'nothing recorded was changed');
});
