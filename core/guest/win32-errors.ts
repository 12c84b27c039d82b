// Win32 error codes and RtlNtStatusToDosError's mapping, described once. build.ts turns the
// mapping into ntdll's RtlpStatusTable (guest data: pairs of NTSTATUS and Win32 error, in status
// order) that ntdll!RtlNtStatusToDosError searches; kernel32's asm sees the ERROR_* names as
// constants; the tests compare the guest's answers with this table.
//
// The facts are Wine's (dlls/ntdll/error.c, its conversion tables, and include/winerror.h for the
// numbers; see SOURCES.md): what XP's RtlNtStatusToDosError gives for each status. Every status the
// guest can return (ntstatus.ts) has an entry — the type makes a missing one a compile error.
import { NTSTATUS, type NtStatusName } from './ntstatus.js';

/** The Win32 error codes the mapping and kernel32 use (winerror.h). */
export const WIN32_ERRORS = {
  ERROR_SUCCESS: 0,
  ERROR_INVALID_FUNCTION: 1,
  ERROR_FILE_NOT_FOUND: 2,
  ERROR_PATH_NOT_FOUND: 3,
  ERROR_ACCESS_DENIED: 5,
  ERROR_INVALID_HANDLE: 6,
  ERROR_NOT_ENOUGH_MEMORY: 8,
  ERROR_NO_MORE_FILES: 18,
  ERROR_BAD_COMMAND: 22,
  ERROR_BAD_LENGTH: 24,
  ERROR_GEN_FAILURE: 31,
  ERROR_SHARING_VIOLATION: 32,
  ERROR_HANDLE_EOF: 38,
  ERROR_NOT_SUPPORTED: 50,
  ERROR_FILE_EXISTS: 80,
  ERROR_INVALID_PARAMETER: 87,
  ERROR_INSUFFICIENT_BUFFER: 122,
  ERROR_INVALID_NAME: 123,
  ERROR_BAD_PATHNAME: 161,
  ERROR_ALREADY_EXISTS: 183,
  ERROR_FILENAME_EXCED_RANGE: 206,
  ERROR_MORE_DATA: 234,
  ERROR_DIRECTORY: 267,
  ERROR_MR_MID_NOT_FOUND: 317,
  ERROR_INVALID_ADDRESS: 487,
  ERROR_ARITHMETIC_OVERFLOW: 534,
  ERROR_OPERATION_ABORTED: 995,
  ERROR_IO_PENDING: 997,
  ERROR_NOACCESS: 998,
  ERROR_SWAPERROR: 999,
  ERROR_STACK_OVERFLOW: 1001,
  ERROR_NO_SYSTEM_RESOURCES: 1450,
  ERROR_COMMITMENT_LIMIT: 1455,
  ERROR_TIMEOUT: 1460,
  ERROR_INVALID_USER_BUFFER: 1784,
} as const;

export type Win32ErrorName = keyof typeof WIN32_ERRORS;

/**
 * What RtlNtStatusToDosError returns for a status: a Win32 error; 'itself' where Wine's table says
 * "1:1 mapping" (the exception codes: the status is its own error code); 'unmapped' where the table
 * has no error for it (ERROR_MR_MID_NOT_FOUND, 317 — also every status below 0x102, which no
 * table covers).
 */
export type DosErrorMapping = Win32ErrorName | 'itself' | 'unmapped';

export const STATUS_TO_WIN32: Readonly<Record<NtStatusName, DosErrorMapping>> = {
  STATUS_SUCCESS: 'ERROR_SUCCESS',
  STATUS_WAIT_0: 'ERROR_SUCCESS',
  STATUS_ABANDONED: 'unmapped',
  STATUS_USER_APC: 'unmapped',
  STATUS_KERNEL_APC: 'unmapped',
  STATUS_ALERTED: 'unmapped',
  STATUS_ALREADY_WIN32: 'unmapped',
  STATUS_TIMEOUT: 'ERROR_TIMEOUT',
  STATUS_PENDING: 'ERROR_IO_PENDING',
  STATUS_REPARSE: 'unmapped',
  STATUS_OBJECT_NAME_EXISTS: 'unmapped',
  STATUS_GUARD_PAGE_VIOLATION: 'itself',
  STATUS_DATATYPE_MISALIGNMENT: 'ERROR_NOACCESS',
  STATUS_BREAKPOINT: 'itself',
  STATUS_SINGLE_STEP: 'itself',
  STATUS_BUFFER_OVERFLOW: 'ERROR_MORE_DATA',
  STATUS_NO_MORE_FILES: 'ERROR_NO_MORE_FILES',
  STATUS_UNSUCCESSFUL: 'ERROR_GEN_FAILURE',
  STATUS_NOT_IMPLEMENTED: 'ERROR_INVALID_FUNCTION',
  STATUS_INVALID_INFO_CLASS: 'ERROR_INVALID_PARAMETER',
  STATUS_INFO_LENGTH_MISMATCH: 'ERROR_BAD_LENGTH',
  STATUS_ACCESS_VIOLATION: 'ERROR_NOACCESS',
  STATUS_IN_PAGE_ERROR: 'ERROR_SWAPERROR',
  STATUS_INVALID_HANDLE: 'ERROR_INVALID_HANDLE',
  STATUS_INVALID_CID: 'ERROR_INVALID_PARAMETER',
  STATUS_INVALID_PARAMETER: 'ERROR_INVALID_PARAMETER',
  STATUS_NO_SUCH_DEVICE: 'ERROR_FILE_NOT_FOUND',
  STATUS_NO_SUCH_FILE: 'ERROR_FILE_NOT_FOUND',
  STATUS_INVALID_DEVICE_REQUEST: 'ERROR_INVALID_FUNCTION',
  STATUS_END_OF_FILE: 'ERROR_HANDLE_EOF',
  STATUS_MORE_PROCESSING_REQUIRED: 'ERROR_MORE_DATA',
  STATUS_NO_MEMORY: 'ERROR_NOT_ENOUGH_MEMORY',
  STATUS_COMMITMENT_LIMIT: 'ERROR_COMMITMENT_LIMIT',
  STATUS_CONFLICTING_ADDRESSES: 'ERROR_INVALID_ADDRESS',
  STATUS_UNABLE_TO_FREE_VM: 'ERROR_INVALID_PARAMETER',
  STATUS_UNABLE_TO_DELETE_SECTION: 'ERROR_INVALID_PARAMETER',
  STATUS_INVALID_SYSTEM_SERVICE: 'ERROR_INVALID_FUNCTION',
  STATUS_ILLEGAL_INSTRUCTION: 'ERROR_INVALID_FUNCTION',
  STATUS_ACCESS_DENIED: 'ERROR_ACCESS_DENIED',
  STATUS_BUFFER_TOO_SMALL: 'ERROR_INSUFFICIENT_BUFFER',
  STATUS_OBJECT_TYPE_MISMATCH: 'ERROR_INVALID_HANDLE',
  STATUS_NONCONTINUABLE_EXCEPTION: 'itself',
  STATUS_INVALID_DISPOSITION: 'itself',
  STATUS_UNWIND: 'unmapped',
  STATUS_BAD_STACK: 'unmapped',
  STATUS_INVALID_UNWIND_TARGET: 'unmapped',
  STATUS_UNABLE_TO_DECOMMIT_VM: 'ERROR_INVALID_ADDRESS',
  STATUS_NOT_COMMITTED: 'ERROR_INVALID_ADDRESS',
  STATUS_INVALID_PARAMETER_MIX: 'ERROR_INVALID_PARAMETER',
  STATUS_OBJECT_NAME_INVALID: 'ERROR_INVALID_NAME',
  STATUS_OBJECT_NAME_NOT_FOUND: 'ERROR_FILE_NOT_FOUND',
  STATUS_OBJECT_NAME_COLLISION: 'ERROR_ALREADY_EXISTS',
  STATUS_OBJECT_PATH_INVALID: 'ERROR_BAD_PATHNAME',
  STATUS_OBJECT_PATH_NOT_FOUND: 'ERROR_PATH_NOT_FOUND',
  STATUS_OBJECT_PATH_SYNTAX_BAD: 'ERROR_BAD_PATHNAME',
  STATUS_SHARING_VIOLATION: 'ERROR_SHARING_VIOLATION',
  STATUS_INVALID_PAGE_PROTECTION: 'ERROR_INVALID_PARAMETER',
  STATUS_THREAD_IS_TERMINATING: 'ERROR_ACCESS_DENIED',
  STATUS_ARRAY_BOUNDS_EXCEEDED: 'itself',
  STATUS_INTEGER_DIVIDE_BY_ZERO: 'itself',
  STATUS_INTEGER_OVERFLOW: 'ERROR_ARITHMETIC_OVERFLOW',
  STATUS_PRIVILEGED_INSTRUCTION: 'itself',
  STATUS_INSUFFICIENT_RESOURCES: 'ERROR_NO_SYSTEM_RESOURCES',
  STATUS_FREE_VM_NOT_AT_BASE: 'ERROR_INVALID_ADDRESS',
  STATUS_MEMORY_NOT_ALLOCATED: 'ERROR_INVALID_ADDRESS',
  STATUS_FILE_IS_A_DIRECTORY: 'ERROR_ACCESS_DENIED',
  STATUS_NOT_SUPPORTED: 'ERROR_NOT_SUPPORTED',
  STATUS_CANT_TERMINATE_SELF: 'unmapped',
  STATUS_INVALID_USER_BUFFER: 'ERROR_INVALID_USER_BUFFER',
  STATUS_INVALID_PARAMETER_2: 'ERROR_INVALID_PARAMETER',
  STATUS_INVALID_PARAMETER_3: 'ERROR_INVALID_PARAMETER',
  STATUS_INVALID_PARAMETER_4: 'ERROR_INVALID_PARAMETER',
  STATUS_INVALID_PARAMETER_5: 'ERROR_INVALID_PARAMETER',
  STATUS_STACK_OVERFLOW: 'ERROR_STACK_OVERFLOW',
  STATUS_NOT_A_DIRECTORY: 'ERROR_DIRECTORY',
  STATUS_NO_EVENT_PAIR: 'unmapped',
  STATUS_PROCESS_IS_TERMINATING: 'ERROR_ACCESS_DENIED',
  STATUS_CANCELLED: 'ERROR_OPERATION_ABORTED',
  STATUS_INVALID_DEVICE_STATE: 'ERROR_BAD_COMMAND',
  STATUS_NO_CALLBACK_ACTIVE: 'unmapped',
};

/** The Win32 error RtlNtStatusToDosError gives for a status of ntstatus.ts, by the table above. */
export function dosErrorOf(name: NtStatusName): number {
  const m = STATUS_TO_WIN32[name];
  if (m === 'itself') return NTSTATUS[name];
  if (m === 'unmapped') return WIN32_ERRORS.ERROR_MR_MID_NOT_FOUND;
  return WIN32_ERRORS[m];
}

/**
 * ntdll's RtlpStatusTable as guest assembly: `dd status, error` for every mapped status, in status
 * order. STATUS_SUCCESS and the unmapped ones are not in it (RtlNtStatusToDosError answers them
 * without the table); one status value listed under two names (STATUS_WAIT_0) is listed once.
 */
export function statusTableAsm(): string {
  const rows = new Map<number, { name: string; error: number; errorName: string }>();
  for (const name of Object.keys(STATUS_TO_WIN32) as NtStatusName[]) {
    const status = NTSTATUS[name];
    const m = STATUS_TO_WIN32[name];
    if (status === 0 || m === 'unmapped' || rows.has(status)) continue;
    rows.set(status, { name, error: dosErrorOf(name), errorName: m === 'itself' ? 'the status itself' : m });
  }
  const hex = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase().padStart(8, '0');
  const sorted = [...rows].sort((a, b) => a[0] - b[0]);
  return [
    '; RtlpStatusTable (generated from core/guest/win32-errors.ts): NTSTATUS, Win32 error; by status.',
    'align 4',
    'RtlpStatusTable:',
    ...sorted.map(([status, r]) => `    dd ${hex(status)}, ${r.error}${' '.repeat(Math.max(1, 8 - String(r.error).length))}; ${r.name} -> ${r.errorName}`),
    'RtlpStatusTableEnd:',
  ].join('\n');
}

/** `ERROR_X equ N` lines for guest sources (kernel32). */
export function win32ErrorsAsm(): string {
  return Object.entries(WIN32_ERRORS)
    .map(([name, value]) => `${name} equ ${value}`)
    .join('\n');
}
