// ntflow diff: the built-in comparisons aligned and their first divergences exactly; a pair that
// differs in one instruction in the middle of a 1 M-instruction run, found exactly; identical
// sessions; bad input in one line (exit 1) and an older schema upgraded. Deterministic: no timing.
import t from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { diffSessions, replayFile, type DiffResult } from '../analyzer/index.js';
import { ntflow } from './util/cli.js';

const dir = t.testdir();
const trace = join(dir, 'pairs.db');
const ids = new Map<string, number>();

t.before(async () => {
  for (const s of ['user-nt-readfile', 'int2e-readfile', 'kernel-zw-readfile', 'osr-log-user-handle', 'osr-log-kernel-handle', 'ssdt-hook']) {
    ids.set(s, (await record({ scenario: s }, { output: trace })).sessionId);
  }
  replayFile(trace);
});

function diff(a: string, b: string): DiffResult {
  const db = new Database(trace, { readonly: true });
  try {
    return diffSessions({ db, file: trace, sessionId: ids.get(a)! }, { db, file: trace, sessionId: ids.get(b)! });
  } finally {
    db.close();
  }
}

const shape = (r: DiffResult) => r.pairs.map((p) => [p.a ? `${p.a.id} ${p.a.service}` : null, p.b ? `${p.b.id} ${p.b.service}` : null]);

t.test('user-nt-readfile vs int2e-readfile: every call parts at SharedUserData+0x300 and joins at KiSystemService+0x5C', async (t) => {
  const r = diff('user-nt-readfile', 'int2e-readfile');
  t.same(shape(r), [
    ['1 NtCreateFile', '1 NtCreateFile'],
    ['2 NtReadFile', '2 NtReadFile'],
    ['3 NtClose', '3 NtClose'],
    ['4 NtTerminateProcess', '4 NtTerminateProcess'],
  ]);
  for (const p of r.pairs) {
    const d = p.divergence!;
    t.match(d.a, { location: 'SharedUserData!SystemCallStub', asm: 'mov edx,esp' }, `${p.a!.service}: A's stub`);
    t.match(d.b, { location: 'SharedUserData!KiIntSystemCall', asm: 'lea edx,[esp+8]' }, `${p.a!.service}: B's stub at the same address`);
    t.equal(d.join?.a.location, 'nt!KiSystemService+0x5c', `${p.a!.service}: joins at KiSystemService+0x5C`);
    t.equal(d.join?.b.location, 'nt!KiSystemService+0x5c');
    t.same(p.differences.find((x) => x.what === 'entry'), { what: 'entry', a: 'sysenter', b: 'int2e' });
    t.notOk(p.differences.some((x) => x.what === 'PreviousMode' || x.what === 'status'), 'the same PreviousMode and status');
  }
  // The way back parts too: SYSEXIT's branch in KiSystemCallExitBranch against IRETD's.
  t.match(r.pairs[1].divergences[1], { a: { location: 'nt!KiSystemCallExitBranch' }, b: { location: 'nt!KiSystemCallExitBranch' } });
  t.same(r.differences, [{ what: 'cpu', a: 'sysenter', b: 'int2e' }]);
  t.notOk(r.identical);
});

t.test('user-nt-readfile vs kernel-zw-readfile: the driver\'s calls only in B, the device open parts at the driver', async (t) => {
  const r = diff('user-nt-readfile', 'kernel-zw-readfile');
  t.same(shape(r), [
    [null, '1 NtCreateFile'],
    ['1 NtCreateFile', '2 NtCreateFile'],
    ['2 NtReadFile', '3 NtReadFile'],
    [null, '4 NtReadFile'],
    ['3 NtClose', '5 NtClose'],
    ['4 NtTerminateProcess', '6 NtTerminateProcess'],
  ]);
  const onlyB = r.pairs.filter((p) => !p.a).map((p) => p.b!);
  t.same(onlyB.map((c) => [c.entry, c.previousMode, c.process]), [
    ['zw-kernel', 'KernelMode', 'System'],
    ['zw-kernel', 'KernelMode', 'device-read.exe'],
  ], "B's own calls: the driver's ZwCreateFile in DriverEntry and its ZwReadFile inside the program's read, both KernelMode");
  // The driver's nested ZwReadFile (B only) is cut out of the program's NtReadFile: no divergence
  // or join of the walk lands inside it, and every divergence joins again.
  const nested = onlyB[1];
  for (const d of r.divergences) {
    for (const p of [d.b, d.join?.b]) if (p) t.notOk(p.seq >= nested.enterSeq && p.seq <= nested.exitSeq!, `B seq ${p.seq} is not inside B's #4 (${nested.enterSeq}–${nested.exitSeq})`);
    t.ok(d.join, `the divergence at A seq ${d.a?.seq} joins again`);
  }
  const open = r.pairs[1].divergence!;
  t.match(open.a, { location: 'nt!NtCreateFile+0x8' });
  t.match(open.b, { location: 'zw-reader!DispatchCreateClose' }, "opening the device sends IRP_MJ_CREATE to the driver");
});

t.test('osr-log-user-handle vs osr-log-kernel-handle: the same paths, the handle and its table differ', async (t) => {
  const r = diff('osr-log-user-handle', 'osr-log-kernel-handle');
  t.equal(r.pairs.length, 11);
  t.ok(r.pairs.every((p) => p.a && p.b && p.samePath), 'every call paired, every path the same (the drivers align by role, not file name)');
  t.equal(r.divergences.length, 0);
  const changed = r.pairs.filter((p) => p.differences.length).map((p) => [p.a!.id, Object.fromEntries(p.differences.map((x) => [x.what, `${x.a} → ${x.b}`]))]);
  t.same(changed.map(([id]) => id), [5, 6, 8, 9], 'the four NtWriteFile calls');
  t.match(changed[0][1], {
    status: 'STATUS_ACCESS_VIOLATION → STATUS_INVALID_HANDLE',
    'handle tables': 'process ok → none STATUS_INVALID_HANDLE',
    findings: 'probe-kernel-address → handle-kernel-from-user',
    FileHandle: '00000008 (File (process table)) → 80000004 (STATUS_INVALID_HANDLE (none table))',
  });
  t.match(changed[2][1], { status: 'STATUS_INVALID_HANDLE → STATUS_SUCCESS', findings: 'handle-system-thread → —' });
  t.notOk(r.identical);
});

t.test('user-nt-readfile vs ssdt-hook: NtReadFile runs through the hook', async (t) => {
  const r = diff('user-nt-readfile', 'ssdt-hook');
  t.same(r.pairs.map((p) => p.samePath), [true, false, true, true]);
  const read = r.pairs[1];
  t.same(read.differences, [{ what: 'SSDT target', a: 'nt!NtReadFile', b: 'ssdt-hook!HookNtReadFile' }]);
  t.match(read.divergence, { a: { location: 'nt!NtReadFile', asm: 'push 58h' }, b: { location: 'ssdt-hook!HookNtReadFile' }, join: { a: { location: 'nt!NtReadFile' }, b: { location: 'nt!NtReadFile' } } });
  t.same(read.divergence!.registers.find((x) => x.what === 'ebx'), { what: 'ebx', a: '8056b2ec', b: 'f8a00036' }, 'EBX held the routine the table gave');
  t.match(r.differences, [{ what: 'hooks', a: 'none', b: /SSDT hook: KiServiceTable\[0xB7\]/ }]);
  // The driver's DriverEntry runs before the program: a stretch of its own.
  t.equal(r.divergences.filter((d) => !r.pairs.some((p) => p.divergences.includes(d))).length, 1);
});

t.test('one instruction different in the middle of a 1 M-instruction run: found exactly', async (t) => {
  const file = join(dir, 'million.db');
  const program = (immediate: number) => `; ntflow: user
start:
    mov ecx, 125000
a:  add eax, ecx
    xor edx, eax
    dec ecx
    jnz a
    add ebx, ${immediate}           ; the one difference
    mov ecx, 125000
b:  add eax, ecx
    xor edx, eax
    dec ecx
    jnz b
    xor eax, eax
    ret
`;
  const a = await record({ program: { fileName: 'million.asm', source: program(1) } }, { output: file, name: 'one' });
  const b = await record({ program: { fileName: 'million.asm', source: program(2) } }, { output: file, name: 'two' });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const r = diffSessions({ db, file, sessionId: a.sessionId }, { db, file, sessionId: b.sessionId });
  t.ok(a.instructions > 1_000_000, `${a.instructions} instructions`);
  t.equal(r.divergences.length, 1, 'one divergence');
  const d = r.divergences[0];
  const at = db.prepare("SELECT i.seq FROM instructions i WHERE i.session_id = ? AND i.asm LIKE 'add ebx,%'").pluck();
  const seqA = at.get(a.sessionId) as number;
  const seqB = at.get(b.sessionId) as number;
  t.match(d, { a: { seq: seqA, asm: 'add ebx,1' }, b: { seq: seqB, asm: 'add ebx,2' } }, `at seq ${seqA}, in the middle`);
  t.ok(seqA > 400_000 && seqA < 600_000, 'in the middle of the run');
  t.same([d.join?.a.seq, d.join?.b.seq], [seqA + 1, seqB + 1], 'and they join again at the next instruction');
  t.same(d.registers, [], 'the registers before it are the same');
});

t.test('the CLI: text, --json, identical sessions, bad input in one line', async (t) => {
  const r = await ntflow(['diff', `${trace}:user-nt-readfile`, `${trace}:int2e-readfile`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^A .*pairs\.db:1 'user-nt-readfile' \(532 instructions, cpu sysenter\)\nB .*pairs\.db:2 'int2e-readfile' \(\d+ instructions, cpu int2e\)\n4 calls aligned by weighted longest common subsequence/);
  t.match(r.stdout, /\n {2}#2 NtReadFile +=  ?#2 NtReadFile  path differs; entry sysenter → int2e\n/);
  t.match(r.stdout, /first divergence: {2}A seq \d+ {2}SharedUserData!SystemCallStub {2}mov edx,esp\n +B seq \d+ {2}SharedUserData!KiIntSystemCall {2}lea edx,\[esp\+8\]\n/);
  t.match(r.stdout, /joins again at nt!KiSystemService\+0x5c \(A seq \d+, B seq \d+\)/);
  const j = await ntflow(['diff', `${trace}:1`, `${trace}:2`, '--json']);
  t.equal(j.code, 0);
  t.equal((JSON.parse(j.stdout) as DiffResult).pairs.length, 4);
  const same = await ntflow(['diff', `${trace}:ssdt-hook`, `${trace}:ssdt-hook`]);
  t.equal(same.code, 0, 'identical: exit 0');
  t.match(same.stdout, /\nidentical: the same 4 system calls, the same \d+ instructions, the same outcome\n$/);
  const bad: [string[], RegExp][] = [
    [['diff', `${trace}:nope`, trace], /^ntflow: no session 'nope' in this trace \(sessions: 1 user-nt-readfile/],
    [['diff', join(dir, 'missing.db'), trace], /^ntflow: .*missing\.db does not exist/],
    [['diff', trace], /^ntflow diff: missing required argument 'b'; see 'ntflow diff --help'/],
  ];
  for (const [args, message] of bad) {
    const e = await ntflow(args);
    t.equal(e.code, 1, `${args.join(' ')}: exit 1`);
    t.match(e.stderr, message);
    t.equal(e.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('a session of an older schema is upgraded, then compared', async (t) => {
  const old = join(dir, 'old.db');
  await record({ scenario: 'user-nt-readfile' }, { output: old });
  const w = new Database(old);
  w.exec('DROP TABLE handle_entries'); // what schema 2 did not have (the events view is rebuilt by the upgrade)
  w.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
  w.close();
  const r = await ntflow(['diff', old, `${trace}:user-nt-readfile`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /\nidentical: /, 'the same program, recorded before and after: identical');
});
