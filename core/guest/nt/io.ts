// The I/O manager: driver and device objects, symbolic links, IRPs in guest memory sent to a
// driver's dispatch routine (x86) in the caller's thread, completion, and work items on the
// System worker thread.
//
// An IRP is built as IoAllocateIrp leaves it — IRP followed by DEVICE_OBJECT.StackSize
// IO_STACK_LOCATIONs, CurrentLocation = StackSize + 1, CurrentStackLocation one past the last —
// with RequestorMode = PreviousMode, Tail.Overlay.Thread = the caller's ETHREAD, the caller's
// IO_STATUS_BLOCK in UserIosb, and the request in the next stack location; IoCallDriver then steps
// to that location and calls DRIVER_OBJECT.MajorFunction[mj](DeviceObject, Irp). The dispatch
// routine's EAX is the service's status. A missing handler (0) behaves as XP's
// IopInvalidDeviceRequest: the IRP completes with STATUS_INVALID_DEVICE_REQUEST.
import { GuestFault } from '../../cpu/faults.js';
import type { EscapeCall, RoutineTable } from '../escape.js';
import type { Kernel } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { createObject, deleteHooks, dereferenceObject, objectAt, objectByName, referenceObject, removeName } from './objects.js';
import { referenceObjectByHandle } from './handles.js';
import { probeForRead, probeForWrite, probeGeneric } from './probe.js';
import { ntState, type IrpRecord, type ObjectRecord } from './state.js';
import { KernelMode, S, UserMode, check, hex, modeName, ntError, readUnicodeStringHeader, readWString, run, setUnicodeString, type Mode } from './util.js';

// ---- constants (wdm.h) ----------------------------------------------------------------------------
export const IRP_MJ_NAMES = [
  'IRP_MJ_CREATE', 'IRP_MJ_CREATE_NAMED_PIPE', 'IRP_MJ_CLOSE', 'IRP_MJ_READ', 'IRP_MJ_WRITE',
  'IRP_MJ_QUERY_INFORMATION', 'IRP_MJ_SET_INFORMATION', 'IRP_MJ_QUERY_EA', 'IRP_MJ_SET_EA',
  'IRP_MJ_FLUSH_BUFFERS', 'IRP_MJ_QUERY_VOLUME_INFORMATION', 'IRP_MJ_SET_VOLUME_INFORMATION',
  'IRP_MJ_DIRECTORY_CONTROL', 'IRP_MJ_FILE_SYSTEM_CONTROL', 'IRP_MJ_DEVICE_CONTROL',
  'IRP_MJ_INTERNAL_DEVICE_CONTROL', 'IRP_MJ_SHUTDOWN', 'IRP_MJ_LOCK_CONTROL', 'IRP_MJ_CLEANUP',
  'IRP_MJ_CREATE_MAILSLOT', 'IRP_MJ_QUERY_SECURITY', 'IRP_MJ_SET_SECURITY', 'IRP_MJ_POWER',
  'IRP_MJ_SYSTEM_CONTROL', 'IRP_MJ_DEVICE_CHANGE', 'IRP_MJ_QUERY_QUOTA', 'IRP_MJ_SET_QUOTA', 'IRP_MJ_PNP',
] as const;
export const IRP_MJ_CREATE = 0x00;
export const IRP_MJ_CLOSE = 0x02;
export const IRP_MJ_READ = 0x03;
export const IRP_MJ_WRITE = 0x04;
export const IRP_MJ_DEVICE_CONTROL = 0x0e;
export const IRP_MJ_CLEANUP = 0x12;

export const DO_EXCLUSIVE = 0x08;
export const DO_BUFFERED_IO = 0x04;
export const DO_DIRECT_IO = 0x10;
export const DO_DEVICE_HAS_NAME = 0x40;
export const DO_DEVICE_INITIALIZING = 0x80;

const IRP_BUFFERED_IO = 0x10;
const IRP_DEALLOCATE_BUFFER = 0x20;
const IRP_INPUT_OPERATION = 0x40;
const IRP_CREATE_OPERATION = 0x80;
const IRP_READ_OPERATION = 0x100;
const IRP_WRITE_OPERATION = 0x200;
const IRP_CLOSE_OPERATION = 0x400;
const IRP_SYNCHRONOUS_API = 0x4;

export const FO_SYNCHRONOUS_IO = 0x2;
export const FO_ALERTABLE_IO = 0x4;

export const METHOD_BUFFERED = 0;
export const METHOD_IN_DIRECT = 1;
export const METHOD_OUT_DIRECT = 2;
export const METHOD_NEITHER = 3;

const IO_TYPE_DRIVER = 4;
const IO_TYPE_DEVICE = 3;
const IO_TYPE_FILE = 5;
const IO_TYPE_IRP = 6;
const BUGCHECK_NO_MORE_IRP_STACK_LOCATIONS = 0x35;
const BUGCHECK_MULTIPLE_IRP_COMPLETE_REQUESTS = 0x44;

// ---- offsets --------------------------------------------------------------------------------------
const IRP_SIZE = offsetOf('IRP', 'Tail') + 0x30; // 0x70
const IOSL_SIZE = offsetOf('IO_STACK_LOCATION', 'Context') + 4; // 0x24
const I = {
  Type: offsetOf('IRP', 'Type'),
  Size: offsetOf('IRP', 'Size'),
  Flags: offsetOf('IRP', 'Flags'),
  SystemBuffer: offsetOf('IRP', 'AssociatedIrp.SystemBuffer'),
  ThreadListEntry: offsetOf('IRP', 'ThreadListEntry'),
  Status: offsetOf('IRP', 'IoStatus.Status'),
  Information: offsetOf('IRP', 'IoStatus.Information'),
  RequestorMode: offsetOf('IRP', 'RequestorMode'),
  PendingReturned: offsetOf('IRP', 'PendingReturned'),
  StackCount: offsetOf('IRP', 'StackCount'),
  CurrentLocation: offsetOf('IRP', 'CurrentLocation'),
  UserIosb: offsetOf('IRP', 'UserIosb'),
  UserEvent: offsetOf('IRP', 'UserEvent'),
  UserBuffer: offsetOf('IRP', 'UserBuffer'),
  Thread: offsetOf('IRP', 'Tail.Overlay.Thread'),
  CurrentStackLocation: offsetOf('IRP', 'Tail.Overlay.CurrentStackLocation'),
  OriginalFileObject: offsetOf('IRP', 'Tail.Overlay.OriginalFileObject'),
};
const SL = {
  MajorFunction: offsetOf('IO_STACK_LOCATION', 'MajorFunction'),
  Control: offsetOf('IO_STACK_LOCATION', 'Control'),
  CreateSecurityContext: offsetOf('IO_STACK_LOCATION', 'Parameters.Create.SecurityContext'),
  CreateOptions: offsetOf('IO_STACK_LOCATION', 'Parameters.Create.Options'),
  CreateFileAttributes: offsetOf('IO_STACK_LOCATION', 'Parameters.Create.FileAttributes'),
  CreateShareAccess: offsetOf('IO_STACK_LOCATION', 'Parameters.Create.ShareAccess'),
  RwLength: offsetOf('IO_STACK_LOCATION', 'Parameters.Read.Length'),
  RwKey: offsetOf('IO_STACK_LOCATION', 'Parameters.Read.Key'),
  RwByteOffset: offsetOf('IO_STACK_LOCATION', 'Parameters.Read.ByteOffset'),
  OutputBufferLength: offsetOf('IO_STACK_LOCATION', 'Parameters.DeviceIoControl.OutputBufferLength'),
  InputBufferLength: offsetOf('IO_STACK_LOCATION', 'Parameters.DeviceIoControl.InputBufferLength'),
  IoControlCode: offsetOf('IO_STACK_LOCATION', 'Parameters.DeviceIoControl.IoControlCode'),
  Type3InputBuffer: offsetOf('IO_STACK_LOCATION', 'Parameters.DeviceIoControl.Type3InputBuffer'),
  DeviceObject: offsetOf('IO_STACK_LOCATION', 'DeviceObject'),
  FileObject: offsetOf('IO_STACK_LOCATION', 'FileObject'),
};
const DEV = {
  Type: offsetOf('DEVICE_OBJECT', 'Type'),
  Size: offsetOf('DEVICE_OBJECT', 'Size'),
  DriverObject: offsetOf('DEVICE_OBJECT', 'DriverObject'),
  NextDevice: offsetOf('DEVICE_OBJECT', 'NextDevice'),
  Flags: offsetOf('DEVICE_OBJECT', 'Flags'),
  Characteristics: offsetOf('DEVICE_OBJECT', 'Characteristics'),
  DeviceExtension: offsetOf('DEVICE_OBJECT', 'DeviceExtension'),
  DeviceType: offsetOf('DEVICE_OBJECT', 'DeviceType'),
  StackSize: offsetOf('DEVICE_OBJECT', 'StackSize'),
  SectorSize: offsetOf('DEVICE_OBJECT', 'SectorSize'),
  DeviceLockType: offsetOf('DEVICE_OBJECT', 'DeviceLock.Header.Type'),
  DeviceLockSize: offsetOf('DEVICE_OBJECT', 'DeviceLock.Header.Size'),
  DeviceLockSignal: offsetOf('DEVICE_OBJECT', 'DeviceLock.Header.SignalState'),
  DeviceObjectExtension: offsetOf('DEVICE_OBJECT', 'DeviceObjectExtension'),
};
const DEVICE_OBJECT_SIZE = 0xb8;
const DEVOBJ_EXTENSION_SIZE = 0x2c;
const DRV = {
  Type: offsetOf('DRIVER_OBJECT', 'Type'),
  Size: offsetOf('DRIVER_OBJECT', 'Size'),
  DeviceObject: offsetOf('DRIVER_OBJECT', 'DeviceObject'),
  DriverStart: offsetOf('DRIVER_OBJECT', 'DriverStart'),
  DriverSize: offsetOf('DRIVER_OBJECT', 'DriverSize'),
  DriverExtension: offsetOf('DRIVER_OBJECT', 'DriverExtension'),
  DriverName: offsetOf('DRIVER_OBJECT', 'DriverName'),
  DriverInit: offsetOf('DRIVER_OBJECT', 'DriverInit'),
  MajorFunction: offsetOf('DRIVER_OBJECT', 'MajorFunction'),
};
const DRIVER_OBJECT_SIZE = 0xa8;
const DRIVER_EXTENSION_SIZE = 0x1c;
export const FO = {
  Type: offsetOf('FILE_OBJECT', 'Type'),
  Size: offsetOf('FILE_OBJECT', 'Size'),
  DeviceObject: offsetOf('FILE_OBJECT', 'DeviceObject'),
  FinalStatus: offsetOf('FILE_OBJECT', 'FinalStatus'),
  ReadAccess: offsetOf('FILE_OBJECT', 'ReadAccess'),
  WriteAccess: offsetOf('FILE_OBJECT', 'WriteAccess'),
  DeleteAccess: offsetOf('FILE_OBJECT', 'DeleteAccess'),
  SharedRead: offsetOf('FILE_OBJECT', 'SharedRead'),
  SharedWrite: offsetOf('FILE_OBJECT', 'SharedWrite'),
  SharedDelete: offsetOf('FILE_OBJECT', 'SharedDelete'),
  Flags: offsetOf('FILE_OBJECT', 'Flags'),
  FileName: offsetOf('FILE_OBJECT', 'FileName'),
  CurrentByteOffset: offsetOf('FILE_OBJECT', 'CurrentByteOffset'),
  EventType: offsetOf('FILE_OBJECT', 'Event.Header.Type'),
  EventSize: offsetOf('FILE_OBJECT', 'Event.Header.Size'),
  EventSignal: offsetOf('FILE_OBJECT', 'Event.Header.SignalState'),
};
export const FILE_OBJECT_SIZE = 0x70;
const KEVENT_SIGNAL = offsetOf('KEVENT', 'Header.SignalState');

// ---- drivers, devices, links ----------------------------------------------------------------------

/**
 * A DRIVER_OBJECT (with its DRIVER_EXTENSION) named `\Driver\X` (or a full name such as
 * `\FileSystem\X`), for the loader to pass to DriverEntry. MajorFunction[] starts all 0 = no handler.
 */
export function createDriverObject(k: Kernel, name: string, image: { start?: number; size?: number; entry?: number } = {}): number {
  const full = name.startsWith('\\') ? name : `\\Driver\\${name}`;
  const rec = createObject(k, 'Driver', DRIVER_OBJECT_SIZE + DRIVER_EXTENSION_SIZE, full);
  const d = rec.body;
  k.w16(d + DRV.Type, IO_TYPE_DRIVER);
  k.w16(d + DRV.Size, DRIVER_OBJECT_SIZE);
  k.w32(d + DRV.DriverStart, image.start ?? 0);
  k.w32(d + DRV.DriverSize, image.size ?? 0);
  k.w32(d + DRV.DriverInit, image.entry ?? 0);
  k.w32(d + DRV.DriverExtension, d + DRIVER_OBJECT_SIZE);
  k.w32(d + DRIVER_OBJECT_SIZE, d); // DRIVER_EXTENSION.DriverObject
  setUnicodeString(k, d + DRV.DriverName, full);
  return d;
}

/** After DriverEntry: the I/O manager clears DO_DEVICE_INITIALIZING on the driver's devices. */
export function finishDriverInit(k: Kernel, driverObject: number): void {
  for (let dev = k.r32(driverObject + DRV.DeviceObject); dev !== 0; dev = k.r32(dev + DEV.NextDevice)) {
    k.w32(dev + DEV.Flags, k.r32(dev + DEV.Flags) & ~DO_DEVICE_INITIALIZING);
  }
}

/** The driver's name for events: the record's, else DRIVER_OBJECT.DriverName. */
function driverName(k: Kernel, driver: number): string {
  const rec = objectAt(k, driver);
  if (rec?.name) return rec.name;
  try {
    const us = readUnicodeStringHeader(k, driver + DRV.DriverName);
    return readWString(k, us.buffer, us.length) || hex(driver);
  } catch (e) {
    if (e instanceof GuestFault) return hex(driver);
    throw e;
  }
}

/** Object-manager names: `\DosDevices\X` and `\GLOBAL??\X` are `\??\X`. */
export function canonicalName(name: string): string {
  return name.replace(/^\\DosDevices(?=\\|$)/i, '\\??').replace(/^\\GLOBAL\?\?(?=\\|$)/i, '\\??');
}

/** IoCreateDevice's work, for the routine and for the volume device bootNt makes. */
export function createDevice(k: Kernel, driverObject: number, extensionSize: number, name: string | null, deviceType: number, characteristics: number, exclusive: boolean): ObjectRecord {
  const ext = (extensionSize + 7) & ~7;
  const rec = createObject(k, 'Device', DEVICE_OBJECT_SIZE + ext + DEVOBJ_EXTENSION_SIZE, name);
  const d = rec.body;
  k.w16(d + DEV.Type, IO_TYPE_DEVICE);
  k.w16(d + DEV.Size, DEVICE_OBJECT_SIZE + extensionSize);
  k.w32(d + DEV.DriverObject, driverObject);
  k.w32(d + DEV.Flags, DO_DEVICE_INITIALIZING | (exclusive ? DO_EXCLUSIVE : 0) | (name !== null ? DO_DEVICE_HAS_NAME : 0));
  k.w32(d + DEV.Characteristics, characteristics);
  k.w32(d + DEV.DeviceType, deviceType);
  k.w8(d + DEV.StackSize, 1);
  k.w32(d + DEV.DeviceExtension, extensionSize > 0 ? d + DEVICE_OBJECT_SIZE : 0);
  // KeInitializeEvent(&DeviceLock, SynchronizationEvent, TRUE)
  k.w8(d + DEV.DeviceLockType, 1);
  k.w8(d + DEV.DeviceLockSize, 4);
  k.w32(d + DEV.DeviceLockSignal, 1);
  const doe = d + DEVICE_OBJECT_SIZE + ext;
  k.w16(doe, 13); // IO_TYPE_DEVICE_OBJECT_EXTENSION
  k.w16(doe + 2, DEVOBJ_EXTENSION_SIZE);
  k.w32(doe + 4, d);
  k.w32(d + DEV.DeviceObjectExtension, doe);
  if ([7, 8, 0x24, 2].includes(deviceType)) k.w16(d + DEV.SectorSize, 512); // disk-like devices
  // Push onto the driver's device list.
  k.w32(d + DEV.NextDevice, k.r32(driverObject + DRV.DeviceObject));
  k.w32(driverObject + DRV.DeviceObject, d);
  return rec;
}

/** A symbolic link object (OBJECT_SYMBOLIC_LINK: LinkTarget UNICODE_STRING at +8). */
export function createSymbolicLink(k: Kernel, linkName: string, target: string): ObjectRecord {
  const rec = createObject(k, 'SymbolicLink', 0x20, canonicalName(linkName), { linkTarget: target });
  setUnicodeString(k, rec.body + 8, target);
  return rec;
}

// ---- IRPs -----------------------------------------------------------------------------------------

export interface IrpSetup {
  device: ObjectRecord;
  file: ObjectRecord | null;
  majorFunction: number;
  mode: Mode;
  flags: number;
  userIosb: number;
  userBuffer: number;
  systemBuffer: number;
  event: ObjectRecord | null;
  /** Fill the next stack location's Parameters. */
  parameters?: (stack: number) => void;
}

/** IoAllocateIrp + the I/O manager's setup of the first (next) stack location. */
export function buildIrp(k: Kernel, s: IrpSetup): IrpRecord {
  const st = ntState(k);
  const stackSize = Math.max(1, (k.r8(s.device.body + DEV.StackSize) << 24) >> 24);
  const size = IRP_SIZE + stackSize * IOSL_SIZE;
  const irp = k.allocPool(size);
  k.w16(irp + I.Type, IO_TYPE_IRP);
  k.w16(irp + I.Size, size);
  k.w8(irp + I.StackCount, stackSize);
  k.w8(irp + I.CurrentLocation, stackSize + 1);
  k.w32(irp + I.CurrentStackLocation, irp + IRP_SIZE + stackSize * IOSL_SIZE);
  k.w32(irp + I.ThreadListEntry, irp + I.ThreadListEntry);
  k.w32(irp + I.ThreadListEntry + 4, irp + I.ThreadListEntry);
  k.w32(irp + I.Flags, s.flags);
  k.w8(irp + I.RequestorMode, s.mode);
  k.w32(irp + I.Thread, k.currentThread().kthread);
  k.w32(irp + I.OriginalFileObject, s.file?.body ?? 0);
  k.w32(irp + I.UserIosb, s.userIosb);
  k.w32(irp + I.UserEvent, s.event?.body ?? 0);
  k.w32(irp + I.UserBuffer, s.userBuffer);
  k.w32(irp + I.SystemBuffer, s.systemBuffer);
  const stack = irp + IRP_SIZE + (stackSize - 1) * IOSL_SIZE; // IoGetNextIrpStackLocation
  k.w8(stack + SL.MajorFunction, s.majorFunction);
  k.w32(stack + SL.FileObject, s.file?.body ?? 0);
  s.parameters?.(stack);
  // The IRP holds a reference to the file object until it completes (IopCompleteRequest drops it).
  if (s.file) referenceObject(k, s.file);
  const rec: IrpRecord = {
    irp,
    majorFunction: s.majorFunction,
    device: s.device.body,
    file: s.file,
    process: k.currentProcess(),
    requestorMode: s.mode,
    inDispatch: true,
    completed: false,
    event: s.event,
  };
  st.irps.set(irp, rec);
  if (s.event) k.w32(s.event.body + KEVENT_SIGNAL, 0); // KeClearEvent
  return rec;
}

function emitIrp(k: Kernel, irp: number, phase: 'dispatch' | 'complete', status: number | null): void {
  const stack = k.r32(irp + I.CurrentStackLocation);
  const rec = ntState(k).irps.get(irp);
  const mj = rec?.majorFunction ?? k.r8(stack + SL.MajorFunction);
  const device = rec?.device ?? k.r32(stack + SL.DeviceObject);
  k.emit<'irp'>({
    type: 'irp',
    phase,
    irp,
    majorFunction: mj,
    majorFunctionName: IRP_MJ_NAMES[mj] ?? `IRP_MJ_${hex(mj)}`,
    device,
    driver: driverName(k, k.r32(device + DEV.DriverObject)),
    requestorMode: modeName(k.r8(irp + I.RequestorMode)),
    status: status === null ? null : status >>> 0,
  });
}

/**
 * IoCallDriver: step to the next stack location (a bug check when there is none), set its
 * DeviceObject, and call the driver's MajorFunction[mj](DeviceObject, Irp) in the current thread.
 */
export function callDriver(k: Kernel, device: number, irp: number): number {
  const location = ((k.r8(irp + I.CurrentLocation) << 24) >> 24) - 1;
  k.w8(irp + I.CurrentLocation, location);
  if (location <= 0) k.finish({ kind: 'bugcheck', code: BUGCHECK_NO_MORE_IRP_STACK_LOCATIONS, parameters: [irp, 0, 0, 0] });
  const stack = k.r32(irp + I.CurrentStackLocation) - IOSL_SIZE;
  k.w32(irp + I.CurrentStackLocation, stack);
  k.w32(stack + SL.DeviceObject, device);
  const mj = k.r8(stack + SL.MajorFunction);
  const dispatch = k.r32(k.r32(device + DEV.DriverObject) + DRV.MajorFunction + 4 * mj);
  emitIrp(k, irp, 'dispatch', null);
  if (dispatch === 0) {
    // IopInvalidDeviceRequest
    k.w32(irp + I.Status, S.STATUS_INVALID_DEVICE_REQUEST);
    k.w32(irp + I.Information, 0);
    completeRequest(k, irp);
    return S.STATUS_INVALID_DEVICE_REQUEST;
  }
  return k.callGuest(dispatch, [device, irp]);
}

/** Whether the current address space can reach a user-space address of `process`. */
function reachable(k: Kernel, process: IrpRecord['process'], address: number): boolean {
  return address >>> 0 >= 0x80000000 || k.currentProcess() === process;
}

/**
 * IoCompleteRequest: for buffered input operations copy IoStatus.Information bytes of the system
 * buffer back to the caller's buffer, free the system buffer, write the caller's IO_STATUS_BLOCK,
 * signal the event, drop the IRP's file reference. A fault on the caller's memory (XP does this in
 * a special kernel APC under try/except) becomes the IRP's status.
 */
export function completeRequest(k: Kernel, irp: number): void {
  const st = ntState(k);
  const rec = st.irps.get(irp);
  if (rec?.completed) k.finish({ kind: 'bugcheck', code: BUGCHECK_MULTIPLE_IRP_COMPLETE_REQUESTS, parameters: [irp, 0, 0, 0] });
  let status = k.r32(irp + I.Status);
  const information = k.r32(irp + I.Information);
  const flags = k.r32(irp + I.Flags);
  const systemBuffer = k.r32(irp + I.SystemBuffer);
  const userBuffer = k.r32(irp + I.UserBuffer);
  const process = rec?.process ?? k.currentProcess();
  try {
    if (flags & IRP_BUFFERED_IO && !ntError(status) && flags & IRP_INPUT_OPERATION && information !== 0 && userBuffer !== 0) {
      if (reachable(k, process, userBuffer)) k.writeBytes(userBuffer, k.readBytes(systemBuffer, information));
      else k.log(`IoCompleteRequest: ${hex(irp)}'s buffer is in another address space; not copied`);
    }
  } catch (e) {
    if (!(e instanceof GuestFault)) throw e;
    status = S.STATUS_ACCESS_VIOLATION;
  }
  if (flags & IRP_DEALLOCATE_BUFFER && systemBuffer !== 0) k.freePool(systemBuffer);
  // IoMarkIrpPending left SL_PENDING_RETURNED in the current stack location's Control.
  const pendingReturned = (k.r8(k.r32(irp + I.CurrentStackLocation) + SL.Control) & 1) !== 0;
  k.w8(irp + I.PendingReturned, pendingReturned ? 1 : 0);
  // An error completing a synchronous request that never pended is only the service's return
  // value: the caller's IO_STATUS_BLOCK and event are left alone (IopCompleteRequest).
  const report = !ntError(status) || pendingReturned;
  const iosb = k.r32(irp + I.UserIosb);
  if (report && iosb !== 0 && reachable(k, process, iosb)) {
    try {
      k.w32(iosb, status);
      k.w32(iosb + 4, information);
    } catch (e) {
      if (!(e instanceof GuestFault)) throw e;
    }
  }
  if (report && rec?.event) k.w32(rec.event.body + KEVENT_SIGNAL, 1);
  if (rec?.file) {
    k.w32(rec.file.body + FO.FinalStatus, status);
    k.w32(rec.file.body + FO.EventSignal, 1);
  }
  emitIrp(k, irp, 'complete', status);
  if (rec) {
    rec.completed = true;
    if (!rec.inDispatch) releaseIrp(k, rec);
  }
}

function releaseIrp(k: Kernel, rec: IrpRecord): void {
  ntState(k).irps.delete(rec.irp);
  if (rec.file) dereferenceObject(k, rec.file);
  k.freePool(rec.irp);
}

/**
 * Send a built IRP to its device and finish the synchronous part as the I/O manager does: the
 * dispatch routine's status is the result; a STATUS_PENDING on a synchronous file object waits —
 * here, the queued idle work (work items) runs — and then returns the file object's FinalStatus.
 */
export function sendIrp(k: Kernel, rec: IrpRecord): number {
  let status = callDriver(k, rec.device, rec.irp);
  rec.inDispatch = false;
  if (rec.completed) {
    releaseIrp(k, rec);
  } else if (status === S.STATUS_PENDING && rec.file && k.r32(rec.file.body + FO.Flags) & FO_SYNCHRONOUS_IO) {
    k.runIdleWork();
    if (rec.completed) status = k.r32(rec.file.body + FO.FinalStatus);
  } else if (status !== S.STATUS_PENDING) {
    k.log(`${IRP_MJ_NAMES[rec.majorFunction]} IRP ${hex(rec.irp)} returned ${hex(status)} without being completed`);
  }
  return status >>> 0;
}

/** IRP_MJ_CREATE for a FILE_OBJECT opened on a driver's device; returns status and Information. */
export function sendCreate(k: Kernel, file: ObjectRecord, desiredAccess: number, disposition: number, options: number, fileAttributes: number, shareAccess: number, mode: Mode): { status: number; information: number } {
  const iosb = k.allocPool(8);
  const securityContext = k.allocPool(0x10); // IO_SECURITY_CONTEXT: DesiredAccess at +8
  k.w32(securityContext + 8, desiredAccess);
  const rec = buildIrp(k, {
    device: file.file!.device,
    file,
    majorFunction: IRP_MJ_CREATE,
    mode,
    flags: IRP_CREATE_OPERATION | IRP_SYNCHRONOUS_API,
    userIosb: iosb,
    userBuffer: 0,
    systemBuffer: 0,
    event: null,
    parameters: (stack) => {
      k.w32(stack + SL.CreateSecurityContext, securityContext);
      k.w32(stack + SL.CreateOptions, ((disposition & 0xff) << 24) | (options & 0xffffff));
      k.w16(stack + SL.CreateFileAttributes, fileAttributes);
      k.w16(stack + SL.CreateShareAccess, shareAccess);
    },
  });
  const status = sendIrp(k, rec);
  return { status, information: k.r32(iosb + 4) };
}

/** IRP_MJ_CLEANUP (last handle) and IRP_MJ_CLOSE (last reference) for files on a driver's device. */
function sendCloseIrp(k: Kernel, file: ObjectRecord, mj: number): void {
  if (!file.file?.opened || file.file.device.fileSystem || k.cpu.stopReason !== null) return;
  const rec = buildIrp(k, {
    device: file.file.device,
    file: mj === IRP_MJ_CLOSE ? null : file,
    majorFunction: mj,
    mode: KernelMode,
    flags: IRP_CLOSE_OPERATION | IRP_SYNCHRONOUS_API,
    userIosb: k.allocPool(8),
    userBuffer: 0,
    systemBuffer: 0,
    event: null,
  });
  if (mj === IRP_MJ_CLOSE) {
    // The file object is being deleted: the IRP names it but holds no reference.
    k.w32(rec.irp + I.OriginalFileObject, file.body);
    k.w32(k.r32(rec.irp + I.CurrentStackLocation) - IOSL_SIZE + SL.FileObject, file.body);
  }
  sendIrp(k, rec);
}
deleteHooks.lastHandle = (k, rec) => {
  if (rec.type === 'File') sendCloseIrp(k, rec, IRP_MJ_CLEANUP);
};
deleteHooks.file = (k, rec) => {
  sendCloseIrp(k, rec, IRP_MJ_CLOSE);
  // The device reference the open took (IopParseDevice).
  if (rec.file) dereferenceObject(k, rec.file.device);
};

export interface DeviceIo {
  file: ObjectRecord;
  mode: Mode;
  iosb: number;
  event: ObjectRecord | null;
}

/**
 * IRP_MJ_READ / IRP_MJ_WRITE on a driver's device: DO_BUFFERED_IO gets a system buffer (filled
 * from the caller's buffer for a write, copied back at completion for a read); otherwise (neither
 * I/O; DO_DIRECT_IO's MDLs are not modelled) the driver gets the caller's buffer in UserBuffer.
 */
export function deviceReadWrite(k: Kernel, io: DeviceIo, mj: number, buffer: number, length: number, byteOffset: { low: number; high: number }, key: number): number {
  const device = io.file.file!.device;
  const buffered = (k.r32(device.body + DEV.Flags) & DO_BUFFERED_IO) !== 0;
  let systemBuffer = 0;
  let flags = mj === IRP_MJ_READ ? IRP_READ_OPERATION : IRP_WRITE_OPERATION;
  if (buffered && length > 0) {
    systemBuffer = k.allocPool(length);
    flags |= IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
    if (mj === IRP_MJ_READ) flags |= IRP_INPUT_OPERATION;
    else k.writeBytes(systemBuffer, k.readBytes(buffer, length));
  }
  if (k.r32(io.file.body + FO.Flags) & FO_SYNCHRONOUS_IO) flags |= IRP_SYNCHRONOUS_API;
  const rec = buildIrp(k, {
    device,
    file: io.file,
    majorFunction: mj,
    mode: io.mode,
    flags,
    userIosb: io.iosb,
    userBuffer: buffer,
    systemBuffer,
    event: io.event,
    parameters: (stack) => {
      k.w32(stack + SL.RwLength, length);
      k.w32(stack + SL.RwKey, key);
      k.w32(stack + SL.RwByteOffset, byteOffset.low);
      k.w32(stack + SL.RwByteOffset + 4, byteOffset.high);
    },
  });
  return sendIrp(k, rec);
}

/**
 * IRP_MJ_DEVICE_CONTROL. METHOD_BUFFERED: a system buffer of max(in, out) bytes holding the input,
 * the output copied back at completion; METHOD_IN/OUT_DIRECT: the input buffered, the output
 * passed as UserBuffer (no MDL); METHOD_NEITHER: Type3InputBuffer and UserBuffer are the caller's.
 */
export function deviceIoControl(k: Kernel, io: DeviceIo, code: number, input: number, inputLength: number, output: number, outputLength: number): number {
  const method = code & 3;
  let systemBuffer = 0;
  let flags = 0;
  if (method !== METHOD_NEITHER) {
    const size = method === METHOD_BUFFERED ? Math.max(inputLength, outputLength) : inputLength;
    if (size > 0) {
      systemBuffer = k.allocPool(size);
      flags = IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER;
      if (inputLength > 0 && input !== 0) k.writeBytes(systemBuffer, k.readBytes(input, inputLength));
      if (method === METHOD_BUFFERED && output !== 0 && outputLength > 0) flags |= IRP_INPUT_OPERATION;
    }
  }
  if (k.r32(io.file.body + FO.Flags) & FO_SYNCHRONOUS_IO) flags |= IRP_SYNCHRONOUS_API;
  const rec = buildIrp(k, {
    device: io.file.file!.device,
    file: io.file,
    majorFunction: IRP_MJ_DEVICE_CONTROL,
    mode: io.mode,
    flags,
    userIosb: io.iosb,
    userBuffer: output,
    systemBuffer,
    event: io.event,
    parameters: (stack) => {
      k.w32(stack + SL.OutputBufferLength, outputLength);
      k.w32(stack + SL.InputBufferLength, inputLength);
      k.w32(stack + SL.IoControlCode, code);
      k.w32(stack + SL.Type3InputBuffer, input);
    },
  });
  return sendIrp(k, rec);
}

/**
 * NtDeviceIoControlFile(FileHandle, Event, ApcRoutine, ApcContext, IoStatusBlock, IoControlCode,
 * InputBuffer, InputBufferLength, OutputBuffer, OutputBufferLength): the handle referenced first;
 * for a UserMode caller the access the code demands (bits 14–15: FILE_READ_ACCESS → FILE_READ_DATA,
 * FILE_WRITE_ACCESS → FILE_WRITE_DATA), then the probes: the IO_STATUS_BLOCK, and — except for
 * METHOD_NEITHER, whose buffers are the driver's business — ProbeForRead(InputBuffer, InputLength, 1)
 * and ProbeForWrite(OutputBuffer, OutputLength, 1).
 */
export function NtDeviceIoControlFile(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const [handle, eventHandle, , , iosb, code, input, inputLength, output, outputLength] = Array.from({ length: 10 }, (_, i) => c.arg(i));
  return run(() => {
    const ref = referenceObjectByHandle(k, handle, 'File', 0, mode);
    if (ref.status !== 0) return ref.status;
    const file = ref.rec!;
    let event: ObjectRecord | null = null;
    try {
      const access = (code >>> 14) & 3;
      if (mode === UserMode && access !== 0 && (access & ~ref.grantedAccess!) !== 0) return S.STATUS_ACCESS_DENIED;
      const method = code & 3;
      if (mode === UserMode) {
        check(probeGeneric(k, iosb, 8, 'write'));
        if (method !== METHOD_NEITHER) {
          if (inputLength !== 0) check(probeForRead(k, input, inputLength, 1));
          if (outputLength !== 0) check(method === METHOD_IN_DIRECT ? probeForRead(k, output, outputLength, 1) : probeForWrite(k, output, outputLength, 1));
        }
      }
      if (eventHandle !== 0) {
        const ev = referenceObjectByHandle(k, eventHandle, 'Event', 0x2, mode);
        if (ev.status !== 0) return ev.status;
        event = ev.rec!;
      }
      // The file system of the volume takes no device I/O controls.
      if (file.file!.device.fileSystem) return S.STATUS_INVALID_DEVICE_REQUEST;
      return deviceIoControl(k, { file, mode, iosb, event }, code, input, inputLength, output, outputLength);
    } finally {
      if (event) dereferenceObject(k, event);
      dereferenceObject(k, file);
    }
  });
}

// ---- the kernel API drivers call ------------------------------------------------------------------

function readName(k: Kernel, us: number): string {
  const h = readUnicodeStringHeader(k, us);
  return readWString(k, h.buffer, h.length);
}

/** A device object the I/O manager knows, by body address. */
function deviceAt(k: Kernel, address: number): ObjectRecord | undefined {
  const rec = objectAt(k, address);
  return rec?.type === 'Device' ? rec : undefined;
}

// IO_WORKITEM (XP): WORK_QUEUE_ITEM { List, WorkerRoutine, Parameter } then Routine, DeviceObject, Context.
const WI_ROUTINE = 0x10;
const WI_DEVICE = 0x14;
const WI_CONTEXT = 0x18;
const IO_WORKITEM_SIZE = 0x1c;

export const IO_ROUTINES: RoutineTable = {
  /** IoCreateDevice(DriverObject, DeviceExtensionSize, DeviceName, DeviceType, DeviceCharacteristics, Exclusive, *DeviceObject) */
  IoCreateDevice: {
    argBytes: 28,
    body: ({ k, arg }) =>
      run(() => {
        const name = arg(2) !== 0 ? canonicalName(readName(k, arg(2))) : null;
        if (name !== null && !name.startsWith('\\')) return S.STATUS_OBJECT_PATH_SYNTAX_BAD;
        if (name !== null && objectByName(k, name)) return S.STATUS_OBJECT_NAME_COLLISION;
        const rec = createDevice(k, arg(0), arg(1), name, arg(3), arg(4), (arg(5) & 0xff) !== 0);
        k.w32(arg(6), rec.body);
        return S.STATUS_SUCCESS;
      }),
  },
  /** IoDeleteDevice(DeviceObject): off the driver's list and out of the namespace; the creation reference goes. */
  IoDeleteDevice: {
    argBytes: 4,
    body: ({ k, arg }) => {
      const dev = arg(0);
      const driver = k.r32(dev + DEV.DriverObject);
      let link = driver + DRV.DeviceObject;
      for (let p = k.r32(link); p !== 0; link = p + DEV.NextDevice, p = k.r32(link)) {
        if (p === dev) {
          k.w32(link, k.r32(dev + DEV.NextDevice));
          break;
        }
      }
      const rec = deviceAt(k, dev);
      if (rec) {
        removeName(k, rec);
        dereferenceObject(k, rec);
      }
      return 0;
    },
  },
  /** IoCreateSymbolicLink(SymbolicLinkName, DeviceName): `\??\X` → `\Device\X`. */
  IoCreateSymbolicLink: {
    argBytes: 8,
    body: ({ k, arg }) =>
      run(() => {
        const link = canonicalName(readName(k, arg(0)));
        const target = readName(k, arg(1));
        if (!link.startsWith('\\')) return S.STATUS_OBJECT_PATH_SYNTAX_BAD;
        if (objectByName(k, link)) return S.STATUS_OBJECT_NAME_COLLISION;
        createSymbolicLink(k, link, target);
        return S.STATUS_SUCCESS;
      }),
  },
  IoDeleteSymbolicLink: {
    argBytes: 4,
    body: ({ k, arg }) => {
      const rec = objectByName(k, canonicalName(readName(k, arg(0))));
      if (!rec || rec.type !== 'SymbolicLink') return S.STATUS_OBJECT_NAME_NOT_FOUND;
      removeName(k, rec);
      dereferenceObject(k, rec);
      return S.STATUS_SUCCESS;
    },
  },
  /** IoCompleteRequest(Irp, PriorityBoost) — the stdcall export; IofCompleteRequest is fastcall. */
  IoCompleteRequest: { argBytes: 8, body: ({ k, arg }) => (completeRequest(k, arg(0)), 0) },
  IofCompleteRequest: { argBytes: 0, fastcall: true, body: ({ k, arg }) => (completeRequest(k, arg(0)), 0) },
  /** IoCallDriver(DeviceObject, Irp) / IofCallDriver (fastcall ECX, EDX). */
  IoCallDriver: { argBytes: 8, body: ({ k, arg }) => callDriver(k, arg(0), arg(1)) },
  IofCallDriver: { argBytes: 0, fastcall: true, body: ({ k, arg }) => callDriver(k, arg(0), arg(1)) },
  /** IoAllocateWorkItem(DeviceObject) */
  IoAllocateWorkItem: {
    argBytes: 4,
    body: ({ k, arg }) => {
      const item = k.allocPool(IO_WORKITEM_SIZE);
      k.w32(item + WI_DEVICE, arg(0));
      return item;
    },
  },
  /**
   * IoQueueWorkItem(IoWorkItem, WorkerRoutine, QueueType, Context): the device is referenced and
   * the routine runs later, when the program's thread next waits or exits, on the System worker
   * thread (System process context, PreviousMode KernelMode): Routine(DeviceObject, Context).
   */
  IoQueueWorkItem: {
    argBytes: 16,
    body: ({ k, arg }) => {
      const item = arg(0);
      const routine = arg(1);
      const context = arg(3);
      const device = k.r32(item + WI_DEVICE);
      k.w32(item + WI_ROUTINE, routine);
      k.w32(item + WI_CONTEXT, context);
      const rec = deviceAt(k, device);
      if (rec) referenceObject(k, rec);
      k.onIdle(() => {
        k.inSystemThread('work item', () => {
          k.callGuest(routine, [device, context]);
        });
        if (rec) dereferenceObject(k, rec);
      });
      return 0;
    },
  },
  IoFreeWorkItem: { argBytes: 4, body: ({ k, arg }) => (k.freePool(arg(0)), 0) },
  /**
   * IoGetCurrentProcess() = PsGetCurrentProcess(): the process whose address space the thread is
   * in, KTHREAD.ApcState.Process — the attached one during KeStackAttachProcess, as on XP.
   */
  IoGetCurrentProcess: { argBytes: 0, body: ({ k }) => k.r32(k.currentThread().kthread + offsetOf('KTHREAD', 'ApcState.Process')) },
  PsGetCurrentProcess: { argBytes: 0, body: ({ k }) => k.r32(k.currentThread().kthread + offsetOf('KTHREAD', 'ApcState.Process')) },
};


// ---- volume information ------------------------------------------------------------------------

const FILE_FS_DEVICE_INFORMATION = 4;
/** FileFsMaximumInformation on XP: the classes are 1 … 9. */
const FILE_FS_MAXIMUM_INFORMATION = 10;
const FILE_FS_LABEL_INFORMATION = 2;

/**
 * NtQueryVolumeInformationFile(FileHandle, IoStatusBlock, FsInformation, Length, FsInformationClass).
 * The class is checked first (0, FileFsLabelInformation — set-only — and classes past XP's last:
 * STATUS_INVALID_INFO_CLASS), then the length (FileFsDeviceInformation needs 8 bytes:
 * STATUS_INFO_LENGTH_MISMATCH), then (UserMode) the IO_STATUS_BLOCK and ProbeForWrite(FsInformation,
 * Length, 4), then the handle. FileFsDeviceInformation the I/O manager answers itself, as XP's does,
 * from the DEVICE_OBJECT: its DeviceType (FILE_DEVICE_DISK for C:, FILE_DEVICE_CONSOLE for the
 * console, a driver's own) and Characteristics — kernel32 asks it to tell a console from a file. The
 * other classes would be an IRP_MJ_QUERY_VOLUME_INFORMATION, which neither the file system here nor
 * the console serves: STATUS_INVALID_DEVICE_REQUEST.
 */
export function NtQueryVolumeInformationFile(c: EscapeCall): number {
  const { k, previousMode: mode } = c;
  const [handle, iosb, buffer, length, infoClass] = Array.from({ length: 5 }, (_, i) => c.arg(i));
  return run(() => {
    if (infoClass === 0 || infoClass === FILE_FS_LABEL_INFORMATION || infoClass >= FILE_FS_MAXIMUM_INFORMATION) return S.STATUS_INVALID_INFO_CLASS;
    if (infoClass === FILE_FS_DEVICE_INFORMATION && length < offsetOf('FILE_FS_DEVICE_INFORMATION', 'Characteristics') + 4) return S.STATUS_INFO_LENGTH_MISMATCH;
    if (mode === UserMode) {
      check(probeGeneric(k, iosb, 8, 'write'));
      check(probeForWrite(k, buffer, length, 4));
    }
    const ref = referenceObjectByHandle(k, handle, 'File', 0, mode);
    if (ref.status !== 0) return ref.status;
    try {
      if (infoClass !== FILE_FS_DEVICE_INFORMATION) return S.STATUS_INVALID_DEVICE_REQUEST;
      const device = ref.rec!.file!.device.body;
      k.w32(buffer + offsetOf('FILE_FS_DEVICE_INFORMATION', 'DeviceType'), k.r32(device + DEV.DeviceType));
      k.w32(buffer + offsetOf('FILE_FS_DEVICE_INFORMATION', 'Characteristics'), k.r32(device + DEV.Characteristics));
      k.w32(iosb, S.STATUS_SUCCESS);
      k.w32(iosb + 4, 8);
      return S.STATUS_SUCCESS;
    } finally {
      dereferenceObject(k, ref.rec!);
    }
  });
}
