// ntdll!RtlNtStatusToDosError, run in the guest for every status the kernel can return
// (core/guest/ntstatus.ts), against the table it is generated from (core/guest/win32-errors.ts,
// Wine's mapping); the special cases of the rules; TEB.LastStatusValue; and the last error a
// kernel32 failure leaves, which goes through it (BaseSetLastNTError).
//   npx tsc -p tsconfig.json && npx tap dist/test/kernel32-errors.test.js
import t from 'tap';
import { NTSTATUS, type NtStatusName } from '../core/guest/ntstatus.js';
import { STATUS_TO_WIN32, WIN32_ERRORS, dosErrorOf, statusTableAsm } from '../core/guest/win32-errors.js';
import { labelBytes, ofType, runProgram, type Run } from './util/scenario.js';

const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();

/** Call ntdll!RtlNtStatusToDosError for each value; keep its result and TEB.LastStatusValue after it. */
function mapInGuest(name: string, values: number[]): { run: Run; errors: number[]; lastStatus: number[] } {
  const source = [
    '; ntflow: user',
    `COUNT equ ${values.length}`,
    'start:',
    '    xor esi, esi',
    '.next:',
    '    push dword [statuses+esi*4]',
    '    call ntdll!RtlNtStatusToDosError',
    '    mov [errors+esi*4], eax',
    '    mov eax, [fs:0xBF4]                  ; TEB.LastStatusValue',
    '    mov [lastStatus+esi*4], eax',
    '    inc esi',
    '    cmp esi, COUNT',
    '    jb .next',
    '    xor eax, eax',
    '    ret',
    'align 4',
    `statuses: dd ${values.map(hex).join(', ')}`,
    'errors: times COUNT dd 0xFFFFFFFF',
    'lastStatus: times COUNT dd 0',
  ].join('\n');
  const run = runProgram(name, { program: { fileName: 'errors.asm', source }, maxInstructions: 5_000_000 });
  const dwords = (label: string) => {
    const b = labelBytes(run, 'errors', label, 4 * values.length);
    return values.map((_, i) => (b[4 * i] | (b[4 * i + 1] << 8) | (b[4 * i + 2] << 16) | (b[4 * i + 3] << 24)) >>> 0);
  };
  return { run, errors: dwords('errors'), lastStatus: dwords('lastStatus') };
}

t.test('every status the guest can return maps to the table value', async (t) => {
  const names = Object.keys(NTSTATUS) as NtStatusName[];
  const { run, errors, lastStatus } = mapInGuest('all-statuses', names.map((n) => NTSTATUS[n]));
  t.equal(run.outcome.kind, 'exited');
  names.forEach((name, i) => t.equal(errors[i], dosErrorOf(name), `${name} (${hex(NTSTATUS[name])}) → ${STATUS_TO_WIN32[name]} = ${dosErrorOf(name)}`));
  t.same(lastStatus, names.map((n) => NTSTATUS[n]), 'each call left its status in TEB.LastStatusValue');
});

t.test('the facts the brief names', async (t) => {
  t.equal(dosErrorOf('STATUS_INVALID_HANDLE'), 6, 'STATUS_INVALID_HANDLE → ERROR_INVALID_HANDLE');
  t.equal(dosErrorOf('STATUS_ACCESS_VIOLATION'), 998, 'STATUS_ACCESS_VIOLATION → ERROR_NOACCESS');
  t.equal(dosErrorOf('STATUS_OBJECT_NAME_NOT_FOUND'), 2, 'STATUS_OBJECT_NAME_NOT_FOUND → ERROR_FILE_NOT_FOUND');
  t.equal(dosErrorOf('STATUS_BREAKPOINT'), 0x80000003, 'an exception code is its own error ("1:1 mapping")');
  t.equal(WIN32_ERRORS.ERROR_MR_MID_NOT_FOUND, 317);
});

t.test('the rules past the table: success, customer codes, HRESULTs, unknown statuses', async (t) => {
  const cases: [number, number, string][] = [
    [0, 0, 'STATUS_SUCCESS: NO_ERROR'],
    [0xd0000022, 5, 'HRESULT_FROM_NT(STATUS_ACCESS_DENIED) is STATUS_ACCESS_DENIED'],
    [0x80070005, 5, 'HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED): its low word'],
    [0xc0010003, 3, '0xC001xxxx: its low word'],
    [0x20000123, 0x20000123, 'a customer code (bit 29): itself'],
    [0xe0000001, 0xe0000001, 'a customer error code: itself'],
    [0xc0000999, 317, 'a status with no mapping: ERROR_MR_MID_NOT_FOUND'],
    [0x00000101, 317, 'STATUS_ALERTED, below every table: ERROR_MR_MID_NOT_FOUND'],
  ];
  const { errors } = mapInGuest('special-statuses', cases.map((c) => c[0]));
  cases.forEach(([status, error, what], i) => t.equal(errors[i], error, `${hex(status)} → ${error}: ${what}`));
});

t.test('the generated RtlpStatusTable: in status order, one row per mapped value', async (t) => {
  const rows = [...statusTableAsm().matchAll(/^\s+dd (0x[0-9A-F]+), (\d+)/gm)].map((m) => [Number(m[1]), Number(m[2])]);
  t.ok(rows.length > 50, `${rows.length} rows`);
  t.ok(rows.every((r, i) => i === 0 || r[0] > rows[i - 1][0]), 'ascending, no status twice');
  t.notOk(rows.some((r) => r[1] === 317), 'unmapped statuses are left to the fallback');
  t.notOk(rows.some((r) => r[0] === 0), 'STATUS_SUCCESS is answered before the table');
});

t.test('a kernel32 failure sets the last error through RtlNtStatusToDosError', async (t) => {
  const source = ['; ntflow: user', 'start:', '    push 0x1234', '    call kernel32!CloseHandle', '    call kernel32!GetLastError', '    ret'].join('\n');
  const run = runProgram('closehandle', { program: { fileName: 'close.asm', source }, maxInstructions: 200_000 });
  t.same({ kind: run.outcome.kind, code: run.outcome.code }, { kind: 'exited', code: 6 }, 'exit status = GetLastError() = ERROR_INVALID_HANDLE');
  const path = run.instructions.map((e) => run.guest.symbols.lookup(e.eip)?.name);
  const i = path.indexOf('BaseSetLastNTError');
  t.ok(i > 0 && path.indexOf('RtlNtStatusToDosError', i) > i && path.indexOf('SetLastError', i) > i, 'BaseSetLastNTError → ntdll!RtlNtStatusToDosError → SetLastError');
  t.match(ofType(run.events, 'service-exit'), [{ service: 'NtClose', statusName: 'STATUS_INVALID_HANDLE' }]);
});
