// Projections, rebuilt from the log (analyzer/replay.ts). Perfetto-style: for each projection a
// tiny hand-made trace (test/util/tiny-trace.ts) + replay + a query + the exact expected rows; then
// the built-in scenarios recorded and checked through SQL (the OSR matrix as one query, entries,
// parents, PreviousMode, statuses, process names), digests stable across rebuilds and recordings,
// and every column of the analyzer's tables documented in its CREATE statement.
//   npx tsc -p tsconfig.json && npx tap dist/test/analyzer-projections.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIOS } from '../core/guest/scenarios.js';
import { record, type SessionSummary } from '../recorder/index.js';
import { PROJECTIONS, PROJECTIONS_TABLE, ReplayInputError, replayFile, replaySession } from '../analyzer/index.js';
import { TinyTrace } from './util/tiny-trace.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-projections-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const EAX = 0;
const STATUS_INVALID_HANDLE = 0xc0000008;
const STATUS_INVALID_SYSTEM_SERVICE = 0xc000001c;

/**
 * One program's NtReadFile through SYSENTER, served by a driver's dispatch routine (a callback of
 * the I/O manager) that calls ZwWriteFile (pushfd; push 8; call KiSystemService: KernelMode,
 * STATUS_INVALID_HANDLE) and then nt!NtClose directly (UserMode, STATUS_INVALID_HANDLE — EAX is
 * already that value, so its escape records no EAX effect); then a number past the table through
 * INT 2Eh, rejected by the limit check.
 */
function tinyTrace(path?: string): TinyTrace {
  const tr = new TinyTrace({ firstThread: 8, path });
  tr.symbol('nt', 'KiSystemService', 0x8053a2fb, 0x5c);
  tr.symbol('ntdll', 'NtReadFile', 0x77f761e8, 0x10);
  tr.ev('thread-switch', { fromThread: 8, toThread: 1996, fromProcess: 'System', toProcess: 'app.exe', reason: 'program start' }, { eip: 0x401000 }); // 0
  tr.cpl = 3;
  tr.ins(0x401000, 'call ntdll!NtReadFile (77f761e8)', { len: 5, symbol: 'app!start' }); // 1
  tr.ins(0x77f761e8, 'mov eax,0B7h', { len: 5, symbol: 'ntdll!NtReadFile', regs: { [EAX]: 0xb7 } }); // 2
  tr.ev('msr-read', { msr: 0x174, value: 8, source: 'sysenter' }, { eip: 0x77f761ed }); // 3
  tr.ev('ring-transition', { fromCpl: 3, toCpl: 0, mechanism: 'sysenter', fromEip: 0x77f761ed, toEip: 0x8053a270, fromEsp: 0x12ff00, toEsp: 0xf8800000, vector: null }, { eip: 0x77f761ed }); // 4
  tr.ins(0x77f761ed, 'sysenter', { len: 2, symbol: 'ntdll!NtReadFile+0x5' }); // 5
  tr.cpl = 0;
  tr.ins(0x8053a270, 'jmp nt!KiSystemService+0xc4 (8053a3bf)', { symbol: 'nt!KiFastCallEntry' }); // 6
  tr.ev('ssdt-lookup', { serviceNumber: 0xb7, tableIndex: 0, serviceIndex: 0xb7, tableBase: 0x804e2d20, limit: 284, target: 0x8056b2ec, targetSymbol: 'nt!NtReadFile', argBytes: 36, inRange: true }); // 7
  tr.ins(0x8053a3bf, 'call ebx', { symbol: 'nt!KiSystemService+0xc4' }); // 8
  tr.ins(0x8056b2ec, 'push 58h', { symbol: 'nt!NtReadFile' }); // 9
  tr.ev('service-enter', { service: 'NtReadFile', serviceNumber: 0xb7, previousMode: 'UserMode', caller: 0x8053a3c1, args: [4, 0, 0, 0, 0x401100, 0x401200, 16, 0, 0] }); // 10
  tr.ev('handle-lookup', { handle: 4, table: 'process', previousMode: 'UserMode', status: 0, object: 0x81000000, objectType: 'File' }); // 11
  tr.ev('irp', { phase: 'dispatch', irp: 0x81001000, majorFunction: 3, majorFunctionName: 'IRP_MJ_READ', device: 0x81002000, driver: '\\Driver\\drv', requestorMode: 'UserMode', status: null }); // 12
  tr.ins(0xf8a00000, 'push ebp', { len: 1, symbol: 'drv!DispatchRead' }); // 13: the I/O manager calls the driver
  tr.ins(0xf8a00001, 'call nt!ZwWriteFile (80504d4c)', { len: 5, symbol: 'drv!DispatchRead+0x1' }); // 14
  tr.ins(0x80504d4c, 'mov eax,112h', { len: 5, symbol: 'nt!ZwWriteFile', regs: { [EAX]: 0x112 } }); // 15
  tr.ins(0x80504d51, 'call nt!KiSystemService (8053a2fb)', { len: 5, symbol: 'nt!ZwWriteFile+0x5' }); // 16
  tr.ins(0x8053a2fb, 'jmp nt!KiSystemService+0xc4 (8053a3bf)', { symbol: 'nt!KiSystemService' }); // 17
  tr.ev('ssdt-lookup', { serviceNumber: 0x112, tableIndex: 0, serviceIndex: 0x112, tableBase: 0x804e2d20, limit: 284, target: 0x8056bf3c, targetSymbol: 'nt!NtWriteFile', argBytes: 36, inRange: true }); // 18
  tr.ins(0x8053a3bf, 'call ebx', { symbol: 'nt!KiSystemService+0xc4' }); // 19
  tr.ins(0x8056bf3c, 'push ebp', { len: 1, symbol: 'nt!NtWriteFile' }); // 20
  tr.ev('service-enter', { service: 'NtWriteFile', serviceNumber: 0x112, previousMode: 'KernelMode', caller: 0x8053a3c1, args: [8, 0, 0, 0, 0xf8a00100, 0xf8a00200, 24, 0, 0] }); // 21
  tr.ev('handle-lookup', { handle: 8, table: 'kernel', previousMode: 'KernelMode', status: STATUS_INVALID_HANDLE, object: null, objectType: null }); // 22
  tr.ev('service-exit', { service: 'NtWriteFile', serviceNumber: 0x112, status: STATUS_INVALID_HANDLE, statusName: 'STATUS_INVALID_HANDLE' }); // 23
  tr.ins(0x8056bf3d, 'out 8Eh,eax', { symbol: 'nt!NtWriteFile+0x1', regs: { [EAX]: STATUS_INVALID_HANDLE } }); // 24
  tr.ins(0x8056bf3f, 'ret 24h', { len: 3, symbol: 'nt!NtWriteFile+0x3' }); // 25
  tr.ins(0x8053a3c1, 'jmp edx', { symbol: 'nt!KiSystemService+0xc6' }); // 26: the kernel return's jmp edx back to the Zw stub
  tr.ins(0x80504d56, 'ret 24h', { len: 3, symbol: 'nt!ZwWriteFile+0xa' }); // 27
  tr.ins(0xf8a00006, 'call nt!NtClose (8056b74c)', { len: 5, symbol: 'drv!DispatchRead+0x6' }); // 28
  tr.ins(0x8056b74c, 'push ebp', { len: 1, symbol: 'nt!NtClose' }); // 29
  tr.ev('service-enter', { service: 'NtClose', serviceNumber: 0x19, previousMode: 'UserMode', caller: 0xf8a0000b, args: [0x80000004] }); // 30
  tr.ev('handle-lookup', { handle: 0x80000004, table: 'process', previousMode: 'UserMode', status: STATUS_INVALID_HANDLE, object: null, objectType: null }); // 31
  tr.ev('service-exit', { service: 'NtClose', serviceNumber: 0x19, status: STATUS_INVALID_HANDLE, statusName: 'STATUS_INVALID_HANDLE' }); // 32
  tr.ins(0x8056b74d, 'out 8Eh,eax', { symbol: 'nt!NtClose+0x1' }); // 33: EAX unchanged
  tr.ins(0x8056b74f, 'ret 4', { len: 3, symbol: 'nt!NtClose+0x3' }); // 34
  tr.ins(0xf8a0000b, 'ret 8', { len: 3, symbol: 'drv!DispatchRead+0xb' }); // 35: back to the trampoline
  tr.ins(0x8056b368, 'out 8Fh,eax', { symbol: 'nt!KiCallbackReturnTrampoline' }); // 36
  tr.ev('service-exit', { service: 'NtReadFile', serviceNumber: 0xb7, status: 0, statusName: 'STATUS_SUCCESS' }); // 37
  tr.ins(0x8056b2ee, 'out 8Eh,eax', { symbol: 'nt!NtReadFile+0x2', regs: { [EAX]: 0 } }); // 38: NtReadFile's body resumes
  tr.ins(0x8056b2f0, 'ret 24h', { len: 3, symbol: 'nt!NtReadFile+0x4' }); // 39
  tr.ins(0x8053a3c1, 'sti', { len: 1, symbol: 'nt!KiSystemService+0xc6' }); // 40
  tr.ev('msr-read', { msr: 0x174, value: 8, source: 'sysexit' }, { eip: 0x8053a3c2 }); // 41
  tr.ev('ring-transition', { fromCpl: 0, toCpl: 3, mechanism: 'sysexit', fromEip: 0x8053a3c2, toEip: 0x77f761ef, fromEsp: 0xf87ffd00, toEsp: 0x12ff00, vector: null }, { eip: 0x8053a3c2 }); // 42
  tr.ins(0x8053a3c2, 'sysexit', { symbol: 'nt!KiSystemService+0xc7' }); // 43
  tr.cpl = 3;
  tr.ins(0x77f761ef, 'ret 24h', { len: 3, symbol: 'ntdll!NtReadFile+0x7' }); // 44
  tr.ins(0x401005, 'mov eax,11Ch', { len: 5, symbol: 'app!start+0x5', regs: { [EAX]: 0x11c } }); // 45
  tr.ev('ring-transition', { fromCpl: 3, toCpl: 0, mechanism: 'int', fromEip: 0x40100a, toEip: 0x8053a2fb, fromEsp: 0x12ff00, toEsp: 0xf87ffd00, vector: 0x2e }, { eip: 0x40100a }); // 46
  tr.ins(0x40100a, 'int 2Eh', { symbol: 'app!start+0xa' }); // 47
  tr.cpl = 0;
  tr.ins(0x8053a2fb, 'jmp nt!KiBBTUnexpectedRange (8053a516)', { symbol: 'nt!KiSystemService' }); // 48
  tr.ev('ssdt-lookup', { serviceNumber: 0x11c, tableIndex: 0, serviceIndex: 0x11c, tableBase: 0x804e2d20, limit: 284, target: null, targetSymbol: null, argBytes: null, inRange: false }); // 49
  tr.ins(0x8053a516, 'mov eax,0C000001Ch', { len: 5, symbol: 'nt!KiBBTUnexpectedRange', regs: { [EAX]: STATUS_INVALID_SYSTEM_SERVICE } }); // 50
  tr.ev('ring-transition', { fromCpl: 0, toCpl: 3, mechanism: 'iret', fromEip: 0x8053a51b, toEip: 0x40100c, fromEsp: 0xf87ffd00, toEsp: 0x12ff00, vector: null }, { eip: 0x8053a51b }); // 51
  tr.ins(0x8053a51b, 'iretd', { len: 1, symbol: 'nt!KiBBTUnexpectedRange+0x5' }); // 52
  tr.cpl = 3;
  tr.ins(0x40100c, 'ret', { len: 1, symbol: 'app!start+0xc' }); // 53
  tr.ev('machine-stop', { reason: 'exited', detail: 'exit status 0x0' }, { eip: 0x40100c }); // 54
  return tr.finish();
}

function query(db: Database.Database, sql: string, ...params: unknown[]): unknown[][] {
  return db.prepare(sql).raw().all(...params) as unknown[][];
}

t.test('syscalls: entries, pairing, parents, PreviousMode, status from EAX at the return', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT id, parent_id, enter_seq, exit_seq, thread_id, process, service_number, name, caller_cpl, entry, previous_mode, status, status_name, instructions FROM syscalls ORDER BY id'), [
    [1, null, 3, 43, 1996, 'app.exe', 0xb7, 'NtReadFile', 3, 'sysenter', 'UserMode', 0, 'STATUS_SUCCESS', 25],
    [2, 1, 16, 26, 1996, 'app.exe', 0x112, 'NtWriteFile', 0, 'zw-kernel', 'KernelMode', STATUS_INVALID_HANDLE, 'STATUS_INVALID_HANDLE', 7],
    [3, 1, 28, 34, 1996, 'app.exe', 0x19, 'NtClose', 0, 'nt-direct', 'UserMode', STATUS_INVALID_HANDLE, 'STATUS_INVALID_HANDLE', 4],
    [4, null, 46, 52, 1996, 'app.exe', 0x11c, null, 3, 'int2e', 'UserMode', STATUS_INVALID_SYSTEM_SERVICE, 'STATUS_INVALID_SYSTEM_SERVICE', 4],
  ]);
  // instructions = instruction rows from enter_seq to exit_seq
  t.same(
    query(tr.db, 'SELECT s.id FROM syscalls s WHERE s.instructions <> (SELECT count(*) FROM instructions l WHERE l.session_id = s.session_id AND l.seq BETWEEN s.enter_seq AND s.exit_seq)'),
    [],
  );
  tr.close();
});

t.test('syscalls: a call that never returns, and a session that starts in the System thread', async (t) => {
  const tr = new TinyTrace({ firstThread: 8 });
  tr.symbol('nt', 'KiSystemService', 0x8053a2fb, 0x5c);
  tr.cpl = 0;
  tr.ins(0xf8a00000, 'call nt!ZwClose (80504000)', { len: 5, symbol: 'drv!DriverEntry' }); // 0
  tr.ins(0x80504000, 'call nt!KiSystemService (8053a2fb)', { len: 5, symbol: 'nt!ZwClose' }); // 1
  tr.ins(0x8053a2fb, 'push 0', { symbol: 'nt!KiSystemService' }); // 2
  tr.ev('ssdt-lookup', { serviceNumber: 0x19, tableIndex: 0, serviceIndex: 0x19, tableBase: 0x804e2d20, limit: 284, target: 0x8056b74c, targetSymbol: 'nt!NtClose', argBytes: 4, inRange: true }); // 3
  tr.ev('machine-stop', { reason: 'bugcheck', detail: 'bug check' }); // 4
  tr.finish();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT id, parent_id, enter_seq, exit_seq, thread_id, process, name, entry, previous_mode, status, status_name, instructions FROM syscalls'), [
    [1, null, 1, null, 8, 'System', 'NtClose', 'zw-kernel', 'KernelMode', null, null, null],
  ]);
  tr.close();
});

t.test('syscall_args: names from the prototype, decoded from the log', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT syscall_id, position, name, value, decoded FROM syscall_args WHERE syscall_id = 1 ORDER BY position'), [
    [1, 0, 'FileHandle', 4, 'File (process table)'],
    [1, 1, 'Event', 0, 'NULL'],
    [1, 2, 'ApcRoutine', 0, 'NULL'],
    [1, 3, 'ApcContext', 0, 'NULL'],
    [1, 4, 'IoStatusBlock', 0x401100, null],
    [1, 5, 'Buffer', 0x401200, null],
    [1, 6, 'Length', 16, '16'],
    [1, 7, 'ByteOffset', 0, 'NULL'],
    [1, 8, 'Key', 0, '0'],
  ]);
  t.same(query(tr.db, 'SELECT syscall_id, position, name, value, decoded FROM syscall_args WHERE position = 0 ORDER BY syscall_id'), [
    [1, 0, 'FileHandle', 4, 'File (process table)'],
    [2, 0, 'FileHandle', 8, 'STATUS_INVALID_HANDLE (kernel table)'],
    [3, 0, 'Handle', 0x80000004, 'STATUS_INVALID_HANDLE (process table)'],
  ]);
  t.equal(query(tr.db, 'SELECT count(*) FROM syscall_args WHERE syscall_id = 4')[0][0], 0, 'a rejected number ran no routine: no arguments');
  tr.close();
});

t.test('calls: call/ret, sysenter/sysexit, int/iretd, callbacks from the kernel', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT id, parent_id, depth, thread_id, enter_seq, exit_seq, kind, address, symbol, module FROM calls ORDER BY id'), [
    [1, null, 0, 1996, 1, null, 'callback', 0x401000, 'app!start', 'app'],
    [2, 1, 1, 1996, 1, 44, 'call', 0x77f761e8, 'ntdll!NtReadFile', 'ntdll'],
    [3, 2, 2, 1996, 5, 43, 'sysenter', 0x8053a270, 'nt!KiFastCallEntry', 'nt'],
    [4, 3, 3, 1996, 8, 39, 'call', 0x8056b2ec, 'nt!NtReadFile', 'nt'],
    [5, 4, 4, 1996, 13, 35, 'callback', 0xf8a00000, 'drv!DispatchRead', 'drv'],
    [6, 5, 5, 1996, 14, 27, 'call', 0x80504d4c, 'nt!ZwWriteFile', 'nt'],
    [7, 6, 6, 1996, 16, 27, 'call', 0x8053a2fb, 'nt!KiSystemService', 'nt'],
    [8, 7, 7, 1996, 19, 25, 'call', 0x8056bf3c, 'nt!NtWriteFile', 'nt'],
    [9, 5, 5, 1996, 28, 34, 'call', 0x8056b74c, 'nt!NtClose', 'nt'],
    [10, 1, 1, 1996, 47, 52, 'int', 0x8053a2fb, 'nt!KiSystemService', 'nt'],
  ]);
  tr.close();
});

t.test('ring_spans: runs of one thread at one privilege level', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT thread_id, start_seq, end_seq, cpl, instructions FROM ring_spans ORDER BY start_seq'), [
    [1996, 0, 5, 3, 3],
    [1996, 6, 43, 0, 24],
    [1996, 44, 47, 3, 3],
    [1996, 48, 52, 0, 3],
    [1996, 53, 54, 3, 1],
  ]);
  const tr2 = new TinyTrace({ firstThread: 8 });
  tr2.cpl = 0;
  tr2.ins(0x8056b000, 'nop', { len: 1 }); // 0
  tr2.ev('thread-switch', { fromThread: 8, toThread: 1996, fromProcess: 'System', toProcess: 'a.exe', reason: 'program start' }); // 1
  tr2.ins(0x8056b001, 'nop', { len: 1 }); // 2
  tr2.ev('thread-switch', { fromThread: 1996, toThread: 8, fromProcess: 'a.exe', toProcess: 'System', reason: 'work item' }); // 3
  tr2.ins(0x8056b002, 'nop', { len: 1 }); // 4
  tr2.finish();
  replaySession(tr2.db, tr2.sessionId);
  t.same(query(tr2.db, 'SELECT thread_id, start_seq, end_seq, cpl, instructions FROM ring_spans ORDER BY start_seq'), [
    [8, 0, 0, 0, 1],
    [1996, 1, 2, 0, 1],
    [8, 3, 4, 0, 1],
  ]);
  tr.close();
  tr2.close();
});

t.test('symbols: the session\'s guest symbols', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  t.same(query(tr.db, 'SELECT address, module, name, size FROM symbols ORDER BY address'), [
    [0x77f761e8, 'ntdll', 'NtReadFile', 0x10],
    [0x8053a2fb, 'nt', 'KiSystemService', 0x5c],
  ]);
  tr.close();
});

const FINDINGS_OF_TINY: unknown[][] = [
  ['failure-cause', 'handle-never-opened', 2],
  ['failure-cause', 'handle-kernel-from-user', 3],
  ['failure-cause', 'service-limit', 4],
];

t.test('projections: one row per projection, digests stable across rebuilds and files', async (t) => {
  const tr = tinyTrace();
  const first = replaySession(tr.db, tr.sessionId);
  t.same(first.projections.map((p) => p.name), ['syscalls', 'syscall_args', 'calls', 'ring_spans', 'symbols', 'findings', 'hooks']);
  t.equal(first.events, 55);
  const rows = query(tr.db, 'SELECT name, version, last_seq, rows FROM projections WHERE session_id = ? ORDER BY name', tr.sessionId);
  // The tiny trace's three failed calls (a rejected number, two refused handles) each get a finding.
  t.same(query(tr.db, 'SELECT kind, cause, syscall_id FROM findings WHERE session_id = ? ORDER BY id', tr.sessionId), FINDINGS_OF_TINY);
  t.same(rows, [
    ['calls', 1, 54, 10],
    ['findings', 1, 54, 3],
    ['hooks', 1, 54, 0],
    ['ring_spans', 1, 54, 5],
    ['symbols', 1, 54, 2],
    ['syscall_args', 1, 54, 19],
    ['syscalls', 1, 54, 4],
  ]);
  const second = replaySession(tr.db, tr.sessionId);
  t.same(second.projections, first.projections, 'rebuilding gives the same rows and digests');
  t.equal(query(tr.db, 'SELECT count(*) FROM syscalls')[0][0], 4, 'truncated before folding again');
  // The same log in another file (another session id there): the same digests.
  const other = new TinyTrace({ firstThread: 8 });
  other.ins(0x1000, 'nop', { len: 1 });
  other.finish();
  other.close();
  const tr2 = tinyTrace(other.path);
  t.equal(tr2.sessionId, 2);
  const again = replaySession(tr2.db, tr2.sessionId);
  t.same(again.projections.map((p) => p.digest), first.projections.map((p) => p.digest));
  t.same(query(tr2.db, 'SELECT DISTINCT session_id FROM calls ORDER BY 1'), [[2]], 'only the replayed session has rows');
  tr.close();
  tr2.close();
});

t.test('every analyzer table and column is documented in its CREATE statement', async (t) => {
  const tr = tinyTrace();
  replaySession(tr.db, tr.sessionId);
  for (const table of [...PROJECTIONS.map((p) => p.table), PROJECTIONS_TABLE]) {
    const sql = tr.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(table.name) as string;
    t.ok(sql, `${table.name} exists`);
    const lines = sql.split('\n');
    t.match(lines[1], /^\s*-- \S/, `${table.name} has a comment`);
    const columns = (tr.db.prepare(`PRAGMA table_info(${table.name})`).all() as { name: string }[]).map((c) => c.name);
    t.same(columns, ['session_id', ...table.columns.map((c) => c.name)]);
    for (const c of columns) {
      const line = lines.find((l) => new RegExp(`^\\s*${c} (INTEGER|TEXT)`).test(l));
      t.match(line, / -- \S.{8,}/, `${table.name}.${c} is documented`);
    }
  }
  tr.close();
});

t.test('replayFile: every session or one; a bad session is a one-line user error', async (t) => {
  const tr = tinyTrace();
  tr.close();
  const results = replayFile(tr.path);
  t.same(results.map((r) => r.sessionId), [1]);
  t.throws(() => replayFile(tr.path, { session: 7 }), new ReplayInputError(`no session 7 in ${tr.path} (sessions: 1)`));
  let calls = 0;
  replayFile(tr.path, { session: 1, onProgress: (p) => (calls++, t.same([p.sessionId, p.events, p.total], [1, 55, 55])) });
  t.equal(calls, 1);
});

// ---- the built-in scenarios, recorded, replayed and checked through SQL ----

t.test('the built-in scenarios through SQL', async (t) => {
  const file = join(dir, 'scenarios.db');
  const session = new Map<string, number>();
  const summaries: SessionSummary[] = [];
  let started = performance.now();
  for (const s of SCENARIOS) {
    const summary = await record({ scenario: s.name }, { output: file });
    session.set(s.name, summary.sessionId);
    summaries.push(summary);
  }
  const again = (await record({ scenario: 'osr-log-user-handle' }, { output: file })).sessionId;
  t.comment(`recorded ${SCENARIOS.length + 1} sessions in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  const results = replayFile(file);
  t.comment(`replayed them in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  t.equal(results.length, SCENARIOS.length + 1);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const sid = (name: string) => session.get(name)!;
  const rows = (sql: string, name: string) => query(db, sql, sid(name));

  // `record`'s summary counted, while recording, the calls the projection lists, with their statuses.
  for (const s of summaries) {
    const failing = query(db, 'SELECT status_name, count(*) FROM syscalls WHERE session_id = ? AND status >= 0xC0000000 GROUP BY 1 ORDER BY 1', s.sessionId);
    t.same(
      [s.syscalls, Object.entries(s.failures).sort((a, b) => (a[0] < b[0] ? -1 : 1))],
      [query(db, 'SELECT count(*) FROM syscalls WHERE session_id = ?', s.sessionId)[0][0], failing],
      `${s.name}: the summary's system calls and failures are the syscalls rows'`,
    );
  }

  const matrix = 'SELECT name, previous_mode, status_name FROM syscalls WHERE session_id = ? AND name = \'NtWriteFile\' ORDER BY enter_seq';
  t.same(rows(matrix, 'osr-log-user-handle'), [
    ['NtWriteFile', 'UserMode', 'STATUS_ACCESS_VIOLATION'],
    ['NtWriteFile', 'KernelMode', 'STATUS_SUCCESS'],
    ['NtWriteFile', 'KernelMode', 'STATUS_INVALID_HANDLE'],
    ['NtWriteFile', 'KernelMode', 'STATUS_INVALID_HANDLE'],
  ]);
  t.same(rows(matrix, 'osr-log-kernel-handle'), [
    ['NtWriteFile', 'UserMode', 'STATUS_INVALID_HANDLE'],
    ['NtWriteFile', 'KernelMode', 'STATUS_SUCCESS'],
    ['NtWriteFile', 'KernelMode', 'STATUS_SUCCESS'],
    ['NtWriteFile', 'KernelMode', 'STATUS_SUCCESS'],
  ]);
  // Which path, and from where: the dispatch-routine calls serve the program's NtReadFile; the
  // work item's run in the System thread with no enclosing call.
  t.same(
    rows(
      `SELECT w.entry, w.process, p.name, w.thread_id FROM syscalls w LEFT JOIN syscalls p ON p.session_id = w.session_id AND p.id = w.parent_id
       WHERE w.session_id = ? AND w.name = 'NtWriteFile' ORDER BY w.enter_seq`,
      'osr-log-user-handle',
    ),
    [
      ['nt-direct', 'osr-log-user.exe', 'NtReadFile', 1996],
      ['zw-kernel', 'osr-log-user.exe', 'NtReadFile', 1996],
      ['nt-direct', 'System', null, 8],
      ['zw-kernel', 'System', null, 8],
    ],
  );

  const readFile = "SELECT entry, previous_mode, status_name, caller_cpl, parent_id IS NOT NULL FROM syscalls WHERE session_id = ? AND name = 'NtReadFile' ORDER BY enter_seq";
  t.same(rows(readFile, 'user-nt-readfile'), [['sysenter', 'UserMode', 'STATUS_SUCCESS', 3, 0]]);
  t.same(rows(readFile, 'user-zw-readfile'), [['sysenter', 'UserMode', 'STATUS_SUCCESS', 3, 0]]);
  t.same(rows(readFile, 'int2e-readfile'), [['int2e', 'UserMode', 'STATUS_SUCCESS', 3, 0]]);
  t.same(rows(readFile, 'ssdt-hook'), [['sysenter', 'UserMode', 'STATUS_SUCCESS', 3, 0]], 'the hook calling the original is the same call');
  t.same(rows(readFile, 'kifastcallentry-hook'), [['sysenter', 'UserMode', 'STATUS_SUCCESS', 3, 0]]);
  t.same(rows(readFile, 'kernel-zw-readfile'), [
    ['sysenter', 'UserMode', 'STATUS_SUCCESS', 3, 0],
    ['zw-kernel', 'KernelMode', 'STATUS_SUCCESS', 0, 1],
  ]);
  t.same(rows(readFile, 'kernel-nt-readfile'), [
    ['sysenter', 'UserMode', 'STATUS_INVALID_HANDLE', 3, 0],
    ['nt-direct', 'UserMode', 'STATUS_INVALID_HANDLE', 0, 1],
  ]);
  const parentOfInner = `SELECT i.parent_id = o.id FROM syscalls i JOIN syscalls o ON o.session_id = i.session_id AND o.entry = 'sysenter' AND o.name = 'NtReadFile'
    WHERE i.session_id = ? AND i.name = 'NtReadFile' AND i.entry <> 'sysenter'`;
  t.same(rows(parentOfInner, 'kernel-zw-readfile'), [[1]], "the driver's ZwReadFile is inside the program's NtReadFile");
  t.same(rows(parentOfInner, 'kernel-nt-readfile'), [[1]]);
  t.same(rows("SELECT entry, previous_mode, status_name FROM syscalls WHERE session_id = ? AND name = 'NtClose' ORDER BY enter_seq", 'kernel-nt-close'), [
    ['nt-direct', 'UserMode', 'STATUS_INVALID_HANDLE'],
    ['sysenter', 'UserMode', 'STATUS_SUCCESS'],
  ]);
  t.same(rows("SELECT process, thread_id FROM syscalls WHERE session_id = ? AND entry = 'zw-kernel' AND name = 'NtCreateFile'", 'kernel-zw-readfile'), [['System', 8]], 'DriverEntry runs in the System thread');

  t.same(
    rows('SELECT service_number, name, status_name FROM syscalls WHERE session_id = ? AND service_number IN (0x11C, 0x1000, 0x1FFF) ORDER BY enter_seq', 'invalid-service'),
    [
      [0x11c, null, 'STATUS_INVALID_SYSTEM_SERVICE'],
      [0x1000, 'NtGdiAbortDoc', 'STATUS_NOT_IMPLEMENTED'],
      [0x1fff, null, 'STATUS_INVALID_SYSTEM_SERVICE'],
    ],
  );
  t.same(rows("SELECT name, status_name FROM syscalls WHERE session_id = ? AND name IN ('NtTestAlert', 'NtContinue') ORDER BY enter_seq", 'user-apc'), [
    ['NtTestAlert', 'STATUS_SUCCESS'],
    ['NtContinue', 'STATUS_SUCCESS'],
  ]);
  t.same(rows("SELECT s.name, a.position, a.decoded FROM syscall_args a JOIN syscalls s ON s.session_id = a.session_id AND s.id = a.syscall_id WHERE a.session_id = ? AND s.name = 'NtProtectVirtualMemory' AND a.position IN (0, 3)", 'zw-protect-virtual-memory'), [
    ['NtProtectVirtualMemory', 0, 'NtCurrentProcess()'],
    ['NtProtectVirtualMemory', 3, 'PAGE_READONLY'],
  ]);

  // Across every scenario: the status the caller got is the routine's own whenever one finished
  // (no hook changes it), every call returned but the last one (NtTerminateProcess), and the call
  // tree is well formed.
  t.same(
    query(db, `SELECT s.session_id, s.id FROM syscalls s JOIN service_exits x ON x.session_id = s.session_id AND x.thread_id = s.thread_id AND x.service_number = s.service_number
      AND x.seq BETWEEN s.enter_seq AND s.exit_seq
      WHERE NOT EXISTS (SELECT 1 FROM syscalls c WHERE c.session_id = s.session_id AND c.parent_id = s.id AND c.service_number = s.service_number)
      AND x.status <> s.status`),
    [],
  );
  t.same(query(db, "SELECT session_id, id, name FROM syscalls WHERE exit_seq IS NULL AND name NOT IN ('NtTerminateProcess', 'NtRaiseException')"), [], 'every call returns but those that ended the process');
  t.same(query(db, `SELECT c.session_id, c.id FROM calls c LEFT JOIN calls p ON p.session_id = c.session_id AND p.id = c.parent_id
    WHERE (c.parent_id IS NULL) <> (c.depth = 0) OR p.depth <> c.depth - 1 OR p.thread_id <> c.thread_id OR c.exit_seq < c.enter_seq OR c.enter_seq < p.enter_seq OR c.exit_seq > p.exit_seq`), []);
  t.same(
    rows("SELECT symbol FROM calls WHERE session_id = ? AND kind = 'sysenter' LIMIT 1", 'user-nt-readfile').concat(rows("SELECT symbol FROM calls WHERE session_id = ? AND kind = 'int' LIMIT 1", 'int2e-readfile')),
    [['nt!KiFastCallEntry'], ['nt!KiSystemService']],
  );

  // Digests: two recordings of the same scenario, and a second rebuild, agree.
  const digests = (id: number) => query(db, 'SELECT name, digest FROM projections WHERE session_id = ? ORDER BY name', id);
  t.same(digests(again), digests(sid('osr-log-user-handle')), 'two recordings, the same digests');
  const before = digests(sid('kernel-zw-readfile'));
  replayFile(file, { session: sid('kernel-zw-readfile') });
  t.same(digests(sid('kernel-zw-readfile')), before, 'a rebuild gives the same digests');
});
