// Kernel routines of the system-call path whose bodies are TypeScript: KiDeliverApc (user APCs),
// PsConvertToGuiThread, KeBugCheckEx, and NtTerminateProcess. The exception half of the kernel
// (contexts, dispatch to user mode, MmAccessFault, NtContinue, NtRaiseException) is exceptions.ts.
import { GuestFault, Vector } from '../cpu/faults.js';
import type { EscapeCall, RoutineTable, ServiceTable } from './escape.js';
import { CONTEXT_SIZE, contextFromFrame, endProcessWithException } from './exceptions.js';
import type { Kernel } from './kernel.js';
import * as L from './layout.js';
import { kernelAccessFault } from './mm.js';
import { NTSTATUS } from './ntstatus.js';
import { offsetOf } from './structs.js';

/** One pool buffer per kernel where KiDeliverApc builds a CONTEXT before copying it out. */
function contextScratch(k: Kernel): number {
  let at = k.ext.get('ke.contextScratch') as number | undefined;
  if (at === undefined) k.ext.set('ke.contextScratch', (at = k.allocPool(CONTEXT_SIZE)));
  return at;
}

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

export const KERNEL_ROUTINES: RoutineTable = {
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
      const context = ((userEsp - CONTEXT_SIZE) & ~3) >>> 0;
      const base = (context - 16) >>> 0;
      // The CONTEXT (what the thread resumes with after the APC, through NtContinue) is built in
      // pool and copied to the user stack, with NormalRoutine, NormalContext, SystemArgument1,
      // SystemArgument2 below it. A user stack that cannot take them ends the process with the
      // exception the copy raised, as XP's KiInitializeUserApc does when dispatching it fails too.
      const scratch = contextScratch(k);
      contextFromFrame(k, frame, scratch);
      try {
        if (base < 0x10000 || context + CONTEXT_SIZE > L.MM_USER_PROBE_ADDRESS) throw new GuestFault(Vector.PF, 7, base);
        k.writeBytes(context, k.readBytes(scratch, CONTEXT_SIZE));
        k.w32(base, apc.normalRoutine);
        k.w32(base + 4, apc.normalContext);
        k.w32(base + 8, apc.arg1);
        k.w32(base + 12, apc.arg2);
      } catch (e) {
        if (!(e instanceof GuestFault)) throw e;
        const code = e.cr2 !== null && e.cr2 < 0x80000000 ? kernelAccessFault(k, e) : NTSTATUS.STATUS_ACCESS_VIOLATION;
        endProcessWithException(k, code, k.r32(frame + TF('Eip')));
      }
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
  /** NtTerminateProcess(ProcessHandle, ExitStatus): the program's process ends; queued work runs first. */
  NtTerminateProcess: ({ k, arg }) => {
    const handle = arg(0);
    if (handle !== 0xffffffff && handle !== 0) return NTSTATUS.STATUS_NOT_IMPLEMENTED;
    k.runIdleWork();
    return k.finish({ kind: 'exited', status: arg(1) }) as never;
  },
};

export { testAlertHook } from './exceptions.js';
