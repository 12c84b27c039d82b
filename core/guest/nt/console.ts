// The console of a Win32 program: where its standard handles lead.
//
// On XP a console belongs to CSRSS and console "handles" are not kernel handles at all (kernel32
// sends WriteConsoleA to CSRSS by LPC). ntflow has no CSRSS, so its console is a device the
// executive serves, as Windows 8's condrv later made it: \Device\ConsoleOut and \Device\ConsoleIn
// of a driver \Driver\Console whose dispatch routines are nt!Console* entry points with TypeScript
// bodies. A standard handle is then an ordinary file handle: WriteFile or WriteConsoleA on it is
// NtWriteFile → IRP_MJ_WRITE → ConsoleDispatchWrite, which records the text as a `console-output`
// event. Reading the console gives end of file (no one types here). `\\.\CONOUT$` and
// `\\.\CONIN$` name the devices too.
import { GuestFault } from '../../cpu/faults.js';
import type { RoutineTable } from '../escape.js';
import type { Kernel, Process } from '../kernel.js';
import { offsetOf } from '../structs.js';
import { createFileObject } from './files.js';
import { createHandleIn, listHandles } from './handles.js';
import { DO_BUFFERED_IO, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_READ, IRP_MJ_WRITE, completeRequest, createDevice, createDriverObject, createSymbolicLink, finishDriverInit } from './io.js';
import { dereferenceObject, mapGenericAccess, objectAt } from './objects.js';
import type { ObjectRecord } from './state.js';
import { S } from './util.js';

export const CONSOLE_OUT_DEVICE = '\\Device\\ConsoleOut';
export const CONSOLE_IN_DEVICE = '\\Device\\ConsoleIn';
/** FILE_DEVICE_CONSOLE: what NtQueryVolumeInformationFile(FileFsDeviceInformation) reports for it. */
export const FILE_DEVICE_CONSOLE = 0x50;

const GENERIC_READ = 0x80000000;
const GENERIC_WRITE = 0x40000000;
const SYNCHRONIZE = 0x00100000;
const FILE_READ_ATTRIBUTES = 0x80;
const FILE_SYNCHRONOUS_IO_NONALERT = 0x20;

const IRP_STATUS = offsetOf('IRP', 'IoStatus.Status');
const IRP_INFORMATION = offsetOf('IRP', 'IoStatus.Information');
const IRP_SYSTEM_BUFFER = offsetOf('IRP', 'AssociatedIrp.SystemBuffer');
const IRP_STACK = offsetOf('IRP', 'Tail.Overlay.CurrentStackLocation');
const SL_LENGTH = offsetOf('IO_STACK_LOCATION', 'Parameters.Write.Length');
const SL_FILE = offsetOf('IO_STACK_LOCATION', 'FileObject');
const PARAMS = (f: 'StandardOutput' | 'StandardError') => offsetOf('RTL_USER_PROCESS_PARAMETERS', f);

interface ConsoleState {
  input: ObjectRecord;
  output: ObjectRecord;
  text: string[];
}
const consoles = new WeakMap<Kernel, ConsoleState>();

/** Everything written to the console, in order. */
export function consoleOutput(k: Kernel): string {
  return consoles.get(k)?.text.join('') ?? '';
}

/** The console's driver and devices, made on first use (a run without a Win32 program has none). */
function consoleDevices(k: Kernel): ConsoleState {
  let c = consoles.get(k);
  if (c) return c;
  const driver = createDriverObject(k, '\\Driver\\Console');
  const major = driver + offsetOf('DRIVER_OBJECT', 'MajorFunction');
  const routine = (name: string) => k.symbols.resolve('nt', name)!;
  for (const mj of [IRP_MJ_CREATE, IRP_MJ_CLOSE, IRP_MJ_CLEANUP]) k.w32(major + 4 * mj, routine('ConsoleDispatchCreateClose'));
  k.w32(major + 4 * IRP_MJ_READ, routine('ConsoleDispatchRead'));
  k.w32(major + 4 * IRP_MJ_WRITE, routine('ConsoleDispatchWrite'));
  const device = (name: string) => {
    const rec = createDevice(k, driver, 0, name, FILE_DEVICE_CONSOLE, 0, false);
    const flags = rec.body + offsetOf('DEVICE_OBJECT', 'Flags');
    k.w32(flags, k.r32(flags) | DO_BUFFERED_IO); // the text arrives in a system buffer
    return rec;
  };
  c = { input: device(CONSOLE_IN_DEVICE), output: device(CONSOLE_OUT_DEVICE), text: [] };
  finishDriverInit(k, driver);
  createSymbolicLink(k, '\\??\\CONIN$', CONSOLE_IN_DEVICE);
  createSymbolicLink(k, '\\??\\CONOUT$', CONSOLE_OUT_DEVICE);
  consoles.set(k, c);
  return c;
}

export interface StandardHandles {
  input: number;
  output: number;
  error: number;
}

/**
 * Give a new Win32 process its console: three handles in its table (StandardInput on
 * \Device\ConsoleIn, StandardOutput and StandardError each on its own FILE_OBJECT on
 * \Device\ConsoleOut), opened for synchronous I/O. Process creation makes them directly, with no
 * IRP_MJ_CREATE: there is no caller yet to send one (on XP, CSRSS hands the console out the same way).
 */
export function createConsole(k: Kernel, process: Process): StandardHandles {
  const c = consoleDevices(k);
  const open = (device: ObjectRecord, access: number): number => {
    const granted = mapGenericAccess('File', access | SYNCHRONIZE | FILE_READ_ATTRIBUTES);
    const file = createFileObject(k, device, '', granted, FILE_SYNCHRONOUS_IO_NONALERT, 0);
    file.file!.opened = true;
    const handle = createHandleIn(k, process, file, 0, granted);
    dereferenceObject(k, file); // the handle keeps the file object
    return handle;
  };
  return { input: open(c.input, GENERIC_READ), output: open(c.output, GENERIC_WRITE), error: open(c.output, GENERIC_WRITE) };
}

/** The handle of the current process (or the kernel table) that names a FILE_OBJECT, if any. */
function handleOf(k: Kernel, fileObject: number): number | null {
  for (const p of [k.currentProcess(), k.systemProcess]) {
    const h = listHandles(k, p).find((x) => x.object === fileObject);
    if (h) return h.handle;
  }
  return null;
}

/** Which standard stream a handle is for the current process (its PEB's ProcessParameters). */
function streamOf(k: Kernel, handle: number | null): 'stdout' | 'stderr' | 'console' {
  const process = k.currentProcess();
  if (handle === null || process.peb === 0) return 'console';
  try {
    const params = k.r32(process.peb + offsetOf('PEB', 'ProcessParameters'));
    if (params === 0) return 'console';
    if (k.r32(params + PARAMS('StandardOutput')) === handle) return 'stdout';
    if (k.r32(params + PARAMS('StandardError')) === handle) return 'stderr';
  } catch (e) {
    if (!(e instanceof GuestFault)) throw e;
  }
  return 'console';
}

/** Complete an IRP with a status and Information (IoCompleteRequest), returning the status. */
function complete(k: Kernel, irp: number, status: number, information: number): number {
  k.w32(irp + IRP_STATUS, status);
  k.w32(irp + IRP_INFORMATION, information);
  completeRequest(k, irp);
  return status;
}

export const CONSOLE_ROUTINES: RoutineTable = {
  /** IRP_MJ_CREATE, IRP_MJ_CLEANUP, IRP_MJ_CLOSE: nothing to set up or tear down. */
  ConsoleDispatchCreateClose: { argBytes: 8, body: ({ k, arg }) => complete(k, arg(1), S.STATUS_SUCCESS, 0) },

  /** IRP_MJ_READ: nobody types on this console, so every read is at its end; the output device cannot be read. */
  ConsoleDispatchRead: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const input = consoles.get(k)?.input.body === arg(0);
      return complete(k, arg(1), input ? S.STATUS_END_OF_FILE : S.STATUS_INVALID_DEVICE_REQUEST, 0);
    },
  },

  /**
   * IRP_MJ_WRITE: the text is in the IRP's system buffer (DO_BUFFERED_IO), Parameters.Write.Length
   * bytes of it; it is shown (a console-output event) and all of it is written. The input device
   * cannot be written.
   */
  ConsoleDispatchWrite: {
    argBytes: 8,
    body: ({ k, arg }) => {
      const c = consoles.get(k);
      const irp = arg(1);
      if (!c || c.output.body !== arg(0)) return complete(k, irp, S.STATUS_INVALID_DEVICE_REQUEST, 0);
      const stack = k.r32(irp + IRP_STACK);
      const length = k.r32(stack + SL_LENGTH);
      const buffer = k.r32(irp + IRP_SYSTEM_BUFFER);
      const text = length === 0 ? '' : Array.from(k.readBytes(buffer, length), (b) => String.fromCharCode(b)).join('');
      const file = k.r32(stack + SL_FILE);
      const handle = objectAt(k, file) ? handleOf(k, file) : null;
      c.text.push(text);
      k.emit<'console-output'>({ type: 'console-output', text, bytes: length, handle, stream: streamOf(k, handle), process: k.currentProcess().name });
      return complete(k, irp, S.STATUS_SUCCESS, length);
    },
  },
};
