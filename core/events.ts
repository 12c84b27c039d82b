// The one discriminated union of everything the machine reports. Every event carries `seq`
// (gapless from 0 within a machine's life), `icount` (instructions retired before it), `cpl` and
// `eip` (the CPU's privilege level and instruction pointer when it happened) and `thread` (the
// guest thread id the guest layer reports, 0 on a bare machine).
//
// Events are emitted from a few choke points only: instruction retire, the privilege-change
// microcode (sysenter, sysexit, int, iret, exception delivery), MSR access, and, in the guest
// layer, declared probes and service bodies.

/** Register ids used in effect lists: 0–7 EAX..EDI, then EFLAGS, the six selectors, control registers. */
export const enum RegId {
  EAX = 0,
  ECX,
  EDX,
  EBX,
  ESP,
  EBP,
  ESI,
  EDI,
  EFLAGS,
  ES,
  CS,
  SS,
  DS,
  FS,
  GS,
  CR0,
  CR2,
  CR3,
  CR4,
}
export const REG_ID_NAMES = [
  'eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eflags',
  'es', 'cs', 'ss', 'ds', 'fs', 'gs', 'cr0', 'cr2', 'cr3', 'cr4',
] as const;
export type RegName = (typeof REG_ID_NAMES)[number];

export interface EventBase {
  seq: number;
  icount: number;
  cpl: number;
  eip: number;
  thread: number;
}

/**
 * State changes since the previous effect-carrying event: `regs` is flat pairs [RegId, value, …]
 * (values as unsigned 32-bit numbers), `writes` flat triples [linear, size, value, …] in order,
 * `tableWrites` flat pairs [physical, value, …] for the accessed/dirty bits the paging unit set in
 * page-directory and page-table entries on its own. Replaying the effects of every event in `seq`
 * order rebuilds the machine's registers and memory.
 */
export interface Effects {
  readonly regs: readonly number[];
  readonly writes: readonly number[];
  readonly tableWrites: readonly number[];
}

/** An instruction retired. `eip` is its address; `nextEip` where execution continues. */
export interface InstructionEvent extends EventBase, Effects {
  type: 'instruction';
  bytes: Uint8Array;
  nextEip: number;
}

export type RingMechanism = 'sysenter' | 'sysexit' | 'int' | 'iret' | 'exception';

/** The CPU changed privilege level (emitted by the microcode, before the instruction retires). */
export interface RingTransitionEvent extends EventBase {
  type: 'ring-transition';
  fromCpl: number;
  toCpl: number;
  mechanism: RingMechanism;
  fromEip: number;
  toEip: number;
  fromEsp: number;
  toEsp: number;
  /** The vector for `int` and `exception`. */
  vector: number | null;
}

export type MsrSource = 'rdmsr' | 'sysenter' | 'sysexit';

export interface MsrReadEvent extends EventBase {
  type: 'msr-read';
  msr: number;
  value: bigint;
  source: MsrSource;
}

export interface MsrWriteEvent extends EventBase {
  type: 'msr-write';
  msr: number;
  value: bigint;
}

/**
 * A fault or trap delivered to the guest through the IDT (or, on a bare `exec` machine, the one that
 * stopped it). Carries the effects of the delivery itself (the frame pushed, the new CS:EIP, SS:ESP).
 */
export interface ExceptionEvent extends EventBase, Effects {
  type: 'exception';
  vector: number;
  errorCode: number | null;
  cr2: number | null;
  /** The instruction that faulted (eip of the event is the same). */
  faultEip: number;
}

/** The machine stopped (hlt, instruction limit, triple fault, a guest-layer stop). */
export interface MachineStopEvent extends EventBase {
  type: 'machine-stop';
  reason: StopKind;
  detail: string | null;
}

export type StopKind = 'hlt' | 'instruction-limit' | 'triple-fault' | 'stopped' | 'exception' | 'exited' | 'bugcheck' | 'unsupported';

/** The CPU's events. */
export type CpuEvent =
  | InstructionEvent
  | RingTransitionEvent
  | MsrReadEvent
  | MsrWriteEvent
  | ExceptionEvent
  | MachineStopEvent;

// ---- the guest's events (core/guest): from probes on kernel labels and from service bodies ----

/**
 * One dispatch decision of KiSystemService: at the limit check for a number past its table
 * (inRange false, target null), at `mov ebx,[edi+eax*4]` otherwise.
 */
export interface SsdtLookupEvent extends EventBase {
  type: 'ssdt-lookup';
  serviceNumber: number;
  tableIndex: number;
  serviceIndex: number;
  /** KSERVICE_TABLE_DESCRIPTOR.Base of the chosen descriptor (0 when none). */
  tableBase: number;
  limit: number;
  target: number | null;
  targetSymbol: string | null;
  argBytes: number | null;
  inRange: boolean;
}

/** One pass of KiServiceExit's user-APC loop (at `cmp byte [ebx+4Ah],0`). */
export interface ApcCheckEvent extends EventBase {
  type: 'apc-check';
  threadId: number;
  returningToCpl: number;
  userApcPending: boolean;
  kernelApcPending: boolean;
  /** This pass found a user APC pending and calls KiDeliverApc. */
  delivered: boolean;
}

/** An Nt routine's body starts (at its escape): which service, and PreviousMode as it reads it. */
export interface ServiceEnterEvent extends EventBase {
  type: 'service-enter';
  service: string;
  serviceNumber: number;
  previousMode: 'UserMode' | 'KernelMode';
  /** The return address of the Nt routine (the dispatcher's `call ebx`, or a driver's direct call). */
  caller: number;
  args: number[];
}

export interface ServiceExitEvent extends EventBase {
  type: 'service-exit';
  service: string;
  serviceNumber: number;
  status: number;
  statusName: string;
}

/** ProbeForRead / ProbeForWrite on a caller's buffer. */
export interface ProbeEvent extends EventBase {
  type: 'probe';
  kind: 'read' | 'write';
  address: number;
  length: number;
  alignment: number;
  /** STATUS_SUCCESS, STATUS_DATATYPE_MISALIGNMENT or STATUS_ACCESS_VIOLATION. */
  status: number;
  /** Where touching the buffer faulted (the checks passed but a page did not), else null. */
  faultAddress: number | null;
  /** Why that page faulted: absent, or present but not writable. */
  fault: 'not-present' | 'read-only' | null;
}

/** ObReferenceObjectByHandle (and NtClose's lookup): which table, in which mode, with what result. */
export interface HandleLookupEvent extends EventBase {
  type: 'handle-lookup';
  handle: number;
  table: 'process' | 'kernel' | 'pseudo' | 'none';
  previousMode: 'UserMode' | 'KernelMode';
  status: number;
  object: number | null;
  objectType: string | null;
  /** The object type the caller asked for (null: any). */
  wantedType: string | null;
  /** The access the caller asked for (ACCESS_MASK, generic rights as given). */
  desiredAccess: number;
  /** The handle entry's GrantedAccess (null when no entry was found). */
  grantedAccess: number | null;
  /** The type of the object the entry names, also when the lookup failed on it (null: no entry). */
  foundType: string | null;
}

/**
 * A handle table entry was created (ObpCreateHandle) or destroyed (ExDestroyHandle): every handle
 * a session opens and closes, so a lookup that fails can say whether the value was ever valid.
 */
export interface HandleEntryEvent extends EventBase {
  type: 'handle-entry';
  op: 'create' | 'close';
  /** The value the caller sees (a kernel handle with bit 31). */
  handle: number;
  table: 'process' | 'kernel';
  /** The image name of the process whose table holds it ('System' for the kernel table). */
  process: string;
  object: number;
  objectType: string;
  /** The object's name (a file's path, a named object's full name), null when unnamed. */
  objectName: string | null;
  grantedAccess: number;
}

/** An IRP sent to a driver's dispatch routine, or completed. */
export interface IrpEvent extends EventBase {
  type: 'irp';
  phase: 'dispatch' | 'complete';
  irp: number;
  majorFunction: number;
  majorFunctionName: string;
  device: number;
  driver: string;
  requestorMode: 'UserMode' | 'KernelMode';
  status: number | null;
}

/** The processor switched threads (to a System worker thread and back, or at exit). */
export interface ThreadSwitchEvent extends EventBase {
  type: 'thread-switch';
  fromThread: number;
  toThread: number;
  fromProcess: string;
  toProcess: string;
  reason: string;
}

/**
 * An exception on its way to whoever handles it: KiDispatchException starting (from a trap or
 * NtRaiseException), or a service body's own handler taking a fault on the caller's memory.
 */
export interface ExceptionDispatchEvent extends EventBase {
  type: 'exception-dispatch';
  /** The exception code (STATUS_ACCESS_VIOLATION, …), unsigned. */
  code: number;
  codeName: string;
  /** ExceptionRecord.ExceptionAddress: where it happened. */
  address: number;
  /** The mode it is dispatched in (the mode the faulting code ran in). */
  previousMode: 'UserMode' | 'KernelMode';
  firstChance: boolean;
  /**
   * Who gets it: 'seh-chain' (the kernel's handlers at fs:[0]), 'user-dispatcher'
   * (ntdll!KiUserExceptionDispatcher and the thread's own handlers), 'service' (the service
   * body's handler: its status), 'process-end' (a user second chance: the process ends),
   * 'bugcheck' (a kernel second chance).
   */
  handler: 'seh-chain' | 'user-dispatcher' | 'service' | 'process-end' | 'bugcheck';
  /** ExceptionInformation[0..n-1] (an access violation: 0 read / 1 write, the address). */
  parameters: number[];
}

/**
 * A program wrote to its console: the console device (\Device\ConsoleOut) served an IRP_MJ_WRITE
 * (WriteConsoleA, or WriteFile / NtWriteFile on a standard handle).
 */
export interface ConsoleOutputEvent extends EventBase {
  type: 'console-output';
  /** What was written, each byte as the character of that code (Latin-1, ASCII as is). */
  text: string;
  /** Bytes written. */
  bytes: number;
  /** The handle the caller wrote through (null when no handle of the caller names the file object). */
  handle: number | null;
  /** 'stdout' or 'stderr' (the process's StandardOutput / StandardError), or 'console' (another handle to the device). */
  stream: 'stdout' | 'stderr' | 'console';
  /** The image name of the writing process. */
  process: string;
}

/**
 * Text for the debugger: a driver's DbgPrint, or ntdll's debug service (INT 2Dh with
 * BREAKPOINT_PRINT, what OutputDebugStringA ends in), printed by the kernel with no debugger attached.
 */
export interface DebugPrintEvent extends EventBase {
  type: 'debug-print';
  text: string;
  /** The mode the print came from. */
  mode: 'UserMode' | 'KernelMode';
  /** 'DbgPrint' (the kernel routine) or 'int 2Dh' (the debug service: ntdll!DebugService). */
  source: 'DbgPrint' | 'int 2Dh';
  /** The code that asked for the print: DbgPrint's return address, or for the debug service the first
   *  return address outside ntdll and kernel32 on the caller's frame chain (null when none is found). */
  caller: number | null;
  /** module!Name+0xOffset of the caller. */
  callerSymbol: string | null;
  /** The caller's module (a driver's or the program's name). */
  module: string | null;
}

export type GuestEvent =
  | SsdtLookupEvent
  | ExceptionDispatchEvent
  | ApcCheckEvent
  | ServiceEnterEvent
  | ServiceExitEvent
  | ProbeEvent
  | HandleLookupEvent
  | HandleEntryEvent
  | IrpEvent
  | ThreadSwitchEvent
  | ConsoleOutputEvent
  | DebugPrintEvent;

/** Every event the machine and its guest emit: one discriminated union on `type`. */
export type TraceEvent = CpuEvent | GuestEvent;

/** Event bodies without the fields the emitter stamps. */
export type EventBody<E extends TraceEvent> = Omit<E, keyof EventBase>;
