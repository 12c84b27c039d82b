// More of the kernel API drivers of the OSR kind call (issue F point 4), with TypeScript bodies:
// string and memory helpers the compiler emits calls to (memcpy, memset, strlen, _wcsicmp, …, as
// ntoskrnl exports them), RtlCopyUnicodeString, process attach/detach, thread and process ids,
// KeDelayExecutionThread and ExQueueWorkItem. Each works on guest memory through the MMU, in the
// current thread's context, with XP's semantics; a fault in one is a fault of its escape
// instruction (these routines have no exception handler, as on XP).
import type { RoutineTable } from '../escape.js';
import type { Kernel, Process } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { S, readUnicodeStringHeader } from './util.js';

const KT = (f: Parameters<typeof offsetOf<'KTHREAD'>>[1]) => offsetOf('KTHREAD', f);
const US = (f: Parameters<typeof offsetOf<'UNICODE_STRING'>>[1]) => offsetOf('UNICODE_STRING', f);
const KAPC_STATE_SIZE = 0x18;

/** The process whose EPROCESS (= KPROCESS) is at `address`. */
function processAt(k: Kernel, address: number): Process | undefined {
  return k.processes.find((p) => p.eprocess === address >>> 0);
}

/** Switch the current thread's address space to a process (CR3 and ApcState.Process). */
function attachTo(k: Kernel, p: Process): void {
  const t = k.currentThread().kthread;
  k.w32(t + KT('ApcState.Process'), p.eprocess);
  if (k.cpu.cr3 !== p.pageDirectory) k.cpu.writeCr(3, p.pageDirectory);
}

/** Unicode case folding for the characters a path holds (ASCII and Latin-1). */
const upcase = (c: number): number => (c >= 0x61 && c <= 0x7a) || (c >= 0xe0 && c <= 0xfe && c !== 0xf7) ? c - 0x20 : c;

export const KERNEL_API_ROUTINES: RoutineTable = {
  // ---- the C runtime ntoskrnl exports (cdecl: the caller pops the arguments) ----
  /** memcpy(dest, src, count): dest. Copies forward, byte by byte, as the CRT's does for overlap it does not promise. */
  memcpy: {
    argBytes: 0,
    body: ({ k, arg }) => {
      const [d, s, n] = [arg(0), arg(1), arg(2)];
      for (let i = 0; i < n; i++) k.w8(d + i, k.r8(s + i));
      return d;
    },
  },
  /** memmove(dest, src, count): dest, overlapping ranges copied correctly. */
  memmove: {
    argBytes: 0,
    body: ({ k, arg }) => {
      const [d, s, n] = [arg(0), arg(1), arg(2)];
      k.writeBytes(d, k.readBytes(s, n));
      return d;
    },
  },
  /** memset(dest, c, count): dest. */
  memset: {
    argBytes: 0,
    body: ({ k, arg }) => {
      const [d, c, n] = [arg(0), arg(1) & 0xff, arg(2)];
      for (let i = 0; i < n; i++) k.w8(d + i, c);
      return d;
    },
  },
  /** strlen(s) */
  strlen: {
    argBytes: 0,
    body: ({ k, arg }) => {
      let n = 0;
      while (k.r8(arg(0) + n) !== 0) n++;
      return n;
    },
  },
  /** wcslen(s) */
  wcslen: {
    argBytes: 0,
    body: ({ k, arg }) => {
      let n = 0;
      while (k.r16(arg(0) + 2 * n) !== 0) n++;
      return n;
    },
  },
  /** _wcsicmp(a, b): <0, 0, >0 comparing case-insensitively. */
  _wcsicmp: {
    argBytes: 0,
    body: ({ k, arg }) => {
      for (let i = 0; ; i++) {
        const a = upcase(k.r16(arg(0) + 2 * i));
        const b = upcase(k.r16(arg(1) + 2 * i));
        if (a !== b || a === 0) return a - b;
      }
    },
  },

  // ---- Rtl ----
  /**
   * RtlCopyUnicodeString(Destination, Source): as much of Source as Destination's
   * MaximumLength holds; a NULL Source makes Destination empty. Zero-terminated when it fits.
   */
  RtlCopyUnicodeString: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const dest = arg(0);
      const src = arg(1);
      if (src === 0) {
        k.w16(dest + US('Length'), 0);
        return 0;
      }
      const from = readUnicodeStringHeader(k, src);
      const max = k.r16(dest + US('MaximumLength'));
      const buffer = k.r32(dest + US('Buffer'));
      const n = Math.min(from.length, max) & ~1;
      k.writeBytes(buffer, k.readBytes(from.buffer, n));
      k.w16(dest + US('Length'), n);
      if (n + 2 <= max) k.w16(buffer + n, 0);
      return 0;
    },
  },

  // ---- processes and threads ----
  /**
   * KeStackAttachProcess(Process, ApcState): the current thread runs in Process's address space
   * until KeUnstackDetachProcess; the old ApcState (its Process) is saved in the caller's buffer.
   */
  KeStackAttachProcess: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const target = processAt(k, arg(0));
      const t = k.currentThread().kthread;
      k.writeBytes(arg(1), k.readBytes(t + KT('ApcState'), KAPC_STATE_SIZE));
      if (target) attachTo(k, target);
      return 0;
    },
  },
  /** KeUnstackDetachProcess(ApcState): back to the process the saved state names. */
  KeUnstackDetachProcess: {
    argBytes: 4,
    body: ({ k, arg }) => {
      const saved = processAt(k, k.r32(arg(0) + offsetOf('KAPC_STATE', 'Process')));
      if (saved) attachTo(k, saved);
      return 0;
    },
  },
  /**
   * PsGetCurrentProcessId(): the id of the current thread's own process (ETHREAD.Cid.UniqueProcess)
   * — unchanged while the thread is attached to another process, as on XP.
   */
  PsGetCurrentProcessId: { argBytes: 0, body: ({ k }) => k.r32(k.currentThread().kthread + offsetOf('ETHREAD', 'Cid.UniqueProcess')) },
  /** PsGetCurrentThreadId(): the current thread's id (ETHREAD.Cid.UniqueThread). */
  PsGetCurrentThreadId: { argBytes: 0, body: ({ k }) => k.r32(k.currentThread().kthread + offsetOf('ETHREAD', 'Cid.UniqueThread')) },
  /**
   * KeDelayExecutionThread(WaitMode, Alertable, Interval): the thread waits; waits are not
   * blocking here, so the time passes at once — work queued meanwhile (work items) runs first.
   */
  KeDelayExecutionThread: {
    argBytes: 12,
    body: ({ k, arg }) => {
      k.r32(arg(2)); // the interval is read (a bad pointer faults here, as on XP)
      k.runIdleWork();
      return S.STATUS_SUCCESS;
    },
  },
  /**
   * ExQueueWorkItem(WorkItem, QueueType): the WORK_QUEUE_ITEM's WorkerRoutine(Parameter) runs
   * later on the System worker thread, as IoQueueWorkItem's routines do (WORK_QUEUE_ITEM: List
   * +0, WorkerRoutine +8, Parameter +0xC).
   */
  ExQueueWorkItem: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const item = arg(0);
      const routine = k.r32(item + 8);
      const parameter = k.r32(item + 0xc);
      k.onIdle(() => k.inSystemThread('work item', () => void k.callGuest(routine, [parameter])));
      return 0;
    },
  },
};
