// The failure-cause programs: one guest program (and its driver, where the failure needs one) per
// `cause` of the findings projection's failure-cause kind. Each program fails for exactly that
// cause, by the guest's own rules (probes, handle tables, PreviousMode, the dispatcher's limit
// check, a service's exception handler) — nothing is scripted. test/failure-programs.test.ts
// records each one and checks the table below against the trace.
//
// Paths are relative to this folder (test/programs/findings/). Every program exits with the
// failing call's NTSTATUS (handle-system-thread: the status the driver saw in its work item).

/** What a trace row must hold: the table it is in and some of its columns (by SQL column name). */
export interface TraceRow {
  /** A trace table: probes, handle_lookups, exception_dispatches, ssdt_lookups, or syscalls. */
  table: 'probes' | 'handle_lookups' | 'exception_dispatches' | 'ssdt_lookups' | 'syscalls';
  /** Column values the row has (exception_dispatches.parameters is its JSON text). */
  fields: Record<string, string | number>;
  /** For a context row: the name of the system call (syscalls.name) it happened in. */
  inCall?: string;
}

/** Another failing call the program cannot avoid making (nested-call's inner call). */
export interface OtherFailure {
  service: string;
  status: number;
  entry: 'sysenter' | 'int2e' | 'zw-kernel' | 'nt-direct';
  previousMode: 'UserMode' | 'KernelMode';
  /** Its parent (syscalls.parent_id) is the case's failing call. */
  childOfFailing: boolean;
  /** The cause this call fails for, by the same table's vocabulary. */
  cause: string;
  note: string;
}

export interface FailureCase {
  cause: string;
  /** The program (.asm), relative to test/programs/findings/. */
  program: string;
  /** Drivers (.asm) passed with --driver, relative to test/programs/findings/. */
  drivers: string[];
  cpu: 'sysenter' | 'int2e';
  /** syscalls.name of the failing call (the Nt name, also for a Zw call); null when the dispatcher rejected the number. */
  service: string | null;
  /** The NTSTATUS the failing call returns (unsigned). */
  status: number;
  note: string;
  /** How the failing call was made: syscalls.entry, .previous_mode, .process. */
  entry: 'sysenter' | 'int2e' | 'zw-kernel' | 'nt-direct';
  previousMode: 'UserMode' | 'KernelMode';
  process: string;
  /**
   * The decisive event: the one row of its table, inside the failing call (between its enter and
   * exit seq, on its thread, outside its child calls), that shows the cause — and the only failing
   * probe / handle lookup / exception dispatch / out-of-range SSDT lookup there. For nested-call it
   * is the failing child call (syscalls, parent_id = the failing call's id).
   */
  evidence: TraceRow;
  /** Earlier rows (before the failing call's enter_seq) a rule may need, e.g. the NtClose that freed the handle. */
  context: TraceRow[];
  /** Other failing calls in the trace, exactly (all others succeed or, as NtTerminateProcess, never return). */
  alsoFailing: OtherFailure[];
}

export const STATUS_DATATYPE_MISALIGNMENT = 0x80000002;
export const STATUS_ACCESS_VIOLATION = 0xc0000005;
export const STATUS_INVALID_HANDLE = 0xc0000008;
export const STATUS_INVALID_SYSTEM_SERVICE = 0xc000001c;
export const STATUS_ACCESS_DENIED = 0xc0000022;
export const STATUS_OBJECT_TYPE_MISMATCH = 0xc0000024;

const userCall = { entry: 'sysenter', previousMode: 'UserMode' } as const;

export const FAILURE_CASES: FailureCase[] = [
  {
    cause: 'probe-kernel-address',
    program: 'probe-kernel-address.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_ACCESS_VIOLATION,
    note: 'NtReadFile(good handle, Buffer = 0x80500000, Length 64) from UserMode: the handle lookup succeeds, the IO_STATUS_BLOCK probe passes, ProbeForWrite(0x80500000, 64, 1) fails its range check (last byte >= MmUserProbeAddress 0x7FFF0000) without touching memory.',
    ...userCall,
    process: 'probe-kernel-address.exe',
    evidence: { table: 'probes', fields: { kind: 'write', address: 0x80500000, length: 64, alignment: 1, status: STATUS_ACCESS_VIOLATION } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'probe-misaligned',
    program: 'probe-misaligned.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtCreateFile',
    status: STATUS_DATATYPE_MISALIGNMENT,
    note: 'NtCreateFile with ObjectAttributes at 4n+2 from UserMode: the FileHandle and IO_STATUS_BLOCK probes (no alignment) pass; the object manager captures OBJECT_ATTRIBUTES with ProbeForRead(oa, 0x18, 4), which fails on alignment. 0x80000002 is a warning-class status: not NT_SUCCESS, yet below 0xC0000000, so `--named failures` and the record summary ("none failed") do not count it.',
    ...userCall,
    process: 'probe-misaligned.exe',
    evidence: { table: 'probes', fields: { kind: 'read', address: 0x401066, length: 0x18, alignment: 4, status: STATUS_DATATYPE_MISALIGNMENT } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'probe-unmapped',
    program: 'probe-unmapped.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_ACCESS_VIOLATION,
    note: 'NtReadFile(good handle, Buffer = 0x10000000, Length 64) from UserMode: the range check passes (below 0x7FFF0000), ProbeForWrite then touches the buffer and the read of its first byte faults (no page there). The probe row alone does not tell this from probe-read-only: both are a write probe of a user address with STATUS_ACCESS_VIOLATION; the page state (not present) is not in the event.',
    ...userCall,
    process: 'probe-unmapped.exe',
    evidence: { table: 'probes', fields: { kind: 'write', address: 0x10000000, length: 64, alignment: 1, status: STATUS_ACCESS_VIOLATION } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'probe-read-only',
    program: 'probe-read-only.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_ACCESS_VIOLATION,
    note: 'The program allocates a page at 0x10000 (PAGE_READWRITE), makes it PAGE_READONLY with NtProtectVirtualMemory, then NtReadFile(good handle, Buffer = 0x10000, 64) from UserMode: the range check passes, ProbeForWrite reads a byte of the page (fine) and writes it back, which faults (CR0.WP, read-only PTE). Same probe row shape as probe-unmapped; what differs is the page: present and read-only (the earlier NtProtectVirtualMemory says so).',
    ...userCall,
    process: 'probe-read-only.exe',
    evidence: { table: 'probes', fields: { kind: 'write', address: 0x10000, length: 64, alignment: 1, status: STATUS_ACCESS_VIOLATION } },
    context: [
      { table: 'syscalls', fields: { name: 'NtAllocateVirtualMemory', status: 0 } },
      { table: 'syscalls', fields: { name: 'NtProtectVirtualMemory', status: 0 } },
    ],
    alsoFailing: [],
  },
  {
    cause: 'handle-kernel-from-user',
    program: 'handle-kernel-from-user.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_INVALID_HANDLE,
    note: 'NtReadFile(0x80000004, …) from UserMode: a bit-31 handle is a kernel handle only for KernelMode; for UserMode ObReferenceObjectByHandle fails at once and searches no table (handle_table none).',
    ...userCall,
    process: 'handle-kernel-from-user.exe',
    evidence: { table: 'handle_lookups', fields: { handle: 0x80000004, handle_table: 'none', previous_mode: 'UserMode', status: STATUS_INVALID_HANDLE } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'handle-closed',
    program: 'handle-closed.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_INVALID_HANDLE,
    note: 'NtCreateFile gives handle 4, NtClose(4) succeeds (its lookup finds the File), NtReadFile(4) from UserMode finds the slot free in the process table. What tells it from handle-never-opened is the earlier successful NtClose lookup of the same value in the same table (and no later create reusing it).',
    ...userCall,
    process: 'handle-closed.exe',
    evidence: { table: 'handle_lookups', fields: { handle: 4, handle_table: 'process', previous_mode: 'UserMode', status: STATUS_INVALID_HANDLE } },
    context: [{ table: 'handle_lookups', inCall: 'NtClose', fields: { handle: 4, handle_table: 'process', previous_mode: 'UserMode', status: 0, object_type: 'File' } }],
    alsoFailing: [],
  },
  {
    cause: 'handle-never-opened',
    program: 'handle-never-opened.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_INVALID_HANDLE,
    note: 'NtReadFile(0x1234, …) from UserMode in a process that opened nothing: looked up in the process table (0x1234 is past its 512 entries), not found. No earlier lookup, create or close of 0x1234.',
    ...userCall,
    process: 'handle-never-opened.exe',
    evidence: { table: 'handle_lookups', fields: { handle: 0x1234, handle_table: 'process', previous_mode: 'UserMode', status: STATUS_INVALID_HANDLE } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'handle-system-thread',
    program: 'handle-system-thread.asm',
    drivers: ['handle-system-thread-driver.asm'],
    cpu: 'sysenter',
    service: 'NtWriteFile',
    status: STATUS_INVALID_HANDLE,
    note: "The driver, serving the program's IOCTL in the program's thread, ZwCreateFile's a log file without OBJ_KERNEL_HANDLE (handle 8 lands in the program's table) and ZwWriteFile's through it (succeeds: lookup of 8 in table process, KernelMode). Its work item, on the System worker thread (process System), ZwWriteFile's through 8 again: KernelMode, no bit 31, so the current process's table is searched — System's, which is the kernel handle table — and 8 names nothing there. The failing call has no parent (its thread is the System thread); the program's NtDelayExecution is where the work item ran.",
    entry: 'zw-kernel',
    previousMode: 'KernelMode',
    process: 'System',
    evidence: { table: 'handle_lookups', fields: { handle: 8, handle_table: 'kernel', previous_mode: 'KernelMode', status: STATUS_INVALID_HANDLE } },
    context: [
      { table: 'handle_lookups', inCall: 'NtWriteFile', fields: { handle: 8, handle_table: 'process', previous_mode: 'KernelMode', status: 0, object_type: 'File' } },
    ],
    alsoFailing: [],
  },
  {
    cause: 'handle-type-mismatch',
    program: 'handle-type-mismatch.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtAllocateVirtualMemory',
    status: STATUS_OBJECT_TYPE_MISMATCH,
    note: "NtAllocateVirtualMemory(ProcessHandle = a file handle 4, …) from UserMode: the probes of BaseAddress and RegionSize pass; ObReferenceObjectByHandle(4, PROCESS_VM_OPERATION, PsProcessType) finds a File. The failed lookup's object_type is NULL (the event names no object on failure); the object's type is on the handle's earlier/later successful lookups (NtClose's: File).",
    ...userCall,
    process: 'handle-type-mismatch.exe',
    evidence: { table: 'handle_lookups', fields: { handle: 4, handle_table: 'process', previous_mode: 'UserMode', status: STATUS_OBJECT_TYPE_MISMATCH } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'handle-access-denied',
    program: 'handle-access-denied.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtReadFile',
    status: STATUS_ACCESS_DENIED,
    note: 'The file is opened with GENERIC_WRITE | SYNCHRONIZE (no FILE_READ_DATA); NtReadFile from UserMode asks ObReferenceObjectByHandle for FILE_READ_DATA, which the handle was not granted. (NtWriteFile on a read-only handle also gives STATUS_ACCESS_DENIED, but from a check after a successful lookup that asked for no access, which no event shows; hence the read direction.)',
    ...userCall,
    process: 'handle-access-denied.exe',
    evidence: { table: 'handle_lookups', fields: { handle: 4, handle_table: 'process', previous_mode: 'UserMode', status: STATUS_ACCESS_DENIED } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'service-limit',
    program: 'service-limit.asm',
    drivers: [],
    cpu: 'int2e',
    service: null,
    status: STATUS_INVALID_SYSTEM_SERVICE,
    note: 'EAX = 0x11C through SharedUserData+0x300 (KiIntSystemCall: INT 2Eh on this CPU): table 0, index 0x11C = KiServiceLimit (284); the limit check fails, no routine runs. syscalls.name is NULL, service_number 0x11C.',
    entry: 'int2e',
    previousMode: 'UserMode',
    process: 'service-limit.exe',
    evidence: { table: 'ssdt_lookups', fields: { service_number: 0x11c, table_index: 0, service_index: 0x11c, service_limit: 284, in_range: 0 } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'page-fault',
    program: 'page-fault.asm',
    drivers: [],
    cpu: 'sysenter',
    service: 'NtWriteFile',
    status: STATUS_ACCESS_VIOLATION,
    note: "One page allocated at 0x10000; NtWriteFile(good write handle, Buffer = 0x10F00, Length 0x200) from UserMode: ProbeForRead(0x10F00, 0x200, 1) only checks the range and passes (probe status 0); the file system's copy of the caller's bytes faults at 0x11000 (not present), and the service's handler returns STATUS_ACCESS_VIOLATION: exception-dispatch with handler 'service', KernelMode, parameters [0 = read, 0x11000].",
    ...userCall,
    process: 'page-fault.exe',
    evidence: { table: 'exception_dispatches', fields: { code: STATUS_ACCESS_VIOLATION, handler: 'service', previous_mode: 'KernelMode', first_chance: 1, parameters: '[0,69632]' } },
    context: [],
    alsoFailing: [],
  },
  {
    cause: 'nested-call',
    program: 'nested-call.asm',
    drivers: ['nested-call-driver.asm'],
    cpu: 'sysenter',
    service: 'NtDeviceIoControlFile',
    status: STATUS_INVALID_HANDLE,
    note: "The program's NtDeviceIoControlFile is good in every argument (its own lookup of handle 4 succeeds, probes pass); the driver's dispatch routine calls ZwReadFile on its never-opened backing handle (0) and completes the program's IRP with that call's status, which is the program's call's status. The IRP's completion (irps, phase complete, IRP_MJ_DEVICE_CONTROL) carries 0xC0000008 too.",
    ...userCall,
    process: 'nested-call.exe',
    evidence: { table: 'syscalls', fields: { name: 'NtReadFile', entry: 'zw-kernel', previous_mode: 'KernelMode', status: STATUS_INVALID_HANDLE } },
    context: [],
    alsoFailing: [
      {
        service: 'NtReadFile',
        status: STATUS_INVALID_HANDLE,
        entry: 'zw-kernel',
        previousMode: 'KernelMode',
        childOfFailing: true,
        cause: 'handle-never-opened',
        note: "The driver's ZwReadFile(0, …) in the program's thread: handle 0 looked up in the program's process table (KernelMode, handle_table process): slot 0 is never used.",
      },
    ],
  },
];
