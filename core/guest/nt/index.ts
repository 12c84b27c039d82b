// The NT executive's service bodies and the kernel API for drivers, in TypeScript: the object
// manager (objects.ts, handles.ts), probes (probe.ts), files and the in-memory file system
// (files.ts), the I/O manager (io.ts), virtual memory (vm.ts), APCs (apc.ts), debug output
// (debug.ts) and the console of Win32 programs (console.ts).
//
// Every outcome follows from the rules — PreviousMode read from the KTHREAD, which handle table a
// handle names, what each probe checks — applied to guest memory through the MMU; nothing here
// knows which scenario runs.
import type { EscapeCall, RoutineTable, ServiceTable } from '../escape.js';
import type { Kernel } from '../kernel.js';
import { apcSource, testAlertHook } from '../ke.js';
import { offsetOf } from '../structs.js';
import { dequeueUserApc, NtDelayExecution, NtQueueApcThread, NtTerminateThread, NtTestAlert, testAlertThread } from './apc.js';
import { NtCreateFile, NtOpenFile, NtReadFile, NtWriteFile, createVolume } from './files.js';
import { closeHandle, handleTableOf, kernelHandleTable, referenceObjectByHandle } from './handles.js';
import { IO_ROUTINES, NtDeviceIoControlFile, NtQueryVolumeInformationFile } from './io.js';
import { KERNEL_API_ROUTINES } from './kernel-api.js';
import { createObjectTypes, dereferenceObject, objectAt, processObject, referenceObject, threadObject, typeFromObject, typeObject } from './objects.js';
import { probeForRead, probeForWrite } from './probe.js';
import { ntState, type ObTypeName } from './state.js';
import { S, UserMode, hex } from './util.js';
import { NtAllocateVirtualMemory, NtFreeVirtualMemory, NtProtectVirtualMemory } from './vm.js';
import { DEBUG_ROUTINES } from './debug.js';
import { CONSOLE_ROUTINES } from './console.js';

export { probeCheck, probeForRead, probeForWrite, probeGeneric, MM_USER_PROBE_ADDRESS } from './probe.js';
export { fileContents, listFiles, putFile, normalizeObjectName, resolveName, parseVolumePath, dispositionOutcome, ioOffset, VOLUME_DEVICE } from './files.js';
export { createDriverObject, finishDriverInit, IRP_MJ_NAMES } from './io.js';
export { listHandles, handleTableOf, kernelHandleTable, handleIndex, isKernelHandle, OBJ_KERNEL_HANDLE, KERNEL_HANDLE_FLAG } from './handles.js';
export { dequeueUserApc, testAlertThread, queueUserApc, userApcQueued, type UserApc } from './apc.js';
export { objectAt, objectByName, pointerCount, handleCount, typeObject } from './objects.js';
export { validProtection, pageMapped } from './vm.js';
export { ntState, type ObjectRecord, type ObTypeName } from './state.js';
export { dbgOutput, formatDbgPrint } from './debug.js';
export { consoleOutput, createConsole, type StandardHandles } from './console.js';

/** NtClose(Handle): ObpCloseHandle with the caller's PreviousMode (NT-FACTS §4c). */
function NtClose(c: EscapeCall): number {
  return closeHandle(c.k, c.arg(0), c.previousMode);
}

export const SERVICES: ServiceTable = {
  NtCreateFile,
  NtOpenFile,
  NtReadFile,
  NtWriteFile,
  NtClose,
  NtDeviceIoControlFile,
  NtAllocateVirtualMemory,
  NtFreeVirtualMemory,
  NtProtectVirtualMemory,
  NtQueryVolumeInformationFile,
  NtQueueApcThread,
  NtTestAlert,
  NtDelayExecution,
  NtTerminateThread,
};

// ---- the kernel API for drivers --------------------------------------------------------------------

const US_LENGTH = offsetOf('UNICODE_STRING', 'Length');
const US_MAX = offsetOf('UNICODE_STRING', 'MaximumLength');
const US_BUFFER = offsetOf('UNICODE_STRING', 'Buffer');

function objectTypeArg(k: Kernel, address: number): ObTypeName | null | undefined {
  if (address === 0) return null;
  return typeFromObject(k, address) ?? undefined;
}

export const ROUTINES: RoutineTable = {
  ...IO_ROUTINES,
  ...KERNEL_API_ROUTINES,

  /** ExAllocatePoolWithTag(PoolType, NumberOfBytes, Tag): non-paged pool (every pool type is). */
  ExAllocatePoolWithTag: { argBytes: 12, body: ({ k, arg }) => k.allocPool(Math.max(arg(1), 1)) },
  ExAllocatePool: { argBytes: 8, body: ({ k, arg }) => k.allocPool(Math.max(arg(1), 1)) },
  ExFreePool: { argBytes: 4, body: ({ k, arg }) => (k.freePool(arg(0)), 0) },
  ExFreePoolWithTag: { argBytes: 8, body: ({ k, arg }) => (k.freePool(arg(0)), 0) },

  /** RtlInitUnicodeString(DestinationString, SourceString): Length = wcslen × 2, MaximumLength = Length + 2. */
  RtlInitUnicodeString: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const dest = arg(0);
      const src = arg(1);
      let len = 0;
      if (src !== 0) while (k.r16(src + len) !== 0 && len < 0xfffc) len += 2;
      k.w16(dest + US_LENGTH, len);
      k.w16(dest + US_MAX, src !== 0 ? len + 2 : 0);
      k.w32(dest + US_BUFFER, src);
      return 0;
    },
  },

  /**
   * ObReferenceObjectByHandle(Handle, DesiredAccess, ObjectType, AccessMode, *Object,
   * HandleInformation): NT-FACTS §4a with the AccessMode the caller passes.
   */
  ObReferenceObjectByHandle: {
    argBytes: 24,
    body: ({ k, arg }) => {
      const type = objectTypeArg(k, arg(2));
      if (type === undefined) return S.STATUS_OBJECT_TYPE_MISMATCH;
      const ref = referenceObjectByHandle(k, arg(0), type, arg(1), (arg(3) & 1) as 0 | 1);
      if (ref.status !== 0) return ref.status;
      k.w32(arg(4), ref.rec!.body);
      if (arg(5) !== 0) {
        k.w32(arg(5), ref.attributes ?? 0);
        k.w32(arg(5) + 4, ref.grantedAccess ?? 0);
      }
      return S.STATUS_SUCCESS;
    },
  },
  /** ObReferenceObjectByPointer(Object, DesiredAccess, ObjectType, AccessMode) */
  ObReferenceObjectByPointer: {
    argBytes: 16,
    body: ({ k, arg }) => {
      const rec = objectAt(k, arg(0));
      const type = objectTypeArg(k, arg(2));
      if (!rec || type === undefined || (type !== null && rec.type !== type)) return S.STATUS_OBJECT_TYPE_MISMATCH;
      referenceObject(k, rec);
      return S.STATUS_SUCCESS;
    },
  },
  /** ObfReferenceObject(ECX = Object): the new pointer count. */
  ObfReferenceObject: {
    argBytes: 0,
    fastcall: true,
    body: ({ k, arg }) => {
      const rec = objectAt(k, arg(0));
      if (!rec) return 0;
      referenceObject(k, rec);
      return 0;
    },
  },
  /** ObfDereferenceObject(ECX = Object) / ObDereferenceObject(Object): the new pointer count. */
  ObfDereferenceObject: { argBytes: 0, fastcall: true, body: ({ k, arg }) => derefBody(k, arg(0)) },
  ObDereferenceObject: { argBytes: 4, body: ({ k, arg }) => derefBody(k, arg(0)) },

  /**
   * ProbeForRead / ProbeForWrite(Address, Length, Alignment) for drivers. The real routines raise
   * the status as an exception for the driver's __try; ntflow's drivers have no SEH, so the status
   * is returned in EAX (0 = the probe passed). They probe whatever the caller asks, whatever mode.
   */
  ProbeForRead: { argBytes: 12, body: ({ k, arg }) => probeForRead(k, arg(0), arg(1), arg(2)) },
  ProbeForWrite: { argBytes: 12, body: ({ k, arg }) => probeForWrite(k, arg(0), arg(1), arg(2)) },

  /** ExGetPreviousMode(): KTHREAD.PreviousMode of the current thread. */
  ExGetPreviousMode: { argBytes: 0, body: ({ k }) => k.previousMode() },
  KeGetPreviousMode: { argBytes: 0, body: ({ k }) => k.previousMode() },
  KeGetCurrentThread: { argBytes: 0, body: ({ k }) => k.currentThread().kthread },
  PsGetCurrentThread: { argBytes: 0, body: ({ k }) => k.currentThread().kthread },

  ...DEBUG_ROUTINES,
  ...CONSOLE_ROUTINES,
};

function derefBody(k: Kernel, body: number): number {
  const rec = objectAt(k, body);
  if (!rec) {
    k.log(`ObDereferenceObject(${hex(body)}): not an object`);
    return 0;
  }
  return dereferenceObject(k, rec);
}

/** Data exports of ntoskrnl that hold object-type pointers (drivers pass `*IoFileObjectType`). */
export const TYPE_EXPORTS: Readonly<Record<string, ObTypeName>> = {
  IoFileObjectType: 'File',
  IoDeviceObjectType: 'Device',
  IoDriverObjectType: 'Driver',
  PsProcessType: 'Process',
  PsThreadType: 'Thread',
  ExEventObjectType: 'Event',
  ObpTypeObjectType: 'Type',
  ObpSymbolicLinkObjectType: 'SymbolicLink',
  ObpDirectoryObjectType: 'Directory',
};

/**
 * Once, after the loader built the processes and threads: the object types, the handle tables
 * (the System process's = ObpKernelHandleTable), process and thread objects, the volume `\??\C:`,
 * the type pointers in ntoskrnl's data exports (those the kernel image defines), and the hooks
 * KiDeliverApc and NtContinue use.
 */
export function bootNt(k: Kernel): void {
  const st = ntState(k);
  if (st.booted) return;
  st.booted = true;
  createObjectTypes(k);
  const kernelTable = kernelHandleTable(k);
  for (const p of k.processes) {
    handleTableOf(k, p);
    processObject(k, p);
  }
  for (const t of k.threads) threadObject(k, t);
  createVolume(k);
  for (const [symbol, type] of Object.entries(TYPE_EXPORTS)) {
    const address = k.symbols.resolve('nt', symbol);
    if (address !== undefined) k.w32(address, typeObject(k, type));
  }
  const kht = k.symbols.resolve('nt', 'ObpKernelHandleTable');
  if (kht !== undefined) k.w32(kht, kernelTable);
  apcSource.dequeue = (kk) => dequeueUserApc(kk, kk.currentThread());
  testAlertHook.fn = (kk) => void testAlertThread(kk, kk.currentThread(), UserMode);
}
