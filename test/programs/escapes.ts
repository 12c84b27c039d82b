// The escape programs of issue L: ring-3 programs that broke the kernel in the security audit, as
// fixtures for test/invariant.test.ts and `npm run fuzz -- --fixtures`.
//
// The audit's escape: `mov ebp, evil; mov eax, 0CFh; mov edx, 80000000h; sysenter` — the argument
// pointer EDX is past MmUserProbeAddress, so KiSystemService must fail the call with
// STATUS_ACCESS_VIOLATION; instead the user's EBP came back as a kernel return address and `evil`
// ran at CPL 0. Here with several EDX (kernel, top of memory, MmUserProbeAddress, just under it,
// unmapped user memory) and EBP (the `evil` routine, null, a kernel address) values, through
// SYSENTER and INT 2Eh, plus argument pointers into unmapped memory and stacks at the very top.
//
// What real XP SP1 does with each (the `xp` field, asserted as todo until the kernel fix lands):
//  - the system call returns STATUS_ACCESS_VIOLATION in EAX (an argument pointer at or past
//    MmUserProbeAddress fails the check in KiSystemService; one into unmapped user memory faults
//    in the argument copy, which the page-fault handler turns into the same status);
//  - through INT 2Eh (or an ntdll stub) the program goes on at its next instruction: the fixtures
//    store EAX in `status1`, make a second call (NtClose of a handle that is not open:
//    STATUS_INVALID_HANDLE, stored in `status2`) and exit with status1 (NtTerminateProcess);
//  - through a bare SYSENTER, XP returns (SYSEXIT) to SharedUserData!SystemCallStub's `ret` at
//    0x7FFE0304 with ESP = the EDX the program passed (KiFastCallEntry saved EDX as the user ESP):
//    that `ret` reads [EDX], which is not readable user memory in any of these fixtures, so the
//    thread dies there of STATUS_ACCESS_VIOLATION — the call itself still returned
//    STATUS_ACCESS_VIOLATION to ring 3, and the system lives on.
import type { CpuModel } from '../../core/index.js';

export const STATUS_ACCESS_VIOLATION = 0xc0000005;
export const STATUS_INVALID_HANDLE = 0xc0000008;
export const STATUS_COMMITMENT_LIMIT = 0xc000012d;
/** SharedUserData!SystemCallStub's `ret`, where SYSEXIT returns. */
export const SYSTEM_CALL_RET = 0x7ffe0304;

export type XpExpectation =
  /** The call returned `status` (stored in status1, the exit status) and the program went on. */
  | { end: 'continues'; status: number }
  /** The call returned `status` to ring 3, then the thread died of an access violation at 7FFE0304. */
  | { end: 'dies-at-systemcallstub-ret'; status: number };

export interface EscapeFixture {
  name: string;
  cpu: CpuModel;
  source: string;
  xp: XpExpectation;
}

const hex = (n: number): string => '0x' + (n >>> 0).toString(16).toUpperCase();

/** A program: `setup` lines make one system call, then status1 = EAX, a second call, exit status1. */
export function fixtureSource(title: string, setup: string[]): string {
  return [
    '; ntflow: user',
    `; issue L escape fixture: ${title}`,
    'start:',
    '    mov [saved_esp], esp',
    ...setup,
    'after_call:',
    '    mov esp, [saved_esp]',
    '    mov [status1], eax',
    '    push 0x1234                  ; a handle that is not open',
    '    call ntdll!NtClose           ; the program goes on: a second call',
    '    mov [status2], eax',
    '    push dword [status1]         ; exit status = the first call\'s status (by NtTerminateProcess:',
    '    push -1                      ; an ESP near the top may have overwritten start\'s return address)',
    '    call ntdll!NtTerminateProcess',
    '',
    '; what must never run at CPL 0',
    'evil:',
    '    mov eax, cr0',
    '    rdmsr',
    '    mov cr4, eax',
    '    hlt',
    '',
    'align 4',
    'saved_esp: dd 0',
    'status1: dd 0xFFFFFFFF',
    'status2: dd 0xFFFFFFFF',
    '',
  ].join('\n');
}

/** The EDX values of the audit's escape: kernel, top of memory, the probe address, under it, unmapped user. */
export const ESCAPE_EDX = [0x80000000, 0xfffffff0, 0x7fff0000, 0x7ffefffc, 0x10000000] as const;
/** EBP: the `evil` routine, null, a kernel address inside ntoskrnl. */
export const ESCAPE_EBP = ['evil', '0', '0x80500000'] as const;

function escapes(): EscapeFixture[] {
  const out: EscapeFixture[] = [];
  // NtSaveKey (0xCF, 8 argument bytes), as in the audit
  for (const edx of ESCAPE_EDX) {
    for (const ebp of ESCAPE_EBP) {
      const setup = (via: string): string[] => [`    mov ebp, ${ebp}`, '    mov eax, 0xCF', `    mov edx, ${hex(edx)}`, `    ${via}`];
      const tag = `edx=${hex(edx)} ebp=${ebp}`;
      out.push({ name: `sysenter ${tag}`, cpu: 'sysenter', source: fixtureSource(`sysenter, ${tag}`, setup('sysenter')), xp: { end: 'dies-at-systemcallstub-ret', status: STATUS_ACCESS_VIOLATION } });
      for (const cpu of ['int2e', 'sysenter'] as const) {
        out.push({ name: `int 2Eh ${tag} (cpu ${cpu})`, cpu, source: fixtureSource(`int 2Eh, ${tag}`, setup('int 0x2E')), xp: { end: 'continues', status: STATUS_ACCESS_VIOLATION } });
      }
    }
  }
  // EDX at unmapped user memory for a service with arguments (NtReadFile, 0x24 bytes)
  for (const cpu of ['int2e', 'sysenter'] as const) {
    out.push({
      name: `NtReadFile args at unmapped 0x10000000 by int 2Eh (cpu ${cpu})`,
      cpu,
      source: fixtureSource('NtReadFile (0xB7) with EDX at unmapped user memory, by INT 2Eh', ['    mov eax, 0xB7', '    mov edx, 0x10000000', '    int 0x2E']),
      xp: { end: 'continues', status: STATUS_ACCESS_VIOLATION },
    });
  }
  out.push({
    name: 'NtReadFile args at unmapped 0x10000000 by sysenter',
    cpu: 'sysenter',
    source: fixtureSource('NtReadFile (0xB7) with EDX at unmapped user memory, by SYSENTER', ['    mov eax, 0xB7', '    mov edx, 0x10000000', '    sysenter']),
    xp: { end: 'dies-at-systemcallstub-ret', status: STATUS_ACCESS_VIOLATION },
  });
  // ESP at the very top of the user stack (0x130000) before an ntdll call
  for (const cpu of ['sysenter', 'int2e'] as const) {
    // 8 bytes below the top: NtClose's one argument is [0x12FFF8], still on the stack — a 0 there,
    // so XP returns STATUS_INVALID_HANDLE (not an access violation), and the program goes on.
    out.push({
      name: `esp=top-8 NtClose (cpu ${cpu})`,
      cpu,
      source: fixtureSource('ESP 8 bytes below the top of the user stack, then ntdll!NtClose', ['    mov esp, 0x12FFF8', '    call ntdll!NtClose']),
      xp: { end: 'continues', status: STATUS_INVALID_HANDLE },
    });
    // at the top: the argument is at 0x130000, past the stack: STATUS_ACCESS_VIOLATION
    out.push({
      name: `esp=top NtClose (cpu ${cpu})`,
      cpu,
      source: fixtureSource('ESP at the top of the user stack, then ntdll!NtClose', ['    mov esp, 0x130000', '    call ntdll!NtClose']),
      xp: { end: 'continues', status: STATUS_ACCESS_VIOLATION },
    });
    // 8 below the top with 0x24 argument bytes: the copy runs off the stack
    out.push({
      name: `esp=top-8 NtReadFile (cpu ${cpu})`,
      cpu,
      source: fixtureSource('ESP 8 bytes below the top of the user stack, then ntdll!NtReadFile (0x24 argument bytes)', ['    mov esp, 0x12FFF8', '    call ntdll!NtReadFile']),
      xp: { end: 'continues', status: STATUS_ACCESS_VIOLATION },
    });
  }
  // Found by the recorded fuzzer (seed 20261207, program 9829): MEM_RESERVE|MEM_COMMIT of 0x63C90344
  // bytes threw 'guest physical memory exhausted' out of the machine. XP charges the commitment
  // first and fails the call with STATUS_COMMITMENT_LIMIT; the program goes on.
  for (const cpu of ['sysenter', 'int2e'] as const) {
    out.push({
      name: `NtAllocateVirtualMemory commit of 1.6 GB (cpu ${cpu})`,
      cpu,
      source: fixtureSource('NtAllocateVirtualMemory(-1, &base = 0, 0, &size = 0x63C90344, MEM_RESERVE|MEM_COMMIT, PAGE_NOACCESS)', [
        '    sub esp, 8',
        '    mov dword [esp], 0           ; *BaseAddress',
        '    mov dword [esp+4], 0x63C90344 ; *RegionSize',
        '    mov eax, esp',
        '    lea ebx, [esp+4]',
        '    push 0x1', '    push 0x3000', '    push ebx', '    push 0', '    push eax', '    push -1',
        '    call ntdll!NtAllocateVirtualMemory',
      ]),
      xp: { end: 'continues', status: STATUS_COMMITMENT_LIMIT },
    });
  }
  return out;
}

export const ESCAPE_FIXTURES: readonly EscapeFixture[] = escapes();
