// The guest's modules carry real PE export directories (issue F point 2): MZ → e_lfanew →
// DataDirectory[EXPORT] → IMAGE_EXPORT_DIRECTORY with names in byte order, their ordinals and the
// functions' RVAs, found by a program walking its own address space, as a loader or a rootkit does.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-exports.test.js
import t from 'tap';
import { Guest } from '../core/index.js';
import { moduleExports, readExportDirectory } from '../core/guest/kernel/exports.js';
import { runProgram } from './util/scenario.js';

const guest = Guest.boot({ program: { fileName: 'idle.asm', source: '; ntflow: user\nstart:\n    ret\n' } });
const images = guest.kernel.images;

t.test('each module’s export directory lists its API, in byte order, at the addresses the symbols say', async (t) => {
  for (const img of [images.ntoskrnl, images.hal, images.ntdll, images.kernel32]) {
    const dir = readExportDirectory(img);
    const want = moduleExports(img.module, img.symbols);
    t.equal(dir.length, want.size, `${img.module}: every export is named`);
    t.same(
      dir.map((e) => e.name),
      [...want.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      `${img.module}: AddressOfNames in byte order (a loader's binary search)`,
    );
    t.ok(dir.every((e) => want.get(e.name) === e.address), `${img.module}: each name's ordinal leads to its address`);
  }
  const nt = new Set(readExportDirectory(images.ntoskrnl).map((e) => e.name));
  for (const name of ['ZwReadFile', 'NtReadFile', 'KeServiceDescriptorTable', 'IoCreateDevice', 'RtlInitUnicodeString', 'DbgPrint', 'IoFileObjectType', 'MmUserProbeAddress', 'KeBugCheckEx', 'RtlRaiseException']) {
    t.ok(nt.has(name), `ntoskrnl.exe exports ${name}`);
  }
  for (const name of ['KiFastCallEntry', 'KiSystemService', 'KiServiceTable', 'KeServiceDescriptorTableShadow', 'KiDeliverApc', 'RtlpExecuteHandler', 'KfRaiseIrql']) {
    t.notOk(nt.has(name), `ntoskrnl.exe does not export ${name}`);
  }
  t.same(readExportDirectory(images.hal).map((e) => e.name), ['KeGetCurrentIrql', 'KeRaiseIrqlToDpcLevel', 'KfLowerIrql', 'KfRaiseIrql']);
  const ntdll = new Set(readExportDirectory(images.ntdll).map((e) => e.name));
  for (const name of ['NtClose', 'ZwClose', 'KiUserExceptionDispatcher', 'KiUserApcDispatcher', 'RtlDispatchException', 'RtlUnwind', 'RtlRaiseException']) t.ok(ntdll.has(name), `ntdll.dll exports ${name}`);
  t.notOk(ntdll.has('LdrpProgramExit'));
  t.notOk(ntdll.has('DebugService'), "ntdll's debug-service helper is private");
  const kernel32 = new Set(readExportDirectory(images.kernel32).map((e) => e.name));
  for (const name of ['CreateFileA', 'CreateFileW', 'ReadFile', 'WriteFile', 'DeviceIoControl', 'CloseHandle', 'GetLastError', 'SetLastError', 'VirtualAlloc', 'VirtualProtect', 'VirtualFree', 'Sleep', 'SleepEx', 'QueueUserAPC', 'GetCurrentThread', 'GetCurrentProcess', 'ExitProcess', 'ExitThread', 'GetStdHandle', 'WriteConsoleA', 'OutputDebugStringA']) {
    t.ok(kernel32.has(name), `kernel32.dll exports ${name}`);
  }
  for (const name of ['BaseSetLastNTError', 'BaseDosPathToNtPath', 'BasepOverlappedReadWrite', 'CreateDispositionMap']) t.notOk(kernel32.has(name), `kernel32.dll does not export ${name}`);
});

// A program that finds ntdll!NtClose by walking ntdll's export directory in its own memory and calls it.
const WALKER = `; ntflow: user
NTDLL equ 0x77F50000
start:
    push ebx
    push esi
    push edi
    mov ebx, NTDLL
    cmp word [ebx], 'MZ'
    jne .fail
    mov eax, [ebx+3Ch]              ; e_lfanew
    add eax, ebx
    cmp dword [eax], 'PE'
    jne .fail
    mov edx, [eax+78h]              ; OptionalHeader.DataDirectory[0].VirtualAddress
    add edx, ebx                    ; IMAGE_EXPORT_DIRECTORY
    mov ecx, [edx+18h]              ; NumberOfNames
    mov esi, [edx+20h]              ; AddressOfNames
    add esi, ebx
    xor edi, edi                    ; name index
.next:
    cmp edi, ecx
    jae .fail
    mov eax, [esi+edi*4]
    add eax, ebx
    cmp dword [eax], 'NtCl'
    jne .skip
    cmp dword [eax+4], 'ose'        ; 'o','s','e',0
    je .found
.skip:
    inc edi
    jmp .next
.found:
    mov eax, [edx+24h]              ; AddressOfNameOrdinals
    add eax, ebx
    movzx eax, word [eax+edi*2]
    mov ecx, [edx+1Ch]              ; AddressOfFunctions
    add ecx, ebx
    mov eax, [ecx+eax*4]
    add eax, ebx                    ; ntdll!NtClose
    mov [found], eax
    push 1234h
    call eax                        ; NtClose(0x1234): STATUS_INVALID_HANDLE
    jmp .done
.fail:
    mov eax, -1
.done:
    pop edi
    pop esi
    pop ebx
    ret
found: dd 0
`;

t.test('a program walks ntdll’s exports in memory, finds NtClose and calls it', async (t) => {
  const r = runProgram('walker', { program: { fileName: 'walker.asm', source: WALKER } });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, 0xc0000008, 'NtClose(0x1234) returned STATUS_INVALID_HANDLE');
  t.ok(r.symbols.includes('ntdll!NtClose'), 'through ntdll!NtClose');
});

t.test('a driver walks ntoskrnl’s exports for KeServiceDescriptorTable, as SSDT hookers did', async (t) => {
  const drv = WALKER.replace('; ntflow: user', '; ntflow: driver')
    .replace('NTDLL equ 0x77F50000', 'NTOSKRNL equ 0x804D7000')
    .replace('mov ebx, NTDLL', 'mov ebx, NTOSKRNL')
    .replace("cmp dword [eax], 'NtCl'", "cmp dword [eax], 'KeSe'")
    .replace("cmp dword [eax+4], 'ose'        ; 'o','s','e',0", "cmp dword [eax+20], 'able'")
    .replace('start:', 'DriverEntry:')
    .replace('    push 1234h\n    call eax                        ; NtClose(0x1234): STATUS_INVALID_HANDLE\n', '    xor eax, eax\n')
    .replace('    ret\nfound', '    ret 8\nfound');
  const r = runProgram('rootkit', { program: { fileName: 'idle.asm', source: '; ntflow: user\nstart:\n    ret\n' }, drivers: [{ fileName: 'walker.asm', source: drv }] });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  const found = r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('walker', 'found')!, 4).map((b) => b ?? 0);
  t.equal((found[0]! | (found[1]! << 8) | (found[2]! << 16) | (found[3]! << 24)) >>> 0, r.guest.symbols.resolve('nt', 'KeServiceDescriptorTable'));
});
