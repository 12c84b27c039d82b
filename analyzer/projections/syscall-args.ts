// syscall_args: the arguments of the calls whose routine ran (service-enter carries them), named by
// the service's prototype and decoded from what the log itself says — handle lookups made by the
// call, flags and enumerations by their names. What lives in guest memory behind a pointer (the
// file name in OBJECT_ATTRIBUTES, a buffer's bytes) is not decoded here: `decoded` is NULL for a
// non-NULL pointer (time travel — `ntflow state --at SEQ --mem` — shows that memory).
import { mergeMap, from, type OperatorFunction } from 'rxjs';
import { statusName } from '../../core/index.js';
import type { SyscallRecord } from './syscalls.js';
import type { Projection, ProjectionTable } from './table.js';

export const SYSCALL_ARGS_TABLE: ProjectionTable = {
  name: 'syscall_args',
  comment: "the arguments of each call whose Nt routine ran (syscalls rows with a service-enter), by the service's prototype, for the services the guest implements",
  columns: [
    { name: 'syscall_id', type: 'INTEGER', notNull: true, comment: 'the call (syscalls.id)' },
    { name: 'position', type: 'INTEGER', notNull: true, comment: 'argument number, 0 for the first (as in service_enters.args)' },
    { name: 'name', type: 'TEXT', notNull: true, comment: "the prototype's parameter name (FileHandle, DesiredAccess, ObjectAttributes, …)" },
    { name: 'value', type: 'INTEGER', notNull: true, comment: 'the 32-bit value passed, unsigned' },
    {
      name: 'decoded',
      type: 'TEXT',
      comment:
        "what the value means, from the log alone: for a handle the object type and table of this call's handle lookup ('File (process table)', 'STATUS_INVALID_HANDLE (kernel table)', 'NtCurrentProcess()'); flag and enumeration names ('GENERIC_READ | SYNCHRONIZE', 'FILE_OPEN', 'PAGE_READONLY'); decimal for lengths; 'NULL' for a null pointer; NULL for a non-NULL pointer (its memory is not decoded)",
    },
  ],
  key: ['syscall_id', 'position'],
};

export const SYSCALL_ARGS: Projection = { name: 'syscall_args', version: 1, table: SYSCALL_ARGS_TABLE };

type Kind = 'handle' | 'ptr' | 'ulong' | 'access' | 'share' | 'disposition' | 'options' | 'attributes' | 'protect' | 'alloc' | 'ioctl' | 'bool' | 'status';

const IO: [string, Kind][] = [
  ['FileHandle', 'handle'],
  ['Event', 'handle'],
  ['ApcRoutine', 'ptr'],
  ['ApcContext', 'ptr'],
  ['IoStatusBlock', 'ptr'],
];

/** The prototypes of the services the guest implements (parameter names as in the DDK/ntinternals). */
const PROTOTYPES: Record<string, [string, Kind][]> = {
  NtCreateFile: [
    ['FileHandle', 'ptr'], ['DesiredAccess', 'access'], ['ObjectAttributes', 'ptr'], ['IoStatusBlock', 'ptr'], ['AllocationSize', 'ptr'],
    ['FileAttributes', 'attributes'], ['ShareAccess', 'share'], ['CreateDisposition', 'disposition'], ['CreateOptions', 'options'], ['EaBuffer', 'ptr'], ['EaLength', 'ulong'],
  ],
  NtOpenFile: [['FileHandle', 'ptr'], ['DesiredAccess', 'access'], ['ObjectAttributes', 'ptr'], ['IoStatusBlock', 'ptr'], ['ShareAccess', 'share'], ['OpenOptions', 'options']],
  NtReadFile: [...IO, ['Buffer', 'ptr'], ['Length', 'ulong'], ['ByteOffset', 'ptr'], ['Key', 'ulong']],
  NtWriteFile: [...IO, ['Buffer', 'ptr'], ['Length', 'ulong'], ['ByteOffset', 'ptr'], ['Key', 'ulong']],
  NtDeviceIoControlFile: [...IO, ['IoControlCode', 'ioctl'], ['InputBuffer', 'ptr'], ['InputBufferLength', 'ulong'], ['OutputBuffer', 'ptr'], ['OutputBufferLength', 'ulong']],
  NtClose: [['Handle', 'handle']],
  NtProtectVirtualMemory: [['ProcessHandle', 'handle'], ['BaseAddress', 'ptr'], ['NumberOfBytesToProtect', 'ptr'], ['NewAccessProtection', 'protect'], ['OldAccessProtection', 'ptr']],
  NtAllocateVirtualMemory: [['ProcessHandle', 'handle'], ['BaseAddress', 'ptr'], ['ZeroBits', 'ulong'], ['RegionSize', 'ptr'], ['AllocationType', 'alloc'], ['Protect', 'protect']],
  NtQueueApcThread: [['ThreadHandle', 'handle'], ['ApcRoutine', 'ptr'], ['ApcArgument1', 'ptr'], ['ApcArgument2', 'ptr'], ['ApcArgument3', 'ptr']],
  NtTestAlert: [],
  NtDelayExecution: [['Alertable', 'bool'], ['DelayInterval', 'ptr']],
  NtTerminateProcess: [['ProcessHandle', 'handle'], ['ExitStatus', 'status']],
  NtTerminateThread: [['ThreadHandle', 'handle'], ['ExitStatus', 'status']],
  NtContinue: [['Context', 'ptr'], ['TestAlert', 'bool']],
};

const ACCESS: [number, string][] = [
  [0x80000000, 'GENERIC_READ'], [0x40000000, 'GENERIC_WRITE'], [0x20000000, 'GENERIC_EXECUTE'], [0x10000000, 'GENERIC_ALL'],
  [0x02000000, 'MAXIMUM_ALLOWED'], [0x01000000, 'ACCESS_SYSTEM_SECURITY'],
  [0x00100000, 'SYNCHRONIZE'], [0x00080000, 'WRITE_OWNER'], [0x00040000, 'WRITE_DAC'], [0x00020000, 'READ_CONTROL'], [0x00010000, 'DELETE'],
  [0x0100, 'FILE_WRITE_ATTRIBUTES'], [0x0080, 'FILE_READ_ATTRIBUTES'], [0x0040, 'FILE_DELETE_CHILD'], [0x0020, 'FILE_EXECUTE'],
  [0x0010, 'FILE_WRITE_EA'], [0x0008, 'FILE_READ_EA'], [0x0004, 'FILE_APPEND_DATA'], [0x0002, 'FILE_WRITE_DATA'], [0x0001, 'FILE_READ_DATA'],
];
const SHARE: [number, string][] = [[1, 'FILE_SHARE_READ'], [2, 'FILE_SHARE_WRITE'], [4, 'FILE_SHARE_DELETE']];
const DISPOSITION = ['FILE_SUPERSEDE', 'FILE_OPEN', 'FILE_CREATE', 'FILE_OPEN_IF', 'FILE_OVERWRITE', 'FILE_OVERWRITE_IF'];
const OPTIONS: [number, string][] = [
  [0x1, 'FILE_DIRECTORY_FILE'], [0x2, 'FILE_WRITE_THROUGH'], [0x4, 'FILE_SEQUENTIAL_ONLY'], [0x8, 'FILE_NO_INTERMEDIATE_BUFFERING'],
  [0x10, 'FILE_SYNCHRONOUS_IO_ALERT'], [0x20, 'FILE_SYNCHRONOUS_IO_NONALERT'], [0x40, 'FILE_NON_DIRECTORY_FILE'], [0x1000, 'FILE_DELETE_ON_CLOSE'],
];
const ATTRIBUTES: [number, string][] = [[0x1, 'FILE_ATTRIBUTE_READONLY'], [0x2, 'FILE_ATTRIBUTE_HIDDEN'], [0x4, 'FILE_ATTRIBUTE_SYSTEM'], [0x20, 'FILE_ATTRIBUTE_ARCHIVE'], [0x80, 'FILE_ATTRIBUTE_NORMAL']];
const PROTECT: [number, string][] = [
  [0x01, 'PAGE_NOACCESS'], [0x02, 'PAGE_READONLY'], [0x04, 'PAGE_READWRITE'], [0x08, 'PAGE_WRITECOPY'],
  [0x10, 'PAGE_EXECUTE'], [0x20, 'PAGE_EXECUTE_READ'], [0x40, 'PAGE_EXECUTE_READWRITE'], [0x80, 'PAGE_EXECUTE_WRITECOPY'], [0x100, 'PAGE_GUARD'], [0x200, 'PAGE_NOCACHE'],
];
const ALLOC: [number, string][] = [[0x1000, 'MEM_COMMIT'], [0x2000, 'MEM_RESERVE'], [0x80000, 'MEM_RESET'], [0x100000, 'MEM_TOP_DOWN']];
const METHOD = ['METHOD_BUFFERED', 'METHOD_IN_DIRECT', 'METHOD_OUT_DIRECT', 'METHOD_NEITHER'];
const IOCTL_ACCESS = ['FILE_ANY_ACCESS', 'FILE_READ_ACCESS', 'FILE_WRITE_ACCESS', 'FILE_READ_ACCESS | FILE_WRITE_ACCESS'];

/** 'A | B', with any bits left over in hex; '0' for no bits. */
function flags(v: number, names: [number, string][]): string {
  const out: string[] = [];
  let rest = v >>> 0;
  for (const [bit, name] of names) {
    if ((rest & bit) >>> 0 === bit) {
      out.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) out.push(`0x${rest.toString(16).toUpperCase()}`);
  return out.length ? out.join(' | ') : '0';
}

function decode(kind: Kind, v: number, r: SyscallRecord): string | null {
  switch (kind) {
    case 'handle': {
      if (v === 0) return 'NULL';
      if (v === 0xffffffff) return 'NtCurrentProcess()';
      if (v === 0xfffffffe) return 'NtCurrentThread()';
      const use = r.handles.find((h) => h.handle === v);
      if (!use) return null;
      return `${use.status === 0 ? (use.objectType ?? 'object') : statusName(use.status)} (${use.table} table)`;
    }
    case 'ptr':
      return v === 0 ? 'NULL' : null;
    case 'ulong':
      return String(v);
    case 'bool':
      return v === 0 ? 'FALSE' : 'TRUE';
    case 'status':
      return statusName(v);
    case 'access':
      return flags(v, ACCESS);
    case 'share':
      return flags(v, SHARE);
    case 'options':
      return flags(v, OPTIONS);
    case 'attributes':
      return flags(v, ATTRIBUTES);
    case 'protect':
      return flags(v, PROTECT);
    case 'alloc':
      return flags(v, ALLOC);
    case 'disposition':
      return DISPOSITION[v] ?? String(v);
    case 'ioctl':
      return `CTL_CODE(0x${(v >>> 16).toString(16).toUpperCase()}, 0x${((v >>> 2) & 0xfff).toString(16).toUpperCase()}, ${METHOD[v & 3]}, ${IOCTL_ACCESS[(v >>> 14) & 3]})`;
  }
}

/** The argument rows of one call (none when its routine did not run or its prototype is not known here). */
export function argRows(r: SyscallRecord): unknown[][] {
  const proto = r.name ? PROTOTYPES[r.name] : undefined;
  if (!proto || !r.args) return [];
  return r.args.map((v, i) => {
    const [name, kind] = proto[i] ?? [`Argument${i + 1}`, 'ulong'];
    return [r.id, i, name, v >>> 0, decode(kind, v >>> 0, r)];
  });
}

/** syscalls records in, argument rows out. */
export function foldSyscallArgs(): OperatorFunction<SyscallRecord, unknown[]> {
  return mergeMap((r) => from(argRows(r)));
}
