// NTSTATUS values and bug-check codes the guest uses (values as in the public NT headers; see
// SOURCES.md). An NTSTATUS is kept as an unsigned 32-bit number (0xC0000008, not -1073741816).

export const NTSTATUS = {
  // success and informational
  STATUS_SUCCESS: 0x00000000,
  STATUS_WAIT_0: 0x00000000,
  STATUS_ABANDONED: 0x00000080,
  STATUS_USER_APC: 0x000000c0,
  STATUS_KERNEL_APC: 0x00000100,
  STATUS_ALERTED: 0x00000101,
  STATUS_ALREADY_WIN32: 0x4000001b,
  STATUS_TIMEOUT: 0x00000102,
  STATUS_PENDING: 0x00000103,
  STATUS_REPARSE: 0x00000104,
  STATUS_OBJECT_NAME_EXISTS: 0x40000000,
  // warnings
  STATUS_GUARD_PAGE_VIOLATION: 0x80000001,
  STATUS_DATATYPE_MISALIGNMENT: 0x80000002,
  STATUS_BREAKPOINT: 0x80000003,
  STATUS_SINGLE_STEP: 0x80000004,
  STATUS_BUFFER_OVERFLOW: 0x80000005,
  STATUS_NO_MORE_FILES: 0x80000006,
  // errors
  STATUS_UNSUCCESSFUL: 0xc0000001,
  STATUS_NOT_IMPLEMENTED: 0xc0000002,
  STATUS_INVALID_INFO_CLASS: 0xc0000003,
  STATUS_INFO_LENGTH_MISMATCH: 0xc0000004,
  STATUS_ACCESS_VIOLATION: 0xc0000005,
  STATUS_IN_PAGE_ERROR: 0xc0000006,
  STATUS_INVALID_HANDLE: 0xc0000008,
  STATUS_INVALID_CID: 0xc000000b,
  STATUS_INVALID_PARAMETER: 0xc000000d,
  STATUS_NO_SUCH_DEVICE: 0xc000000e,
  STATUS_NO_SUCH_FILE: 0xc000000f,
  STATUS_INVALID_DEVICE_REQUEST: 0xc0000010,
  STATUS_END_OF_FILE: 0xc0000011,
  STATUS_MORE_PROCESSING_REQUIRED: 0xc0000016,
  STATUS_NO_MEMORY: 0xc0000017,
  STATUS_CONFLICTING_ADDRESSES: 0xc0000018,
  STATUS_UNABLE_TO_FREE_VM: 0xc000001a,
  STATUS_INVALID_SYSTEM_SERVICE: 0xc000001c,
  STATUS_ILLEGAL_INSTRUCTION: 0xc000001d,
  STATUS_ACCESS_DENIED: 0xc0000022,
  STATUS_BUFFER_TOO_SMALL: 0xc0000023,
  STATUS_OBJECT_TYPE_MISMATCH: 0xc0000024,
  STATUS_NONCONTINUABLE_EXCEPTION: 0xc0000025,
  STATUS_INVALID_DISPOSITION: 0xc0000026,
  STATUS_UNWIND: 0xc0000027,
  STATUS_BAD_STACK: 0xc0000028,
  STATUS_INVALID_UNWIND_TARGET: 0xc0000029,
  STATUS_OBJECT_NAME_INVALID: 0xc0000033,
  STATUS_OBJECT_NAME_NOT_FOUND: 0xc0000034,
  STATUS_OBJECT_NAME_COLLISION: 0xc0000035,
  STATUS_OBJECT_PATH_INVALID: 0xc0000039,
  STATUS_OBJECT_PATH_NOT_FOUND: 0xc000003a,
  STATUS_OBJECT_PATH_SYNTAX_BAD: 0xc000003b,
  STATUS_SHARING_VIOLATION: 0xc0000043,
  STATUS_INVALID_PAGE_PROTECTION: 0xc0000045,
  STATUS_THREAD_IS_TERMINATING: 0xc000004b,
  STATUS_ARRAY_BOUNDS_EXCEEDED: 0xc000008c,
  STATUS_INTEGER_DIVIDE_BY_ZERO: 0xc0000094,
  STATUS_INTEGER_OVERFLOW: 0xc0000095,
  STATUS_PRIVILEGED_INSTRUCTION: 0xc0000096,
  STATUS_INSUFFICIENT_RESOURCES: 0xc000009a,
  STATUS_MEMORY_NOT_ALLOCATED: 0xc00000a0,
  STATUS_FILE_IS_A_DIRECTORY: 0xc00000ba,
  STATUS_NOT_SUPPORTED: 0xc00000bb,
  STATUS_INVALID_USER_BUFFER: 0xc00000e8,
  STATUS_STACK_OVERFLOW: 0xc00000fd,
  STATUS_NOT_A_DIRECTORY: 0xc0000103,
  STATUS_NO_EVENT_PAIR: 0xc000014e,
  STATUS_PROCESS_IS_TERMINATING: 0xc000010a,
  STATUS_CANCELLED: 0xc0000120,
  STATUS_INVALID_DEVICE_STATE: 0xc0000184,
  STATUS_NO_CALLBACK_ACTIVE: 0xc0000258,
} as const;

export type NtStatusName = keyof typeof NTSTATUS;

/** Severity of an NTSTATUS: its top two bits. */
export type NtStatusSeverity = 'success' | 'informational' | 'warning' | 'error';

// value -> name; where two names share a value (STATUS_SUCCESS / STATUS_WAIT_0) the first listed wins
const STATUS_NAMES = new Map<number, NtStatusName>();
for (const [name, value] of Object.entries(NTSTATUS) as [NtStatusName, number][]) {
  if (!STATUS_NAMES.has(value)) STATUS_NAMES.set(value, name);
}

const hex8 = (v: number): string => '0x' + (v >>> 0).toString(16).toUpperCase().padStart(8, '0');

/**
 * The name of an NTSTATUS (signed or unsigned input): statusName(0xC0000008) = 'STATUS_INVALID_HANDLE'.
 * An unknown value gives its hex form, e.g. '0xC0000999'.
 */
export function statusName(value: number): string {
  return STATUS_NAMES.get(value >>> 0) ?? hex8(value);
}

/** True when the value names a known status. */
export function isKnownStatus(value: number): boolean {
  return STATUS_NAMES.has(value >>> 0);
}

/** NT_SUCCESS(): severity success or informational (the value, as a signed 32-bit number, is ≥ 0). */
export function ntSuccess(value: number): boolean {
  return (value | 0) >= 0;
}

export function statusSeverity(value: number): NtStatusSeverity {
  return (['success', 'informational', 'warning', 'error'] as const)[(value >>> 30) & 3]!;
}

// ---- bug checks -------------------------------------------------------------------------------

export const BUGCHECK = {
  APC_INDEX_MISMATCH: 0x01,
  IRQL_NOT_LESS_OR_EQUAL: 0x0a,
  KMODE_EXCEPTION_NOT_HANDLED: 0x1e,
  SYSTEM_SERVICE_EXCEPTION: 0x3b,
  IRQL_GT_ZERO_AT_SYSTEM_SERVICE: 0x4a,
  PAGE_FAULT_IN_NONPAGED_AREA: 0x50,
  SYSTEM_THREAD_EXCEPTION_NOT_HANDLED: 0x7e,
  UNEXPECTED_KERNEL_MODE_TRAP: 0x7f,
  KERNEL_MODE_EXCEPTION_NOT_HANDLED: 0x8e,
  INVALID_KERNEL_HANDLE: 0x93,
  ATTEMPTED_WRITE_TO_READONLY_MEMORY: 0xbe,
  DRIVER_IRQL_NOT_LESS_OR_EQUAL: 0xd1,
  MANUALLY_INITIATED_CRASH: 0xe2,
} as const;

export type BugCheckName = keyof typeof BUGCHECK;

const BUGCHECK_NAMES = new Map<number, BugCheckName>(
  (Object.entries(BUGCHECK) as [BugCheckName, number][]).map(([name, code]) => [code, name]),
);

/** The name of a bug-check code: bugCheckName(0x93) = 'INVALID_KERNEL_HANDLE'; unknown → '0x000000XX'. */
export function bugCheckName(code: number): string {
  return BUGCHECK_NAMES.get(code >>> 0) ?? hex8(code);
}
