// Builds the guest's images from source: ntoskrnl (the hand-written .asm files of this folder plus
// generated parts: the 284 Zw stubs, the Nt service routines, the service tables, the trap
// vectors), ntdll (one stub per service, KiUserApcDispatcher, RtlNtStatusToDosError and its
// table), kernel32 (the Win32 base API, calling ntdll), win32k (its 667 routines and table) and
// SharedUserData's system-call stub. Everything is assembled by ntflow's assembler;
// the symbols of every image feed the disassembler, the probes and the loader.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assemble, type AsmResult } from '../../asm/index.js';
import type { CpuModel } from '../../cpu/cpu.js';
import { ESCAPE_ROUTINE_BASE, ESCAPE_SERVICE_BASE, type RoutineTable, type ServiceTable } from '../escape.js';
import * as L from '../layout.js';
import { BUGCHECK, NTSTATUS } from '../ntstatus.js';
import { NT_SERVICES, WIN32K_SERVICES, argumentTable, type Service } from '../services.js';
import { offsetOf, offsetsAsm } from '../structs.js';
import { MODULE_FILES, moduleExports, writePeHeaders } from './exports.js';
import { statusTableAsm, win32ErrorsAsm } from '../win32-errors.js';

/** The kernel-side source files, in this folder, found from the compiled module too. */
function kernelSource(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const candidate of [join(dir, name), join(dir, 'core', 'guest', 'kernel', name)]) {
      try {
        return readFileSync(candidate, 'utf8');
      } catch {
        /* keep looking upwards (dist/ has no .asm files) */
      }
    }
    dir = dirname(dir);
  }
  throw new Error(`cannot find core/guest/kernel/${name}`);
}

const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase();

export interface ImageSymbol {
  module: string;
  name: string;
  address: number;
}

export interface Image {
  module: string;
  base: number;
  bytes: Uint8Array;
  /** Exported symbols (global labels) by name. */
  symbols: Map<string, number>;
  /** Every label, local ones (`KiSystemService.repeat`) included: probes are declared on them. */
  labels: Map<string, number>;
}

export interface GuestImages {
  ntoskrnl: Image;
  ntdll: Image;
  /** kernel32.dll: mapped into Win32 programs only (loader.ts). */
  kernel32: Image;
  win32k: Image;
  hal: Image;
  /** SharedUserData+0x300: SystemCallStub (SYSENTER) or KiIntSystemCall (INT 2Eh). */
  systemCallStub: Uint8Array;
  /** Addresses of the IDT's handlers by vector. */
  idt: Map<number, { handler: number; dpl: number; trap: boolean }>;
  /** Escape id → body, filled from the service and routine tables. */
  escapes: Map<number, { kind: 'service'; name: string; service: Service } | { kind: 'routine'; name: string }>;
}

/** Constants every kernel source sees: structure offsets, PCR addresses, selectors, statuses, escapes. */
function header(services: ServiceTable, routines: RoutineTable): string {
  const pcr = (path: Parameters<typeof offsetOf<'KPCR'>>[1]) => hex(L.KPCR + offsetOf('KPCR', path));
  const lines = [
    'bits 32',
    offsetsAsm(),
    `PCR_ExceptionList equ ${pcr('NtTib.ExceptionList')}`,
    `PCR_Teb equ ${pcr('NtTib.Self')}`,
    `PCR_SelfPcr equ ${pcr('SelfPcr')}`,
    `PCR_Irql equ ${pcr('Irql')}`,
    `PCR_TSS equ ${pcr('TSS')}`,
    `PCR_CurrentThread equ ${pcr('PrcbData.CurrentThread')}`,
    `PCR_KeSystemCalls equ ${pcr('PrcbData.KeSystemCalls')}`,
    `KGDT_R0_CODE equ ${L.KGDT_R0_CODE}`,
    `KGDT_R0_DATA equ ${L.KGDT_R0_DATA}`,
    `KGDT_R3_CODE equ ${L.KGDT_R3_CODE & ~3}`,
    `KGDT_R3_DATA equ ${L.KGDT_R3_DATA & ~3}`,
    `KGDT_R0_PCR equ ${L.KGDT_R0_PCR}`,
    `KGDT_R3_TEB equ ${L.KGDT_R3_TEB & ~3}`,
    'EFLAGS_TF equ 0x100',
    'EFLAGS_IF equ 0x200',
    'EFLAGS_VM equ 0x20000',
    'KERNEL_MODE equ 0',
    'USER_MODE equ 1',
    'APC_LEVEL equ 1',
    `SYSTEM_CALL_RET equ ${hex(L.SYSTEM_CALL_RET)}`,
    `MM_USER_PROBE_ADDRESS equ ${hex(L.MM_USER_PROBE_ADDRESS)}`,
    ...Object.entries(NTSTATUS).map(([name, value]) => `${name} equ ${hex(value)}`),
    ...Object.entries(BUGCHECK).map(([name, value]) => `${name} equ ${hex(value)}`),
    // Structured exception handling (winnt.h / excpt.h values).
    'EXCEPTION_NONCONTINUABLE equ 0x1',
    'EXCEPTION_UNWINDING equ 0x2',
    'EXCEPTION_EXIT_UNWIND equ 0x4',
    'EXCEPTION_STACK_INVALID equ 0x8',
    'EXCEPTION_NESTED_CALL equ 0x10',
    'EXCEPTION_CONTINUE_EXECUTION equ 0',
    'EXCEPTION_CONTINUE_SEARCH equ 1',
    'EXCEPTION_NESTED_EXCEPTION equ 2',
    'EXCEPTION_COLLIDED_UNWIND equ 3',
    'CONTEXT_FULL equ 0x10007',
    // KTRAP_FRAME.SegCs & FRAME_EDITED = 0: an edited kernel-mode frame (TempEsp, TempSegCs).
    'FRAME_EDITED equ 0xFFF8',
    // DR7 without its reserved bits: anything set means armed debug registers to restore.
    'DR7_ACTIVE_MASK equ 0xFFFF23FF',
    // The kernel debugger's service numbers (EAX at INT 2Dh): BREAKPOINT_PRINT prints a string.
    'BREAKPOINT_PRINT equ 1',
    `ESCAPE_PORT equ ${hex(L.ESCAPE_PORT)}`,
    `CALLBACK_RETURN_PORT equ ${hex(L.CALLBACK_RETURN_PORT)}`,
  ];
  for (const name of Object.keys(services)) {
    const s = NT_SERVICES.find((x) => x.name === name);
    if (!s) throw new Error(`service body for unknown service ${name}`);
    lines.push(`ESCAPE_SERVICE_${name} equ ${hex(ESCAPE_SERVICE_BASE + s.number)}`);
  }
  Object.keys(routines).forEach((name, i) => lines.push(`ESCAPE_ROUTINE_${name} equ ${hex(ESCAPE_ROUTINE_BASE + i)}`));
  return lines.join('\n');
}

/** A `; @at ADDRESS` line becomes padding (int3) up to that address in the image. */
function placeChunks(source: string, base: number): string {
  return source.replace(/^; @at (0x[0-9A-Fa-f]+)\s*$/gm, (_, at: string) => {
    const addr = parseInt(at, 16);
    return `times ${hex(addr)} - ${hex(base)} - ($ - $$) db 0xCC   ; @at ${at}`;
  });
}

/** The kernel-mode Zw stubs: `mov eax,N; lea edx,[esp+4]; pushfd; push 8; call KiSystemService; ret N`. */
function zwStubs(): string {
  const out = [`; @at ${hex(L.ZW_STUBS)}`, '; Kernel-mode Zw stubs, one per service, 0x14 bytes apart (generated).'];
  for (const s of NT_SERVICES) {
    const zw = 'Zw' + s.name.slice(2);
    out.push(
      `${zw}:`,
      `    mov eax, ${hex(s.number)}`,
      '    lea edx, [esp+4]',
      '    pushfd',
      '    push KGDT_R0_CODE',
      '    call KiSystemService',
      s.argBytes ? `    ret ${hex(s.argBytes)}` : '    ret',
      `    times ${L.ZW_STUB_SIZE} - ($ - ${zw}) db 0xCC`,
    );
  }
  return out.join('\n');
}

/** An x86 entry whose body is TypeScript, reached through the escape. */
function escapeStub(name: string, escape: string, argBytes: number, comment: string): string {
  return [
    `${name}:                    ; ${comment}`,
    '    push ebp',
    '    {load} mov ebp, esp',
    `    mov eax, ${escape}`,
    '    out ESCAPE_PORT, eax',
    '    pop ebp',
    argBytes ? `    ret ${hex(argBytes)}` : '    ret',
  ].join('\n');
}

/** Every Nt service routine that is not hand-written: a TypeScript body or STATUS_NOT_IMPLEMENTED. */
function ntRoutines(services: ServiceTable, handWritten: Set<string>): string {
  const out = ['; Nt service routines (generated): a TypeScript body behind the escape, or not implemented.'];
  for (const s of NT_SERVICES) {
    if (handWritten.has(s.name)) continue;
    if (s.name in services) out.push(escapeStub(s.name, `ESCAPE_SERVICE_${s.name}`, s.argBytes, 'body: TypeScript (core/guest/nt)'));
    else out.push(`${s.name}:`, '    mov eax, STATUS_NOT_IMPLEMENTED', s.argBytes ? `    ret ${hex(s.argBytes)}` : '    ret');
  }
  return out.join('\n');
}

function routineStubs(routines: RoutineTable): string {
  const out = ['; Kernel routines with TypeScript bodies (generated).'];
  for (const [name, def] of Object.entries(routines)) {
    out.push(escapeStub(name, `ESCAPE_ROUTINE_${name}`, def.argBytes, def.fastcall ? 'fastcall, body: TypeScript' : 'body: TypeScript'));
  }
  return out.join('\n');
}

/**
 * The trap frame every trap handler builds first (XP's ENTER_TRAP macro, RECONSTRUCTED): below the
 * CPU's frame (and the dummy ErrCode of vectors that push none) the non-volatile registers and FS,
 * the exception list, a PreviousPreviousMode slot, the volatile registers and segments, the debug
 * slots; FS = the PCR, DS = ES = flat data; EBP = the frame; the debugger fields filled in; a user
 * thread's armed debug registers saved. The kernel sources write `ENTER_TRAP` (the CPU pushed an
 * error code) or `ENTER_TRAP_NO_ERROR_CODE` on a line of their own; the builder expands it.
 */
function enterTrap(dummyErrorCode: boolean): string[] {
  return [
    ...(dummyErrorCode ? ['    push 0                          ; no error code from the CPU: a dummy ErrCode'] : []),
    '    push ebp',
    '    push ebx',
    '    push esi',
    '    push edi',
    '    push fs',
    '    mov ebx, KGDT_R0_PCR',
    '    mov fs, bx',
    '    push dword [fs:KPCR_NtTib_ExceptionList] ; (through FS: DS may be anything until it is reloaded below)',
    '    push -1                         ; PreviousPreviousMode: a trap changes no PreviousMode',
    '    push eax',
    '    push ecx',
    '    push edx',
    '    push ds',
    '    push es',
    '    push gs',
    '    mov eax, KGDT_R3_DATA | 3',
    '    sub esp, KTRAP_FRAME_SegGs      ; the debugger and debug-register slots',
    '    mov ds, eax',
    '    mov es, eax',
    '    {load} mov ebp, esp',
    '    cld',
    '    and dword [ebp+KTRAP_FRAME_Dr7], 0',
    '    mov ebx, [ebp+KTRAP_FRAME_Ebp]',
    '    mov edi, [ebp+KTRAP_FRAME_Eip]',
    '    mov [ebp+KTRAP_FRAME_DbgArgPointer], edx',
    '    mov dword [ebp+KTRAP_FRAME_DbgArgMark], 0xBADB0D00',
    '    mov [ebp+KTRAP_FRAME_DbgEbp], ebx',
    '    mov [ebp+KTRAP_FRAME_DbgEip], edi',
    '    test byte [ebp+KTRAP_FRAME_SegCs], 1',
    '    jz short .frameBuilt',
    '    mov ecx, [PCR_CurrentThread]',
    '    test byte [ecx+KTHREAD_DebugActive], 0xFF',
    '    jz short .frameBuilt',
    '    call KiSaveDebugRegisters',
    '.frameBuilt:',
  ];
}

/** Expand the ENTER_TRAP lines of a kernel source. */
function expandEnterTrap(source: string): string {
  return source.replace(/^[ \t]*ENTER_TRAP(_NO_ERROR_CODE)?[ \t]*(;.*)?$/gm, (_m, noCode: string | undefined) => enterTrap(noCode !== undefined).join('\n'));
}

/**
 * What each trap vector does once its frame is built: raise an exception with a code (in either
 * mode), raise it only from user mode and be fatal in kernel mode, be fatal
 * (UNEXPECTED_KERNEL_MODE_TRAP with the vector), or go to a hand-written body (exceptions.asm).
 */
type TrapAction = { raise: string } | { userRaise: string } | 'fatal' | 'hand-written';
const TRAP_ACTIONS: Record<number, TrapAction> = {
  0x00: { raise: 'STATUS_INTEGER_DIVIDE_BY_ZERO' },
  0x01: 'hand-written', // #DB: KiFastCallEntry2, STATUS_SINGLE_STEP
  0x02: 'fatal', // NMI
  0x03: 'hand-written', // #BP: STATUS_BREAKPOINT at the int3
  0x04: { raise: 'STATUS_INTEGER_OVERFLOW' },
  0x05: { raise: 'STATUS_ARRAY_BOUNDS_EXCEEDED' },
  0x06: { raise: 'STATUS_ILLEGAL_INSTRUCTION' },
  // #NM: this CPU model has no FPU (CPUID says so, CR0.EM is set): an x87 instruction in user mode
  // is an illegal instruction for the thread; in the kernel it is fatal.
  0x07: { userRaise: 'STATUS_ILLEGAL_INSTRUCTION' },
  0x08: 'fatal', // #DF
  0x09: 'fatal',
  0x0a: { userRaise: 'STATUS_ACCESS_VIOLATION' }, // #TS
  0x0b: { userRaise: 'STATUS_ACCESS_VIOLATION' }, // #NP
  0x0c: { userRaise: 'STATUS_ACCESS_VIOLATION' }, // #SS
  0x0d: 'hand-written', // #GP: privileged instruction or access violation
  0x0e: 'hand-written', // #PF: MmAccessFault
  0x11: { userRaise: 'STATUS_DATATYPE_MISALIGNMENT' }, // #AC
};

/** IDT vectors 0x00-0x1F and XP's DPL-3 neighbours of INT 2Eh (generated; see exceptions.asm). */
function trapVectors(): string {
  const out = ['; Trap vectors 0x00-0x1F and INT 2Ah-2Dh (generated by build.ts; bodies in exceptions.asm).'];
  const withCode = new Set([8, 10, 11, 12, 13, 14, 17]);
  for (let v = 0; v < 0x20; v++) {
    const name = `KiTrap${v.toString(16).toUpperCase().padStart(2, '0')}`;
    const action = TRAP_ACTIONS[v] ?? 'fatal';
    if (action === 'hand-written') continue; // in exceptions.asm
    out.push(`${name}:`, withCode.has(v) ? '    ENTER_TRAP' : '    ENTER_TRAP_NO_ERROR_CODE');
    if (action === 'fatal') out.push(`    mov eax, ${hex(v)}`, '    jmp near KiSystemFatalException');
    else if ('raise' in action) out.push(`    mov eax, ${action.raise}`, '    jmp near KiTrapRaise0');
    else {
      out.push(
        '    test dword [ebp+KTRAP_FRAME_EFlags], EFLAGS_VM',
        '    jnz short .user',
        '    test byte [ebp+KTRAP_FRAME_SegCs], 1',
        '    jnz short .user',
        `    mov eax, ${hex(v)}`,
        '    jmp near KiSystemFatalException',
        '.user:',
        `    mov eax, ${action.userRaise}`,
        '    jmp near KiTrapRaise0',
      );
    }
  }
  out.push(
    '; INT 2Ah KiGetTickCount: the tick count in EAX (this machine\'s clock does not tick: 0).',
    'KiGetTickCount:',
    '    xor eax, eax',
    '    iretd',
    '; INT 2Bh KiCallbackReturn: no user-mode callback is ever active here.',
    'KiCallbackReturn:',
    '    mov eax, STATUS_NO_CALLBACK_ACTIVE',
    '    iretd',
    '; INT 2Ch KiSetLowWaitHighThread: the thread has no event pair.',
    'KiSetLowWaitHighThread:',
    '    mov eax, STATUS_NO_EVENT_PAIR',
    '    iretd',
    '; INT 2Dh KiDebugService: a debug service request (EAX = the service, ECX, EDX its arguments),',
    '; followed in the caller by an int3 for the debugger. BREAKPOINT_PRINT (ntdll!DebugService printing',
    '; a string: ECX = the text, EDX = its length) is printed by KdpPrintString, as XP\'s kernel',
    '; debugger stub does with no debugger attached (XP gets there through KiDispatchException and',
    '; KdpTrap), and the thread resumes past the int3 with EAX = the status. Any other service is a',
    '; breakpoint exception at the int3 for the thread\'s handlers.',
    'KiDebugService:',
    '    ENTER_TRAP_NO_ERROR_CODE',
    '    inc dword [ebp+KTRAP_FRAME_Eip]          ; past the int3',
    '    cmp dword [ebp+KTRAP_FRAME_Eax], BREAKPOINT_PRINT',
    '    jne short .breakpoint',
    '    mov eax, [ebp+KTRAP_FRAME_SegCs]',
    '    and eax, 1                               ; the mode it came from',
    '    push eax',
    '    push dword [ebp+KTRAP_FRAME_Edx]         ; Length',
    '    push dword [ebp+KTRAP_FRAME_Ecx]         ; Buffer',
    '    call KdpPrintString',
    '    mov [ebp+KTRAP_FRAME_Eax], eax',
    '    jmp near KiExceptionExit',
    '.breakpoint:',
    '    mov eax, STATUS_BREAKPOINT',
    '    mov ebx, [ebp+KTRAP_FRAME_Eip]',
    '    dec ebx',
    '    mov ecx, 3',
    '    mov edx, [ebp+KTRAP_FRAME_Eax]',
    '    mov esi, [ebp+KTRAP_FRAME_Ecx]',
    '    mov edi, [ebp+KTRAP_FRAME_Edx]',
    '    jmp near CommonDispatchException',
  );
  return out.join('\n');
}

function serviceTables(): string {
  const nt = NT_SERVICES;
  const args = argumentTable(0);
  return [
    '; The service descriptor tables (generated from the XP SP1 service list).',
    'align 4',
    'KiServiceTable:',
    ...nt.map((s) => `    dd ${s.name}`),
    'KiArgumentTable:',
    `    db ${Array.from(args).join(', ')}`,
    'align 4',
    '; KeServiceDescriptorTable: four descriptors, [0] = ntoskrnl. Non-GUI threads use this one.',
    'KeServiceDescriptorTable:',
    `    dd KiServiceTable, 0, ${nt.length}, KiArgumentTable`,
    '    dd 0, 0, 0, 0',
    '    dd 0, 0, 0, 0',
    '    dd 0, 0, 0, 0',
    '; KeServiceDescriptorTableShadow: [0] = ntoskrnl again, [1] = win32k. GUI threads use this one.',
    'KeServiceDescriptorTableShadow:',
    `    dd KiServiceTable, 0, ${nt.length}, KiArgumentTable`,
    `    dd win32k!W32pServiceTable, 0, ${WIN32K_SERVICES.length}, win32k!W32pArgumentTable`,
    '    dd 0, 0, 0, 0',
    '    dd 0, 0, 0, 0',
  ].join('\n');
}

/** ntoskrnl's writable data, on pages of its own (the code and tables above stay read-only). */
function dataSection(names: string[]): string {
  return ['; Writable kernel data (generated): filled by the executive at boot.', 'align 0x1000', 'KernelDataSection:', ...names.map((n) => `${n}:\n    dd 0`), 'align 0x1000', 'KernelDataSectionEnd:'].join('\n');
}

function win32kSource(): string {
  const out = [`org ${hex(L.WIN32K_BASE)}`, 'bits 32', `STATUS_NOT_IMPLEMENTED equ ${hex(NTSTATUS.STATUS_NOT_IMPLEMENTED)}`, '; win32k.sys: its system services (none implemented in this miniature) and its table.'];
  for (const s of WIN32K_SERVICES) out.push(`${s.name}:`, '    mov eax, STATUS_NOT_IMPLEMENTED', s.argBytes ? `    ret ${hex(s.argBytes)}` : '    ret');
  out.push('align 4', 'W32pServiceTable:', ...WIN32K_SERVICES.map((s) => `    dd ${s.name}`), 'W32pArgumentTable:');
  out.push(`    db ${Array.from(argumentTable(1)).join(', ')}`);
  return out.join('\n');
}

/** ntdll's RtlNtStatusToDosError needs the Win32 error codes and its status table (generated). */
function ntdllErrorTable(): string {
  return [win32ErrorsAsm(), statusTableAsm()].join('\n');
}

/** kernel32 (kernel32.asm) with the header's constants and winerror.h's; it calls ntdll's exports. */
function kernel32Source(head: string): string {
  return [head, win32ErrorsAsm(), `org ${hex(L.KERNEL32_BASE)}`, "times 0x1000 db 0xCC   ; the headers' page", kernelSource('kernel32.asm')].join('\n');
}

/**
 * ntdll: the native API stubs, one per service, 16 bytes apart in service-number order
 * (generated), each exported as both NtXxx and ZwXxx; then the hand-written entry points
 * (ntdll.asm) and the Rtl exception code it shares with ntoskrnl (rtl-seh.asm).
 */
function ntdllSource(head: string): string {
  const out = [
    head,
    `org ${hex(L.NTDLL_BASE)}`,
    '; ntdll: the native API stubs (generated): EAX = service number, then SharedUserData!SystemCallStub.',
    `times ${hex(L.NTDLL_STUBS)} - ${hex(L.NTDLL_BASE)} - ($ - $$) db 0xCC`,
  ];
  for (const s of NT_SERVICES) {
    const zw = 'Zw' + s.name.slice(2);
    out.push(
      `${s.name}:`,
      `${zw}:`,
      `    mov eax, ${hex(s.number)}`,
      `    mov edx, ${hex(L.SYSTEM_CALL_STUB)}`,
      '    call edx',
      s.argBytes ? `    ret ${hex(s.argBytes)}` : '    ret',
      `    times ${L.NTDLL_STUB_SIZE} - ($ - ${s.name}) db 0xCC`,
    );
  }
  out.push('', kernelSource('ntdll.asm'), '', kernelSource('rtl-seh.asm'));
  return out.join('\n');
}

/** SharedUserData+0x300 as XP SP1's kernel copies it there at boot. */
function systemCallStubSource(model: CpuModel): string {
  return model === 'sysenter'
    ? ['bits 32', `org ${hex(L.SYSTEM_CALL_STUB)}`, 'SystemCallStub:', '    {load} mov edx, esp', '    sysenter', '    ret'].join('\n')
    : ['bits 32', `org ${hex(L.SYSTEM_CALL_STUB)}`, 'KiIntSystemCall:', '    lea edx, [esp+8]', '    int 0x2E', '    ret'].join('\n');
}

/** Global labels of an assembled module (no locals, no equ constants). */
function exported(result: AsmResult, constants: Set<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, addr] of result.labels) {
    if (name.includes('.') || constants.has(name)) continue;
    out.set(name, addr >>> 0);
  }
  return out;
}

function constantNames(source: string): Set<string> {
  const names = new Set<string>();
  for (const m of source.matchAll(/^\s*([A-Za-z_][\w]*)\s+equ\b/gm)) names.add(m[1]);
  return names;
}

const cache = new Map<string, GuestImages>();

// Assembling the kernel takes about a second; every process would pay it. The images are also
// kept on disk next to this module (dist/…/.cache), keyed by a hash of everything they are built
// from — the kernel sources, the service tables, the set of TypeScript bodies — so a change to any
// of them rebuilds them. A cache that cannot be read or written is simply not used.
interface SerializedImage {
  module: string;
  base: number;
  bytes: string;
  symbols: [string, number][];
  labels: [string, number][];
}
interface SerializedImages {
  ntoskrnl: SerializedImage;
  ntdll: SerializedImage;
  kernel32: SerializedImage;
  win32k: SerializedImage;
  hal: SerializedImage;
  systemCallStub: string;
  idt: [number, { handler: number; dpl: number; trap: boolean }][];
  escapes: [number, GuestImages['escapes'] extends Map<number, infer V> ? V : never][];
}
const toDisk = (img: Image): SerializedImage => ({ module: img.module, base: img.base, bytes: Buffer.from(img.bytes).toString('base64'), symbols: [...img.symbols], labels: [...img.labels] });
const fromDisk = (img: SerializedImage): Image => ({ module: img.module, base: img.base, bytes: new Uint8Array(Buffer.from(img.bytes, 'base64')), symbols: new Map(img.symbols), labels: new Map(img.labels) });

/** The assembler's code and this builder's own, so a change to how either makes the images rebuilds them. */
function assemblerCode(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  try {
    const asm = join(here, '..', '..', 'asm');
    const generators = ['build', 'exports'].map((f) => readFileSync(join(here, `${f}${extname(fileURLToPath(import.meta.url))}`), 'utf8'));
    return [
      ...readdirSync(asm)
        .filter((f) => f.endsWith('.js') || f.endsWith('.ts'))
        .sort()
        .map((f) => readFileSync(join(asm, f), 'utf8')),
      ...generators,
    ].join('\0');
  } catch {
    return String(Math.random()); // unknown: never reuse a cache
  }
}

/** Every hand-written source file of the images (their text keys the disk cache). */
const KERNEL_SOURCES = ['trap.asm', 'exceptions.asm', 'rtl-seh.asm', 'seh.asm', 'readfile.asm', 'misc.asm', 'ntdll.asm', 'hal.asm', 'kernel32.asm'];

function diskCachePath(key: string): string {
  const sources = KERNEL_SOURCES.map(kernelSource).join('\0');
  const hash = createHash('sha256').update(key).update('\0').update(sources).update(assemblerCode()).update(JSON.stringify(NT_SERVICES)).update(JSON.stringify(WIN32K_SERVICES)).update(offsetsAsm()).update(JSON.stringify(NTSTATUS)).update(ntdllErrorTable()).digest('hex').slice(0, 24);
  return join(dirname(fileURLToPath(import.meta.url)), '.cache', `images-${hash}.json`);
}

function readDiskCache(path: string): GuestImages | null {
  try {
    const d = JSON.parse(readFileSync(path, 'utf8')) as SerializedImages;
    return {
      ntoskrnl: fromDisk(d.ntoskrnl),
      ntdll: fromDisk(d.ntdll),
      kernel32: fromDisk(d.kernel32),
      win32k: fromDisk(d.win32k),
      hal: fromDisk(d.hal),
      systemCallStub: new Uint8Array(Buffer.from(d.systemCallStub, 'base64')),
      idt: new Map(d.idt),
      escapes: new Map(d.escapes),
    };
  } catch {
    return null;
  }
}

function writeDiskCache(path: string, images: GuestImages): void {
  const d: SerializedImages = {
    ntoskrnl: toDisk(images.ntoskrnl),
    ntdll: toDisk(images.ntdll),
    kernel32: toDisk(images.kernel32),
    win32k: toDisk(images.win32k),
    hal: toDisk(images.hal),
    systemCallStub: Buffer.from(images.systemCallStub).toString('base64'),
    idt: [...images.idt],
    escapes: [...images.escapes],
  };
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(d));
    renameSync(tmp, path); // atomic: a concurrent reader never sees half a file
  } catch {
    /* a read-only install: assemble each time */
  }
}

/** Assemble the guest images (cached in memory and on disk per CPU model and set of TypeScript bodies). */
export function buildImages(model: CpuModel, services: ServiceTable, routines: RoutineTable, dataSymbols: string[] = []): GuestImages {
  const key = `${model}|${Object.keys(services).sort().join(',')}|${Object.keys(routines).join(',')}|${dataSymbols.join(',')}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const diskPath = diskCachePath(key);
  const fromCache = readDiskCache(diskPath);
  if (fromCache) {
    cache.set(key, fromCache);
    return fromCache;
  }
  const built = assembleImages(model, services, routines, dataSymbols);
  writeDiskCache(diskPath, built);
  cache.set(key, built);
  return built;
}

function assembleImages(model: CpuModel, services: ServiceTable, routines: RoutineTable, dataSymbols: string[]): GuestImages {
  const win32kSrc = win32kSource();
  const win32kAsm = assemble(win32kSrc, { fileName: 'win32k.asm' });
  const win32k: Image = { module: 'win32k', base: L.WIN32K_BASE, bytes: win32kAsm.bytes, symbols: exported(win32kAsm, constantNames(win32kSrc)), labels: win32kAsm.labels };

  const handWritten = new Set(['NtReadFile', 'NtContinue', 'NtRaiseException']);
  const head = header(services, routines);
  const halSrc = `${head}\norg ${hex(L.HAL_BASE)}\ntimes 0x1000 db 0xCC   ; the headers' page\n${kernelSource('hal.asm')}`;
  const halAsm = assemble(halSrc, { fileName: 'hal.asm' });
  const hal: Image = { module: 'hal', base: L.HAL_BASE, bytes: halAsm.bytes, symbols: exported(halAsm, constantNames(halSrc)), labels: halAsm.labels };
  const body = [
    kernelSource('readfile.asm').split('; @at 0x8056B2EC')[0], // the scope table chunk (0x804E0458)
    `; @at ${hex(L.KI_SERVICE_TABLE)}`,
    serviceTables(),
    zwStubs(),
    kernelSource('seh.asm'),
    kernelSource('trap.asm'),
    '; @at 0x8056B2EC' + kernelSource('readfile.asm').split('; @at 0x8056B2EC')[1],
    kernelSource('misc.asm'),
    kernelSource('exceptions.asm'),
    kernelSource('rtl-seh.asm'),
    trapVectors(),
    routineStubs(routines),
    ntRoutines(services, handWritten),
    dataSection(dataSymbols),
  ].join('\n\n');
  const ntSource = `${head}\norg ${hex(L.NTOSKRNL_BASE)}\n${expandEnterTrap(placeChunks(body, L.NTOSKRNL_BASE))}`;
  const ntAsm = assemble(ntSource, {
    fileName: 'ntoskrnl.asm',
    resolveSymbol: (module, name) => (module === 'win32k' ? win32k.symbols.get(name) : module === 'hal' ? hal.symbols.get(name) : undefined),
  });
  if (L.NTOSKRNL_BASE + ntAsm.bytes.length > L.NTOSKRNL_END) throw new Error('ntoskrnl image overflows its region');
  const ntoskrnl: Image = { module: 'nt', base: L.NTOSKRNL_BASE, bytes: ntAsm.bytes, symbols: exported(ntAsm, constantNames(head)), labels: ntAsm.labels };

  const ntdllSrc = `${ntdllSource(head)}\n${ntdllErrorTable()}`;
  const ntdllAsm = assemble(ntdllSrc, { fileName: 'ntdll.asm' });
  const ntdll: Image = { module: 'ntdll', base: L.NTDLL_BASE, bytes: ntdllAsm.bytes, symbols: exported(ntdllAsm, constantNames(ntdllSrc)), labels: ntdllAsm.labels };

  const kernel32Src = kernel32Source(head);
  const kernel32Asm = assemble(kernel32Src, { fileName: 'kernel32.asm', resolveSymbol: (module, name) => (module === 'ntdll' ? ntdll.symbols.get(name) : undefined) });
  if (L.KERNEL32_BASE + kernel32Asm.bytes.length > L.NTDLL_BASE) throw new Error('kernel32 image overflows into ntdll');
  const kernel32: Image = { module: 'kernel32', base: L.KERNEL32_BASE, bytes: kernel32Asm.bytes, symbols: exported(kernel32Asm, constantNames(kernel32Src)), labels: kernel32Asm.labels };

  const sym = (name: string) => {
    const a = ntoskrnl.symbols.get(name);
    if (a === undefined) throw new Error(`ntoskrnl has no ${name}`);
    return a;
  };
  const idt = new Map<number, { handler: number; dpl: number; trap: boolean }>();
  for (let v = 0; v < 0x20; v++) {
    const user = v === 3 || v === 4; // int3 and into work from ring 3
    idt.set(v, { handler: sym(`KiTrap${v.toString(16).toUpperCase().padStart(2, '0')}`), dpl: user ? 3 : 0, trap: false });
  }
  idt.set(0x2a, { handler: sym('KiGetTickCount'), dpl: 3, trap: false });
  idt.set(0x2b, { handler: sym('KiCallbackReturn'), dpl: 3, trap: false });
  idt.set(0x2c, { handler: sym('KiSetLowWaitHighThread'), dpl: 3, trap: false });
  idt.set(0x2d, { handler: sym('KiDebugService'), dpl: 3, trap: false });
  idt.set(0x2e, { handler: sym('KiSystemService'), dpl: 3, trap: false });

  const escapes: GuestImages['escapes'] = new Map();
  for (const name of Object.keys(services)) {
    const s = NT_SERVICES.find((x) => x.name === name)!;
    escapes.set(ESCAPE_SERVICE_BASE + s.number, { kind: 'service', name, service: s });
  }
  Object.keys(routines).forEach((name, i) => escapes.set(ESCAPE_ROUTINE_BASE + i, { kind: 'routine', name }));

  // Each module's PE headers and export directory, in the padding before its code.
  for (const img of [ntoskrnl, ntdll, hal, kernel32]) writePeHeaders(img, MODULE_FILES[img.module]!, moduleExports(img.module, img.symbols));

  const images: GuestImages = {
    ntoskrnl,
    ntdll,
    kernel32,
    win32k,
    hal,
    systemCallStub: assemble(systemCallStubSource(model), { fileName: 'SharedUserData.asm' }).bytes,
    idt,
    escapes,
  };
  return images;
}
