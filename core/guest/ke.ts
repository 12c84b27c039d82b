// Kernel routines of the system-call path whose bodies are TypeScript: the trap dispatcher,
// KiDeliverApc (user APCs), PsConvertToGuiThread, KeBugCheckEx, and the services that end or
// rewrite a thread's user context (NtContinue, NtTerminateProcess).
import { R } from '../cpu/cpu.js';
import type { EscapeCall, RoutineTable, ServiceTable } from './escape.js';
import type { Kernel } from './kernel.js';
import { NTSTATUS } from './ntstatus.js';
import { BUGCHECK } from './ntstatus.js';
import { offsetOf } from './structs.js';
import * as L from './layout.js';

/** What the executive's APC code hands KiDeliverApc (core/guest/nt provides it). */
export interface UserApc {
  normalRoutine: number;
  normalContext: number;
  arg1: number;
  arg2: number;
}
/** Set by the executive (core/guest/nt) at boot: take the next user APC of the current thread. */
export const apcSource: { dequeue: ((k: Kernel) => UserApc | null) | null } = { dequeue: null };

const TF = (f: Parameters<typeof offsetOf<'KTRAP_FRAME'>>[1]) => offsetOf('KTRAP_FRAME', f);
const CTX = (f: Parameters<typeof offsetOf<'CONTEXT'>>[1]) => offsetOf('CONTEXT', f);
const CONTEXT_FULL = 0x10007; // CONTEXT_i386 | CONTROL | INTEGER | SEGMENTS

// The frame and CONTEXT fields copied between them (same names in both).
const FRAME_CONTEXT_FIELDS = ['Edi', 'Esi', 'Ebx', 'Edx', 'Ecx', 'Eax', 'Ebp', 'Eip', 'SegCs', 'EFlags'] as const;

/** The exception code a user-mode fault becomes (what XP's trap handlers raise). */
function exceptionCode(k: Kernel, vector: number, eip: number): number {
  switch (vector) {
    case 0: return NTSTATUS.STATUS_INTEGER_DIVIDE_BY_ZERO;
    case 1: return NTSTATUS.STATUS_SINGLE_STEP;
    case 3: return NTSTATUS.STATUS_BREAKPOINT;
    case 4: return NTSTATUS.STATUS_INTEGER_OVERFLOW;
    case 6: return NTSTATUS.STATUS_ILLEGAL_INSTRUCTION;
    case 13: return isPrivilegedAt(k, eip) ? NTSTATUS.STATUS_PRIVILEGED_INSTRUCTION : NTSTATUS.STATUS_ACCESS_VIOLATION;
    default: return NTSTATUS.STATUS_ACCESS_VIOLATION;
  }
}

/** Whether the instruction at a user EIP is one that needs CPL 0 (for #GP's exception code). */
function isPrivilegedAt(k: Kernel, eip: number): boolean {
  try {
    const b0 = k.r8(eip);
    const b1 = k.r8(eip + 1);
    // hlt, cli, sti, in/out, and 0F xx system instructions (mov crN, lgdt/lidt/ltr…, rd/wrmsr, clts, invd).
    if ([0xf4, 0xfa, 0xfb, 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f].includes(b0)) return true;
    return b0 === 0x0f && [0x00, 0x01, 0x06, 0x08, 0x09, 0x20, 0x22, 0x30, 0x32, 0x35].includes(b1);
  } catch {
    return false;
  }
}

export const KERNEL_ROUTINES: RoutineTable = {
  /**
   * KiTrapCommon: the stack holds vector, error code, then the CPU's frame (EIP, CS, EFLAGS[, ESP,
   * SS]). A fault in user mode ends the thread with its exception code; in kernel mode it is a bug
   * check (PAGE_FAULT_IN_NONPAGED_AREA for #PF, else UNEXPECTED_KERNEL_MODE_TRAP / KMODE_EXCEPTION).
   */
  KiTrapCommon: {
    argBytes: 0,
    body: ({ k }: EscapeCall) => {
      const esp = k.cpu.regs[R.ESP] >>> 0;
      const vector = k.r32(esp);
      const errorCode = k.r32(esp + 4);
      const eip = k.r32(esp + 8);
      const cs = k.r32(esp + 12) & 0xffff;
      if ((cs & 3) === 3) {
        k.finish({ kind: 'exception', code: exceptionCode(k, vector, eip), vector, eip });
      }
      if (vector === 14) {
        k.finish({ kind: 'bugcheck', code: BUGCHECK.PAGE_FAULT_IN_NONPAGED_AREA, parameters: [k.cpu.cr2 >>> 0, (errorCode >> 1) & 1, eip, 0] });
      }
      if (vector === 8 || vector === 0xff || vector > 0x1f) {
        k.finish({ kind: 'bugcheck', code: BUGCHECK.UNEXPECTED_KERNEL_MODE_TRAP, parameters: [vector, 0, 0, 0] });
      }
      return k.finish({ kind: 'bugcheck', code: BUGCHECK.KMODE_EXCEPTION_NOT_HANDLED, parameters: [exceptionCode(k, vector, eip), eip, 0, 0] }) as never;
    },
  },

  /**
   * KiDeliverApc(DeliveryMode, Reserved, TrapFrame): for a user-mode delivery, take the next user
   * APC and set the return to user mode up for ntdll!KiUserApcDispatcher: a CONTEXT of the
   * interrupted user state and the APC's routine and arguments on the user stack, and the trap
   * frame's Eip/HardwareEsp pointing there (XP: KiInitializeUserApc).
   */
  KiDeliverApc: {
    argBytes: 12,
    body: ({ k, arg }: EscapeCall) => {
      const mode = arg(0);
      const frame = arg(2);
      if (mode !== 1 || frame === 0) return 0;
      const apc = apcSource.dequeue?.(k) ?? null;
      if (apc === null) return 0;
      const userEsp = k.r32(frame + TF('HardwareEsp'));
      const contextSize = offsetOf('CONTEXT', 'ExtendedRegisters'); // the integer and control part
      const context = ((userEsp - 0x2cc) & ~3) >>> 0;
      const base = context - 16;
      // The CONTEXT: what the thread resumes with after the APC (NtContinue).
      for (let i = 0; i < contextSize; i += 4) k.w32(context + i, 0);
      k.w32(context + CTX('ContextFlags'), CONTEXT_FULL);
      for (const f of FRAME_CONTEXT_FIELDS) k.w32(context + CTX(f), k.r32(frame + TF(f)));
      k.w32(context + CTX('Esp'), userEsp);
      k.w32(context + CTX('SegSs'), L.KGDT_R3_DATA);
      k.w32(context + CTX('SegDs'), L.KGDT_R3_DATA);
      k.w32(context + CTX('SegEs'), L.KGDT_R3_DATA);
      k.w32(context + CTX('SegFs'), L.KGDT_R3_TEB);
      // NormalRoutine, NormalContext, SystemArgument1, SystemArgument2 below it.
      k.w32(base, apc.normalRoutine);
      k.w32(base + 4, apc.normalContext);
      k.w32(base + 8, apc.arg1);
      k.w32(base + 12, apc.arg2);
      k.w32(frame + TF('Eip'), k.symbols.resolve('ntdll', 'KiUserApcDispatcher')!);
      k.w32(frame + TF('HardwareEsp'), base);
      return 0;
    },
  },

  /** PsConvertToGuiThread: the thread now uses KeServiceDescriptorTableShadow (win32k's table too). */
  PsConvertToGuiThread: {
    argBytes: 0,
    body: ({ k }: EscapeCall) => {
      const t = k.currentThread().kthread;
      if (k.field('KTHREAD', 'Win32Thread', t) !== 0) return NTSTATUS.STATUS_ALREADY_WIN32;
      k.setField('KTHREAD', 'ServiceTable', t, k.symbols.resolve('nt', 'KeServiceDescriptorTableShadow')!);
      // A stand-in W32THREAD: win32k's per-thread state is not modelled, only its existence.
      k.setField('KTHREAD', 'Win32Thread', t, k.allocPool(0x28));
      return NTSTATUS.STATUS_SUCCESS;
    },
  },

  /** KeGdiFlushUserBatch: win32k's batched GDI calls (none are ever queued here). */
  KeGdiFlushUserBatch: { argBytes: 0, body: () => 0 },

  /** KeBugCheckEx(Code, P1, P2, P3, P4): stop the system with the code (recorded, never thrown). */
  KeBugCheckEx: {
    argBytes: 20,
    body: ({ k, arg }: EscapeCall) => k.finish({ kind: 'bugcheck', code: arg(0), parameters: [arg(1), arg(2), arg(3), arg(4)] }) as never,
  },
  KeBugCheck: {
    argBytes: 4,
    body: ({ k, arg }: EscapeCall) => k.finish({ kind: 'bugcheck', code: arg(0), parameters: [0, 0, 0, 0] }) as never,
  },
};

export const KERNEL_SERVICES: ServiceTable = {
  /**
   * NtContinue(Context, TestAlert): load a CONTEXT into the caller's trap frame (the x86 routine then
   * leaves through KiServiceExit2, restoring every register from it). TestAlert re-arms delivery of
   * another queued user APC.
   */
  NtContinue: ({ k, arg, previousMode }) => {
    const context = arg(0);
    const frame = k.field('KTHREAD', 'TrapFrame', k.currentThread().kthread);
    if (previousMode === 1 && (context >>> 0) + 0x2cc > L.MM_USER_PROBE_ADDRESS) return NTSTATUS.STATUS_ACCESS_VIOLATION;
    for (const f of FRAME_CONTEXT_FIELDS) k.w32(frame + TF(f), k.r32(context + CTX(f)));
    // A user context stays a user context: CS and EFLAGS are sanitised as KeContextToKframes does.
    k.w32(frame + TF('SegCs'), L.KGDT_R3_CODE);
    k.w32(frame + TF('EFlags'), (k.r32(context + CTX('EFlags')) & 0x00000dd5) | 0x202);
    k.w32(frame + TF('HardwareEsp'), k.r32(context + CTX('Esp')));
    k.w32(frame + TF('HardwareSegSs'), L.KGDT_R3_DATA);
    k.w32(frame + TF('SegFs'), L.KGDT_R3_TEB);
    if (arg(1) !== 0) testAlertHook.fn?.(k);
    return NTSTATUS.STATUS_SUCCESS;
  },

  /** NtTerminateProcess(ProcessHandle, ExitStatus): the program's process ends; queued work runs first. */
  NtTerminateProcess: ({ k, arg }) => {
    const handle = arg(0);
    if (handle !== 0xffffffff && handle !== 0) return NTSTATUS.STATUS_NOT_IMPLEMENTED;
    k.runIdleWork();
    return k.finish({ kind: 'exited', status: arg(1) }) as never;
  },
};

/** NtTestAlert's logic (core/guest/nt), which NtContinue(…, TestAlert = TRUE) runs too. */
export const testAlertHook: { fn: ((k: Kernel) => void) | null } = { fn: null };
