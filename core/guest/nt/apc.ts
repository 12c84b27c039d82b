// User APCs: KAPC objects in pool on the target thread's user APC list
// (KTHREAD.ApcState.ApcListHead[UserMode], in guest memory), and the alert logic that decides when
// KiServiceExit will find KTHREAD.ApcState.UserApcPending set.
//
// As on XP, NtQueueApcThread only inserts the APC when the target is not in an alertable
// user-mode wait (no thread here ever is: waits are not modelled as blocking), so UserApcPending
// stays 0; NtTestAlert or an alertable wait (NtDelayExecution) sets it when the list is not empty.
import type { EscapeCall } from '../escape.js';
import type { Kernel, Thread } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { referenceObjectByHandle } from './handles.js';
import { dereferenceObject } from './objects.js';
import { probeGeneric } from './probe.js';
import { S, UserMode, check, run, type Mode } from './util.js';

const KT = {
  Alerted: offsetOf('KTHREAD', 'Alerted'),
  UserApcList: offsetOf('KTHREAD', 'ApcState.ApcListHead') + 8 * UserMode,
  UserApcPending: offsetOf('KTHREAD', 'ApcState.UserApcPending'),
  ApcQueueable: offsetOf('KTHREAD', 'ApcQueueable'),
};
const KAPC_SIZE = 0x30;
const A = {
  Type: offsetOf('KAPC', 'Type'),
  Size: offsetOf('KAPC', 'Size'),
  Thread: offsetOf('KAPC', 'Thread'),
  ApcListEntry: offsetOf('KAPC', 'ApcListEntry'),
  KernelRoutine: offsetOf('KAPC', 'KernelRoutine'),
  NormalRoutine: offsetOf('KAPC', 'NormalRoutine'),
  NormalContext: offsetOf('KAPC', 'NormalContext'),
  SystemArgument1: offsetOf('KAPC', 'SystemArgument1'),
  SystemArgument2: offsetOf('KAPC', 'SystemArgument2'),
  ApcStateIndex: offsetOf('KAPC', 'ApcStateIndex'),
  ApcMode: offsetOf('KAPC', 'ApcMode'),
  Inserted: offsetOf('KAPC', 'Inserted'),
};
const APC_OBJECT = 0x12; // KOBJECTS.ApcObject
const THREAD_SET_CONTEXT = 0x10;

/** The user APC list head; an all-zero head (never initialised) is made empty first. */
function userApcList(k: Kernel, thread: Thread): number {
  const head = thread.kthread + KT.UserApcList;
  if (k.r32(head) === 0) {
    k.w32(head, head);
    k.w32(head + 4, head);
  }
  return head;
}

export function userApcQueued(k: Kernel, thread: Thread): boolean {
  const head = userApcList(k, thread);
  return k.r32(head) !== head;
}

/**
 * KeInitializeApc + KeInsertQueueApc for a user-mode APC (what NtQueueApcThread does): a KAPC in
 * pool at the tail of the thread's user APC list. Returns the KAPC, or 0 when the thread does not
 * take APCs (KTHREAD.ApcQueueable = 0), as KeInsertQueueApc fails then.
 */
export function queueUserApc(k: Kernel, thread: Thread, normalRoutine: number, normalContext: number, arg1: number, arg2: number): number {
  if (k.r8(thread.kthread + KT.ApcQueueable) === 0) return 0;
  const apc = k.allocPool(KAPC_SIZE);
  k.w16(apc + A.Type, APC_OBJECT);
  k.w16(apc + A.Size, KAPC_SIZE);
  k.w32(apc + A.Thread, thread.kthread);
  k.w32(apc + A.KernelRoutine, k.symbols.resolve('nt', 'PspQueueApcSpecialApc') ?? 0);
  k.w32(apc + A.NormalRoutine, normalRoutine);
  k.w32(apc + A.NormalContext, normalContext);
  k.w32(apc + A.SystemArgument1, arg1);
  k.w32(apc + A.SystemArgument2, arg2);
  k.w8(apc + A.ApcStateIndex, 0); // OriginalApcEnvironment
  k.w8(apc + A.ApcMode, UserMode);
  // InsertTailList(&Thread->ApcState.ApcListHead[UserMode], &Apc->ApcListEntry)
  const head = userApcList(k, thread);
  const entry = apc + A.ApcListEntry;
  const tail = k.r32(head + 4);
  k.w32(entry, head);
  k.w32(entry + 4, tail);
  k.w32(tail, entry);
  k.w32(head + 4, entry);
  k.w8(apc + A.Inserted, 1);
  return apc;
}

export interface UserApc {
  normalRoutine: number;
  normalContext: number;
  arg1: number;
  arg2: number;
}

/**
 * For KiDeliverApc(UserMode): clear UserApcPending (XP does so before each user-APC delivery; the
 * ntdll dispatcher's NtContinue(…, TestAlert = TRUE) re-arms it if more are queued), take the first
 * user APC off the list, run its kernel routine's part (PspQueueApcSpecialApc frees the KAPC), and
 * return what KiInitializeUserApc needs. Null when the list is empty.
 */
export function dequeueUserApc(k: Kernel, thread: Thread): UserApc | null {
  k.w8(thread.kthread + KT.UserApcPending, 0);
  const head = userApcList(k, thread);
  const entry = k.r32(head);
  if (entry === head) return null;
  // RemoveEntryList
  const next = k.r32(entry);
  const prev = k.r32(entry + 4);
  k.w32(prev, next);
  k.w32(next + 4, prev);
  const apc = entry - A.ApcListEntry;
  k.w8(apc + A.Inserted, 0);
  const out = {
    normalRoutine: k.r32(apc + A.NormalRoutine),
    normalContext: k.r32(apc + A.NormalContext),
    arg1: k.r32(apc + A.SystemArgument1),
    arg2: k.r32(apc + A.SystemArgument2),
  };
  k.freePool(apc);
  return out;
}

/**
 * KeTestAlertThread(AlertMode): if the thread was alerted for that mode, clear it and return true;
 * otherwise, for UserMode with a user APC queued, set UserApcPending (so the service's exit
 * delivers it) and return false.
 */
export function testAlertThread(k: Kernel, thread: Thread, mode: Mode): boolean {
  const alerted = thread.kthread + KT.Alerted + mode;
  if (k.r8(alerted) !== 0) {
    k.w8(alerted, 0);
    return true;
  }
  if (mode === UserMode && userApcQueued(k, thread)) k.w8(thread.kthread + KT.UserApcPending, 1);
  return false;
}

/**
 * NtQueueApcThread(ThreadHandle, ApcRoutine, ApcArgument1, ApcArgument2, ApcArgument3): the
 * thread handle referenced for THREAD_SET_CONTEXT (a System thread → STATUS_INVALID_HANDLE, as XP
 * refuses user APCs to system threads), then a user-mode KAPC: NormalRoutine = ApcRoutine,
 * NormalContext = Argument1, SystemArgument1/2 = Argument2/3.
 */
export function NtQueueApcThread(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  return run(() => {
    const ref = referenceObjectByHandle(k, c.arg(0), 'Thread', THREAD_SET_CONTEXT, mode);
    if (ref.status !== 0) return ref.status;
    try {
      const thread = ref.rec!.thread!;
      if (thread.system) return S.STATUS_INVALID_HANDLE;
      return queueUserApc(k, thread, c.arg(1), c.arg(2), c.arg(3), c.arg(4)) !== 0 ? S.STATUS_SUCCESS : S.STATUS_UNSUCCESSFUL;
    } finally {
      dereferenceObject(k, ref.rec!);
    }
  });
}

/** NtTestAlert(): KeTestAlertThread(PreviousMode) ? STATUS_ALERTED : STATUS_SUCCESS. */
export function NtTestAlert(c: EscapeCall): number {
  return testAlertThread(c.k, c.k.currentThread(), c.previousMode) ? S.STATUS_ALERTED : S.STATUS_SUCCESS;
}

/**
 * NtDelayExecution(Alertable, DelayInterval): the interval probed and read (UserMode), then
 * KeDelayExecutionThread: an alertable wait that finds the thread alerted returns STATUS_ALERTED,
 * one that finds a user APC queued (UserMode) sets UserApcPending and returns STATUS_USER_APC.
 * Otherwise the thread "waits": the queued idle work (work items) runs, and the wait is satisfied
 * by its timeout (no clock is modelled) — unless that work queued a user APC for an alertable wait.
 */
export function NtDelayExecution(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const alertable = (c.arg(0) & 0xff) !== 0;
  const interval = c.arg(1);
  return run(() => {
    if (mode === UserMode) check(probeGeneric(k, interval, 8, 'read'));
    k.r32(interval); // captured (a fault here is the caller's STATUS_ACCESS_VIOLATION)
    const thread = k.currentThread();
    const wake = (): number | null => {
      if (!alertable) return null;
      const alerted = thread.kthread + KT.Alerted + mode;
      if (k.r8(alerted) !== 0) {
        k.w8(alerted, 0);
        return S.STATUS_ALERTED;
      }
      if (mode === UserMode && userApcQueued(k, thread)) {
        k.w8(thread.kthread + KT.UserApcPending, 1);
        return S.STATUS_USER_APC;
      }
      return null;
    };
    const early = wake();
    if (early !== null) return early;
    k.runIdleWork();
    return wake() ?? S.STATUS_SUCCESS;
  });
}

/**
 * NtTerminateThread(ThreadHandle, ExitStatus): NULL means the current thread, which may not be
 * its process's last (STATUS_CANT_TERMINATE_SELF); the current program thread ending ends the
 * program (its queued work runs first), as NtTerminateProcess does. Other threads: not modelled.
 */
export function NtTerminateThread(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const handle = c.arg(0);
  const status = c.arg(1);
  return run(() => {
    const current = k.currentThread();
    let target = current;
    if (handle !== 0) {
      const ref = referenceObjectByHandle(k, handle, 'Thread', 0x1 /* THREAD_TERMINATE */, mode);
      if (ref.status !== 0) return ref.status;
      target = ref.rec!.thread!;
      dereferenceObject(k, ref.rec!);
    } else if (k.threads.filter((t) => t.process === current.process && !t.system).length <= 1 && !current.system) {
      return S.STATUS_CANT_TERMINATE_SELF;
    }
    if (target !== current || current.system) return S.STATUS_NOT_IMPLEMENTED;
    k.runIdleWork();
    return k.finish({ kind: 'exited', status }) as never;
  });
}

