// The findings projection on every built-in scenario and on the failure-cause programs
// (test/programs/findings/): the exact findings (kind, cause, the call), each decisive event of the
// type its rule names and inside its call, the OSR matrix's PreviousMode origins and tables, no
// hook where there is none, and the same digest from a replay. Deterministic: no timing.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { registerFunctions, replayFile } from '../analyzer/index.js';
import { SCENARIOS } from '../core/index.js';
import { FAILURE_CASES } from './programs/findings/cases.js';
import { repoPath } from './util/paths.js';

type Row = Record<string, unknown>;
interface FindingRow {
  id: number;
  kind: string;
  severity: string;
  cause: string;
  syscall_id: number | null;
  seq: number;
  title: string;
  detail: string;
  evidence: string;
}

/** kind/cause/syscall_id of each finding a built-in scenario must give, in id order. */
const EXPECTED: Record<string, [string, string, number | null][]> = {
  'user-nt-readfile': [],
  'user-zw-readfile': [],
  'kernel-zw-readfile': [['handle-leak', 'open-at-end', 1]],
  'kernel-nt-readfile': [
    ['failure-cause', 'nested-call', 3],
    ['failure-cause', 'handle-kernel-from-user', 4],
    ['handle-leak', 'open-at-end', 1],
  ],
  'osr-log-user-handle': [
    ['failure-cause', 'probe-kernel-address', 5],
    ['failure-cause', 'handle-system-thread', 8],
    ['failure-cause', 'handle-system-thread', 9],
    ['handle-leak', 'open-at-end', 3],
  ],
  'osr-log-kernel-handle': [
    ['failure-cause', 'handle-kernel-from-user', 5],
    ['handle-leak', 'open-at-end', 3],
  ],
  'osr-log-user-handle-c': [
    ['failure-cause', 'probe-kernel-address', 5],
    ['failure-cause', 'handle-system-thread', 8],
    ['failure-cause', 'handle-system-thread', 9],
    ['handle-leak', 'open-at-end', 3],
  ],
  'osr-log-kernel-handle-c': [
    ['failure-cause', 'handle-kernel-from-user', 5],
    ['handle-leak', 'open-at-end', 3],
  ],
  'kernel-nt-close': [
    ['failure-cause', 'nested-call', 3],
    ['failure-cause', 'handle-kernel-from-user', 4],
    ['handle-leak', 'close-failed', 1],
  ],
  'zw-protect-virtual-memory': [],
  'int2e-readfile': [],
  'user-apc': [],
  'invalid-service': [
    ['failure-cause', 'service-limit', 1],
    ['failure-cause', 'routine', 2],
    ['failure-cause', 'service-limit', 3],
  ],
  'ssdt-hook': [['hook', 'ssdt', 2]],
  'kifastcallentry-hook': [['hook', 'inline', 1]],
  'msr-hook': [['hook', 'msr', 1]],
  'idt-hook': [['hook', 'idt', 1]],
  'ntdll-stub-hook': [['hook', 'ntdll-stub', 4]],
  'shadow-ssdt-hook': [
    ['failure-cause', 'routine', 1],
    ['hook', 'shadow-ssdt', 1],
  ],
  'thread-table-hook': [['hook', 'thread-table', 5]],
};

/** Each hook scenario's hooks row as detectors report it: type, table, index, function, owner; where installed, first run. */
const HOOKS: Record<string, { type: string; table: RegExp; index: number | null; fn: string; original: number; owner: string; installBy: RegExp; firstRun: string }> = {
  'ssdt-hook': { type: 'ssdt', table: /^KiServiceTable$/, index: 0xb7, fn: 'nt!NtReadFile', original: 0x8056b2ec, owner: 'ssdt-hook', installBy: /^ssdt-hook!DriverEntry\+/, firstRun: 'ssdt-lookup' },
  'kifastcallentry-hook': { type: 'inline', table: /^nt$/, index: null, fn: 'nt!KiSystemService+0xaf', original: 0x8053a3aa, owner: 'kifastcallentry-hook', installBy: /^kifastcallentry-hook!DriverEntry\+/, firstRun: 'instruction' },
  'msr-hook': { type: 'msr', table: /^MSR$/, index: 0x176, fn: 'nt!KiFastCallEntry', original: 0x8053a270, owner: 'msr-hook', installBy: /^msr-hook!DriverEntry\+/, firstRun: 'msr-read' },
  'idt-hook': { type: 'idt', table: /^IDT$/, index: 0x2e, fn: 'nt!KiSystemService', original: 0x8053a2fb, owner: 'idt-hook', installBy: /^idt-hook!DriverEntry\+/, firstRun: 'ring-transition' },
  'ntdll-stub-hook': { type: 'ntdll-stub', table: /^ntdll$/, index: 0xb7, fn: 'ntdll!NtReadFile', original: 0x7ffe0300, owner: 'ntdll-stub-hook', installBy: /^ntdll-stub-hook!start\+/, firstRun: 'instruction' },
  'shadow-ssdt-hook': { type: 'shadow-ssdt', table: /^W32pServiceTable$/, index: 0, fn: 'win32k!NtGdiAbortDoc', original: 0xbf800000, owner: 'shadow-ssdt-hook', installBy: /^shadow-ssdt-hook!DriverEntry\+/, firstRun: 'ssdt-lookup' },
  'thread-table-hook': { type: 'thread-table', table: /^KiServiceTable copy at [0-9A-F]{8} \(thread 1996's ServiceTable → [0-9A-F]{8}\)$/, index: 0xb7, fn: 'nt!NtReadFile', original: 0x8056b2ec, owner: 'thread-table-hook', installBy: /^thread-table-hook!HookCurrentThread\+/, firstRun: 'ssdt-lookup' },
};

/** The table (and condition) the decisive event of each cause is a row of. */
const DECISIVE: Record<string, [string, string]> = {
  'probe-kernel-address': ['probes', 'status <> 0'],
  'probe-misaligned': ['probes', 'status = 2147483650'],
  'probe-unmapped': ['probes', "status <> 0 AND fault = 'not-present'"],
  'probe-read-only': ['probes', "status <> 0 AND fault = 'read-only'"],
  'handle-kernel-from-user': ['handle_lookups', 'status <> 0'],
  'handle-closed': ['handle_lookups', 'status <> 0'],
  'handle-never-opened': ['handle_lookups', 'status <> 0'],
  'handle-system-thread': ['handle_lookups', "status <> 0 AND handle_table = 'kernel'"],
  'handle-type-mismatch': ['handle_lookups', 'status = 3221225508'],
  'handle-access-denied': ['handle_lookups', '1'],
  'service-limit': ['ssdt_lookups', 'in_range = 0'],
  'page-fault': ['exception_dispatches', "handler = 'service'"],
  routine: ['service_exits', '1'],
  'open-at-end': ['handle_entries', "op = 'create'"],
  'close-failed': ['handle_entries', "op = 'create'"],
};

const dir = t.testdir();
const builtins = join(dir, 'builtins.db');
const sessionOf = new Map<string, number>();

t.before(async () => {
  for (const s of SCENARIOS) {
    const summary = await record({ scenario: s.name }, { output: builtins });
    sessionOf.set(s.name, summary.sessionId);
  }
  replayFile(builtins);
});

const registerSym = (db: Database.Database, session: number) => registerFunctions(db, session);

function findingsOf(db: Database.Database, session: number): FindingRow[] {
  return db.prepare('SELECT * FROM findings WHERE session_id = ? ORDER BY id').all(session) as FindingRow[];
}

/** Checks a finding's decisive event: of the table its cause names, inside its call for a failure. */
function checkDecisive(t: Test, db: Database.Database, session: number, f: FindingRow, findings: FindingRow[]): void {
  if (f.cause === 'nested-call') {
    const call = db.prepare('SELECT * FROM syscalls WHERE session_id = ? AND id = ?').get(session, f.syscall_id) as Row;
    const child = findings.find((x) => x.kind === 'failure-cause' && x.seq === f.seq && x.syscall_id !== f.syscall_id);
    t.ok(child, `#${f.syscall_id}: the decisive event is the failing nested call's`);
    const parent = db.prepare('SELECT parent_id FROM syscalls WHERE session_id = ? AND id = ?').pluck().get(session, child?.syscall_id) as number;
    t.equal(parent, call.id, 'of a child call');
    return;
  }
  if (f.kind === 'hook') return; // checked by the hook tests
  if (f.cause === 'routine') {
    // The routine's service-exit, or (a routine with no body in the guest) the call's return.
    const call = db.prepare('SELECT exit_seq FROM syscalls WHERE session_id = ? AND id = ?').get(session, f.syscall_id) as Row;
    const exit = db.prepare('SELECT 1 FROM service_exits WHERE session_id = ? AND seq = ?').get(session, f.seq);
    t.ok(exit || f.seq === call.exit_seq, `${f.title}: seq ${f.seq} is the routine's exit`);
    return;
  }
  const rule = DECISIVE[f.cause];
  t.ok(rule, `a decisive table for ${f.cause}`);
  const row = db.prepare(`SELECT * FROM ${rule[0]} WHERE session_id = ? AND seq = ? AND ${rule[1]}`).get(session, f.seq) as Row | undefined;
  t.ok(row, `${f.title}: seq ${f.seq} is a ${rule[0]} row where ${rule[1]}`);
  const evidence = JSON.parse(f.evidence) as number[];
  t.equal(evidence[0], f.seq, 'the decisive event leads the evidence');
  if (f.kind === 'failure-cause') {
    const call = db.prepare('SELECT enter_seq, exit_seq, status FROM syscalls WHERE session_id = ? AND id = ?').get(session, f.syscall_id) as Row;
    t.ok((call.enter_seq as number) <= f.seq && (call.exit_seq === null || f.seq <= (call.exit_seq as number)), 'inside the failing call');
    t.ok((call.status as number) >= 0x80000000, 'and the call failed');
    t.equal(f.severity, (call.status as number) >= 0xc0000000 ? 'error' : 'warning');
  }
}

t.test('every built-in scenario: the exact findings, each decisive event where its rule says', async (t) => {
  const db = new Database(builtins, { readonly: true });
  t.teardown(() => db.close());
  for (const s of SCENARIOS) {
    const expected = EXPECTED[s.name];
    if (!expected) continue; // a scenario added since (the hook scenarios have their own test)
    const session = sessionOf.get(s.name)!;
    const f = findingsOf(db, session);
    t.same(
      f.map((x) => [x.kind, x.cause, x.syscall_id]),
      expected,
      `${s.name}: ${f.map((x) => x.title).join(' | ') || 'no findings'}`,
    );
    for (const x of f) checkDecisive(t, db, session, x, f);
    // Every failed call has exactly one failure-cause finding.
    const failed = db.prepare('SELECT id FROM syscalls WHERE session_id = ? AND status >= 2147483648 ORDER BY id').pluck().all(session);
    t.same(f.filter((x) => x.kind === 'failure-cause').map((x) => x.syscall_id), failed, `${s.name}: one failure-cause per failed call`);
  }
  t.equal(Object.keys(EXPECTED).filter((n) => !sessionOf.has(n)).length, 0, 'every scenario named here exists');
});

t.test('no hook findings on a scenario without a hook', async (t) => {
  const db = new Database(builtins, { readonly: true });
  t.teardown(() => db.close());
  for (const s of SCENARIOS) {
    if (/hook/.test(s.name)) continue;
    const n = db.prepare("SELECT count(*) FROM findings WHERE session_id = ? AND kind = 'hook'").pluck().get(sessionOf.get(s.name)) as number;
    const h = db.prepare('SELECT count(*) FROM hooks WHERE session_id = ?').pluck().get(sessionOf.get(s.name)) as number;
    t.equal(n + h, 0, `${s.name}: no hook`);
  }
});

t.test('the OSR matrix: each failure with its table and where PreviousMode came from', async (t) => {
  const db = new Database(builtins, { readonly: true });
  t.teardown(() => db.close());
  for (const suffix of ['', '-c']) {
    const user = findingsOf(db, sessionOf.get(`osr-log-user-handle${suffix}`)!);
    const kernel = findingsOf(db, sessionOf.get(`osr-log-kernel-handle${suffix}`)!);
    const sysenterOf = (session: number, id: number) =>
      db
        .prepare("SELECT min(r.seq) FROM ring_transitions r JOIN syscalls s ON s.session_id = r.session_id AND s.id = ? WHERE r.session_id = ? AND r.mechanism = 'sysenter' AND r.seq >= s.enter_seq")
        .pluck()
        .get(id, session) as number;
    // Dispatch routine, user handle: the probe of the IO_STATUS_BLOCK on the driver's stack.
    const [probe, workNt, workZw] = user;
    const parent = db.prepare('SELECT parent_id FROM syscalls WHERE session_id = ? AND id = ?').pluck().get(sessionOf.get(`osr-log-user-handle${suffix}`), probe.syscall_id) as number;
    const entered = sysenterOf(sessionOf.get(`osr-log-user-handle${suffix}`)!, parent);
    t.match(probe.detail, new RegExp(`^NtWriteFile was called directly from (osr-log-user-handle|osrlog)!WriteBoth\\+0x[0-9a-f]+, so PreviousMode stayed UserMode from the program's (NtReadFile|NtDeviceIoControlFile) \\(sysenter, seq ${entered}\\); ProbeForWrite of the IoStatusBlock at F8A0[0-9A-F]{4} \\(8 bytes\\) failed with STATUS_ACCESS_VIOLATION: a kernel address seen from UserMode`));
    t.match(probe.detail, /ZwWriteFile would have set PreviousMode = KernelMode\.$/);
    t.ok(JSON.parse(probe.evidence).includes(entered), 'the SYSENTER that set UserMode is evidence');
    // Work item, user handle: the System thread's lookup searched the kernel table.
    for (const w of [workNt, workZw]) {
      t.match(w.detail, /lives in osr(log-client|-log-user)\.exe's handle table \(created by #3 ZwCreateFile from (osr-log-user-handle|osrlog)!DispatchDeviceControl\+0x[0-9a-f]+, seq \d+\), but this code runs on a System thread, whose process is System: the lookup searched the kernel handle table/);
    }
    t.match(workNt.detail, /so PreviousMode stayed KernelMode: a System thread runs in KernelMode from its creation/);
    t.match(workZw.detail, /^ZwWriteFile was called from (osr-log-user-handle|osrlog)!WriteBoth\+0x[0-9a-f]+: the Zw stub's push 8 \(a kernel CS\) before call KiSystemService \(seq \d+\) set PreviousMode = KernelMode/);
    // Dispatch routine, kernel handle: bit 31 with PreviousMode UserMode, refused before any table.
    t.match(kernel[0].detail, /so PreviousMode stayed UserMode from the program's \w+ \(sysenter, seq \d+\); handle 80000004 has bit 31 set, a kernel handle \(created by #3 ZwCreateFile from (osr-log-kernel-handle|osrlog)!DispatchDeviceControl\+0x[0-9a-f]+, seq \d+\), but the lookup ran with PreviousMode UserMode: ObReferenceObjectByHandle refuses it without searching any table → STATUS_INVALID_HANDLE\. ZwWriteFile would have set PreviousMode = KernelMode\.$/);
  }
});

t.test('each hook scenario: its hook as detectors report it, when it was installed and first ran', async (t) => {
  const db = new Database(builtins, { readonly: true });
  t.teardown(() => db.close());
  const at = db.prepare('SELECT type, eip FROM events WHERE session_id = ? AND seq = ?');
  for (const [name, want] of Object.entries(HOOKS)) {
    const session = sessionOf.get(name)!;
    registerSym(db, session);
    const rows = db.prepare('SELECT * FROM hooks WHERE session_id = ? ORDER BY id').all(session) as Row[];
    t.equal(rows.length, 1, `${name}: one hook`);
    const h = rows[0];
    t.equal(h.hook_type, want.type, `${name}: type`);
    t.match(h.table_name, want.table, `${name}: table`);
    t.equal(h.entry_index, want.index, `${name}: index`);
    t.equal(h.function, want.fn, `${name}: function`);
    t.equal((h.original as number) >>> 0, want.original, `${name}: original address`);
    t.equal(h.owner, want.owner, `${name}: the hooking module owns the current address`);
    const sym = db.prepare('SELECT sym(?)').pluck();
    t.match(sym.get(h.current), new RegExp(`^${want.owner}!`), `${name}: the current address is in ${want.owner}`);
    const install = at.get(session, h.install_seq) as Row;
    t.match(sym.get(install.eip), want.installBy, `${name}: installed by ${sym.get(install.eip)} at seq ${h.install_seq}`);
    const first = at.get(session, h.first_run_seq) as Row;
    t.equal(first.type, want.firstRun, `${name}: first ran at a ${want.firstRun} (seq ${h.first_run_seq})`);
    t.ok((h.first_run_seq as number) > (h.install_seq as number), `${name}: after the install`);
    const f = db.prepare('SELECT * FROM findings WHERE session_id = ? AND id = ?').get(session, h.finding_id) as FindingRow;
    t.equal(f.kind, 'hook');
    t.equal(f.seq, h.install_seq, `${name}: the finding's decisive event is the install`);
    t.same(JSON.parse(f.evidence).slice(0, 2), [h.install_seq, h.first_run_seq], `${name}: evidence: install, first run`);
    // The first call through it is a call of the hooked service (or, for the dispatcher patch and the entry hooks, the first call at all).
    const call = db.prepare('SELECT name, enter_seq FROM syscalls WHERE session_id = ? AND id = ?').get(session, f.syscall_id) as Row;
    if (want.index !== null && want.type !== 'msr' && want.type !== 'idt') t.equal(call.name, want.fn.split('!')[1], `${name}: the first call through it is ${want.fn}`);
    else t.equal(f.syscall_id, db.prepare('SELECT min(id) FROM syscalls WHERE session_id = ? AND enter_seq > ?').pluck().get(session, h.install_seq), `${name}: the first call after the install`);
  }
});

t.test('an inline hook on an Nt routine that never runs is found all the same, with no first run', async (t) => {
  const file = join(dir, 'dormant.db');
  const driver = `; ntflow: driver
; Patches nt!NtAcceptConnectPort's first five bytes with a jmp to its own routine (CR0.WP lifted).
DriverEntry:
    mov edi, nt!NtAcceptConnectPort
    mov eax, Hook
    sub eax, edi
    sub eax, 5
    cli
    mov edx, cr0
    push edx
    and edx, ~0x10000
    mov cr0, edx
    mov byte [edi], 0xE9
    mov [edi+1], eax
    pop edx
    mov cr0, edx
    sti
    xor eax, eax
    ret 8
Hook:
    mov eax, 0xC0000002
    ret 0x18
`;
  const s = await record({ program: { fileName: 'user-nt-readfile.asm', source: readFileSync(repoPath('core', 'guest', 'scenarios', 'user-nt-readfile.asm'), 'utf8') }, drivers: [{ fileName: 'dormant-hook.asm', source: driver }] }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const hooks = db.prepare('SELECT hook_type, function, owner, install_seq, first_run_seq, original_bytes, current_bytes FROM hooks WHERE session_id = ?').all(s.sessionId) as Row[];
  t.equal(hooks.length, 1, 'one hook');
  t.match(hooks[0], { hook_type: 'inline', function: 'nt!NtAcceptConnectPort', owner: 'dormant-hook', first_run_seq: null, current_bytes: /^e9 / });
  t.ok(hooks[0].install_seq !== null, 'the write that installed it');
  const f = db.prepare("SELECT title, detail, syscall_id FROM findings WHERE session_id = ? AND kind = 'hook'").get(s.sessionId) as Row;
  t.match(f, { title: 'inline hook: nt!NtAcceptConnectPort → dormant-hook!Hook', syscall_id: null });
  t.match(f.detail, /It never ran in the session\.$/);
});

t.test('a file that is not there: the routine decided, and the finding names the file', async (t) => {
  const file = join(dir, 'missing.db');
  const source = readFileSync(join(repoPath('test', 'programs', 'findings'), 'probe-kernel-address.asm'), 'utf8')
    .replace(/^; ntflow-file:.*$/m, '')
    .replace("'f', 'i', 'n', 'd', 'i', 'n', 'g', 's'", "'n', 'o', 'p', 'e'");
  const s = await record({ program: { fileName: 'missing.asm', source } }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const f = findingsOf(db, s.sessionId);
  t.same(f.map((x) => [x.cause, x.title]), [['routine', '#1 NtCreateFile → STATUS_OBJECT_NAME_NOT_FOUND: \\??\\C:\\nope.txt not found']]);
  t.match(f[0].detail, /nt!NtCreateFile returned STATUS_OBJECT_NAME_NOT_FOUND itself for \\\?\?\\C:\\nope\.txt: no probe, handle lookup or fault failed on the way\.$/);
});

t.test('replay rebuilds the same findings and hooks digests', async (t) => {
  const digests = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare("SELECT session_id, name, digest, rows FROM projections WHERE name IN ('findings', 'hooks') ORDER BY session_id, name").all();
    } finally {
      db.close();
    }
  };
  const before = digests(builtins);
  t.ok(before.length >= SCENARIOS.length * 2);
  replayFile(builtins);
  t.same(digests(builtins), before);
});

t.test('the failure-cause programs: one finding each, of its cause, and none besides', async (t) => {
  const file = join(dir, 'causes.db');
  const folder = repoPath('test', 'programs', 'findings');
  const load = (f: string) => ({ fileName: f, source: readFileSync(join(folder, f), 'utf8') });
  for (const c of FAILURE_CASES) {
    const s = await record({ program: load(c.program), drivers: c.drivers.map(load) }, { output: file, cpu: c.cpu, name: c.cause });
    replayFile(file, { session: s.sessionId });
    const db = new Database(file, { readonly: true });
    try {
      const f = findingsOf(db, s.sessionId).filter((x) => x.kind === 'failure-cause');
      const main = db
        .prepare(`SELECT id FROM syscalls WHERE session_id = ? AND status = ? AND ${c.service === null ? 'name IS NULL' : 'name = ?'} AND entry = ?`)
        .pluck()
        .all(...[s.sessionId, c.status, ...(c.service === null ? [] : [c.service]), c.entry]) as number[];
      t.equal(main.length, 1, `${c.cause}: the failing call`);
      const mine = f.filter((x) => x.syscall_id === main[0]);
      t.same(mine.map((x) => x.cause), [c.cause], `${c.cause}: ${mine.map((x) => x.title).join(' | ')}`);
      t.same(
        f.filter((x) => x.syscall_id !== main[0]).map((x) => x.cause).sort(),
        c.alsoFailing.map((o) => o.cause).sort(),
        `${c.cause}: the other failures are the ones the program cannot avoid`,
      );
      for (const x of mine) checkDecisive(t, db, s.sessionId, x, f);
      t.equal(db.prepare("SELECT count(*) FROM findings WHERE session_id = ? AND kind = 'hook'").pluck().get(s.sessionId), 0, `${c.cause}: no hook`);
    } finally {
      db.close();
    }
  }
});
