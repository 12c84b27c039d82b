// The kernel API a driver of the OSR kind calls beyond the I/O manager (issue F point 4): the C
// runtime ntoskrnl exports (memcpy, memset, memmove, strlen, wcslen, _wcsicmp), RtlCopyUnicodeString,
// PsGetCurrentProcessId/ThreadId, KeStackAttachProcess/KeUnstackDetachProcess, ExQueueWorkItem
// and KeDelayExecutionThread — each run by a driver in the guest, results read back from its memory.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-kernel-api.test.js
import t from 'tap';
import { runProgram, type Run } from './util/scenario.js';

const DRIVER = `; ntflow: driver
DriverEntry:
    push ebx
    ; memset(buf, 'A', 8); memcpy(buf+8, buf, 8); strlen(buf) with buf[16] = 0
    push 8
    push 'A'
    push buf
    call nt!memset
    add esp, 12
    push 8
    push buf
    push buf+8
    call nt!memcpy
    add esp, 12
    push buf
    call nt!strlen
    add esp, 4
    mov [len], eax
    ; memmove(buf+1, buf, 4) overlapping
    push 4
    push buf
    push buf+1
    call nt!memmove
    add esp, 12
    ; wcslen and _wcsicmp
    push wide
    call nt!wcslen
    add esp, 4
    mov [wlen], eax
    push wideUpper
    push wide
    call nt!_wcsicmp
    add esp, 8
    mov [cmp], eax
    ; RtlCopyUnicodeString(&dest, &src): dest holds 6 bytes, src is 10
    push srcString
    push destString
    call nt!RtlCopyUnicodeString
    ; ids
    call nt!PsGetCurrentProcessId
    mov [pid], eax
    call nt!PsGetCurrentThreadId
    mov [tid], eax
    ; attach to the System process (ourselves) and back
    call nt!IoGetCurrentProcess
    push apcState
    push eax
    call nt!KeStackAttachProcess
    push apcState
    call nt!KeUnstackDetachProcess
    ; a work item, run when the thread waits
    push 1
    push workItem
    call nt!ExQueueWorkItem
    push interval
    push 0
    push 0
    call nt!KeDelayExecutionThread
    pop ebx
    xor eax, eax
    ret 8
Worker:                             ; VOID Worker(PVOID Parameter)
    mov eax, [esp+4]
    mov [ran], eax
    ret 4
align 4
buf: times 20 db 0
len: dd 0
wide: dw 'a', 'B', 'c', 0
wideUpper: dw 'A', 'b', 'C', 0
wlen: dd 0
cmp: dd 1
destString: dw 0, 6
    dd destBuffer
destBuffer: times 8 db 0
srcString: dw 10, 10
    dd srcBuffer
srcBuffer: dw 'h', 'e', 'l', 'l', 'o'
pid: dd 0
tid: dd 0
apcState: times 0x18 db 0
workItem: dd 0, 0, Worker, 5A5Ah
ran: dd 0
interval: dd -10000, -1
`;

function dword(r: Run, label: string): number {
  const b = r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('api', label)!, 4).map((x) => x ?? 0);
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

t.test('a driver calls the runtime, Rtl, Ps and Ke routines and gets XP’s results', async (t) => {
  const r = runProgram('api', { program: { fileName: 'idle.asm', source: '; ntflow: user\nstart:\n    ret\n' }, drivers: [{ fileName: 'api.asm', source: DRIVER }] });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(dword(r, 'len'), 16, 'memset + memcpy: 16 A, strlen 16');
  const buf = r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('api', 'buf')!, 6).map((x) => x ?? 0);
  t.same(buf.slice(0, 6), [0x41, 0x41, 0x41, 0x41, 0x41, 0x41], 'memmove of AAAA by one: still A');
  t.equal(dword(r, 'wlen'), 3, 'wcslen');
  t.equal(dword(r, 'cmp'), 0, '_wcsicmp("aBc", "AbC") = 0');
  t.same(r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('api', 'destString')!, 2), [6, 0], 'RtlCopyUnicodeString: as much as MaximumLength (6 bytes) holds');
  const text = r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('api', 'destBuffer')!, 8).map((x) => x ?? 0);
  t.same(text, [0x68, 0, 0x65, 0, 0x6c, 0, 0, 0], '"hel": no room left for a terminator, none written');
  t.equal(dword(r, 'pid'), 4, 'DriverEntry runs in the System process (id 4)');
  t.equal(dword(r, 'tid'), 8, 'on the System worker thread (id 8)');
  t.equal(dword(r, 'ran'), 0x5a5a, 'the work item ran with its Parameter');
});
