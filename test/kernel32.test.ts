// kernel32 (issue F): ntflow programs calling the Win32 base API, each outcome read back from the
// guest after the run — the way down (kernel32!ReadFile → ntdll!NtReadFile → SystemCallStub →
// KiFastCallEntry → … → nt!NtReadFile), files by DOS name, the last error XP's kernel32 sets for
// each failure, DeviceIoControl to a driver, virtual memory, sleeping with an APC, and the ways out.
//   npx tsc -p tsconfig.json && npx tap dist/test/kernel32.test.js
import t from 'tap';
import type { ProgramSource } from '../core/index.js';
import { findVad, listVads } from '../core/guest/mm.js';
import { fileContents } from '../core/guest/nt/index.js';
import { scenarioSource } from '../core/guest/scenarios.js';
import { isSubsequence, labelBytes, labelDword, ofType, runProgram, symbolPath, type Run } from './util/scenario.js';

/** A Win32 program: `body` runs at start (then returns 0 unless it exits itself), `data` after it. */
const win32 = (body: string, data = '', header = ''): ProgramSource => ({
  fileName: 'k32.asm',
  source: `; ntflow: user\n${header}\nstart:\n${body}\n    xor eax, eax\n    ret\n\nalign 4\n${data}\n`,
});

const run = (name: string, program: ProgramSource, drivers: ProgramSource[] = []): Run => runProgram(name, { program, drivers, maxInstructions: 2_000_000 });
const dword = (r: Run, label: string) => labelDword(r, 'k32', label);
const text = (r: Run, label: string, n: number) => String.fromCharCode(...labelBytes(r, 'k32', label, n));

const README = 'Hello from C:\\\\readme.txt\\r\\n';
const README_TEXT = 'Hello from C:\\readme.txt\r\n';
const SEED = `; ntflow-file: \\??\\C:\\readme.txt = "${README}"`;

// CreateFileA(name, access, share, NULL, disposition, FILE_ATTRIBUTE_NORMAL, NULL) → [result], GetLastError() → [error]
const createFile = (name: string, access: string, disposition: number, result: string, error: string) => `
    push 0
    push 0x80
    push ${disposition}
    push 0
    push 1
    push ${access}
    push ${name}
    call kernel32!CreateFileA
    mov [${result}], eax
    call kernel32!GetLastError
    mov [${error}], eax`;

t.test('kernel32!ReadFile goes down through ntdll!NtReadFile, SYSENTER and the SSDT to nt!NtReadFile', async (t) => {
  const r = run(
    'readfile-path',
    win32(
      `${createFile('name', '0x80000000', 3, 'handle', 'openError')}
    push 0
    push count
    push 64
    push buffer
    push dword [handle]
    call kernel32!ReadFile
    mov [result], eax`,
      'name: db "C:\\readme.txt", 0\nhandle: dd 0\nopenError: dd 0\ncount: dd 0\nresult: dd 0\nbuffer: times 64 db 0',
      SEED,
    ),
  );
  t.equal(r.outcome.kind, 'exited');
  const path = symbolPath(r);
  t.ok(
    isSubsequence(path, ['k32!start', 'kernel32!ReadFile', 'ntdll!NtReadFile', 'SharedUserData!SystemCallStub', 'nt!KiFastCallEntry', 'nt!KiSystemService', 'nt!NtReadFile', 'nt!KiServiceExit', 'SharedUserData!SystemCallStub', 'ntdll!NtReadFile', 'kernel32!ReadFile', 'kernel32!BasepIoResult', 'kernel32!ReadFile', 'k32!start']),
    'the way down and back',
  );
  const lookup = ofType(r.events, 'ssdt-lookup').find((e) => e.targetSymbol === 'nt!NtReadFile');
  t.match(lookup, { serviceNumber: 0xb7, inRange: true }, 'KiServiceTable[0xB7]');
  t.match(ofType(r.events, 'service-enter').find((e) => e.service === 'NtReadFile'), { previousMode: 'UserMode' });
  t.same(ofType(r.events, 'ring-transition').map((e) => e.mechanism), ['sysenter', 'sysexit', 'sysenter', 'sysexit', 'sysenter'], 'NtCreateFile, NtReadFile, NtTerminateProcess by SYSENTER');
  t.equal(dword(r, 'result'), 1, 'ReadFile returned TRUE');
  t.equal(dword(r, 'openError'), 0, 'OPEN_EXISTING leaves the last error 0');
  t.equal(dword(r, 'count'), README_TEXT.length, 'NumberOfBytesRead from the IO_STATUS_BLOCK');
  t.equal(text(r, 'buffer', README_TEXT.length), README_TEXT, 'the contents');
});

t.test('CreateFileA: DOS names, dispositions and the last error XP sets', async (t) => {
  const r = run(
    'createfile',
    win32(
      [
        createFile('missing', '0x80000000', 3, 'h1', 'e1'), // OPEN_EXISTING of a missing file
        createFile('readme', '0x80000000', 1, 'h2', 'e2'), // CREATE_NEW of an existing one
        createFile('readme', '0x80000000', 4, 'h3', 'e3'), // OPEN_ALWAYS of an existing one
        createFile('fresh', '0x40000000', 4, 'h4', 'e4'), // OPEN_ALWAYS of a new one
        createFile('fresh', '0x40000000', 2, 'h5', 'e5'), // CREATE_ALWAYS of an existing one
        createFile('relative', '0x80000000', 3, 'h6', 'e6'), // relative to the current directory C:\
        createFile('dotted', '0x80000000', 3, 'h7', 'e7'), // C:/dir/./../readme.txt
        createFile('noDir', '0x40000000', 2, 'h8', 'e8'), // a directory that is not there
        createFile('readme', '0x80000000', 0, 'h9', 'e9'), // no such disposition
        createFile('empty', '0x80000000', 3, 'h10', 'e10'), // ""
        createFile('rooted', '0x80000000', 3, 'h11', 'e11'), // \readme.txt: on the current drive
        createFile('driveRelative', '0x80000000', 3, 'h12', 'e12'), // C:readme.txt
        createFile('otherDrive', '0x80000000', 3, 'h13', 'e13'), // D:\readme.txt
      ].join('\n'),
      [
        'missing: db "C:\\nothere.txt", 0',
        'readme: db "C:\\readme.txt", 0',
        'fresh: db "C:\\fresh.txt", 0',
        'relative: db "readme.txt", 0',
        'dotted: db "C:/dir/./../readme.txt", 0',
        'noDir: db "C:\\nodir\\x.txt", 0',
        'empty: db 0',
        'rooted: db "\\readme.txt", 0',
        'driveRelative: db "C:readme.txt", 0',
        'otherDrive: db "D:\\readme.txt", 0',
        'align 4',
        ...Array.from({ length: 13 }, (_, i) => `h${i + 1}: dd 0\ne${i + 1}: dd 0`),
      ].join('\n'),
      SEED,
    ),
  );
  t.equal(r.outcome.kind, 'exited');
  const h = (i: number) => dword(r, `h${i}`);
  const e = (i: number) => dword(r, `e${i}`);
  const INVALID = 0xffffffff;
  t.same([h(1), e(1)], [INVALID, 2], 'a missing file: INVALID_HANDLE_VALUE, ERROR_FILE_NOT_FOUND');
  t.same([h(2), e(2)], [INVALID, 80], 'CREATE_NEW of an existing file: ERROR_FILE_EXISTS, not ERROR_ALREADY_EXISTS');
  t.not(h(3), INVALID, 'OPEN_ALWAYS opens an existing file …');
  t.equal(e(3), 183, '… and says ERROR_ALREADY_EXISTS');
  t.same([h(4) !== INVALID, e(4)], [true, 0], 'OPEN_ALWAYS creating a file: last error 0');
  t.same([h(5) !== INVALID, e(5)], [true, 183], 'CREATE_ALWAYS over an existing file: ERROR_ALREADY_EXISTS');
  t.same([h(6) !== INVALID, e(6)], [true, 0], 'a relative name resolves against C:\\');
  t.same([h(7) !== INVALID, e(7)], [true, 0], "'/', '.' and '..' are resolved");
  t.same([h(8), e(8)], [INVALID, 3], 'a missing directory: ERROR_PATH_NOT_FOUND');
  t.same([h(9), e(9)], [INVALID, 87], 'disposition 0: ERROR_INVALID_PARAMETER');
  t.same([h(10), e(10)], [INVALID, 3], 'an empty name: ERROR_PATH_NOT_FOUND');
  t.same([h(11) !== INVALID, h(12) !== INVALID], [true, true], '\\name and C:name are on C:');
  t.same([h(13), e(13)], [INVALID, 3], 'no D: drive: ERROR_PATH_NOT_FOUND');
  const names = ofType(r.events, 'service-enter')
    .filter((x) => x.service === 'NtCreateFile')
    .map((x) => x.args[7]);
  t.same(names, [1, 2, 3, 3, 5, 1, 1, 5, 1, 1, 1], 'CreateDisposition: OPEN_EXISTING → FILE_OPEN, CREATE_NEW → FILE_CREATE, OPEN_ALWAYS → FILE_OPEN_IF, CREATE_ALWAYS → FILE_OVERWRITE_IF');
  const first = ofType(r.events, 'service-enter').find((x) => x.service === 'NtCreateFile')!;
  t.equal(first.args[1], 0x80100080, 'GENERIC_READ | SYNCHRONIZE | FILE_READ_ATTRIBUTES');
  t.equal(first.args[8], 0x60, 'FILE_SYNCHRONOUS_IO_NONALERT | FILE_NON_DIRECTORY_FILE');
  t.equal(fileContents(r.guest.kernel, 'C:\\fresh.txt')?.length, 0, 'C:\\fresh.txt was created');
  t.equal(fileContents(r.guest.kernel, 'C:\\nothere.txt'), null, 'and nothing else');
});

t.test('failures: CloseHandle of a bad handle, ReadFile into kernel memory', async (t) => {
  const r = run(
    'failures',
    win32(
      `    push 0x1234
    call kernel32!CloseHandle
    mov [closeResult], eax
    call kernel32!GetLastError
    mov [closeError], eax
${createFile('name', '0x80000000', 3, 'handle', 'openError')}
    push 0
    push count
    push 16
    push 0x80000000
    push dword [handle]
    call kernel32!ReadFile
    mov [readResult], eax
    call kernel32!GetLastError
    mov [readError], eax
    push 0
    push 0
    push 0
    push 0
    push 0
    call kernel32!WriteConsoleA
    mov [consoleResult], eax
    call kernel32!GetLastError
    mov [consoleError], eax
    push -99
    call kernel32!GetStdHandle
    mov [stdResult], eax
    call kernel32!GetLastError
    mov [stdError], eax`,
      'name: db "C:\\readme.txt", 0\nalign 4\nhandle: dd 0\nopenError: dd 0\ncount: dd 0x55\ncloseResult: dd 0\ncloseError: dd 0\nreadResult: dd 0\nreadError: dd 0\nconsoleResult: dd 0\nconsoleError: dd 0\nstdResult: dd 0\nstdError: dd 0',
      SEED,
    ),
  );
  t.same([dword(r, 'closeResult'), dword(r, 'closeError')], [0, 6], 'CloseHandle(0x1234): FALSE, ERROR_INVALID_HANDLE');
  t.match(ofType(r.events, 'service-exit').find((e) => e.service === 'NtClose'), { statusName: 'STATUS_INVALID_HANDLE' });
  t.same([dword(r, 'readResult'), dword(r, 'readError')], [0, 998], 'ReadFile into 0x80000000: FALSE, ERROR_NOACCESS');
  t.equal(dword(r, 'count'), 0, 'NumberOfBytesRead is 0');
  t.match(ofType(r.events, 'probe').find((e) => e.address === 0x80000000), { kind: 'write', status: 0xc0000005 }, "the service's probe refused the buffer");
  t.same([dword(r, 'consoleResult'), dword(r, 'consoleError')], [0, 6], 'WriteConsoleA on a handle that is no console: ERROR_INVALID_HANDLE');
  t.same([dword(r, 'stdResult'), dword(r, 'stdError')], [0xffffffff, 6], 'GetStdHandle(-99): INVALID_HANDLE_VALUE, ERROR_INVALID_HANDLE');
});

t.test('WriteFile to a new file, then ReadFile of it', async (t) => {
  const r = run(
    'write-read',
    win32(
      `${createFile('name', '0x40000000', 2, 'out', 'e1')}
    push 0
    push written
    push lineEnd - line
    push line
    push dword [out]
    call kernel32!WriteFile
    mov [writeResult], eax
    push dword [out]
    call kernel32!CloseHandle
${createFile('name', '0x80000000', 3, 'in', 'e2')}
    push 0
    push count
    push 64
    push buffer
    push dword [in]
    call kernel32!ReadFile
    push 0
    push atEnd
    push 64
    push buffer + 32
    push dword [in]
    call kernel32!ReadFile
    mov [endResult], eax`,
      'name: db "C:\\out\\..\\written.txt", 0\nline: db "written by WriteFile", 13, 10\nlineEnd:\nalign 4\nout: dd 0\nin: dd 0\ne1: dd 0\ne2: dd 0\nwritten: dd 0\nwriteResult: dd 0\ncount: dd 0\natEnd: dd 0x55\nendResult: dd 0\nbuffer: times 64 db 0',
    ),
  );
  t.equal(dword(r, 'writeResult'), 1, 'WriteFile: TRUE');
  t.equal(dword(r, 'written'), 22, 'NumberOfBytesWritten');
  t.equal(Buffer.from(fileContents(r.guest.kernel, 'C:\\written.txt')!).toString('latin1'), 'written by WriteFile\r\n', 'on C:');
  t.equal(dword(r, 'count'), 22, 'read back');
  t.equal(text(r, 'buffer', 22), 'written by WriteFile\r\n');
  t.same([dword(r, 'endResult'), dword(r, 'atEnd')], [1, 0], 'a read at the end: TRUE with 0 bytes (STATUS_END_OF_FILE)');
});

t.test('ReadFile with an OVERLAPPED: at its Offset, the result in Internal / InternalHigh', async (t) => {
  const read = (offset: number, result: string, error: string) => `
    mov dword [overlapped+8], ${offset}     ; Offset
    push overlapped
    push count
    push 64
    push buffer
    push dword [handle]
    call kernel32!ReadFile
    mov [${result}], eax
    call kernel32!GetLastError
    mov [${error}], eax`;
  const r = run(
    'overlapped',
    win32(
      `    push 0
    push 0x40000080                         ; FILE_FLAG_OVERLAPPED | FILE_ATTRIBUTE_NORMAL
    push 3
    push 0
    push 1
    push 0x80000000
    push name
    call kernel32!CreateFileA
    mov [handle], eax
${read(6, 'r1', 'e1')}
    mov eax, [count]
    mov [count1], eax
${read(100, 'r2', 'e2')}`,
      'name: db "C:\\readme.txt", 0\nalign 4\nhandle: dd 0\ncount: dd 0\ncount1: dd 0\nr1: dd 0\ne1: dd 0\nr2: dd 0\ne2: dd 0\noverlapped: dd 0, 0, 0, 0, 0\nbuffer: times 64 db 0',
      SEED,
    ),
  );
  t.equal(ofType(r.events, 'service-enter').find((e) => e.service === 'NtCreateFile')!.args[8], 0x40, 'no FILE_SYNCHRONOUS_IO_NONALERT');
  t.same([dword(r, 'r1'), dword(r, 'count1')], [1, README_TEXT.length - 6], 'TRUE; the bytes from offset 6');
  t.equal(text(r, 'buffer', README_TEXT.length - 6), README_TEXT.slice(6));
  t.same([dword(r, 'r2'), dword(r, 'e2')], [0, 38], 'past the end: FALSE, ERROR_HANDLE_EOF');
});

t.test('DeviceIoControl to a driver (the OSR log driver): its IOCTL, and one it does not know', async (t) => {
  const IOCTL_OSRLOG_OPEN = 0x00222000;
  const ioctl = (code: number, result: string, error: string) => `
    push 0
    push returned
    push 0
    push 0
    push 0
    push 0
    push ${code}
    push dword [device]
    call kernel32!DeviceIoControl
    mov [${result}], eax
    call kernel32!GetLastError
    mov [${error}], eax`;
  const r = run(
    'deviceiocontrol',
    win32(
      `${createFile('name', '0xC0000000', 3, 'device', 'e0')}
${ioctl(IOCTL_OSRLOG_OPEN, 'r1', 'e1')}
${ioctl(0x00222004, 'r2', 'e2')}
    push dword [device]
    call kernel32!CloseHandle`,
      'name: db "\\\\.\\OsrLog", 0\nalign 4\ndevice: dd 0\ne0: dd 0\nreturned: dd 0x55\nr1: dd 0\ne1: dd 0\nr2: dd 0\ne2: dd 0',
    ),
    [scenarioSource('osr-log-kernel-handle.asm')],
  );
  t.not(dword(r, 'device'), 0xffffffff, '\\\\.\\OsrLog opened (\\??\\OsrLog)');
  t.same([dword(r, 'r1'), dword(r, 'returned')], [1, 0], 'IOCTL_OSRLOG_OPEN: TRUE, 0 bytes returned');
  t.same([dword(r, 'r2'), dword(r, 'e2')], [0, 1], 'an unknown IOCTL: FALSE, ERROR_INVALID_FUNCTION (STATUS_INVALID_DEVICE_REQUEST)');
  const dispatched = ofType(r.events, 'irp').filter((e) => e.phase === 'dispatch' && e.majorFunctionName === 'IRP_MJ_DEVICE_CONTROL');
  t.equal(dispatched.length, 2, 'two IRP_MJ_DEVICE_CONTROL');
  t.ok(dispatched.every((e) => e.requestorMode === 'UserMode'), 'RequestorMode UserMode');
  t.ok(fileContents(r.guest.kernel, 'C:\\osrlog.txt') !== null, 'the driver opened its log');
});

t.test('VirtualAlloc, VirtualProtect (the old protection), VirtualFree; freed memory is gone', async (t) => {
  const r = run(
    'virtual',
    win32(
      `    push 4                               ; PAGE_READWRITE
    push 0x3000                             ; MEM_COMMIT | MEM_RESERVE
    push 0x2000
    push 0
    call kernel32!VirtualAlloc
    mov [base], eax
    mov dword [eax], 0x12345678             ; committed: writable
    push old1
    push 2                                  ; PAGE_READONLY
    push 0x1000
    push dword [base]
    call kernel32!VirtualProtect
    mov [p1], eax
    push old2
    push 0x40                               ; PAGE_EXECUTE_READWRITE
    push 0x1000
    push dword [base]
    call kernel32!VirtualProtect
    push 0                                  ; lpflOldProtect NULL
    push 4
    push 0x1000
    push dword [base]
    call kernel32!VirtualProtect
    mov [p3], eax
    call kernel32!GetLastError
    mov [e3], eax
    push 0x8000                             ; MEM_RELEASE with a size: kernel32 refuses it
    push 0x1000
    push dword [base]
    call kernel32!VirtualFree
    mov [f1], eax
    call kernel32!GetLastError
    mov [e1], eax
    push 0x4000                             ; MEM_DECOMMIT of the second page
    push 0x1000
    mov eax, [base]
    add eax, 0x1000
    push eax
    call kernel32!VirtualFree
    mov [f2], eax
    push 0x8000                             ; MEM_RELEASE of the region
    push 0
    push dword [base]
    call kernel32!VirtualFree
    mov [f3], eax
    push 0x8000                             ; again: nothing is there
    push 0
    push dword [base]
    call kernel32!VirtualFree
    mov [f4], eax
    call kernel32!GetLastError
    mov [e4], eax
    push 4
    push 0x3000
    push 0x1000
    push 0x1000                             ; below 64 KiB
    call kernel32!VirtualAlloc
    mov [low], eax
    call kernel32!GetLastError
    mov [e5], eax
    mov eax, [base]
    mov eax, [eax]                          ; released: an access violation`,
      'base: dd 0\nold1: dd 0\nold2: dd 0\np1: dd 0\np3: dd 0\ne3: dd 0\nf1: dd 0\ne1: dd 0\nf2: dd 0\nf3: dd 0\nf4: dd 0\ne4: dd 0\nlow: dd 0x55\ne5: dd 0',
    ),
  );
  const base = dword(r, 'base');
  t.ok(base >= 0x10000 && base % 0x10000 === 0, `VirtualAlloc: a 64 KiB-aligned region (${base.toString(16)})`);
  t.same([dword(r, 'p1'), dword(r, 'old1'), dword(r, 'old2')], [1, 4, 2], 'VirtualProtect: TRUE; old protections PAGE_READWRITE, then PAGE_READONLY');
  t.same([dword(r, 'p3'), dword(r, 'e3')], [0, 998], 'lpflOldProtect NULL: FALSE, ERROR_NOACCESS');
  t.same([dword(r, 'f1'), dword(r, 'e1')], [0, 87], 'MEM_RELEASE with a size: ERROR_INVALID_PARAMETER');
  t.same([dword(r, 'f2'), dword(r, 'f3')], [1, 1], 'MEM_DECOMMIT of a page, MEM_RELEASE of the region: TRUE');
  t.same([dword(r, 'f4'), dword(r, 'e4')], [0, 487], 'releasing it again: ERROR_INVALID_ADDRESS (STATUS_MEMORY_NOT_ALLOCATED)');
  t.same([dword(r, 'low'), dword(r, 'e5')], [0, 87], 'an address below 64 KiB: NULL, ERROR_INVALID_PARAMETER');
  t.equal(findVad(r.guest.kernel, r.guest.kernel.currentProcess(), base), null, 'no VAD left');
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exception', code: 0xc0000005 }, 'touching the released region faults');
  const frees = ofType(r.events, 'service-exit').filter((e) => e.service === 'NtFreeVirtualMemory');
  t.same(frees.map((e) => e.statusName), ['STATUS_SUCCESS', 'STATUS_SUCCESS', 'STATUS_MEMORY_NOT_ALLOCATED'], 'NtFreeVirtualMemory (kernel32 refused the first call itself)');
});

t.test('NtFreeVirtualMemory: partial releases trim or split the VAD; bad arguments', async (t) => {
  // Reserve 4 pages, release the second, then the last; then the checks ReactOS's tests make
  // (a range past the VAD, both free types at once, a whole-region release not at its base).
  const free = (base: string, size: number, type: number, status: string) => `
    mov dword [size], ${size}
    push ${type}
    push size
    push ${base}
    push -1
    call ntdll!NtFreeVirtualMemory
    mov [${status}], eax`;
  const r = run(
    'ntfree',
    win32(
      `    mov dword [size], 0x4000
    push 4
    push 0x2000                             ; MEM_RESERVE
    push size
    push 0
    push region
    push -1
    call ntdll!NtAllocateVirtualMemory
    mov eax, [region]
    mov [second], eax
    add dword [second], 0x1000
    mov [last], eax
    add dword [last], 0x3000
    mov [inside], eax
    add dword [inside], 0x2001
${free('second', 0x1000, 0x8000, 's1')}
${free('last', 0x1000, 0x8000, 's2')}
${free('inside', 0x2000, 0x4000, 's3')}
${free('region', 0, 0xc000, 's4')}
    mov dword [size], 0x2000
    push 4
    push 0x2000
    push size
    push 0
    push region2
    push -1
    call ntdll!NtAllocateVirtualMemory
    mov eax, [region2]
    add eax, 0x1000
    mov [inside2], eax
${free('inside2', 0, 0x8000, 's5')}`,
      'region: dd 0\nsecond: dd 0\nlast: dd 0\ninside: dd 0\nregion2: dd 0\ninside2: dd 0\nsize: dd 0\ns1: dd 0\ns2: dd 0\ns3: dd 0\ns4: dd 0\ns5: dd 0',
    ),
  );
  const k = r.guest.kernel;
  const region = dword(r, 'region');
  t.same([dword(r, 's1'), dword(r, 's2')], [0, 0], 'the middle page, then the last one: released');
  const vads = listVads(k, k.currentProcess()).filter((v) => v.start >= region && v.start < region + 0x4000);
  t.same(
    vads.map((v) => [v.start - region, v.end - region]),
    [
      [0, 0x1000],
      [0x2000, 0x3000],
    ],
    'the VAD was split, then trimmed',
  );
  t.equal(dword(r, 's3'), 0xc000001a, 'a range past the VAD: STATUS_UNABLE_TO_FREE_VM');
  t.equal(dword(r, 's4'), 0xc00000f2, 'MEM_DECOMMIT | MEM_RELEASE: STATUS_INVALID_PARAMETER_4');
  t.equal(dword(r, 's5'), 0xc000009f, 'MEM_RELEASE of size 0 not at the base: STATUS_FREE_VM_NOT_AT_BASE');
});

t.test('Sleep, then SleepEx with a queued APC: the APC runs and SleepEx returns WAIT_IO_COMPLETION', async (t) => {
  const r = run(
    'apc',
    win32(
      `    push 0x55
    call kernel32!GetCurrentThread
    push eax
    push apcRoutine
    call kernel32!QueueUserAPC
    mov [queued], eax
    push 10
    call kernel32!Sleep                     ; not alertable: the APC waits
    mov eax, [ran]
    mov [afterSleep], eax
    push 1
    push 10
    call kernel32!SleepEx
    mov [sleepEx], eax
    push 1
    push 0
    call kernel32!SleepEx                   ; nothing queued now
    mov [again], eax
    call kernel32!GetCurrentProcessId
    mov [pid], eax
    call kernel32!GetCurrentThreadId
    mov [tid], eax
    call kernel32!GetCurrentProcess
    mov [pseudo], eax
    jmp afterApc
apcRoutine:                                 ; VOID CALLBACK (ULONG_PTR dwParam)
    mov eax, [esp+4]
    mov [ran], eax
    ret 4
afterApc:`,
      'queued: dd 0\nran: dd 0\nafterSleep: dd 0xFFFFFFFF\nsleepEx: dd 0\nagain: dd 0xFFFFFFFF\npid: dd 0\ntid: dd 0\npseudo: dd 0',
    ),
  );
  t.equal(r.outcome.kind, 'exited');
  t.not(dword(r, 'queued'), 0, 'QueueUserAPC succeeded');
  t.equal(dword(r, 'afterSleep'), 0, 'Sleep (not alertable) did not run it');
  t.equal(dword(r, 'sleepEx'), 0xc0, 'SleepEx(…, TRUE): WAIT_IO_COMPLETION');
  t.equal(dword(r, 'ran'), 0x55, 'the APC ran with its dwData');
  t.equal(dword(r, 'again'), 0, 'an alertable sleep with nothing queued: 0');
  t.same([dword(r, 'pid'), dword(r, 'tid'), dword(r, 'pseudo')], [0x7c8, 0x7cc, 0xffffffff], 'ids from TEB.ClientId; GetCurrentProcess() = -1');
  t.ok(isSubsequence(symbolPath(r), ['kernel32!SleepEx', 'ntdll!NtDelayExecution', 'nt!NtDelayExecution', 'nt!KiDeliverApc', 'ntdll!KiUserApcDispatcher', 'kernel32!BaseDispatchAPC', 'k32!apcRoutine', 'ntdll!KiUserApcDispatcher', 'nt!NtContinue', 'kernel32!SleepEx']), 'delivered on the way out of NtDelayExecution, through BaseDispatchAPC');
  t.match(ofType(r.events, 'service-exit').filter((e) => e.service === 'NtDelayExecution').map((e) => e.statusName), ['STATUS_SUCCESS', 'STATUS_USER_APC', 'STATUS_SUCCESS']);
  t.ok(ofType(r.events, 'apc-check').some((e) => e.delivered), "KiServiceExit's check delivered it");
});

t.test('ExitProcess(7) and ExitThread(9) end the process with their codes', async (t) => {
  const p = run('exitprocess', win32('    push 7\n    call kernel32!ExitProcess'));
  t.same({ kind: p.outcome.kind, code: p.outcome.code }, { kind: 'exited', code: 7 });
  t.match(ofType(p.events, 'service-enter').map((e) => [e.service, e.args]), [['NtTerminateProcess', [0xffffffff, 7]]]);
  const th = run('exitthread', win32('    push 9\n    call kernel32!ExitThread'));
  t.same({ kind: th.outcome.kind, code: th.outcome.code }, { kind: 'exited', code: 9 });
  t.same(
    ofType(th.events, 'service-exit').map((e) => [e.service, e.statusName]),
    [['NtTerminateThread', 'STATUS_CANT_TERMINATE_SELF']],
    'the last thread cannot end itself alone: the process ends instead',
  );
});

t.test('a program that does not call kernel32 gets neither kernel32 nor a console (a native program)', async (t) => {
  const r = run('native', { fileName: 'native.asm', source: '; ntflow: user\nstart:\n    xor eax, eax\n    ret\n' });
  t.equal(r.guest.symbols.resolve('kernel32', 'CreateFileA'), undefined, 'no kernel32 symbols');
  t.equal(r.guest.machine.cpu.mmu.peek(0x77e60000), null, 'nothing at 0x77E60000');
  const w = run('win32', win32('    call kernel32!GetLastError'));
  t.ok(w.guest.symbols.resolve('kernel32', 'CreateFileA'), 'kernel32 is there for a Win32 program');
});
