// A service number with bits 14-15 set (issue L point 7). KiSystemService decodes only bits 0-11
// (`and eax,0FFFh`) and 12-13 (`shr edi,8; and edi,30h`), so 0x4019 runs table 0's 0x19, NtClose;
// the trace keeps the number the caller gave: ssdt_lookups.service_number and
// syscalls.service_number are 0x4019, table_index and service_index what the dispatcher used.
//   npx tsc -p tsconfig.json && npx tap dist/test/service-number.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { findNamedQuery, registerFunctions, replayFile } from '../analyzer/index.js';
import { NTSTATUS as S } from '../core/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-service-number-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const SOURCE = `; ntflow: user
; NtClose(0x1234) twice through SharedUserData!SystemCallStub, the way ntdll's stub makes the call:
; once as 0x19, once as 0x4019 (bits 14-15 set). Returning from start ends the process (the
; last call, NtTerminateProcess).
start:
    push 0x1234
    mov eax, 0x19
    call syscall
    add esp, 4
    push 0x1234
    mov eax, 0x4019
    call syscall
    add esp, 4
    ret

syscall:
    mov edx, 0x7FFE0300
    call edx
    ret
`;

t.test('0x4019 is recorded as 0x4019 and still reaches NtClose', async (t) => {
  const file = join(dir, 'numbers.db');
  const { sessionId } = await record({ program: { fileName: 'numbers.asm', source: SOURCE } }, { output: file });
  replayFile(file);
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const rows = (sql: string) => db.prepare(sql).raw().all(sessionId) as unknown[][];

  t.same(rows('SELECT service_number, table_index, service_index, in_range, target_symbol, arg_bytes FROM ssdt_lookups WHERE session_id = ? AND service_index = 0x19 ORDER BY seq'), [
    [0x19, 0, 0x19, 1, 'nt!NtClose', 4],
    [0x4019, 0, 0x19, 1, 'nt!NtClose', 4],
  ]);
  t.same(rows('SELECT service_number, name, entry, previous_mode, status, parent_id FROM syscalls WHERE session_id = ? AND name = \'NtClose\' ORDER BY id'), [
    [0x19, 'NtClose', 'sysenter', 'UserMode', S.STATUS_INVALID_HANDLE, null],
    [0x4019, 'NtClose', 'sysenter', 'UserMode', S.STATUS_INVALID_HANDLE, null],
  ], 'one call each, paired with its NtClose body (not a direct call)');
  t.same(rows("SELECT service_number, service FROM service_enters WHERE session_id = ? AND service = 'NtClose' ORDER BY seq"), [
    [0x19, 'NtClose'],
    [0x4019 & 0xfff, 'NtClose'],
  ], "the routine's own number is 0x19 either way");

  // The named `ssdt` query compares the table's entry with the routine the decoded number names.
  const rw = new Database(file, { readonly: true });
  t.teardown(() => rw.close());
  registerFunctions(rw, sessionId);
  const ssdt = rw.prepare(findNamedQuery('ssdt')!.sql).all({ session: sessionId }) as { number: string; expected: string; verdict: string }[];
  t.same(ssdt.filter((r) => r.expected === 'nt!NtClose').map((r) => [r.number, r.verdict]), [
    ['0x19', 'ok'],
    ['0x4019', 'ok'],
  ]);
});
