// The guest's kernel and user structures, each described once. Everything else derives from this
// table: the assembler's offset constants (offsetsAsm), typed offset look-ups (offsetOf, sizeOf),
// and side-effect-free decoders for tools (read, readField, readNumber).
//
// Offsets are Windows XP x86 (32-bit) offsets. Where they come from (see SOURCES.md):
// - 'xp'   : the field offsets and sizes of Microsoft's public PDBs for XP SP2/SP3 as tabulated in
//            Volatility's xp_sp2/xp_sp3 x86 type tables (identical in both); most of them are in
//            the project's shared reference table of XP structures, the I/O manager structures
//            (IRP, IO_STACK_LOCATION, DEVICE_OBJECT, DRIVER_OBJECT, DRIVER_EXTENSION, FILE_OBJECT),
//            PEB, UNICODE_STRING, OBJECT_ATTRIBUTES, IO_STATUS_BLOCK, LIST_ENTRY, KEVENT, KDPC and
//            KDEVICE_QUEUE(_ENTRY) were read from the same Volatility table for this file, because
//            the shared reference table does not list them. XP SP1 itself has no public type dump;
//            its offsets are taken to be those of RTM = SP2 (field names and order agree in the
//            RTM headers), which is an inference.
// - 'nt'   : a documented NT layout that is not a PDB type (KSERVICE_TABLE_DESCRIPTOR).
// - 'ntflow': ntflow's own names for anonymous unions inside XP structures (the offsets are XP's).
//
// Field spec: [offset, type] or [offset, type, count].
//   type  — 'u8' 'i8' 'u16' 'i16' 'u32' 'i32' 'ptr' 'u64', or the name of another structure here
//           (nested by value), or 'bytes' (an opaque region of `count` bytes: a structure ntflow
//           does not describe, e.g. KTIMER inside KTHREAD).
//   count — for a scalar or structure type, the number of array elements.
// Unions are fields at the same offset. Fields need not cover the structure (subsets are marked).

import { nearestName } from '../names.js';

type Scalar = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'ptr' | 'u64';
type RawField = readonly [number, string] | readonly [number, string, number];
interface RawStruct {
  readonly size: number;
  readonly origin: 'xp' | 'nt' | 'ntflow';
  /** true when only some of the structure's fields are listed */
  readonly subset?: boolean;
  readonly note?: string;
  readonly fields: { readonly [field: string]: RawField };
}

const LAYOUTS = {
  // ---- basic types -----------------------------------------------------------------------------
  LIST_ENTRY: { size: 0x8, origin: 'xp', fields: { Flink: [0x0, 'ptr'], Blink: [0x4, 'ptr'] } },
  SINGLE_LIST_ENTRY: { size: 0x4, origin: 'xp', fields: { Next: [0x0, 'ptr'] } },
  UNICODE_STRING: {
    size: 0x8,
    origin: 'xp',
    fields: { Length: [0x0, 'u16'], MaximumLength: [0x2, 'u16'], Buffer: [0x4, 'ptr'] },
  },
  CLIENT_ID: { size: 0x8, origin: 'xp', fields: { UniqueProcess: [0x0, 'ptr'], UniqueThread: [0x4, 'ptr'] } },
  IO_STATUS_BLOCK: {
    size: 0x8,
    origin: 'xp',
    fields: { Status: [0x0, 'i32'], Pointer: [0x0, 'ptr'], Information: [0x4, 'u32'] },
  },
  OBJECT_ATTRIBUTES: {
    size: 0x18,
    origin: 'xp',
    fields: {
      Length: [0x00, 'u32'],
      RootDirectory: [0x04, 'ptr'],
      ObjectName: [0x08, 'ptr'],
      Attributes: [0x0c, 'u32'],
      SecurityDescriptor: [0x10, 'ptr'],
      SecurityQualityOfService: [0x14, 'ptr'],
    },
  },
  KSYSTEM_TIME: { size: 0xc, origin: 'xp', fields: { LowPart: [0x0, 'u32'], High1Time: [0x4, 'i32'], High2Time: [0x8, 'i32'] } },

  // ---- dispatcher objects ----------------------------------------------------------------------
  DISPATCHER_HEADER: {
    size: 0x10,
    origin: 'xp',
    fields: {
      Type: [0x0, 'u8'],
      Absolute: [0x1, 'u8'],
      Size: [0x2, 'u8'],
      Inserted: [0x3, 'u8'],
      SignalState: [0x4, 'i32'],
      WaitListHead: [0x8, 'LIST_ENTRY'],
    },
  },
  KEVENT: { size: 0x10, origin: 'xp', fields: { Header: [0x0, 'DISPATCHER_HEADER'] } },
  KDPC: {
    size: 0x20,
    origin: 'xp',
    fields: {
      Type: [0x00, 'i16'],
      Number: [0x02, 'u8'],
      Importance: [0x03, 'u8'],
      DpcListEntry: [0x04, 'LIST_ENTRY'],
      DeferredRoutine: [0x0c, 'ptr'],
      DeferredContext: [0x10, 'ptr'],
      SystemArgument1: [0x14, 'ptr'],
      SystemArgument2: [0x18, 'ptr'],
      Lock: [0x1c, 'ptr'],
    },
  },
  KDEVICE_QUEUE: {
    size: 0x14,
    origin: 'xp',
    fields: { Type: [0x00, 'i16'], Size: [0x02, 'i16'], DeviceListHead: [0x04, 'LIST_ENTRY'], Lock: [0x0c, 'u32'], Busy: [0x10, 'u8'] },
  },
  KDEVICE_QUEUE_ENTRY: {
    size: 0x10,
    origin: 'xp',
    fields: { DeviceListEntry: [0x0, 'LIST_ENTRY'], SortKey: [0x8, 'u32'], Inserted: [0xc, 'u8'] },
  },

  // ---- APCs ------------------------------------------------------------------------------------
  KAPC_STATE: {
    size: 0x18,
    origin: 'xp',
    fields: {
      ApcListHead: [0x00, 'LIST_ENTRY', 2], // [0] = KernelMode, [1] = UserMode
      Process: [0x10, 'ptr'],
      KernelApcInProgress: [0x14, 'u8'],
      KernelApcPending: [0x15, 'u8'],
      UserApcPending: [0x16, 'u8'],
    },
  },
  // The x86 CONTEXT (winnt.h; its layout is fixed by the x86 ABI): what KiDeliverApc saves on the
  // user stack and NtContinue restores.
  CONTEXT: {
    size: 0x2cc,
    origin: 'nt',
    fields: {
      ContextFlags: [0x00, 'u32'],
      Dr0: [0x04, 'u32'],
      Dr1: [0x08, 'u32'],
      Dr2: [0x0c, 'u32'],
      Dr3: [0x10, 'u32'],
      Dr6: [0x14, 'u32'],
      Dr7: [0x18, 'u32'],
      FloatSave: [0x1c, 'bytes', 0x70],
      SegGs: [0x8c, 'u32'],
      SegFs: [0x90, 'u32'],
      SegEs: [0x94, 'u32'],
      SegDs: [0x98, 'u32'],
      Edi: [0x9c, 'u32'],
      Esi: [0xa0, 'u32'],
      Ebx: [0xa4, 'u32'],
      Edx: [0xa8, 'u32'],
      Ecx: [0xac, 'u32'],
      Eax: [0xb0, 'u32'],
      Ebp: [0xb4, 'u32'],
      Eip: [0xb8, 'u32'],
      SegCs: [0xbc, 'u32'],
      EFlags: [0xc0, 'u32'],
      Esp: [0xc4, 'u32'],
      SegSs: [0xc8, 'u32'],
      ExtendedRegisters: [0xcc, 'bytes', 0x200],
    },
  },
  // Structured exception handling (XP SP2/SP3 PDB layouts, Volatility's tables): the record the
  // dispatcher builds, and the registration record a frame links into fs:[0].
  EXCEPTION_RECORD: {
    size: 0x50,
    origin: 'xp',
    fields: {
      ExceptionCode: [0x00, 'u32'],
      ExceptionFlags: [0x04, 'u32'],
      ExceptionRecord: [0x08, 'ptr'],
      ExceptionAddress: [0x0c, 'ptr'],
      NumberParameters: [0x10, 'u32'],
      ExceptionInformation: [0x14, 'u32', 15],
    },
  },
  EXCEPTION_REGISTRATION_RECORD: { size: 0x8, origin: 'xp', fields: { Next: [0x0, 'ptr'], Handler: [0x4, 'ptr'] } },
  KAPC: {
    size: 0x30,
    origin: 'xp',
    fields: {
      Type: [0x00, 'i16'],
      Size: [0x02, 'i16'],
      Spare0: [0x04, 'u32'],
      Thread: [0x08, 'ptr'],
      ApcListEntry: [0x0c, 'LIST_ENTRY'],
      KernelRoutine: [0x14, 'ptr'],
      RundownRoutine: [0x18, 'ptr'],
      NormalRoutine: [0x1c, 'ptr'],
      NormalContext: [0x20, 'ptr'],
      SystemArgument1: [0x24, 'ptr'],
      SystemArgument2: [0x28, 'ptr'],
      ApcStateIndex: [0x2c, 'u8'],
      ApcMode: [0x2d, 'u8'],
      Inserted: [0x2e, 'u8'],
    },
  },

  // ---- the trap frame --------------------------------------------------------------------------
  KTRAP_FRAME: {
    size: 0x8c,
    origin: 'xp',
    note: 'during a system call the Edx slot holds the previous Thread->TrapFrame',
    fields: {
      DbgEbp: [0x00, 'u32'],
      DbgEip: [0x04, 'u32'],
      DbgArgMark: [0x08, 'u32'],
      DbgArgPointer: [0x0c, 'u32'],
      TempSegCs: [0x10, 'u32'],
      TempEsp: [0x14, 'u32'],
      Dr0: [0x18, 'u32'],
      Dr1: [0x1c, 'u32'],
      Dr2: [0x20, 'u32'],
      Dr3: [0x24, 'u32'],
      Dr6: [0x28, 'u32'],
      Dr7: [0x2c, 'u32'],
      SegGs: [0x30, 'u32'],
      SegEs: [0x34, 'u32'],
      SegDs: [0x38, 'u32'],
      Edx: [0x3c, 'u32'],
      Ecx: [0x40, 'u32'],
      Eax: [0x44, 'u32'],
      PreviousPreviousMode: [0x48, 'u32'],
      ExceptionList: [0x4c, 'ptr'],
      SegFs: [0x50, 'u32'],
      Edi: [0x54, 'u32'],
      Esi: [0x58, 'u32'],
      Ebx: [0x5c, 'u32'],
      Ebp: [0x60, 'u32'],
      ErrCode: [0x64, 'u32'],
      Eip: [0x68, 'u32'],
      SegCs: [0x6c, 'u32'],
      EFlags: [0x70, 'u32'],
      HardwareEsp: [0x74, 'u32'],
      HardwareSegSs: [0x78, 'u32'],
      V86Es: [0x7c, 'u32'],
      V86Ds: [0x80, 'u32'],
      V86Fs: [0x84, 'u32'],
      V86Gs: [0x88, 'u32'],
    },
  },

  // ---- threads ---------------------------------------------------------------------------------
  KTHREAD: {
    size: 0x1c0,
    origin: 'xp',
    fields: {
      Header: [0x000, 'DISPATCHER_HEADER'],
      MutantListHead: [0x010, 'LIST_ENTRY'],
      InitialStack: [0x018, 'ptr'],
      StackLimit: [0x01c, 'ptr'],
      Teb: [0x020, 'ptr'],
      TlsArray: [0x024, 'ptr'],
      KernelStack: [0x028, 'ptr'],
      DebugActive: [0x02c, 'u8'],
      State: [0x02d, 'u8'],
      Alerted: [0x02e, 'u8', 2], // [0] = KernelMode, [1] = UserMode
      Iopl: [0x030, 'u8'],
      NpxState: [0x031, 'u8'],
      Saturation: [0x032, 'i8'],
      Priority: [0x033, 'i8'],
      ApcState: [0x034, 'KAPC_STATE'],
      ContextSwitches: [0x04c, 'u32'],
      IdleSwapBlock: [0x050, 'u8'],
      Spare0: [0x051, 'u8', 3],
      WaitStatus: [0x054, 'i32'],
      WaitIrql: [0x058, 'u8'],
      WaitMode: [0x059, 'i8'],
      WaitNext: [0x05a, 'u8'],
      WaitReason: [0x05b, 'u8'],
      WaitBlockList: [0x05c, 'ptr'],
      SwapListEntry: [0x060, 'SINGLE_LIST_ENTRY'],
      WaitListEntry: [0x060, 'LIST_ENTRY'],
      WaitTime: [0x068, 'u32'],
      BasePriority: [0x06c, 'i8'],
      DecrementCount: [0x06d, 'u8'],
      PriorityDecrement: [0x06e, 'i8'],
      Quantum: [0x06f, 'i8'],
      WaitBlock: [0x070, 'bytes', 0x60], // KWAIT_BLOCK[4], 0x18 bytes each
      LegoData: [0x0d0, 'ptr'],
      KernelApcDisable: [0x0d4, 'u32'],
      UserAffinity: [0x0d8, 'u32'],
      SystemAffinityActive: [0x0dc, 'u8'],
      PowerState: [0x0dd, 'u8'],
      NpxIrql: [0x0de, 'u8'],
      InitialNode: [0x0df, 'u8'],
      ServiceTable: [0x0e0, 'ptr'],
      Queue: [0x0e4, 'ptr'],
      ApcQueueLock: [0x0e8, 'u32'],
      Timer: [0x0f0, 'bytes', 0x28], // KTIMER
      QueueListEntry: [0x118, 'LIST_ENTRY'],
      SoftAffinity: [0x120, 'u32'],
      Affinity: [0x124, 'u32'],
      Preempted: [0x128, 'u8'],
      ProcessReadyQueue: [0x129, 'u8'],
      KernelStackResident: [0x12a, 'u8'],
      NextProcessor: [0x12b, 'u8'],
      CallbackStack: [0x12c, 'ptr'],
      Win32Thread: [0x130, 'ptr'],
      TrapFrame: [0x134, 'ptr'],
      ApcStatePointer: [0x138, 'ptr', 2],
      PreviousMode: [0x140, 'i8'],
      EnableStackSwap: [0x141, 'u8'],
      LargeStack: [0x142, 'u8'],
      ResourceIndex: [0x143, 'u8'],
      KernelTime: [0x144, 'u32'],
      UserTime: [0x148, 'u32'],
      SavedApcState: [0x14c, 'KAPC_STATE'],
      Alertable: [0x164, 'u8'],
      ApcStateIndex: [0x165, 'u8'],
      ApcQueueable: [0x166, 'u8'],
      AutoAlignment: [0x167, 'u8'],
      StackBase: [0x168, 'ptr'],
      SuspendApc: [0x16c, 'KAPC'],
      SuspendSemaphore: [0x19c, 'bytes', 0x14], // KSEMAPHORE
      ThreadListEntry: [0x1b0, 'LIST_ENTRY'],
      FreezeCount: [0x1b8, 'i8'],
      SuspendCount: [0x1b9, 'i8'],
      IdealProcessor: [0x1ba, 'u8'],
      DisableBoost: [0x1bb, 'u8'],
    },
  },
  ETHREAD: {
    size: 0x258,
    origin: 'xp',
    subset: true,
    fields: {
      Tcb: [0x000, 'KTHREAD'],
      CreateTime: [0x1c0, 'u64'],
      ExitTime: [0x1c8, 'u64'],
      ExitStatus: [0x1d0, 'i32'],
      Cid: [0x1ec, 'CLIENT_ID'],
      IrpList: [0x210, 'LIST_ENTRY'],
      TopLevelIrp: [0x218, 'u32'],
      ThreadsProcess: [0x220, 'ptr'],
      StartAddress: [0x224, 'ptr'],
      Win32StartAddress: [0x228, 'ptr'],
      ThreadListEntry: [0x22c, 'LIST_ENTRY'],
      RundownProtect: [0x234, 'u32'], // EX_RUNDOWN_REF
      GrantedAccess: [0x244, 'u32'],
      CrossThreadFlags: [0x248, 'u32'],
      SameThreadPassiveFlags: [0x24c, 'u32'],
      SameThreadApcFlags: [0x250, 'u32'],
    },
  },

  // ---- processes -------------------------------------------------------------------------------
  KPROCESS: {
    size: 0x6c,
    origin: 'xp',
    fields: {
      Header: [0x00, 'DISPATCHER_HEADER'],
      ProfileListHead: [0x10, 'LIST_ENTRY'],
      DirectoryTableBase: [0x18, 'u32', 2],
      LdtDescriptor: [0x20, 'bytes', 8], // KGDTENTRY
      Int21Descriptor: [0x28, 'bytes', 8], // KIDTENTRY
      IopmOffset: [0x30, 'u16'],
      Iopl: [0x32, 'u8'],
      Unused: [0x33, 'u8'],
      ActiveProcessors: [0x34, 'u32'],
      KernelTime: [0x38, 'u32'],
      UserTime: [0x3c, 'u32'],
      ReadyListHead: [0x40, 'LIST_ENTRY'],
      SwapListEntry: [0x48, 'SINGLE_LIST_ENTRY'],
      VdmTrapcHandler: [0x4c, 'ptr'],
      ThreadListHead: [0x50, 'LIST_ENTRY'],
      ProcessLock: [0x58, 'u32'],
      Affinity: [0x5c, 'u32'],
      StackCount: [0x60, 'u16'],
      BasePriority: [0x62, 'i8'],
      ThreadQuantum: [0x63, 'i8'],
      AutoAlignment: [0x64, 'u8'],
      State: [0x65, 'u8'],
      ThreadSeed: [0x66, 'u8'],
      DisableBoost: [0x67, 'u8'],
      PowerState: [0x68, 'u8'],
      DisableQuantum: [0x69, 'u8'],
      IdealNode: [0x6a, 'u8'],
      ExecuteOptions: [0x6b, 'u8'], // also KEXECUTE_OPTIONS Flags (bit fields)
    },
  },
  EPROCESS: {
    size: 0x260,
    origin: 'xp',
    subset: true,
    fields: {
      Pcb: [0x000, 'KPROCESS'],
      ProcessLock: [0x06c, 'u32'], // EX_PUSH_LOCK
      CreateTime: [0x070, 'u64'],
      ExitTime: [0x078, 'u64'],
      RundownProtect: [0x080, 'u32'], // EX_RUNDOWN_REF
      UniqueProcessId: [0x084, 'ptr'],
      ActiveProcessLinks: [0x088, 'LIST_ENTRY'],
      DebugPort: [0x0bc, 'ptr'],
      ExceptionPort: [0x0c0, 'ptr'],
      ObjectTable: [0x0c4, 'ptr'],
      Token: [0x0c8, 'u32'], // EX_FAST_REF
      VadRoot: [0x11c, 'ptr'],
      VadHint: [0x120, 'ptr'],
      NumberOfPrivatePages: [0x128, 'u32'],
      Win32Process: [0x130, 'ptr'],
      SectionBaseAddress: [0x13c, 'ptr'],
      InheritedFromUniqueProcessId: [0x14c, 'ptr'],
      VdmObjects: [0x158, 'ptr'],
      ImageFileName: [0x174, 'u8', 16],
      ThreadListHead: [0x190, 'LIST_ENTRY'],
      ActiveThreads: [0x1a0, 'u32'],
      GrantedAccess: [0x1a4, 'u32'],
      Peb: [0x1b0, 'ptr'],
      Flags: [0x248, 'u32'],
      ExitStatus: [0x24c, 'i32'],
    },
  },

  // A process's virtual address descriptor (the short form: private memory), a node of the tree
  // at EPROCESS.VadRoot. u.VadFlags: CommitCharge bits 0-18, NoChange 22, Protection 24-28 (the MM_*
  // value), MemCommit 30, PrivateMemory 31 (Volatility's XP SP2 _MMVAD_FLAGS).
  MMVAD_SHORT: {
    size: 0x18,
    origin: 'xp',
    fields: {
      StartingVpn: [0x00, 'u32'],
      EndingVpn: [0x04, 'u32'],
      Parent: [0x08, 'ptr'],
      LeftChild: [0x0c, 'ptr'],
      RightChild: [0x10, 'ptr'],
      LongFlags: [0x14, 'u32'],
    },
  },

  // ---- user-mode thread and process blocks -----------------------------------------------------
  NT_TIB: {
    size: 0x1c,
    origin: 'xp',
    fields: {
      ExceptionList: [0x00, 'ptr'],
      StackBase: [0x04, 'ptr'],
      StackLimit: [0x08, 'ptr'],
      SubSystemTib: [0x0c, 'ptr'],
      FiberData: [0x10, 'ptr'],
      Version: [0x10, 'u32'],
      ArbitraryUserPointer: [0x14, 'ptr'],
      Self: [0x18, 'ptr'],
    },
  },
  TEB: {
    size: 0xfb8,
    origin: 'xp',
    subset: true,
    fields: {
      NtTib: [0x000, 'NT_TIB'],
      EnvironmentPointer: [0x01c, 'ptr'],
      ClientId: [0x020, 'CLIENT_ID'],
      ActiveRpcHandle: [0x028, 'ptr'],
      ThreadLocalStoragePointer: [0x02c, 'ptr'],
      ProcessEnvironmentBlock: [0x030, 'ptr'],
      LastErrorValue: [0x034, 'u32'],
      CountOfOwnedCriticalSections: [0x038, 'u32'],
      CsrClientThread: [0x03c, 'ptr'],
      Win32ThreadInfo: [0x040, 'ptr'],
      User32Reserved: [0x044, 'u32', 26],
      UserReserved: [0x0ac, 'u32', 5],
      WOW32Reserved: [0x0c0, 'ptr'],
      CurrentLocale: [0x0c4, 'u32'],
      FpSoftwareStatusRegister: [0x0c8, 'u32'],
      ExceptionCode: [0x1a4, 'i32'],
      GdiTebBatch: [0x1d4, 'bytes', 0x4e0], // GDI_TEB_BATCH
      RealClientId: [0x6b4, 'CLIENT_ID'],
      LastStatusValue: [0xbf4, 'u32'],
      StaticUnicodeString: [0xbf8, 'UNICODE_STRING'],
      StaticUnicodeBuffer: [0xc00, 'u16', 261],
      DeallocationStack: [0xe0c, 'ptr'],
      TlsSlots: [0xe10, 'ptr', 64],
      TlsLinks: [0xf10, 'LIST_ENTRY'],
      Vdm: [0xf18, 'ptr'],
      ReservedForNtRpc: [0xf1c, 'ptr'],
      HardErrorsAreDisabled: [0xf28, 'u32'],
      GdiBatchCount: [0xf70, 'u32'],
      TlsExpansionSlots: [0xf94, 'ptr'],
    },
  },
  PEB: {
    size: 0x210,
    origin: 'xp',
    subset: true,
    fields: {
      InheritedAddressSpace: [0x00, 'u8'],
      ReadImageFileExecOptions: [0x01, 'u8'],
      BeingDebugged: [0x02, 'u8'],
      SpareBool: [0x03, 'u8'],
      Mutant: [0x04, 'ptr'],
      ImageBaseAddress: [0x08, 'ptr'],
      Ldr: [0x0c, 'ptr'],
      ProcessParameters: [0x10, 'ptr'],
      SubSystemData: [0x14, 'ptr'],
      ProcessHeap: [0x18, 'ptr'],
      FastPebLock: [0x1c, 'ptr'],
      KernelCallbackTable: [0x2c, 'ptr'],
      NumberOfProcessors: [0x64, 'u32'],
      NtGlobalFlag: [0x68, 'u32'],
      OSMajorVersion: [0xa4, 'u32'],
      OSMinorVersion: [0xa8, 'u32'],
      OSBuildNumber: [0xac, 'u16'],
      OSCSDVersion: [0xae, 'u16'],
      OSPlatformId: [0xb0, 'u32'],
      SessionId: [0x1d4, 'u32'],
      CSDVersion: [0x1f0, 'UNICODE_STRING'],
    },
  },
  /** An 8-bit counted string (ANSI_STRING, OEM_STRING): what ntdll's debug printing carries. */
  STRING: {
    size: 0x8,
    origin: 'xp',
    fields: { Length: [0x0, 'u16'], MaximumLength: [0x2, 'u16'], Buffer: [0x4, 'ptr'] },
  },
  CURDIR: { size: 0xc, origin: 'xp', fields: { DosPath: [0x0, 'UNICODE_STRING'], Handle: [0x8, 'ptr'] } },
  /** PEB.ProcessParameters: the standard handles, current directory and command line of a process. */
  RTL_USER_PROCESS_PARAMETERS: {
    size: 0x290,
    origin: 'xp',
    subset: true,
    fields: {
      MaximumLength: [0x00, 'u32'],
      Length: [0x04, 'u32'],
      Flags: [0x08, 'u32'],
      DebugFlags: [0x0c, 'u32'],
      ConsoleHandle: [0x10, 'ptr'],
      ConsoleFlags: [0x14, 'u32'],
      StandardInput: [0x18, 'ptr'],
      StandardOutput: [0x1c, 'ptr'],
      StandardError: [0x20, 'ptr'],
      CurrentDirectory: [0x24, 'CURDIR'],
      DllPath: [0x30, 'UNICODE_STRING'],
      ImagePathName: [0x38, 'UNICODE_STRING'],
      CommandLine: [0x40, 'UNICODE_STRING'],
      Environment: [0x48, 'ptr'],
      WindowTitle: [0x70, 'UNICODE_STRING'],
      DesktopInfo: [0x78, 'UNICODE_STRING'],
      ShellInfo: [0x80, 'UNICODE_STRING'],
      RuntimeData: [0x88, 'UNICODE_STRING'],
    },
  },
  /** NtQueryVolumeInformationFile's FileFsDeviceInformation (ntddk.h). */
  FILE_FS_DEVICE_INFORMATION: { size: 0x8, origin: 'nt', fields: { DeviceType: [0x0, 'u32'], Characteristics: [0x4, 'u32'] } },

  // ---- the processor ---------------------------------------------------------------------------
  KPRCB: {
    size: 0xc50,
    origin: 'xp',
    subset: true,
    fields: {
      MinorVersion: [0x000, 'u16'],
      MajorVersion: [0x002, 'u16'],
      CurrentThread: [0x004, 'ptr'],
      NextThread: [0x008, 'ptr'],
      IdleThread: [0x00c, 'ptr'],
      Number: [0x010, 'i8'],
      SetMember: [0x014, 'u32'],
      CpuType: [0x018, 'i8'],
      CpuID: [0x019, 'i8'],
      CpuStep: [0x01a, 'u16'],
      ProcessorState: [0x01c, 'bytes', 0x320], // KPROCESSOR_STATE
      KernelReserved: [0x33c, 'u32', 16],
      HalReserved: [0x37c, 'u32', 16],
      NpxThread: [0x4a0, 'ptr'],
      KeSystemCalls: [0x518, 'u32'],
      DpcStack: [0x868, 'ptr'],
    },
  },
  KPCR: {
    size: 0xd70,
    origin: 'xp',
    note: 'at 0xFFDFF000 (fs = 0x30 in kernel mode); fs:[124h] = PrcbData.CurrentThread',
    fields: {
      NtTib: [0x000, 'NT_TIB'],
      SelfPcr: [0x01c, 'ptr'],
      Prcb: [0x020, 'ptr'],
      Irql: [0x024, 'u8'],
      IRR: [0x028, 'u32'],
      IrrActive: [0x02c, 'u32'],
      IDR: [0x030, 'u32'],
      KdVersionBlock: [0x034, 'ptr'],
      IDT: [0x038, 'ptr'],
      GDT: [0x03c, 'ptr'],
      TSS: [0x040, 'ptr'],
      MajorVersion: [0x044, 'u16'],
      MinorVersion: [0x046, 'u16'],
      SetMember: [0x048, 'u32'],
      StallScaleFactor: [0x04c, 'u32'],
      DebugActive: [0x050, 'u8'],
      Number: [0x051, 'u8'],
      Spare0: [0x052, 'u8'],
      SecondLevelCacheAssociativity: [0x053, 'u8'],
      VdmAlert: [0x054, 'u32'],
      KernelReserved: [0x058, 'u32', 14],
      SecondLevelCacheSize: [0x090, 'u32'],
      HalReserved: [0x094, 'u32', 16],
      InterruptMode: [0x0d4, 'u32'],
      Spare1: [0x0d8, 'u8'],
      KernelReserved2: [0x0dc, 'u32', 17],
      PrcbData: [0x120, 'KPRCB'],
    },
  },
  KTSS: {
    size: 0x20ac,
    origin: 'xp',
    fields: {
      Backlink: [0x00, 'u16'],
      Reserved0: [0x02, 'u16'],
      Esp0: [0x04, 'u32'],
      Ss0: [0x08, 'u16'],
      Reserved1: [0x0a, 'u16'],
      NotUsed1: [0x0c, 'u32', 4],
      CR3: [0x1c, 'u32'],
      Eip: [0x20, 'u32'],
      EFlags: [0x24, 'u32'],
      Eax: [0x28, 'u32'],
      Ecx: [0x2c, 'u32'],
      Edx: [0x30, 'u32'],
      Ebx: [0x34, 'u32'],
      Esp: [0x38, 'u32'],
      Ebp: [0x3c, 'u32'],
      Esi: [0x40, 'u32'],
      Edi: [0x44, 'u32'],
      Es: [0x48, 'u16'],
      Reserved2: [0x4a, 'u16'],
      Cs: [0x4c, 'u16'],
      Reserved3: [0x4e, 'u16'],
      Ss: [0x50, 'u16'],
      Reserved4: [0x52, 'u16'],
      Ds: [0x54, 'u16'],
      Reserved5: [0x56, 'u16'],
      Fs: [0x58, 'u16'],
      Reserved6: [0x5a, 'u16'],
      Gs: [0x5c, 'u16'],
      Reserved7: [0x5e, 'u16'],
      LDT: [0x60, 'u16'],
      Reserved8: [0x62, 'u16'],
      Flags: [0x64, 'u16'],
      IoMapBase: [0x66, 'u16'],
      IoMaps: [0x68, 'bytes', 0x2024], // KiIoAccessMap[1]
      IntDirectionMap: [0x208c, 'u8', 32],
    },
  },
  KSERVICE_TABLE_DESCRIPTOR: {
    size: 0x10,
    origin: 'nt',
    note: 'KeServiceDescriptorTable(Shadow) on XP is an array of 4; Number points at the argument-byte table',
    fields: { Base: [0x0, 'ptr'], Count: [0x4, 'ptr'], Limit: [0x8, 'u32'], Number: [0xc, 'ptr'] },
  },
  KUSER_SHARED_DATA: {
    size: 0x338,
    origin: 'xp',
    note: 'SP2/SP3 layout, except 0x2F8-0x31F which follows XP RTM: 32 bytes of SystemCall code at +0x300 (the SP1 model ntflow uses); Cookie is SP2',
    fields: {
      TickCountLow: [0x000, 'u32'],
      TickCountMultiplier: [0x004, 'u32'],
      InterruptTime: [0x008, 'KSYSTEM_TIME'],
      SystemTime: [0x014, 'KSYSTEM_TIME'],
      TimeZoneBias: [0x020, 'KSYSTEM_TIME'],
      ImageNumberLow: [0x02c, 'u16'],
      ImageNumberHigh: [0x02e, 'u16'],
      NtSystemRoot: [0x030, 'u16', 260],
      MaxStackTraceDepth: [0x238, 'u32'],
      CryptoExponent: [0x23c, 'u32'],
      TimeZoneId: [0x240, 'u32'],
      Reserved2: [0x244, 'u32', 8],
      NtProductType: [0x264, 'u32'],
      ProductTypeIsValid: [0x268, 'u8'],
      NtMajorVersion: [0x26c, 'u32'],
      NtMinorVersion: [0x270, 'u32'],
      ProcessorFeatures: [0x274, 'u8', 64],
      Reserved1: [0x2b4, 'u32'],
      Reserved3: [0x2b8, 'u32'],
      TimeSlip: [0x2bc, 'u32'],
      AlternativeArchitecture: [0x2c0, 'u32'],
      SystemExpirationDate: [0x2c8, 'u64'],
      SuiteMask: [0x2d0, 'u32'],
      KdDebuggerEnabled: [0x2d4, 'u8'],
      NXSupportPolicy: [0x2d5, 'u8'],
      ActiveConsoleId: [0x2d8, 'u32'],
      DismountCount: [0x2dc, 'u32'],
      ComPlusPackage: [0x2e0, 'u32'],
      LastSystemRITEventTickCount: [0x2e4, 'u32'],
      NumberOfPhysicalPages: [0x2e8, 'u32'],
      SafeBootMode: [0x2ec, 'u8'],
      TraceLogging: [0x2f0, 'u32'],
      Fill0: [0x2f8, 'u64'],
      SystemCall: [0x300, 'u8', 32],
      TickCount: [0x320, 'KSYSTEM_TIME'],
      TickCountQuad: [0x320, 'u64'],
      Cookie: [0x330, 'u32'],
    },
  },

  // ---- object manager --------------------------------------------------------------------------
  OBJECT_HEADER: {
    size: 0x20,
    origin: 'xp',
    note: 'the object body starts at +0x18 (Body); the PDB gives Body an 8-byte placeholder type',
    fields: {
      PointerCount: [0x00, 'i32'],
      HandleCount: [0x04, 'i32'],
      NextToFree: [0x04, 'ptr'],
      Type: [0x08, 'ptr'],
      NameInfoOffset: [0x0c, 'u8'],
      HandleInfoOffset: [0x0d, 'u8'],
      QuotaInfoOffset: [0x0e, 'u8'],
      Flags: [0x0f, 'u8'],
      ObjectCreateInfo: [0x10, 'ptr'],
      QuotaBlockCharged: [0x10, 'ptr'],
      SecurityDescriptor: [0x14, 'ptr'],
      Body: [0x18, 'bytes', 8],
    },
  },
  HANDLE_TABLE: {
    size: 0x44,
    origin: 'xp',
    fields: {
      TableCode: [0x00, 'u32'],
      QuotaProcess: [0x04, 'ptr'],
      UniqueProcessId: [0x08, 'ptr'],
      HandleTableLock: [0x0c, 'u32', 4], // EX_PUSH_LOCK[4]
      HandleTableList: [0x1c, 'LIST_ENTRY'],
      HandleContentionEvent: [0x24, 'u32'], // EX_PUSH_LOCK
      DebugInfo: [0x28, 'ptr'],
      ExtraInfoPages: [0x2c, 'i32'],
      FirstFree: [0x30, 'u32'],
      LastFree: [0x34, 'u32'],
      NextHandleNeedingPool: [0x38, 'u32'],
      HandleCount: [0x3c, 'i32'],
      Flags: [0x40, 'u32'], // bit 0 = StrictFIFO
    },
  },
  HANDLE_TABLE_ENTRY: {
    size: 0x8,
    origin: 'xp',
    fields: {
      Object: [0x0, 'ptr'],
      ObAttributes: [0x0, 'u32'],
      InfoTable: [0x0, 'ptr'],
      Value: [0x0, 'u32'],
      GrantedAccess: [0x4, 'u32'],
      GrantedAccessIndex: [0x4, 'u16'],
      NextFreeTableEntry: [0x4, 'i32'],
      CreatorBackTraceIndex: [0x6, 'u16'],
    },
  },

  // ---- I/O manager (XP offsets; not in the shared reference table, read from the same source) ---
  IRP_ASSOCIATED: {
    size: 0x4,
    origin: 'ntflow',
    note: "ntflow's name for the anonymous union IRP.AssociatedIrp",
    fields: { MasterIrp: [0x0, 'ptr'], IrpCount: [0x0, 'i32'], SystemBuffer: [0x0, 'ptr'] },
  },
  IRP_ASYNC_PARAMETERS: {
    size: 0x8,
    origin: 'ntflow',
    note: "ntflow's name for IRP.Overlay.AsynchronousParameters",
    fields: { UserApcRoutine: [0x0, 'ptr'], UserApcContext: [0x4, 'ptr'] },
  },
  IRP_OVERLAY: {
    size: 0x8,
    origin: 'ntflow',
    note: "ntflow's name for the anonymous union IRP.Overlay",
    fields: { AsynchronousParameters: [0x0, 'IRP_ASYNC_PARAMETERS'], AllocationSize: [0x0, 'u64'] },
  },
  IRP_TAIL_OVERLAY: {
    size: 0x28,
    origin: 'ntflow',
    note: "ntflow's name for IRP.Tail.Overlay",
    fields: {
      DeviceQueueEntry: [0x00, 'KDEVICE_QUEUE_ENTRY'],
      DriverContext: [0x00, 'ptr', 4],
      Thread: [0x10, 'ptr'],
      AuxiliaryBuffer: [0x14, 'ptr'],
      ListEntry: [0x18, 'LIST_ENTRY'],
      CurrentStackLocation: [0x20, 'ptr'],
      PacketType: [0x20, 'u32'],
      OriginalFileObject: [0x24, 'ptr'],
    },
  },
  IRP_TAIL: {
    size: 0x30,
    origin: 'ntflow',
    note: "ntflow's name for the anonymous union IRP.Tail",
    fields: { Overlay: [0x00, 'IRP_TAIL_OVERLAY'], Apc: [0x00, 'KAPC'], CompletionKey: [0x00, 'ptr'] },
  },
  IRP: {
    size: 0x70,
    origin: 'xp',
    note: 'the IO_STACK_LOCATIONs follow the IRP; Tail.Overlay.CurrentStackLocation points at the current one',
    fields: {
      Type: [0x00, 'i16'],
      Size: [0x02, 'u16'],
      MdlAddress: [0x04, 'ptr'],
      Flags: [0x08, 'u32'],
      AssociatedIrp: [0x0c, 'IRP_ASSOCIATED'],
      ThreadListEntry: [0x10, 'LIST_ENTRY'],
      IoStatus: [0x18, 'IO_STATUS_BLOCK'],
      RequestorMode: [0x20, 'i8'],
      PendingReturned: [0x21, 'u8'],
      StackCount: [0x22, 'i8'],
      CurrentLocation: [0x23, 'i8'],
      Cancel: [0x24, 'u8'],
      CancelIrql: [0x25, 'u8'],
      ApcEnvironment: [0x26, 'i8'],
      AllocationFlags: [0x27, 'u8'],
      UserIosb: [0x28, 'ptr'],
      UserEvent: [0x2c, 'ptr'],
      Overlay: [0x30, 'IRP_OVERLAY'],
      CancelRoutine: [0x38, 'ptr'],
      UserBuffer: [0x3c, 'ptr'],
      Tail: [0x40, 'IRP_TAIL'],
    },
  },
  IO_PARAMETERS_CREATE: {
    size: 0x10,
    origin: 'ntflow',
    note: "ntflow's name for IO_STACK_LOCATION.Parameters.Create",
    fields: {
      SecurityContext: [0x0, 'ptr'],
      Options: [0x4, 'u32'],
      FileAttributes: [0x8, 'u16'],
      ShareAccess: [0xa, 'u16'],
      EaLength: [0xc, 'u32'],
    },
  },
  IO_PARAMETERS_READ_WRITE: {
    size: 0x10,
    origin: 'ntflow',
    note: "ntflow's name for IO_STACK_LOCATION.Parameters.Read / .Write",
    fields: { Length: [0x0, 'u32'], Key: [0x4, 'u32'], ByteOffset: [0x8, 'u64'] },
  },
  IO_PARAMETERS_DEVICE_IO_CONTROL: {
    size: 0x10,
    origin: 'ntflow',
    note: "ntflow's name for IO_STACK_LOCATION.Parameters.DeviceIoControl",
    fields: {
      OutputBufferLength: [0x0, 'u32'],
      InputBufferLength: [0x4, 'u32'],
      IoControlCode: [0x8, 'u32'],
      Type3InputBuffer: [0xc, 'ptr'],
    },
  },
  IO_PARAMETERS_OTHERS: {
    size: 0x10,
    origin: 'ntflow',
    note: "ntflow's name for IO_STACK_LOCATION.Parameters.Others",
    fields: { Argument1: [0x0, 'ptr'], Argument2: [0x4, 'ptr'], Argument3: [0x8, 'ptr'], Argument4: [0xc, 'ptr'] },
  },
  IO_STACK_PARAMETERS: {
    size: 0x10,
    origin: 'ntflow',
    subset: true,
    note: "ntflow's name for the anonymous union IO_STACK_LOCATION.Parameters (the members ntflow uses)",
    fields: {
      Create: [0x0, 'IO_PARAMETERS_CREATE'],
      Read: [0x0, 'IO_PARAMETERS_READ_WRITE'],
      Write: [0x0, 'IO_PARAMETERS_READ_WRITE'],
      DeviceIoControl: [0x0, 'IO_PARAMETERS_DEVICE_IO_CONTROL'],
      Others: [0x0, 'IO_PARAMETERS_OTHERS'],
    },
  },
  IO_STACK_LOCATION: {
    size: 0x24,
    origin: 'xp',
    fields: {
      MajorFunction: [0x00, 'u8'],
      MinorFunction: [0x01, 'u8'],
      Flags: [0x02, 'u8'],
      Control: [0x03, 'u8'],
      Parameters: [0x04, 'IO_STACK_PARAMETERS'],
      DeviceObject: [0x14, 'ptr'],
      FileObject: [0x18, 'ptr'],
      CompletionRoutine: [0x1c, 'ptr'],
      Context: [0x20, 'ptr'],
    },
  },
  DEVICE_OBJECT: {
    size: 0xb8,
    origin: 'xp',
    fields: {
      Type: [0x00, 'i16'],
      Size: [0x02, 'u16'],
      ReferenceCount: [0x04, 'i32'],
      DriverObject: [0x08, 'ptr'],
      NextDevice: [0x0c, 'ptr'],
      AttachedDevice: [0x10, 'ptr'],
      CurrentIrp: [0x14, 'ptr'],
      Timer: [0x18, 'ptr'],
      Flags: [0x1c, 'u32'],
      Characteristics: [0x20, 'u32'],
      Vpb: [0x24, 'ptr'],
      DeviceExtension: [0x28, 'ptr'],
      DeviceType: [0x2c, 'u32'],
      StackSize: [0x30, 'i8'],
      Queue: [0x34, 'bytes', 0x28], // union { LIST_ENTRY ListEntry; WAIT_CONTEXT_BLOCK Wcb; }
      AlignmentRequirement: [0x5c, 'u32'],
      DeviceQueue: [0x60, 'KDEVICE_QUEUE'],
      Dpc: [0x74, 'KDPC'],
      ActiveThreadCount: [0x94, 'u32'],
      SecurityDescriptor: [0x98, 'ptr'],
      DeviceLock: [0x9c, 'KEVENT'],
      SectorSize: [0xac, 'u16'],
      Spare1: [0xae, 'u16'],
      DeviceObjectExtension: [0xb0, 'ptr'],
      Reserved: [0xb4, 'ptr'],
    },
  },
  DRIVER_EXTENSION: {
    size: 0x1c,
    origin: 'xp',
    fields: {
      DriverObject: [0x00, 'ptr'],
      AddDevice: [0x04, 'ptr'],
      Count: [0x08, 'u32'],
      ServiceKeyName: [0x0c, 'UNICODE_STRING'],
      ClientDriverExtension: [0x14, 'ptr'],
      FsFilterCallbacks: [0x18, 'ptr'],
    },
  },
  DRIVER_OBJECT: {
    size: 0xa8,
    origin: 'xp',
    fields: {
      Type: [0x00, 'i16'],
      Size: [0x02, 'i16'],
      DeviceObject: [0x04, 'ptr'],
      Flags: [0x08, 'u32'],
      DriverStart: [0x0c, 'ptr'],
      DriverSize: [0x10, 'u32'],
      DriverSection: [0x14, 'ptr'],
      DriverExtension: [0x18, 'ptr'],
      DriverName: [0x1c, 'UNICODE_STRING'],
      HardwareDatabase: [0x24, 'ptr'],
      FastIoDispatch: [0x28, 'ptr'],
      DriverInit: [0x2c, 'ptr'],
      DriverStartIo: [0x30, 'ptr'],
      DriverUnload: [0x34, 'ptr'],
      MajorFunction: [0x38, 'ptr', 28], // IRP_MJ_CREATE 0 … IRP_MJ_PNP 0x1B
    },
  },
  FILE_OBJECT: {
    size: 0x70,
    origin: 'xp',
    fields: {
      Type: [0x00, 'i16'],
      Size: [0x02, 'i16'],
      DeviceObject: [0x04, 'ptr'],
      Vpb: [0x08, 'ptr'],
      FsContext: [0x0c, 'ptr'],
      FsContext2: [0x10, 'ptr'],
      SectionObjectPointer: [0x14, 'ptr'],
      PrivateCacheMap: [0x18, 'ptr'],
      FinalStatus: [0x1c, 'i32'],
      RelatedFileObject: [0x20, 'ptr'],
      LockOperation: [0x24, 'u8'],
      DeletePending: [0x25, 'u8'],
      ReadAccess: [0x26, 'u8'],
      WriteAccess: [0x27, 'u8'],
      DeleteAccess: [0x28, 'u8'],
      SharedRead: [0x29, 'u8'],
      SharedWrite: [0x2a, 'u8'],
      SharedDelete: [0x2b, 'u8'],
      Flags: [0x2c, 'u32'],
      FileName: [0x30, 'UNICODE_STRING'],
      CurrentByteOffset: [0x38, 'u64'],
      Waiters: [0x40, 'u32'],
      Busy: [0x44, 'u32'],
      LastLock: [0x48, 'ptr'],
      Lock: [0x4c, 'KEVENT'],
      Event: [0x5c, 'KEVENT'],
      CompletionContext: [0x6c, 'ptr'],
    },
  },
} as const satisfies Record<string, RawStruct>;

// ---- types derived from the table -------------------------------------------------------------

type Layouts = typeof LAYOUTS;
/** Every structure described here, e.g. 'KTHREAD'. */
export type StructName = keyof Layouts;
type FieldsOf<S extends StructName> = Layouts[S]['fields'];
/** The direct fields of structure S, e.g. FieldName<'KTHREAD'> includes 'PreviousMode'. */
export type FieldName<S extends StructName> = keyof FieldsOf<S> & string;
type Depth = [never, 0, 1, 2, 3, 4, 5];
/**
 * A field of S, or a dotted path through nested (non-array) structures:
 * 'PreviousMode', 'ApcState.UserApcPending', 'PrcbData.CurrentThread', 'Tcb.ApcState.Process'.
 */
export type FieldPath<S extends StructName, D extends number = 5> = [D] extends [never]
  ? never
  : {
      [F in FieldName<S>]: FieldsOf<S>[F] extends readonly [number, infer T]
        ? T extends StructName
          ? F | `${F}.${FieldPath<T, Depth[D]>}`
          : F
        : F;
    }[FieldName<S>];

type ElementValue<T> = T extends StructName ? Decoded<T> : T extends 'u64' ? bigint : number;
type FieldValueOf<Spec> = Spec extends readonly [number, 'bytes', number]
  ? number[]
  : Spec extends readonly [number, infer T, number]
    ? ElementValue<T>[]
    : Spec extends readonly [number, infer T]
      ? ElementValue<T>
      : never;
/** The decoded form of structure S: scalars as numbers (u64 as bigint), arrays and 'bytes' as arrays. */
export type Decoded<S extends StructName> = { -readonly [F in FieldName<S>]: FieldValueOf<FieldsOf<S>[F]> };

/** Reads one byte of guest memory at a linear address. Must have no side effects (no A/D bits, no events). */
export type ByteReader = (addr: number) => number;
/** Writes one byte of guest memory at a linear address. */
export type ByteWriter = (addr: number, byte: number) => void;

// ---- the compiled form --------------------------------------------------------------------------

export type FieldKind = 'scalar' | 'struct' | 'bytes';
export interface FieldInfo {
  readonly name: string;
  readonly offset: number;
  /** 'u8' … 'u64', 'ptr', a structure name, or 'bytes' */
  readonly type: string;
  readonly kind: FieldKind;
  /** element count for arrays (undefined for a single element); byte count for 'bytes' */
  readonly count: number | undefined;
  /** size of one element (1 for 'bytes') */
  readonly elementSize: number;
  /** total size in bytes */
  readonly size: number;
}
export interface StructInfo {
  readonly name: StructName;
  readonly size: number;
  readonly origin: 'xp' | 'nt' | 'ntflow';
  readonly subset: boolean;
  readonly note: string | undefined;
  /** in offset order (ties in definition order) */
  readonly fields: readonly FieldInfo[];
}

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, ptr: 4, u64: 8 };
const isScalar = (t: string): t is Scalar => Object.hasOwn(SCALAR_SIZE, t);
const isStructName = (t: string): t is StructName => Object.hasOwn(LAYOUTS, t);
const hex = (n: number): string => '0x' + n.toString(16).toUpperCase();

function compile(): Record<StructName, StructInfo> {
  const out = {} as Record<StructName, StructInfo>;
  for (const name of Object.keys(LAYOUTS) as StructName[]) {
    const raw: RawStruct = LAYOUTS[name];
    const fields: FieldInfo[] = [];
    for (const [field, spec] of Object.entries(raw.fields)) {
      const [offset, type, count] = spec as readonly [number, string, number?];
      let kind: FieldKind;
      let elementSize: number;
      if (type === 'bytes') {
        if (count === undefined) throw new Error(`${name}.${field}: 'bytes' needs a byte count`);
        kind = 'bytes';
        elementSize = 1;
      } else if (isScalar(type)) {
        kind = 'scalar';
        elementSize = SCALAR_SIZE[type];
      } else if (isStructName(type)) {
        kind = 'struct';
        elementSize = LAYOUTS[type].size;
      } else {
        throw new Error(`${name}.${field}: unknown type '${type}'`);
      }
      const size = elementSize * (count ?? 1);
      if (offset < 0 || offset + size > raw.size) {
        throw new Error(`${name}.${field}: [${hex(offset)}, ${hex(offset + size)}) lies outside the structure (${hex(raw.size)} bytes)`);
      }
      fields.push({ name: field, offset, type, kind, count, elementSize, size });
    }
    fields.sort((a, b) => a.offset - b.offset);
    out[name] = { name, size: raw.size, origin: raw.origin, subset: raw.subset ?? false, note: raw.note, fields };
  }
  return out;
}

/** Every structure, compiled: sizes, fields in offset order, their kinds and sizes. */
export const STRUCTS: Readonly<Record<StructName, StructInfo>> = compile();
/** Structure names in definition order. */
export const STRUCT_NAMES: readonly StructName[] = Object.keys(LAYOUTS) as StructName[];

function structInfo(struct: string): StructInfo {
  if (!isStructName(struct)) throw new Error(`unknown structure '${struct}'${suggest(struct, STRUCT_NAMES)}`);
  return STRUCTS[struct];
}

function suggest(name: string, candidates: readonly string[]): string {
  const best = nearestName(name, candidates, { ignoreCase: true });
  return best !== undefined ? `; did you mean '${best}'?` : '';
}

interface Resolved {
  offset: number;
  field: FieldInfo;
}

const pathCache = new Map<string, Resolved>();

/** Resolves 'A.B.C' in `struct`; throws an error naming the structure and the bad field. */
function resolve(struct: string, path: string): Resolved {
  const key = struct + ':' + path;
  const cached = pathCache.get(key);
  if (cached) return cached;
  let info = structInfo(struct);
  let offset = 0;
  let field: FieldInfo | undefined;
  const parts = path.split('.');
  parts.forEach((part, i) => {
    if (i > 0) {
      if (field!.kind !== 'struct' || field!.count !== undefined) {
        throw new Error(`${struct}.${parts.slice(0, i).join('.')} is not a nested structure; it has no field '${part}'`);
      }
      info = STRUCTS[field!.type as StructName];
    }
    field = info.fields.find((f) => f.name === part);
    if (!field) {
      throw new Error(`${info.name} has no field '${part}'${suggest(part, info.fields.map((f) => f.name))}`);
    }
    offset += field.offset;
  });
  const resolved = { offset, field: field! };
  pathCache.set(key, resolved);
  return resolved;
}

// ---- offsets and sizes --------------------------------------------------------------------------

/** Byte offset of a field (or dotted path) in a structure: offsetOf('KTHREAD', 'PreviousMode') = 0x140. */
export function offsetOf<S extends StructName>(struct: S, path: FieldPath<S>): number {
  return resolve(struct, path).offset;
}

/** Size of a structure in bytes: sizeOf('KTRAP_FRAME') = 0x8C. */
export function sizeOf(struct: StructName): number {
  return structInfo(struct).size;
}

/** Size in bytes of a field (the whole array for an array field). */
export function fieldSize<S extends StructName>(struct: S, path: FieldPath<S>): number {
  return resolve(struct, path).field.size;
}

/** The compiled description of a field (type, kind, element count and size) and its offset. */
export function fieldInfo<S extends StructName>(struct: S, path: FieldPath<S>): FieldInfo & { readonly absoluteOffset: number } {
  const { offset, field } = resolve(struct, path);
  return { ...field, absoluteOffset: offset };
}

/** Offset of element `index` of an array field: elementOffset('KTHREAD', 'Alerted', 1) = 0x2F. */
export function elementOffset<S extends StructName>(struct: S, path: FieldPath<S>, index: number): number {
  const { offset, field } = resolve(struct, path);
  const count = field.count ?? 1;
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new Error(`${struct}.${path}: index ${index} is outside [0, ${count})`);
  }
  return offset + index * field.elementSize;
}

/** Offsets by dotted path (nested structures flattened), for one structure. */
export function flatOffsets(struct: StructName): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (info: StructInfo, prefix: string, base: number): void => {
    for (const f of info.fields) {
      const path = prefix + f.name;
      out.set(path, base + f.offset);
      if (f.kind === 'struct' && f.count === undefined) walk(STRUCTS[f.type as StructName], path + '.', base + f.offset);
    }
  };
  walk(structInfo(struct), '', 0);
  return out;
}

/**
 * NASM `equ` lines for the assembler: `<STRUCT>_LENGTH equ <size>` and `<STRUCT>_<Field>[_<Sub>…]
 * equ <offset>` for every field, nested (non-array) structures flattened:
 *   KTHREAD_PreviousMode equ 0x140
 *   KTHREAD_ApcState_UserApcPending equ 0x4A
 *   KTRAP_FRAME_LENGTH equ 0x8C
 * `structs` limits the output to some structures (default: all, in definition order).
 */
export function offsetsAsm(structs: readonly StructName[] = STRUCT_NAMES): string {
  const lines = ['; Structure offsets of the guest (Windows XP x86), generated by core/guest/structs.ts.', '; Do not edit: change the description there.'];
  const seen = new Map<string, string>();
  const emit = (symbol: string, value: number, what: string): void => {
    const earlier = seen.get(symbol);
    if (earlier !== undefined) throw new Error(`offsetsAsm: '${symbol}' would name both ${earlier} and ${what}`);
    seen.set(symbol, what);
    lines.push(`${symbol} equ ${hex(value)}`);
  };
  for (const name of structs) {
    const info = structInfo(name);
    lines.push('', `; ${name}${info.subset ? ' (the fields ntflow uses)' : ''}${info.note ? ' - ' + info.note : ''}`);
    emit(`${name}_LENGTH`, info.size, `the size of ${name}`);
    for (const [path, offset] of flatOffsets(name)) emit(`${name}_${path.replace(/\./g, '_')}`, offset, `${name}.${path}`);
  }
  return lines.join('\n') + '\n';
}

// ---- decoders -----------------------------------------------------------------------------------

function readScalar(type: Scalar, read: ByteReader, addr: number): number | bigint {
  const byte = (i: number): number => read((addr + i) >>> 0) & 0xff;
  switch (type) {
    case 'u8':
      return byte(0);
    case 'i8':
      return (byte(0) << 24) >> 24;
    case 'u16':
      return byte(0) | (byte(1) << 8);
    case 'i16':
      return ((byte(0) | (byte(1) << 8)) << 16) >> 16;
    case 'u32':
    case 'ptr':
      return (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24)) >>> 0;
    case 'i32':
      return byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24);
    case 'u64': {
      const lo = (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24)) >>> 0;
      const hi = (byte(4) | (byte(5) << 8) | (byte(6) << 16) | (byte(7) << 24)) >>> 0;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
  }
}

type AnyValue = number | bigint | number[] | AnyValue[] | { [field: string]: AnyValue };

function readElement(field: FieldInfo, read: ByteReader, addr: number): AnyValue {
  return field.kind === 'struct' ? decodeStruct(STRUCTS[field.type as StructName], read, addr) : readScalar(field.type as Scalar, read, addr);
}

function readFieldAt(field: FieldInfo, read: ByteReader, addr: number): AnyValue {
  if (field.kind === 'bytes') return Array.from({ length: field.size }, (_, i) => read((addr + i) >>> 0) & 0xff);
  if (field.count === undefined) return readElement(field, read, addr);
  return Array.from({ length: field.count }, (_, i) => readElement(field, read, (addr + i * field.elementSize) >>> 0)) as AnyValue;
}

function decodeStruct(info: StructInfo, read: ByteReader, base: number): { [field: string]: AnyValue } {
  const out: { [field: string]: AnyValue } = {};
  for (const f of info.fields) out[f.name] = readFieldAt(f, read, (base + f.offset) >>> 0);
  return out;
}

/** Decodes a whole structure at linear address `base` through a side-effect-free byte reader. */
export function read<S extends StructName>(struct: S, reader: ByteReader, base: number): Decoded<S> {
  return decodeStruct(structInfo(struct), reader, base >>> 0) as Decoded<S>;
}

/** Decodes one field (or dotted path) of the structure at `base`. */
export function readField<S extends StructName>(struct: S, path: FieldPath<S>, reader: ByteReader, base: number): AnyValue {
  const { offset, field } = resolve(struct, path);
  return readFieldAt(field, reader, (base + offset) >>> 0);
}

/** Reads a scalar field of at most 4 bytes as a number (signed types sign-extended); throws for anything else. */
export function readNumber<S extends StructName>(struct: S, path: FieldPath<S>, reader: ByteReader, base: number): number {
  const { offset, field } = resolve(struct, path);
  if (field.kind !== 'scalar' || field.count !== undefined || field.type === 'u64') {
    throw new Error(`${struct}.${path} is not a scalar of at most 4 bytes; use readField`);
  }
  return readScalar(field.type as Scalar, reader, (base + offset) >>> 0) as number;
}

/** Writes a scalar field (little-endian) through a byte writer; throws for arrays, structures and 'bytes'. */
export function writeField<S extends StructName>(struct: S, path: FieldPath<S>, writer: ByteWriter, base: number, value: number | bigint): void {
  const { offset, field } = resolve(struct, path);
  if (field.kind !== 'scalar' || field.count !== undefined) throw new Error(`${struct}.${path} is not a scalar field`);
  let v = BigInt.asUintN(field.size * 8, BigInt(value));
  for (let i = 0; i < field.size; i++) {
    writer((base + offset + i) >>> 0, Number(v & 0xffn));
    v >>= 8n;
  }
}
