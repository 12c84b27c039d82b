// Issue L: the kernel faithful past the seeds. System calls with bad argument pointers return
// STATUS_ACCESS_VIOLATION and the program goes on (no user EIP ever runs at CPL 0); a fault in
// KiSystemService's argument copy is KiTrap0E's business, not a bug check; user-mode faults go to
// ntdll!KiUserExceptionDispatcher and the thread's own SEH handlers, and end the process with the
// exception code when none wants them; kernel-mode faults meet the kernel's handlers or bug-check
// as XP's do; service bodies turn faults on their caller's memory into their status.
import t from 'tap';
import { Guest, layout } from '../core/index.js';
import type { TraceEvent } from '../core/events.js';
import { NTSTATUS } from '../core/guest/ntstatus.js';
import { ofType, runProgram, serviceCalls, symbolOf, type Run } from './util/scenario.js';

const S = NTSTATUS;
const user = (name: string, body: string) => ({ fileName: `${name}.asm`, source: `; ntflow: user\n${body}` });
const driver = (name: string, body: string) => ({ fileName: `${name}.asm`, source: `; ntflow: driver\n${body}` });
const TRIVIAL = user('idle', 'start:\n    xor eax, eax\n    ret\n');

/** No instruction below 0x80000000 retires at CPL 0. */
function userEipsAtCpl0(r: Run): number {
  return r.instructions.filter((e) => e.cpl === 0 && e.eip >>> 0 < 0x80000000).length;
}

/** The program's service calls that returned, by name, with their statuses. */
function syscallStatuses(r: Run): [string, number][] {
  return serviceCalls(r.events)
    .filter((c) => c.exit !== null)
    .map((c) => [c.enter.service, c.exit!.status]);
}

const ESCAPE = (entry: string, ebp: string, edx: string) =>
  user(
    'escape',
    `start:
    push ebp
    mov ebp, ${ebp}
    mov eax, 0CFh                  ; NtSaveKey: 8 argument bytes
    mov edx, ${edx}
    ${entry}
afterCall:
    pop ebp
    mov ebx, eax                   ; the status
    push 0
    call ntdll!NtClose             ; the next call
nextCall:
    mov eax, ebx
    ret
evil:
    mov eax, cr0
    mov ecx, 176h
    rdmsr
    mov cr4, eax
    hlt
    ret
`,
  );

t.test('the escape through int 2Eh: STATUS_ACCESS_VIOLATION, and the program makes its next call', async (t) => {
  for (const edx of ['80000000h', '0FFFFFFF0h', '7FFF0000h', '7FFEFFFCh', '10000000h']) {
    for (const ebp of ['evil', '0', '80501000h']) {
      const r = runProgram(`int2e edx=${edx} ebp=${ebp}`, { cpu: 'int2e', program: ESCAPE('int 2Eh', ebp, edx), maxInstructions: 200_000 });
      t.equal(userEipsAtCpl0(r), 0, `EDX ${edx}, EBP ${ebp}: no user EIP at CPL 0`);
      t.equal(r.outcome.kind, 'exited', `EDX ${edx}, EBP ${ebp}: the program exits normally`);
      t.equal(r.outcome.code, S.STATUS_ACCESS_VIOLATION, 'its exit status is the first call’s status');
      t.same(syscallStatuses(r).map(([n, s]) => [n, s]), [['NtClose', S.STATUS_INVALID_HANDLE]], 'the next call is made (NtClose(0) fails as it should)');
    }
  }
});

t.test('the escape through SYSENTER: no user EIP at CPL 0 and no bug check, whatever EBP and EDX', async (t) => {
  for (const edx of ['80000000h', '0FFFFFFF0h', '7FFF0000h', '10000000h']) {
    for (const ebp of ['evil', '0']) {
      const r = runProgram(`sysenter edx=${edx}`, { program: ESCAPE('sysenter', ebp, edx), maxInstructions: 200_000 });
      t.equal(userEipsAtCpl0(r), 0, `EDX ${edx}, EBP ${ebp}: no user EIP at CPL 0`);
      t.not(r.outcome.kind, 'bugcheck', `EDX ${edx}, EBP ${ebp}: ${r.outcome.description}`);
      const ssdt = ofType(r.events, 'ssdt-lookup')[0];
      t.equal(ssdt?.serviceIndex, 0xcf, 'the call reached the dispatcher');
      // SYSEXIT returns to SystemCallStub's ret with ESP = the caller's EDX: from a raw SYSENTER
      // with a kernel EDX there is no stack to return on, so the thread faults in user mode there.
      const exitTo = ofType(r.events, 'ring-transition').find((e) => e.mechanism === 'sysexit');
      t.equal(exitTo?.toEip, 0x7ffe0304, 'back to ring 3 at SharedUserData!SystemCallStub+4');
    }
  }
  // With EDX = the real ESP (what SystemCallStub passes), the program goes on after SYSENTER too.
  const r = runProgram('sysenter via the stub', {
    program: user('stubcall', 'start:\n    mov eax, 0CFh\n    call SharedUserData!SystemCallStub\n    mov ebx, eax\n    push 0\n    call ntdll!NtClose\n    mov eax, ebx\n    ret\n'),
  });
  t.equal(r.outcome.kind, 'exited');
});

t.test('a fault while KiSystemService copies the arguments fails the call, it does not stop the system', async (t) => {
  const r = runProgram('argument copy', {
    cpu: 'int2e',
    program: user(
      'argcopy',
      `start:
    mov eax, 0B7h                  ; NtReadFile, 24h argument bytes
    mov edx, 10000000h             ; in user space, but nothing is there
    int 2Eh
    mov esi, eax
    mov edi, esp
    mov esp, 130000h               ; the top of the stack: NtClose's argument lies past it
    call ntdll!NtClose
    mov esp, edi
    mov eax, esi
    ret
`,
    ),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, S.STATUS_ACCESS_VIOLATION);
  const faults = ofType(r.events, 'exception');
  t.same(
    faults.map((f) => [f.vector, symbolOf(r.guest, f.faultEip), f.cr2]),
    [
      [14, 'nt!KiSystemService', 0x10000000],
      [14, 'nt!KiSystemService', 0x130000],
    ],
    'two page faults at the `rep movsd`',
  );
  const trap = r.guest.symbols.resolve('nt', 'KiTrap0E')!;
  t.ok(r.instructions.some((e) => e.eip >>> 0 === trap), 'KiTrap0E ran');
  t.equal(ofType(r.events, 'exception-dispatch').length, 0, 'no exception was dispatched: the call just failed');
});

const SEH_PROGRAM = user(
  'seh',
  `CONTEXT_Eip equ 0xB8
start:
    push handler                   ; an EXCEPTION_REGISTRATION_RECORD on the stack …
    push dword [fs:0]
    mov [fs:0], esp                ; … linked at the head of the TEB's chain
fault:
    mov eax, [12345678h]           ; 5 bytes; nothing is mapped there
after:
    pop dword [fs:0]
    add esp, 4
    mov eax, [calls]
    ret                            ; exit status = the number of handler calls
handler:                           ; (ExceptionRecord, EstablisherFrame, ContextRecord, DispatcherContext)
    mov ecx, [esp+12]
    add dword [ecx+CONTEXT_Eip], 5 ; resume after the faulting instruction
    inc dword [calls]
    mov eax, [esp+4]
    mov eax, [eax]
    mov [code], eax
    xor eax, eax                   ; ExceptionContinueExecution
    ret
calls: dd 0
code: dd 0
`,
);

t.test('a user program with its own SEH handler survives an access violation and goes on', async (t) => {
  const r = runProgram('seh', { program: SEH_PROGRAM });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, 1, 'the handler ran once and the program returned normally');
  const path = r.symbols.filter((s, i) => i === 0 || s !== r.symbols[i - 1]);
  const order = ['seh!start', 'nt!KiTrap0E', 'nt!MmAccessFault', 'nt!CommonDispatchException', 'nt!KiDispatchException', 'nt!KiDispatchUserException', 'nt!KiExceptionExit', 'nt!KiTrapReturn', 'ntdll!KiUserExceptionDispatcher', 'ntdll!RtlDispatchException', 'seh!handler', 'ntdll!KiUserExceptionDispatcher', 'ntdll!NtContinue', 'nt!NtContinue', 'nt!KiServiceExit2', 'seh!after'];
  let at = 0;
  for (const want of order) {
    const i = path.indexOf(want, at);
    t.ok(i >= 0, `${want} follows`);
    if (i >= 0) at = i;
  }
  const dispatch = ofType(r.events, 'exception-dispatch');
  t.match(dispatch, [{ code: S.STATUS_ACCESS_VIOLATION, previousMode: 'UserMode', firstChance: true, handler: 'user-dispatcher', parameters: [0, 0x12345678] }]);
  t.equal(dispatch[0]!.address, r.guest.symbols.resolve('seh', 'fault'));
});

t.test('without a handler the process ends with STATUS_ACCESS_VIOLATION, through KiUserExceptionDispatcher', async (t) => {
  const r = runProgram('noseh', { program: user('noseh', 'start:\nfault:\n    mov eax, [12345678h]\n    ret\n') });
  t.equal(r.outcome.kind, 'exception');
  t.equal(r.outcome.code, S.STATUS_ACCESS_VIOLATION, 'the exit status is the exception code');
  t.ok(r.symbols.includes('ntdll!KiUserExceptionDispatcher'), 'the kernel sent the thread to KiUserExceptionDispatcher');
  t.same(
    ofType(r.events, 'exception-dispatch').map((d) => [d.handler, d.firstChance, d.code]),
    [
      ['user-dispatcher', true, S.STATUS_ACCESS_VIOLATION],
      ['process-end', false, S.STATUS_ACCESS_VIOLATION],
    ],
    'first chance to the thread, second chance (NtRaiseException) ends the process',
  );
  t.same(
    serviceCalls(r.events).map((c) => c.enter.service),
    ['NtRaiseException'],
    'ntdll raised the second chance',
  );
});

t.test('RtlRaiseException, RtlUnwind and a handler that unwinds to its frame', async (t) => {
  const r = runProgram('unwind', {
    program: user(
      'unwind',
      `start:
    push ebp
    mov [savedEsp], esp
    push handler
    push dword [fs:0]
    mov [fs:0], esp
    mov [frame], esp
    push inner                     ; a second, inner frame whose handler only counts unwinds
    push dword [fs:0]
    mov [fs:0], esp
    push record
    call ntdll!RtlRaiseException   ; raises 0xE0000001; the outer handler takes it
    mov eax, 0DEADh                ; not reached
    jmp done
resume:
    mov eax, [unwinds]             ; 1: the inner frame's handler saw the unwind
    shl eax, 8
    or eax, [raised]               ; 1: the outer handler ran once
done:
    pop dword [fs:0]               ; drop the outer frame (the unwind left it linked)
    add esp, 4
    pop ebp
    ret
inner:
    mov eax, [esp+4]
    test dword [eax+4], 6          ; EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND
    jz .search
    inc dword [unwinds]
.search:
    mov eax, 1                     ; ExceptionContinueSearch
    ret
handler:
    mov eax, [esp+4]
    test dword [eax+4], 6
    jnz .search
    inc dword [raised]
    push 0                         ; ReturnValue
    push dword [esp+8]             ; the record
    push 0                         ; TargetIp
    push dword [frame]             ; TargetFrame: ours
    call ntdll!RtlUnwind           ; calls inner's handler, unlinks it, returns here
    mov esp, [frame]               ; back on the frame's stack …
    jmp resume                     ; … and on to the code after the __except
.search:
    mov eax, 1
    ret
align 4
record: dd 0E0000001h, 0, 0, 0, 0
savedEsp: dd 0
frame: dd 0
raised: dd 0
unwinds: dd 0
`,
    ),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, 0x101, 'one raise seen by the outer handler, one unwind seen by the inner one');
  t.ok(r.symbols.includes('ntdll!RtlUnwind'));
  t.equal(ofType(r.events, 'exception-dispatch').length, 0, 'dispatched in user mode by ntdll: the kernel never saw it');
});

t.test('a privileged instruction, int3 and a division by zero at ring 3 are the thread’s exceptions', async (t) => {
  for (const [insn, code] of [
    ['hlt', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['mov eax, cr0', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['int3', S.STATUS_BREAKPOINT],
    ['div ecx', S.STATUS_INTEGER_DIVIDE_BY_ZERO],
    ['ud2', S.STATUS_ILLEGAL_INSTRUCTION],
    ['int 80h', S.STATUS_ACCESS_VIOLATION],
    ['mov ax, 43h\n    mov ds, ax', S.STATUS_ACCESS_VIOLATION],
  ] as const) {
    const r = runProgram(insn, { program: user('x', `start:\n    xor ecx, ecx\n    xor edx, edx\n    ${insn}\n    ret\n`) });
    t.equal(r.outcome.kind, 'exception', `${insn}: ${r.outcome.description}`);
    t.equal(r.outcome.code, code, `${insn}: exit status ${code.toString(16)}`);
    t.equal(userEipsAtCpl0(r), 0);
  }
});

t.test('a null DS brought into the kernel by INT 2Eh: KiTrap0D reloads it and the call goes on', async (t) => {
  const r = runProgram('null ds', {
    cpu: 'int2e',
    program: user('nullds', 'start:\n    xor eax, eax\n    mov ds, ax\n    push 0\n    mov eax, 19h\n    lea edx, [esp]\n    int 2Eh\n    add esp, 4\n    ret\n'),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, S.STATUS_INVALID_HANDLE, 'NtClose(0) ran and returned its status');
  t.match(ofType(r.events, 'exception'), [{ vector: 13, cpl: 0, errorCode: 0 }], 'one #GP, in KiSystemService, fixed up');
});

t.test('single-stepping a program through a system call: #DB per instruction, KiFastCallEntry2, IRETD back', async (t) => {
  const r = runProgram('trace flag', {
    program: user(
      'tf',
      `CONTEXT_Eip equ 0xB8
CONTEXT_EFlags equ 0xC0
start:
    push handler
    push dword [fs:0]
    mov [fs:0], esp
    pushfd
    or dword [esp], 100h
    popfd                          ; TF on: a #DB after each instruction from the next one on
    nop
    push 0
    call ntdll!NtClose             ; … SystemCallStub's sysenter too: the #DB strikes KiFastCallEntry
done:
    pop dword [fs:0]
    add esp, 4
    mov eax, [steps]
    ret
handler:                           ; counts the steps; keeps TF on until 'done'
    inc dword [steps]
    mov ecx, [esp+12]
    cmp dword [ecx+CONTEXT_Eip], done
    je .off
    or dword [ecx+CONTEXT_EFlags], 100h
.off:
    xor eax, eax
    ret
steps: dd 0
`,
    ),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  const steps = r.outcome.code!;
  // After nop, push 0, call, ntdll's mov eax / mov edx / call edx, SystemCallStub's mov edx,esp;
  // the sysenter's step is taken in ring 0 (KiFastCallEntry2); then after SystemCallStub's ret
  // and ntdll's ret 4, which lands on 'done'.
  t.ok(r.symbols.includes('nt!KiFastCallEntry2'), 'KiTrap01 sent the single-stepped SYSENTER to KiFastCallEntry2');
  const exits = ofType(r.events, 'ring-transition').filter((x) => x.fromCpl === 0 && x.toCpl === 3);
  const ntClose = serviceCalls(r.events).find((c) => c.enter.service === 'NtClose')!;
  const back = exits.find((x) => x.seq > ntClose.exit!.seq)!;
  t.equal(back.mechanism, 'iret', 'with TF in the frame the service returns by IRETD, not SYSEXIT');
  t.equal(symbolOf(r.guest, back.fromEip), 'nt!KiSystemCallExit', 'KiSystemCallExit2 sent it to KiSystemCallExit');
  t.equal(ntClose.exit!.status, S.STATUS_INVALID_HANDLE, 'NtClose(0) itself ran as usual');
  t.equal(ofType(r.events, 'exception').filter((e) => e.vector === 1 && e.cpl === 3).length, steps, 'one #DB at ring 3 per handled step');
  t.equal(steps, 9, 'nine steps in user mode');
});

t.test('what a ring-3 program cannot do: debug registers, port I/O, far jumps to system descriptors, x87 on a CPU without an FPU', async (t) => {
  for (const [insn, code] of [
    ['mov dr7, eax', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['mov eax, dr6', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['outsb', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['rep insd', S.STATUS_PRIVILEGED_INSTRUCTION],
    ['jmp 28h:0', S.STATUS_ACCESS_VIOLATION],
    ['call 30h:0', S.STATUS_ACCESS_VIOLATION],
    ['fld1', S.STATUS_ILLEGAL_INSTRUCTION],
    ['paddb mm0, mm1', S.STATUS_ILLEGAL_INSTRUCTION],
    ['addps xmm0, xmm1', S.STATUS_ILLEGAL_INSTRUCTION],
  ] as const) {
    const r = runProgram(insn, { program: user('x', `start:\n    ${insn}\n    ret\n`) });
    t.equal(r.outcome.kind, 'exception', `${insn}: ${r.outcome.description}`);
    t.equal(r.outcome.code, code, `${insn}: the process ends with ${code.toString(16)}`);
  }
  const les = runProgram('les', { program: user('les', 'start:\n    les eax, [far]\n    mov eax, es\n    ret\nfar: dd 1234h\n    dw 23h\n') });
  t.same([les.outcome.kind, les.outcome.code], ['exited', 0x23], 'les loads ES:EAX');
});

t.test('int3 under a handler that moves on: the CONTEXT points at the int3', async (t) => {
  const r = runProgram('bp', {
    program: user(
      'bp',
      `CONTEXT_Eip equ 0xB8
start:
    push handler
    push dword [fs:0]
    mov [fs:0], esp
brk:
    int3
    pop dword [fs:0]
    add esp, 4
    mov eax, [seen]
    ret
handler:
    mov ecx, [esp+12]
    mov eax, [ecx+CONTEXT_Eip]
    mov [seen], eax
    inc dword [ecx+CONTEXT_Eip]    ; step over the int3
    xor eax, eax
    ret
seen: dd 0
`,
    ),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  t.equal(r.outcome.code, r.guest.symbols.resolve('bp', 'brk'), 'CONTEXT.Eip was the int3');
});

t.test('memory protection: PAGE_GUARD once, PAGE_NOACCESS always, OldProtect as given, SharedUserData untouchable', async (t) => {
  const r = runProgram('protect', {
    program: user(
      'protect',
      `CONTEXT_Eip equ 0xB8
start:
    push handler
    push dword [fs:0]
    mov [fs:0], esp
    ; a page of our own
    push 4                         ; PAGE_READWRITE
    push 3000h                     ; MEM_COMMIT | MEM_RESERVE
    push size
    push 0
    push base
    push -1
    call ntdll!NtAllocateVirtualMemory
    ; every protection in turn; OldProtect reports the one before
    mov esi, protections
.next:
    mov eax, [esi]
    or eax, eax
    jz .protected
    push old
    push eax
    push size
    push base
    push -1
    call ntdll!NtProtectVirtualMemory
    mov ecx, [nold]
    mov edx, [old]
    mov [olds+ecx*4], edx
    inc dword [nold]
    add esi, 4
    jmp .next
.protected:
    ; a guard page: the first touch raises STATUS_GUARD_PAGE_VIOLATION, the second works
    push old
    push 104h                      ; PAGE_GUARD | PAGE_READWRITE
    push size
    push base
    push -1
    call ntdll!NtProtectVirtualMemory
    mov ebx, [base]
touch1:
    mov dword [ebx], 1             ; 6 bytes
touch2:
    mov dword [ebx], 2             ; 6 bytes
    ; PAGE_NOACCESS: every touch faults
    push old
    push 1
    push size
    push base
    push -1
    call ntdll!NtProtectVirtualMemory
touch3:
    mov eax, [ebx]                 ; 2 bytes
touch4:
    mov eax, [ebx]                 ; 2 bytes
    ; SharedUserData has no VAD: it cannot be made writable
    mov dword [base], 7FFE0000h
    push old
    push 40h
    push size
    push base
    push -1
    call ntdll!NtProtectVirtualMemory
    mov [sudStatus], eax
    pop dword [fs:0]
    add esp, 4
    xor eax, eax
    ret
handler:
    mov eax, [esp+4]
    mov eax, [eax]                 ; the exception code
    mov ecx, [nfaults]
    mov [faults+ecx*4], eax
    inc dword [nfaults]
    mov ecx, [esp+12]
    mov edx, [ecx+CONTEXT_Eip]
    movzx edx, byte [edx]
    cmp edx, 8Bh                   ; mov eax,[ebx] (2 bytes) or mov dword [ebx],imm (6 bytes)
    mov edx, 2
    je .skip
    mov edx, 6
.skip:
    add [ecx+CONTEXT_Eip], edx
    xor eax, eax
    ret
align 4
base: dd 0
size: dd 1000h
old: dd 0
protections: dd 1, 2, 4, 10h, 20h, 40h, 204h, 4, 0
nold: dd 0
olds: times 9 dd 0
nfaults: dd 0
faults: times 8 dd 0
sudStatus: dd 0
`,
    ),
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  const dw = (label: string, i = 0) => {
    const a = r.guest.symbols.resolve('protect', label)! + 4 * i;
    const b = r.guest.machine.cpu.mmu.peekBytes(a, 4).map((x) => x ?? 0);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  };
  t.same(
    Array.from({ length: 8 }, (_, i) => dw('olds', i)),
    [0x04, 0x01, 0x02, 0x04, 0x10, 0x20, 0x40, 0x204],
    'OldProtect: each protection set is the one reported next (PAGE_EXECUTE_READWRITE stays 0x40, PAGE_NOCACHE kept)',
  );
  t.same(
    Array.from({ length: dw('nfaults') }, (_, i) => dw('faults', i)),
    [S.STATUS_GUARD_PAGE_VIOLATION, S.STATUS_ACCESS_VIOLATION, S.STATUS_ACCESS_VIOLATION],
    'the guard page faults once; the no-access page on every touch',
  );
  t.equal(dw('sudStatus'), S.STATUS_CONFLICTING_ADDRESSES, 'NtProtectVirtualMemory(0x7FFE0000) fails: no VAD there');
  t.same(r.guest.machine.cpu.mmu.peekBytes(0xffdf0300, 5), [0x8b, 0xd4, 0x0f, 0x34, 0xc3], 'SystemCallStub is intact');
});

t.test('kernel mode: an invalid system address is bug check 0x50; a user address under a handler is an exception it handles', async (t) => {
  const bad = runProgram('kernel 0x50', { program: TRIVIAL, drivers: [driver('bad', 'DriverEntry:\n    mov eax, [90000000h]\n    xor eax, eax\n    ret 8\n')] });
  t.equal(bad.outcome.kind, 'bugcheck');
  t.equal(bad.outcome.code, 0x50, bad.outcome.description);

  const unhandled = runProgram('kernel 0x8E', { program: TRIVIAL, drivers: [driver('bad', 'DriverEntry:\n    mov eax, [10000000h]\n    xor eax, eax\n    ret 8\n')] });
  t.equal(unhandled.outcome.kind, 'bugcheck');
  t.equal(unhandled.outcome.code, 0x8e, `a user address with no handler: ${unhandled.outcome.description}`);
  t.match(ofType(unhandled.events, 'exception-dispatch'), [{ previousMode: 'KernelMode', handler: 'seh-chain', code: S.STATUS_ACCESS_VIOLATION }]);

  const handled = runProgram('kernel SEH', {
    program: TRIVIAL,
    drivers: [
      driver(
        'careful',
        `CONTEXT_Eip equ 0xB8
DriverEntry:
    push handler
    push dword [fs:0]
    mov [fs:0], esp
    mov eax, [10000000h]           ; 5 bytes: no user memory in the System process
    pop dword [fs:0]
    add esp, 4
    mov eax, [caught]
    ret 8
handler:
    mov ecx, [esp+12]
    add dword [ecx+CONTEXT_Eip], 5
    mov eax, [esp+4]
    mov eax, [eax]
    mov [caught], eax
    xor eax, eax
    ret
caught: dd 0
`,
      ),
    ],
  });
  t.equal(handled.outcome.kind, 'exited', handled.outcome.description);
  t.ok(handled.symbols.includes('nt!RtlDispatchException') && handled.symbols.includes('careful!handler'), 'the kernel asked the driver’s handler');
  t.match(ofType(handled.events, 'exception-dispatch'), [{ previousMode: 'KernelMode', firstChance: true, handler: 'seh-chain', code: S.STATUS_ACCESS_VIOLATION }]);
});

t.test('a driver’s RtlRaiseException: NtRaiseException in KernelMode, its handler continues, an edited frame returns to it', async (t) => {
  const r = runProgram('kernel raise', {
    program: TRIVIAL,
    drivers: [
      driver(
        'kraise',
        `DriverEntry:
    push ebx
    push handler
    push dword [fs:0]
    mov [fs:0], esp
    mov ebx, 12345678h             ; kept across the raise: the CONTEXT restores it
    push record
    call nt!RtlRaiseException      ; continuable: the handler says go on
    pop dword [fs:0]
    add esp, 4
    mov [kept], ebx
    pop ebx
    xor eax, eax
    ret 8
handler:
    mov eax, [esp+4]
    mov eax, [eax]
    mov [seen], eax
    xor eax, eax                   ; ExceptionContinueExecution
    ret
align 4
record: dd 0E0000002h, 0, 0, 0, 0
seen: dd 0
kept: dd 0
`,
      ),
    ],
  });
  t.equal(r.outcome.kind, 'exited', r.outcome.description);
  const dw = (label: string) => {
    const b = r.guest.machine.cpu.mmu.peekBytes(r.guest.symbols.resolve('kraise', label)!, 4).map((x) => x ?? 0);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  };
  t.equal(dw('seen'), 0xe0000002, 'the driver’s handler saw the exception');
  t.equal(dw('kept'), 0x12345678, 'and the code after the call ran with its registers');
  const raise = serviceCalls(r.events).find((c) => c.enter.service === 'NtRaiseException')!;
  t.equal(raise.enter.previousMode, 'KernelMode', 'through the Zw stub: KernelMode');
  t.match(ofType(r.events, 'exception-dispatch'), [{ code: 0xe0000002, previousMode: 'KernelMode', handler: 'seh-chain', firstChance: true }]);
  t.ok(r.symbols.includes('nt!KiEditedTrapReturn'), 'the CONTEXT’s ESP is not the frame’s: KiServiceExit2 leaves through the edited-frame return');
});

t.test('a service body faulting on its caller’s memory returns the exception code; on an invalid system address it bug-checks', async (t) => {
  const zw = (where: string) =>
    driver(
      'zwcaller',
      `DriverEntry:
    push 4
    push 3000h
    push size
    push 0
    push ${where}                  ; *BaseAddress: the service reads it (KernelMode: no probe)
    push -1
    call nt!ZwAllocateVirtualMemory
    ret 8
size: dd 1000h
`,
    );
  const userAddr = runProgram('zw user', { program: TRIVIAL, drivers: [zw('10000000h')] });
  t.equal(userAddr.outcome.kind, 'exited', userAddr.outcome.description);
  const call = serviceCalls(userAddr.events).find((c) => c.enter.service === 'NtAllocateVirtualMemory')!;
  t.equal(call.enter.previousMode, 'KernelMode');
  t.equal(call.exit!.status, S.STATUS_ACCESS_VIOLATION, 'the service’s handler returns the code');
  t.match(ofType(userAddr.events, 'exception-dispatch'), [{ handler: 'service', code: S.STATUS_ACCESS_VIOLATION, parameters: [0, 0x10000000] }]);

  const systemAddr = runProgram('zw system', { program: TRIVIAL, drivers: [zw('90000000h')] });
  t.equal(systemAddr.outcome.kind, 'bugcheck');
  t.equal(systemAddr.outcome.code, 0x50, systemAddr.outcome.description);
});

t.test('a bad kernel stack at SYSENTER goes where XP sends it: KiTrap06 with a V86 frame, and the process ends', async (t) => {
  const guest = Guest.boot({ program: user('twice', 'start:\n    push 0\n    call ntdll!NtClose\n    push 0\n    call ntdll!NtClose\n    ret\n') });
  const events: TraceEvent[] = [];
  const sub = guest.events$.subscribe((e) => events.push(e));
  t.teardown(() => sub.unsubscribe());
  guest.start(1_000_000);
  let outcome = null;
  while (outcome === null && !events.some((e) => e.type === 'service-exit')) outcome = guest.slice(1);
  // Something corrupts TSS.Esp0 while the program runs between its two calls.
  const k = guest.kernel;
  k.w32(layout.TSS + 4, k.r32(layout.TSS + 4) - 0x10);
  while (outcome === null) outcome = guest.slice(100_000);
  t.equal(outcome.kind, 'exception', outcome.description);
  t.equal(outcome.code, S.STATUS_ILLEGAL_INSTRUCTION, 'an invalid opcode in (fake) virtual-8086 mode, which this process cannot have');
  const path = events.filter((e) => e.type === 'instruction').map((e) => symbolOf(guest, e.eip));
  const bad = path.indexOf('nt!KiFastCallBadStack');
  t.ok(bad > 0 && path.indexOf('nt!KiTrap06', bad) > bad, 'KiFastCallEntry → KiFastCallBadStack → KiTrap06');
  t.match(ofType(events, 'exception-dispatch'), [{ code: S.STATUS_ILLEGAL_INSTRUCTION, previousMode: 'UserMode', address: 0 }]);
});

t.test('every event stream stays gapless through the new paths', async (t) => {
  const r = runProgram('seh', { program: SEH_PROGRAM });
  const seqs = r.events.map((e: TraceEvent) => e.seq);
  t.same(seqs, seqs.map((_, i) => i));
});
