// The `record` summary counts every system call the session made (issue L point 7): dispatches of
// services without a TypeScript body (STATUS_NOT_IMPLEMENTED), numbers the limit check rejects,
// a win32k number looked up twice (one call), direct nt!Nt* calls, and a call that never returns —
// the rows the syscalls projection lists, with the statuses the callers got back.
//   npx tsc -p tsconfig.json && npx tap dist/test/record-summary.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { summaryText } from '../bin/record.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-record-summary-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const PROGRAM = `; ntflow: user
start:
    call ntdll!NtYieldExecution             ; no body: STATUS_NOT_IMPLEMENTED from the x86 routine
    mov eax, 0x11C                          ; past ntoskrnl's table: STATUS_INVALID_SYSTEM_SERVICE
    call syscall
    mov eax, 0x1000                         ; win32k: GUI conversion, second lookup, NtGdiAbortDoc
    call syscall
    push 0x1234
    call ntdll!NtClose                      ; a body: STATUS_INVALID_HANDLE
    ret                                     ; NtTerminateProcess: never returns

syscall:
    mov edx, 0x7FFE0300
    call edx
    ret
`;

const DRIVER = `; ntflow: driver
DriverEntry:
    push 0x1234
    call nt!NtClose                         ; a direct call, no dispatch: STATUS_INVALID_HANDLE
    xor eax, eax
    ret 8
`;

t.test('system calls: every dispatch and direct call, as the syscalls projection lists them', async (t) => {
  const file = join(dir, 'summary.db');
  const summary = await record({ program: { fileName: 'calls.asm', source: PROGRAM }, drivers: [{ fileName: 'drv.asm', source: DRIVER }] }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const rows = db.prepare('SELECT name, service_number, entry, status_name FROM syscalls WHERE session_id = ? ORDER BY id').raw().all(summary.sessionId);
  t.same(rows, [
    ['NtClose', 0x19, 'nt-direct', 'STATUS_INVALID_HANDLE'],
    ['NtYieldExecution', 0x116, 'sysenter', 'STATUS_NOT_IMPLEMENTED'],
    [null, 0x11c, 'sysenter', 'STATUS_INVALID_SYSTEM_SERVICE'],
    ['NtGdiAbortDoc', 0x1000, 'sysenter', 'STATUS_NOT_IMPLEMENTED'],
    ['NtClose', 0x19, 'sysenter', 'STATUS_INVALID_HANDLE'],
    ['NtTerminateProcess', 0x101, 'sysenter', null],
  ]);
  t.equal(summary.syscalls, db.prepare('SELECT count(*) FROM syscalls WHERE session_id = ?').pluck().get(summary.sessionId), 'the summary counts what SELECT count(*) FROM syscalls counts');
  t.same(summary.failures, { STATUS_INVALID_HANDLE: 2, STATUS_NOT_IMPLEMENTED: 2, STATUS_INVALID_SYSTEM_SERVICE: 1 });
  t.match(summaryText(summary), /\n {2}system calls {2}6, 5 failed: STATUS_INVALID_HANDLE ×2, STATUS_NOT_IMPLEMENTED ×2, STATUS_INVALID_SYSTEM_SERVICE ×1\n/);
});
