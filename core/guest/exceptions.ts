// The TypeScript halves of exception handling (core/guest/kernel/exceptions.asm has the x86
// halves): converting between a trap frame and a CONTEXT as KeContextFromKframes and
// KeContextToKframes do, sending an exception to user mode (the frame on the user stack for
// ntdll!KiUserExceptionDispatcher), ending the process when no handler wants it, telling a
// privileged instruction from an access violation, and the NtContinue / NtRaiseException bodies.
//
// RECONSTRUCTED from public descriptions (ReactOS's KeContextToTrapFrame / KeTrapFrameToContext,
// KiDispatchException and KiTrap0DHandler for the rules; the x86 CONTEXT layout of winnt.h).
import { R } from '../cpu/cpu.js';
import { GuestFault } from '../cpu/faults.js';
import type { EscapeCall, RoutineTable, ServiceTable } from './escape.js';
import type { Kernel } from './kernel.js';
import * as L from './layout.js';
import { kernelAccessFault, mmAccessFault } from './mm.js';
import { NTSTATUS } from './ntstatus.js';
import { offsetOf } from './structs.js';

const TF = (f: Parameters<typeof offsetOf<'KTRAP_FRAME'>>[1]) => offsetOf('KTRAP_FRAME', f);
const CTX = (f: Parameters<typeof offsetOf<'CONTEXT'>>[1]) => offsetOf('CONTEXT', f);
const ER = (f: Parameters<typeof offsetOf<'EXCEPTION_RECORD'>>[1]) => offsetOf('EXCEPTION_RECORD', f);

export const CONTEXT_SIZE = 0x2cc;
const EXCEPTION_RECORD_SIZE = 0x50;
const EXCEPTION_MAXIMUM_PARAMETERS = 15;

export const CONTEXT_i386 = 0x10000;
export const CONTEXT_CONTROL = CONTEXT_i386 | 0x1;
export const CONTEXT_INTEGER = CONTEXT_i386 | 0x2;
export const CONTEXT_SEGMENTS = CONTEXT_i386 | 0x4;
export const CONTEXT_DEBUG_REGISTERS = CONTEXT_i386 | 0x10;
export const CONTEXT_FULL = CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_SEGMENTS;

const EFLAGS_IF = 0x200;
const EFLAGS_VM = 0x20000;
/** The EFLAGS bits a CONTEXT may set for user mode: the arithmetic flags, TF, DF, AC, VIF, VIP, ID — not IF, IOPL, NT, RF or VM. */
const EFLAGS_USER_SANITIZE = 0x003c0dd5;
/** KTRAP_FRAME.SegCs & FRAME_EDITED == 0: the kernel-mode ESP was changed (TempEsp, TempSegCs). */
const FRAME_EDITED = 0xfff8;
/** DR7 bits a user CONTEXT may set: the local enables and the type/length fields. */
const DR7_LEGAL = 0xffff0155;
const DR7_ACTIVE = 0x55;

const isUserFrame = (k: Kernel, frame: number): boolean => (k.r32(frame + TF('SegCs')) & 1) === 1 || (k.r32(frame + TF('EFlags')) & EFLAGS_VM) !== 0;
const isEdited = (k: Kernel, frame: number): boolean => (k.r32(frame + TF('SegCs')) & FRAME_EDITED) === 0;

/** The frame fields and the CONTEXT fields of the same name. */
const INTEGER_FIELDS = ['Edi', 'Esi', 'Ebx', 'Edx', 'Ecx', 'Eax'] as const;

/**
 * KeContextFromKframes: the CONTEXT (CONTEXT_FULL | CONTEXT_DEBUG_REGISTERS) of the code a trap
 * frame interrupted. A kernel-mode frame has no SS:ESP of its own: ESP is where the frame ends
 * (&HardwareEsp), or TempEsp when the frame was edited.
 */
export function contextFromFrame(k: Kernel, frame: number, context: number): void {
  for (let i = 0; i < CONTEXT_SIZE; i += 4) k.w32(context + i, 0);
  k.w32(context + CTX('ContextFlags'), CONTEXT_FULL | CONTEXT_DEBUG_REGISTERS);
  for (const f of INTEGER_FIELDS) k.w32(context + CTX(f), k.r32(frame + TF(f)));
  k.w32(context + CTX('Ebp'), k.r32(frame + TF('Ebp')));
  k.w32(context + CTX('Eip'), k.r32(frame + TF('Eip')));
  k.w32(context + CTX('EFlags'), k.r32(frame + TF('EFlags')));
  if (isUserFrame(k, frame)) {
    k.w32(context + CTX('SegCs'), k.r32(frame + TF('SegCs')) & 0xffff);
    k.w32(context + CTX('Esp'), k.r32(frame + TF('HardwareEsp')));
    k.w32(context + CTX('SegSs'), k.r32(frame + TF('HardwareSegSs')) & 0xffff);
    for (const s of ['SegDs', 'SegEs', 'SegFs', 'SegGs'] as const) k.w32(context + CTX(s), k.r32(frame + TF(s)) & 0xffff);
    for (const d of ['Dr0', 'Dr1', 'Dr2', 'Dr3', 'Dr6', 'Dr7'] as const) k.w32(context + CTX(d), k.r32(frame + TF(d)));
  } else {
    const edited = isEdited(k, frame);
    k.w32(context + CTX('SegCs'), edited ? k.r32(frame + TF('TempSegCs')) & 0xffff : L.KGDT_R0_CODE);
    k.w32(context + CTX('Esp'), edited ? k.r32(frame + TF('TempEsp')) : (frame + TF('HardwareEsp')) >>> 0);
    k.w32(context + CTX('SegSs'), L.KGDT_R0_DATA);
    k.w32(context + CTX('SegDs'), L.KGDT_R3_DATA);
    k.w32(context + CTX('SegEs'), L.KGDT_R3_DATA);
    k.w32(context + CTX('SegFs'), L.KGDT_R0_PCR);
  }
}

/** A data selector a user CONTEXT may give: one that loads at ring 3 (or the null selector). */
function sanitizeUserSelector(sel: number): number {
  const s = (sel & 0xffff) | 3;
  return s === L.KGDT_R3_DATA || s === L.KGDT_R3_TEB || s === L.KGDT_R3_CODE ? s : 0;
}

/**
 * KeContextToKframes: a captured CONTEXT (bytes) into a trap frame, by its ContextFlags and
 * sanitised for the mode the frame returns to: a user frame always returns to ring 3 with IF set,
 * selectors it can load (the standard ones without CONTEXT_SEGMENTS) and debug registers aimed
 * at user space only; a kernel frame gets the kernel's selectors; a kernel frame whose ESP
 * changes becomes an edited frame (TempEsp/TempSegCs, SegCs's selector bits cleared).
 */
export function contextToFrame(k: Kernel, ctx: DataView, frame: number, mode: 0 | 1): void {
  const get = (f: Parameters<typeof CTX>[0]) => ctx.getUint32(CTX(f), true);
  const flags = get('ContextFlags');
  const user = mode === 1 || isUserFrame(k, frame);
  if ((flags & CONTEXT_INTEGER) === CONTEXT_INTEGER) for (const f of INTEGER_FIELDS) k.w32(frame + TF(f), get(f));
  if ((flags & CONTEXT_CONTROL) === CONTEXT_CONTROL) {
    k.w32(frame + TF('Ebp'), get('Ebp'));
    k.w32(frame + TF('Eip'), get('Eip'));
    if (user) {
      k.w32(frame + TF('SegCs'), L.KGDT_R3_CODE);
      k.w32(frame + TF('EFlags'), (get('EFlags') & EFLAGS_USER_SANITIZE) | EFLAGS_IF | 2);
      k.w32(frame + TF('HardwareEsp'), get('Esp'));
      k.w32(frame + TF('HardwareSegSs'), L.KGDT_R3_DATA);
    } else {
      const eflags = (get('EFlags') & (EFLAGS_USER_SANITIZE | EFLAGS_IF)) | 2;
      k.w32(frame + TF('EFlags'), eflags);
      const esp = get('Esp');
      const natural = (frame + TF('HardwareEsp')) >>> 0;
      if (esp === natural) {
        k.w32(frame + TF('SegCs'), L.KGDT_R0_CODE);
      } else {
        k.w32(frame + TF('TempEsp'), esp);
        k.w32(frame + TF('TempSegCs'), L.KGDT_R0_CODE);
        k.w32(frame + TF('SegCs'), L.KGDT_R0_CODE & ~FRAME_EDITED);
      }
    }
  }
  // A user frame leaves through KiServiceExit2 / KiTrapReturn, which load every segment register
  // from it — and a SYSENTER frame never stored them: without CONTEXT_SEGMENTS a user frame gets
  // the selectors a user thread runs with (DS = ES = 0x23, FS = 0x3B, GS = 0).
  const segments = (flags & CONTEXT_SEGMENTS) === CONTEXT_SEGMENTS;
  if (user) {
    const sel = (f: 'SegDs' | 'SegEs' | 'SegFs' | 'SegGs', standard: number) => (segments ? sanitizeUserSelector(get(f)) : standard);
    k.w32(frame + TF('SegDs'), sel('SegDs', L.KGDT_R3_DATA));
    k.w32(frame + TF('SegEs'), sel('SegEs', L.KGDT_R3_DATA));
    k.w32(frame + TF('SegFs'), sel('SegFs', L.KGDT_R3_TEB));
    k.w32(frame + TF('SegGs'), sel('SegGs', 0));
  } else {
    // Kernel code runs with these, whatever a CONTEXT says (and a Zw frame stored none either).
    k.w32(frame + TF('SegDs'), L.KGDT_R3_DATA);
    k.w32(frame + TF('SegEs'), L.KGDT_R3_DATA);
    k.w32(frame + TF('SegFs'), L.KGDT_R0_PCR);
    k.w32(frame + TF('SegGs'), 0);
  }
  if ((flags & CONTEXT_DEBUG_REGISTERS) === CONTEXT_DEBUG_REGISTERS && user) {
    for (const d of ['Dr0', 'Dr1', 'Dr2', 'Dr3'] as const) {
      const a = get(d);
      k.w32(frame + TF(d), a <= L.MM_USER_PROBE_ADDRESS - 1 ? a : 0);
    }
    k.w32(frame + TF('Dr6'), get('Dr6'));
    const dr7 = get('Dr7') & DR7_LEGAL;
    k.w32(frame + TF('Dr7'), dr7);
    k.w8(k.currentThread().kthread + offsetOf('KTHREAD', 'DebugActive'), dr7 & DR7_ACTIVE ? 1 : 0);
  }
}

/** Read a CONTEXT out of guest memory (faults propagate: the caller's exception handler decides). */
export function captureContext(k: Kernel, address: number): DataView {
  return new DataView(k.readBytes(address, CONTEXT_SIZE).buffer);
}

/**
 * ZwTerminateProcess(NtCurrentProcess(), ExceptionCode): what XP's KiDispatchException does when
 * no handler wanted a user-mode exception. The session's outcome says so.
 */
export function endProcessWithException(k: Kernel, code: number, address: number): never {
  k.runIdleWork();
  return k.finish({ kind: 'exception', code: code >>> 0, eip: address >>> 0 }) as never;
}

/**
 * KiDispatchException's user-mode half. First chance: the CONTEXT and the exception record go on
 * the user stack (below the interrupted ESP, dword-aligned, the record trimmed to its parameters),
 * with the two pointers KiUserExceptionDispatcher takes, and the frame returns to ntdll there in
 * ring 3. A stack that cannot take them, a V86 or odd-SS frame, or the second chance: the process
 * ends with the exception code.
 */
function dispatchUserException(k: Kernel, record: number, frame: number, context: number, firstChance: boolean): number {
  const code = k.r32(record + ER('ExceptionCode'));
  const address = k.r32(record + ER('ExceptionAddress'));
  if (!firstChance) endProcessWithException(k, code, address);
  if (k.r32(frame + TF('EFlags')) & EFLAGS_VM || (k.r32(frame + TF('HardwareSegSs')) & 0xffff) !== L.KGDT_R3_DATA) endProcessWithException(k, code, address);
  const n = Math.min(k.r32(record + ER('NumberParameters')), EXCEPTION_MAXIMUM_PARAMETERS);
  const recordSize = (EXCEPTION_RECORD_SIZE - (EXCEPTION_MAXIMUM_PARAMETERS - n) * 4 + 3) & ~3;
  const stack = ((k.r32(context + CTX('Esp')) & ~3) - CONTEXT_SIZE) >>> 0;
  const newStack = (stack - recordSize) >>> 0;
  const low = (newStack - 8) >>> 0;
  // ProbeForWrite of the whole area: inside user space, no wrap.
  if (low > newStack || stack + CONTEXT_SIZE > L.MM_USER_PROBE_ADDRESS || low < 0x10000) endProcessWithException(k, code, address);
  try {
    k.writeBytes(stack, k.readBytes(context, CONTEXT_SIZE));
    k.writeBytes(newStack, k.readBytes(record, recordSize));
    k.w32(newStack - 4, stack);
    k.w32(newStack - 8, newStack);
  } catch (e) {
    if (!(e instanceof GuestFault)) throw e;
    kernelAccessFault(k, e);
    endProcessWithException(k, code, address);
  }
  k.w32(frame + TF('HardwareEsp'), low);
  k.w32(frame + TF('HardwareSegSs'), L.KGDT_R3_DATA);
  k.w32(frame + TF('SegCs'), L.KGDT_R3_CODE);
  k.w32(frame + TF('SegDs'), L.KGDT_R3_DATA);
  k.w32(frame + TF('SegEs'), L.KGDT_R3_DATA);
  k.w32(frame + TF('SegFs'), L.KGDT_R3_TEB);
  k.w32(frame + TF('SegGs'), 0);
  k.w32(frame + TF('Eip'), k.symbols.resolve('ntdll', 'KiUserExceptionDispatcher')!);
  return 0;
}

/** Opcodes that need CPL 0 (or I/O privilege): a #GP on one of them at ring 3 is STATUS_PRIVILEGED_INSTRUCTION. */
const PRIVILEGED_ONE_BYTE = new Set([0xf4, 0xfa, 0xfb, 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f, 0xcf]);
const PRIVILEGED_TWO_BYTE = new Set([0x00, 0x01, 0x06, 0x07, 0x08, 0x09, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x32, 0x33, 0x35]);
const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** KiTrap0D's look at the instruction a ring-3 #GP stopped: privileged, or an access violation. */
function classifyGeneralProtection(k: Kernel, frame: number): number {
  const eip = k.r32(frame + TF('Eip'));
  try {
    let i = 0;
    while (i < 14 && PREFIXES.has(k.r8(eip + i))) i++;
    const b0 = k.r8(eip + i);
    if (PRIVILEGED_ONE_BYTE.has(b0)) return NTSTATUS.STATUS_PRIVILEGED_INSTRUCTION;
    if (b0 === 0x0f && PRIVILEGED_TWO_BYTE.has(k.r8(eip + i + 1))) return NTSTATUS.STATUS_PRIVILEGED_INSTRUCTION;
  } catch (e) {
    if (!(e instanceof GuestFault)) throw e;
  }
  return NTSTATUS.STATUS_ACCESS_VIOLATION;
}

export const EXCEPTION_ROUTINES: RoutineTable = {
  /** KeContextFromKframes(TrapFrame, Context) */
  KeContextFromKframes: { argBytes: 8, body: ({ k, arg }) => (contextFromFrame(k, arg(0), arg(1)), 0) },
  /** KeContextToKframes(TrapFrame, Context, PreviousMode) */
  KeContextToKframes: {
    argBytes: 12,
    body: ({ k, arg }) => (contextToFrame(k, captureContext(k, arg(1)), arg(0), (arg(2) & 1) as 0 | 1), 0),
  },
  /** KiDispatchUserException(ExceptionRecord, TrapFrame, Context, FirstChance) */
  KiDispatchUserException: {
    argBytes: 16,
    body: ({ k, arg }) => dispatchUserException(k, arg(0), arg(1), arg(2), (arg(3) & 0xff) !== 0),
  },
  /** KiCheckPrivilegedInstruction(TrapFrame): the exception code of a ring-3 #GP. */
  KiCheckPrivilegedInstruction: { argBytes: 4, body: ({ k, arg }) => classifyGeneralProtection(k, arg(0)) },
  /** MmAccessFault(StoreInstruction, VirtualAddress, PreviousMode, TrapInformation) */
  MmAccessFault: {
    argBytes: 16,
    body: ({ k, arg }) => mmAccessFault(k, (arg(0) & 1) !== 0, arg(1), (arg(2) & 1) as 0 | 1, k.r32(arg(3) + TF('Eip'))),
  },
};

/** The trap frame a hand-written service routine (NtContinue, NtRaiseException) saved: [EBP]. */
const callerFrame = (k: Kernel): number => k.r32(k.cpu.regs[R.EBP]);

/** A ProbeForRead of the caller's structure (UserMode only): range and alignment. */
function probeUser(k: Kernel, address: number, length: number): number {
  const last = address + length - 1;
  if (address & 3) return NTSTATUS.STATUS_DATATYPE_MISALIGNMENT;
  if (last > 0xffffffff || last >= L.MM_USER_PROBE_ADDRESS) return NTSTATUS.STATUS_ACCESS_VIOLATION;
  return 0;
}

export const EXCEPTION_SERVICES: ServiceTable = {
  /**
   * NtContinue(Context, TestAlert): the CONTEXT is captured (probed for UserMode) and loaded into
   * the caller's trap frame; the x86 routine then leaves through KiServiceExit2. TestAlert
   * re-arms delivery of another queued user APC.
   */
  NtContinue: ({ k, arg, previousMode }: EscapeCall) => {
    const context = arg(0);
    if (previousMode === 1) {
      const status = probeUser(k, context, CONTEXT_SIZE);
      if (status) return status;
    }
    contextToFrame(k, captureContext(k, context), callerFrame(k), previousMode);
    if (arg(1) !== 0) testAlertHook.fn?.(k);
    return NTSTATUS.STATUS_SUCCESS;
  },

  /**
   * NtRaiseException(ExceptionRecord, ContextRecord, FirstChance): the record (its used
   * parameters) is captured into the routine's frame and the CONTEXT into the caller's trap frame;
   * the x86 routine dispatches it.
   */
  NtRaiseException: ({ k, arg, previousMode }: EscapeCall) => {
    const record = arg(0);
    const context = arg(1);
    if (previousMode === 1) {
      const status = probeUser(k, record, 0x14) || probeUser(k, context, CONTEXT_SIZE);
      if (status) return status;
    }
    const n = k.r32(record + ER('NumberParameters'));
    if (n > EXCEPTION_MAXIMUM_PARAMETERS) return NTSTATUS.STATUS_INVALID_PARAMETER;
    if (previousMode === 1) {
      const status = probeUser(k, record, 0x14 + 4 * n);
      if (status) return status;
    }
    const captured = k.readBytes(record, 0x14 + 4 * n);
    const ctx = captureContext(k, context);
    const buffer = (k.cpu.regs[R.EBP] - EXCEPTION_RECORD_SIZE) >>> 0;
    k.writeBytes(buffer, new Uint8Array(EXCEPTION_RECORD_SIZE));
    k.writeBytes(buffer, captured);
    contextToFrame(k, ctx, callerFrame(k), previousMode);
    return NTSTATUS.STATUS_SUCCESS;
  },
};

/** NtTestAlert's logic (core/guest/nt), which NtContinue(…, TestAlert = TRUE) runs too. */
export const testAlertHook: { fn: ((k: Kernel) => void) | null } = { fn: null };
