// The trace file's schema, described once: every table, view and column with the comment that
// SQLite keeps in the file (so each trace carries its own documentation), the event type each
// typed table holds, and how an event's fields become its columns.
import type { TraceEvent } from '../core/index.js';
import { expandRunsSql, RUN_CODE_SQL, RUN_INDEX_SQL } from './blocks.js';
import { MAX_RUN } from './runs.js';

export const SCHEMA_VERSION = 6;

type SqlType = 'INTEGER' | 'TEXT' | 'BLOB';
export interface Column {
  name: string;
  type: SqlType;
  comment: string;
  notNull?: boolean;
}

/** A table holding one event type: the common event columns, then its own. */
export interface EventTable {
  name: string;
  /** The TraceEvent `type` it holds. */
  event: TraceEvent['type'];
  comment: string;
  columns: Column[];
  /** The row's own columns from an event (in `columns` order). */
  values: (e: any) => unknown[];
}

/**
 * Instructions are stored in runs (recorder/runs.ts): consecutive instruction events with no other
 * event between them, one row each. The effects column's format, for the schema's comments.
 */
export const EFFECTS_FORMAT =
  'per register 1 byte id (0-7 EAX..EDI, 8 EFLAGS, 9-14 ES CS SS DS FS GS, 15-18 CR0 CR2 CR3 CR4) + 4 bytes LE, or id|0x20 + 2 bytes when the value is below 0x10000, id|0x40 + 1 byte below 0x100, or 0x68 + 1 byte for EFLAGS holding only CF PF AF ZF SF OF IF DF (bits in that order); per memory write 1 byte 0x80|size + 4 bytes linear address + size bytes LE; per page-table accessed/dirty update 1 byte 0xC0 + 4 bytes physical address + 4 bytes';

const bool = (b: boolean) => (b ? 1 : 0);
/** MSR values are 64-bit: stored as SQLite's signed 64-bit integer, bit for bit. */
const u64 = (v: bigint) => BigInt.asIntN(64, v);

/** The columns every event row starts with (the `events` view's columns). */
export const COMMON_COLUMNS: Column[] = [
  { name: 'session_id', type: 'INTEGER', notNull: true, comment: 'the session (sessions.id)' },
  { name: 'seq', type: 'INTEGER', notNull: true, comment: 'event number within the session, gapless from 0: the order things happened' },
  { name: 'icount', type: 'INTEGER', notNull: true, comment: 'instructions retired before this event' },
  { name: 'cpl', type: 'INTEGER', notNull: true, comment: 'privilege level when it happened (0 kernel, 3 user)' },
  { name: 'eip', type: 'INTEGER', notNull: true, comment: 'instruction pointer when it happened (unsigned)' },
  { name: 'thread_id', type: 'INTEGER', notNull: true, comment: 'guest thread id (the program\'s main thread 1996 = 0x7CC, the System thread 8)' },
];

export const EVENT_TABLES: EventTable[] = [
  {
    name: 'ring_transitions',
    event: 'ring-transition',
    comment: 'the CPU changed privilege level: SYSENTER, SYSEXIT, INT n, IRETD or exception delivery',
    columns: [
      { name: 'from_cpl', type: 'INTEGER', comment: 'privilege level before' },
      { name: 'to_cpl', type: 'INTEGER', comment: 'privilege level after' },
      { name: 'mechanism', type: 'TEXT', comment: "'sysenter', 'sysexit', 'int', 'iret' or 'exception'" },
      { name: 'from_eip', type: 'INTEGER', comment: 'EIP of the instruction that caused it' },
      { name: 'to_eip', type: 'INTEGER', comment: 'where execution continued' },
      { name: 'from_esp', type: 'INTEGER', comment: 'ESP before' },
      { name: 'to_esp', type: 'INTEGER', comment: 'ESP after (the new stack)' },
      { name: 'vector', type: 'INTEGER', comment: 'interrupt or exception vector (NULL for sysenter/sysexit/iret)' },
    ],
    values: (e) => [e.fromCpl, e.toCpl, e.mechanism, e.fromEip, e.toEip, e.fromEsp, e.toEsp, e.vector],
  },
  {
    name: 'msr_reads',
    event: 'msr-read',
    comment: 'a model-specific register was read: by RDMSR, or by SYSENTER/SYSEXIT themselves (0x174-0x176)',
    columns: [
      { name: 'msr', type: 'INTEGER', comment: 'the MSR number (0x174 SYSENTER_CS, 0x175 SYSENTER_ESP, 0x176 SYSENTER_EIP, 0x10 TSC)' },
      { name: 'value', type: 'INTEGER', comment: 'the 64-bit value read (as a signed 64-bit integer)' },
      { name: 'source', type: 'TEXT', comment: "'rdmsr', 'sysenter' or 'sysexit'" },
    ],
    values: (e) => [e.msr, u64(e.value), e.source],
  },
  {
    name: 'msr_writes',
    event: 'msr-write',
    comment: 'a model-specific register was written by WRMSR',
    columns: [
      { name: 'msr', type: 'INTEGER', comment: 'the MSR number' },
      { name: 'value', type: 'INTEGER', comment: 'the 64-bit value written (as a signed 64-bit integer)' },
    ],
    values: (e) => [e.msr, u64(e.value)],
  },
  {
    name: 'exceptions',
    event: 'exception',
    comment: 'a fault delivered through the IDT (or the one that stopped a bare machine)',
    columns: [
      { name: 'vector', type: 'INTEGER', comment: 'exception vector (0 #DE, 6 #UD, 13 #GP, 14 #PF, …)' },
      { name: 'error_code', type: 'INTEGER', comment: 'the error code pushed (NULL when the exception has none)' },
      { name: 'cr2', type: 'INTEGER', comment: 'the faulting linear address for #PF (NULL otherwise)' },
      { name: 'fault_eip', type: 'INTEGER', comment: 'the instruction that faulted' },
      { name: 'effects', type: 'BLOB', comment: `the delivery's register and memory effects, packed: ${EFFECTS_FORMAT}` },
    ],
    values: (e) => [e.vector, e.errorCode, e.cr2, e.faultEip, null],
  },
  {
    name: 'machine_stops',
    event: 'machine-stop',
    comment: 'the machine stopped: the last event of a complete session',
    columns: [
      { name: 'reason', type: 'TEXT', comment: "'exited', 'exception', 'bugcheck', 'instruction-limit', 'triple-fault', 'hlt', 'unsupported' or 'stopped'" },
      { name: 'detail', type: 'TEXT', comment: 'one line about it' },
    ],
    values: (e) => [e.reason, e.detail],
  },
  {
    name: 'ssdt_lookups',
    event: 'ssdt-lookup',
    comment:
      "one dispatch decision of KiSystemService: at the limit check for a number past its table (in_range 0, no target), at `mov ebx,[edi+eax*4]` otherwise",
    columns: [
      { name: 'service_number', type: 'INTEGER', comment: 'the number the caller put in EAX, as given: bits 14-15 too, which the dispatcher ignores (0x4019 runs table 0, index 0x19)' },
      { name: 'table_index', type: 'INTEGER', comment: 'which descriptor: 0 ntoskrnl (KiServiceTable), 1 win32k' },
      { name: 'service_index', type: 'INTEGER', comment: 'the index within that table (EAX & 0xFFF)' },
      { name: 'table_base', type: 'INTEGER', comment: "the descriptor's Base: the table's address" },
      { name: 'service_limit', type: 'INTEGER', comment: "the descriptor's Limit (number of services)" },
      { name: 'target', type: 'INTEGER', comment: 'the routine the table gives (NULL when out of range)' },
      { name: 'target_symbol', type: 'TEXT', comment: 'module!Name of the target (a hook shows its own name here)' },
      { name: 'arg_bytes', type: 'INTEGER', comment: 'argument bytes copied from the caller (KiArgumentTable)' },
      { name: 'in_range', type: 'INTEGER', comment: '1 when the number passed the limit check, 0 when it did not' },
    ],
    values: (e) => [e.serviceNumber, e.tableIndex, e.serviceIndex, e.tableBase, e.limit, e.target, e.targetSymbol, e.argBytes, bool(e.inRange)],
  },
  {
    name: 'apc_checks',
    event: 'apc-check',
    comment: "one pass of KiServiceExit's user-APC loop (`cmp byte [ebx+4Ah],0`)",
    columns: [
      { name: 'returning_to_cpl', type: 'INTEGER', comment: 'the privilege level the trap frame returns to' },
      { name: 'user_apc_pending', type: 'INTEGER', comment: "KTHREAD.ApcState.UserApcPending (1/0)" },
      { name: 'kernel_apc_pending', type: 'INTEGER', comment: 'KTHREAD.ApcState.KernelApcPending (1/0)' },
      { name: 'delivered', type: 'INTEGER', comment: '1 when this pass found a user APC pending and called KiDeliverApc' },
    ],
    values: (e) => [e.returningToCpl, bool(e.userApcPending), bool(e.kernelApcPending), bool(e.delivered)],
  },
  {
    name: 'exception_dispatches',
    event: 'exception-dispatch',
    comment:
      "an exception on its way to a handler: KiDispatchException starting (after a fault, or NtRaiseException), or a service body's own handler taking a fault on its caller's memory",
    columns: [
      { name: 'code', type: 'INTEGER', comment: 'the exception code, an NTSTATUS as an unsigned 32-bit integer (0xC0000005 STATUS_ACCESS_VIOLATION, …)' },
      { name: 'code_name', type: 'TEXT', comment: 'its name' },
      { name: 'address', type: 'INTEGER', comment: 'ExceptionRecord.ExceptionAddress: the instruction it happened at' },
      { name: 'previous_mode', type: 'TEXT', comment: "the mode it is dispatched in: 'UserMode' or 'KernelMode'" },
      { name: 'first_chance', type: 'INTEGER', comment: '1 for the first chance, 0 for the second (no handler wanted it)' },
      {
        name: 'handler',
        type: 'TEXT',
        comment:
          "who gets it: 'seh-chain' (the kernel's handlers at fs:[0]), 'user-dispatcher' (ntdll!KiUserExceptionDispatcher and the thread's handlers), 'service' (the service's own handler: its status), 'process-end' (user second chance), 'bugcheck' (kernel second chance)",
      },
      { name: 'parameters', type: 'TEXT', comment: 'ExceptionInformation, a JSON array of unsigned integers (an access violation: 0 read / 1 write, then the address)' },
    ],
    values: (e) => [e.code, e.codeName, e.address, e.previousMode, bool(e.firstChance), e.handler, JSON.stringify(e.parameters)],
  },
  {
    name: 'service_enters',
    event: 'service-enter',
    comment: "an Nt service routine's body started (reached by the dispatcher or called directly)",
    columns: [
      { name: 'service', type: 'TEXT', comment: 'the Nt name (NtReadFile)' },
      { name: 'service_number', type: 'INTEGER', comment: 'its number in the service table' },
      { name: 'previous_mode', type: 'TEXT', comment: "KTHREAD.PreviousMode as the routine read it: 'UserMode' or 'KernelMode'" },
      { name: 'caller', type: 'INTEGER', comment: "the routine's return address (the dispatcher's call ebx, or a driver)" },
      { name: 'args', type: 'TEXT', comment: 'the arguments, a JSON array of unsigned integers' },
    ],
    values: (e) => [e.service, e.serviceNumber, e.previousMode, e.caller, JSON.stringify(e.args)],
  },
  {
    name: 'service_exits',
    event: 'service-exit',
    comment: "an Nt service routine's body finished",
    columns: [
      { name: 'service', type: 'TEXT', comment: 'the Nt name' },
      { name: 'service_number', type: 'INTEGER', comment: 'its number in the service table' },
      { name: 'status', type: 'INTEGER', comment: 'the NTSTATUS returned, as an unsigned 32-bit integer' },
      { name: 'status_name', type: 'TEXT', comment: 'its name (STATUS_INVALID_HANDLE)' },
    ],
    values: (e) => [e.service, e.serviceNumber, e.status, e.statusName],
  },
  {
    name: 'probes',
    event: 'probe',
    comment: "ProbeForRead / ProbeForWrite on a caller's buffer (only for UserMode callers)",
    columns: [
      { name: 'kind', type: 'TEXT', comment: "'read' or 'write'" },
      { name: 'address', type: 'INTEGER', comment: 'the buffer' },
      { name: 'length', type: 'INTEGER', comment: 'its length in bytes' },
      { name: 'alignment', type: 'INTEGER', comment: 'the alignment required' },
      { name: 'status', type: 'INTEGER', comment: 'STATUS_SUCCESS, STATUS_DATATYPE_MISALIGNMENT or STATUS_ACCESS_VIOLATION' },
      { name: 'fault_address', type: 'INTEGER', comment: 'where touching the buffer faulted when the range and alignment checks passed but a page did not (NULL otherwise)' },
      { name: 'fault', type: 'TEXT', comment: "why that page faulted: 'not-present' or 'read-only' (NULL when it did not)" },
    ],
    values: (e) => [e.kind, e.address, e.length, e.alignment, e.status, e.faultAddress, e.fault],
  },
  {
    name: 'handle_lookups',
    event: 'handle-lookup',
    comment: 'ObReferenceObjectByHandle (or NtClose): which handle table, in which mode, with what result',
    columns: [
      { name: 'handle', type: 'INTEGER', comment: 'the handle value' },
      { name: 'handle_table', type: 'TEXT', comment: "'process', 'kernel' (the System process's), 'pseudo' (-1/-2) or 'none'" },
      { name: 'previous_mode', type: 'TEXT', comment: "the access mode: 'UserMode' or 'KernelMode'" },
      { name: 'status', type: 'INTEGER', comment: 'the NTSTATUS of the lookup' },
      { name: 'object', type: 'INTEGER', comment: "the object's body address (NULL when none)" },
      { name: 'object_type', type: 'TEXT', comment: "the object's type (File, Device, …)" },
      { name: 'wanted_type', type: 'TEXT', comment: 'the object type the caller asked for (NULL: any)' },
      { name: 'desired_access', type: 'INTEGER', comment: 'the access mask the caller asked for (generic rights as given)' },
      { name: 'granted_access', type: 'INTEGER', comment: "the handle entry's GrantedAccess (NULL when no entry was found)" },
      { name: 'found_type', type: 'TEXT', comment: 'the type of the object the entry names, also when the lookup failed on it (NULL: no entry)' },
    ],
    values: (e) => [e.handle, e.table, e.previousMode, e.status, e.object, e.objectType, e.wantedType, e.desiredAccess, e.grantedAccess, e.foundType],
  },
  {
    name: 'handle_entries',
    event: 'handle-entry',
    comment: 'a handle table entry created (ObpCreateHandle) or destroyed (ExDestroyHandle): every handle opened and closed in the session',
    columns: [
      { name: 'op', type: 'TEXT', comment: "'create' or 'close'" },
      { name: 'handle', type: 'INTEGER', comment: 'the handle value as the caller sees it (a kernel handle with bit 31)' },
      { name: 'handle_table', type: 'TEXT', comment: "'process' or 'kernel' (the System process's, ObpKernelHandleTable)" },
      { name: 'process', type: 'TEXT', comment: "the image name of the process whose table holds it ('System' for the kernel table)" },
      { name: 'object', type: 'INTEGER', comment: "the object's body address" },
      { name: 'object_type', type: 'TEXT', comment: "the object's type (File, Event, …)" },
      { name: 'object_name', type: 'TEXT', comment: "the object's name (a file's path), NULL when unnamed" },
      { name: 'granted_access', type: 'INTEGER', comment: "the entry's GrantedAccess" },
    ],
    values: (e) => [e.op, e.handle, e.table, e.process, e.object, e.objectType, e.objectName, e.grantedAccess],
  },
  {
    name: 'irps',
    event: 'irp',
    comment: "an IRP sent to a driver's dispatch routine, or completed",
    columns: [
      { name: 'phase', type: 'TEXT', comment: "'dispatch' or 'complete'" },
      { name: 'irp', type: 'INTEGER', comment: "the IRP's address" },
      { name: 'major_function', type: 'INTEGER', comment: 'IRP_MJ_* number' },
      { name: 'major_function_name', type: 'TEXT', comment: 'IRP_MJ_READ, …' },
      { name: 'device', type: 'INTEGER', comment: 'the DEVICE_OBJECT' },
      { name: 'driver', type: 'TEXT', comment: "the driver's name" },
      { name: 'requestor_mode', type: 'TEXT', comment: "Irp->RequestorMode: 'UserMode' or 'KernelMode'" },
      { name: 'status', type: 'INTEGER', comment: 'the completion status (NULL at dispatch)' },
    ],
    values: (e) => [e.phase, e.irp, e.majorFunction, e.majorFunctionName, e.device, e.driver, e.requestorMode, e.status],
  },
  {
    name: 'thread_switches',
    event: 'thread-switch',
    comment: 'the processor switched guest threads (to a System worker thread and back, at start)',
    columns: [
      { name: 'from_thread', type: 'INTEGER', comment: 'the thread switched away from' },
      { name: 'to_thread', type: 'INTEGER', comment: 'the thread switched to' },
      { name: 'from_process', type: 'TEXT', comment: "its process's image name" },
      { name: 'to_process', type: 'TEXT', comment: "the new thread's process's image name" },
      { name: 'reason', type: 'TEXT', comment: 'why (work item, DriverEntry of x, program start)' },
    ],
    values: (e) => [e.fromThread, e.toThread, e.fromProcess, e.toProcess, e.reason],
  },
  {
    name: 'console_outputs',
    event: 'console-output',
    comment: "a program wrote to its console: the console device (\\Device\\ConsoleOut) served an IRP_MJ_WRITE from WriteConsoleA, or WriteFile / NtWriteFile on a standard handle",
    columns: [
      { name: 'text', type: 'TEXT', comment: 'what was written, each byte as the character of that code (Latin-1; ASCII as is), control characters included' },
      { name: 'bytes', type: 'INTEGER', comment: 'bytes written' },
      { name: 'handle', type: 'INTEGER', comment: "the handle written through (NULL when no handle of the writer names the file object)" },
      { name: 'stream', type: 'TEXT', comment: "'stdout' or 'stderr' (the process's StandardOutput / StandardError), or 'console' (another handle to the console)" },
      { name: 'process', type: 'TEXT', comment: "the writing process's image name" },
    ],
    values: (e) => [e.text, e.bytes, e.handle, e.stream, e.process],
  },
  {
    name: 'debug_prints',
    event: 'debug-print',
    comment: "text for the debugger, printed by the kernel with no debugger attached: a driver's DbgPrint, or ntdll's debug service (INT 2Dh, BREAKPOINT_PRINT) that OutputDebugStringA ends in",
    columns: [
      { name: 'text', type: 'TEXT', comment: 'the text (at most 512 bytes, each byte as the character of that code)' },
      { name: 'mode', type: 'TEXT', comment: "the mode it came from: 'UserMode' or 'KernelMode'" },
      { name: 'source', type: 'TEXT', comment: "'DbgPrint' (the kernel routine) or 'int 2Dh' (the debug service, ntdll!DebugService)" },
      { name: 'caller', type: 'INTEGER', comment: "who asked: DbgPrint's return address, or the first return address outside ntdll and kernel32 on the caller's frame chain (NULL when none was found)" },
      { name: 'caller_symbol', type: 'TEXT', comment: 'module!Name+0xOffset of the caller' },
      { name: 'module', type: 'TEXT', comment: "the caller's module (a driver's or the program's name)" },
    ],
    values: (e) => [e.text, e.mode, e.source, e.caller, e.callerSymbol, e.module],
  },
];

function columnSql(c: Column, last: boolean): string {
  return `  ${c.name} ${c.type}${c.notNull ? ' NOT NULL' : ''}${last ? '' : ','} -- ${c.comment}`;
}

function eventTableSql(t: EventTable): string {
  const cols = [...COMMON_COLUMNS, ...t.columns];
  return [
    `CREATE TABLE ${t.name} (`,
    `  -- ${t.comment} (one row per '${t.event}' event)`,
    ...cols.map((c) => columnSql(c, false)),
    '  PRIMARY KEY (session_id, seq)',
    ') WITHOUT ROWID',
  ].join('\n');
}


/** The schema, statement by statement; each carries its documentation into the file. */
export function schemaSql(): string[] {
  return [
    `CREATE TABLE meta (
  -- facts about this trace file
  key TEXT PRIMARY KEY, -- 'schema_version', 'created_by' (the ntflow version that created the file), 'format'
  value TEXT NOT NULL -- the value
)`,
    `CREATE TABLE sessions (
  -- one recording: a program (and its drivers) run on the miniature XP; written 'incomplete' when recording starts, so a killed recording stays 'incomplete'
  id INTEGER PRIMARY KEY, -- session id, 1, 2, … in this file
  name TEXT NOT NULL, -- the session's name (--name, else the scenario's or the program file's)
  program TEXT NOT NULL, -- the scenario name, or the program's file name
  status TEXT NOT NULL CHECK (status IN ('incomplete', 'complete', 'failed')), -- 'incomplete' while recording (or killed; readers then fold its projections for themselves and store none), 'complete' when the machine stopped for any guest reason, 'failed' when ntflow itself failed
  outcome TEXT, -- why the machine stopped: 'exited', 'exception' (no handler wanted an exception: the process ended with its code), 'bugcheck', 'instruction-limit', 'triple-fault', 'hlt', 'unsupported' (an instruction ntflow does not emulate) (NULL until complete)
  outcome_code INTEGER, -- the exit status, exception code or bug-check code (unsigned)
  outcome_detail TEXT, -- one line: 'exited with STATUS_SUCCESS', 'bug check 0x7F (UNEXPECTED_KERNEL_MODE_TRAP)'
  instructions INTEGER NOT NULL DEFAULT 0, -- instructions retired (updated as batches land)
  events INTEGER NOT NULL DEFAULT 0, -- events recorded; seq runs 0 … events-1 (updated as batches land)
  started_at TEXT NOT NULL, -- wall-clock time recording started, ISO 8601 (the trace itself never reads the clock)
  finished_at TEXT, -- when recording finished (NULL while incomplete)
  options TEXT NOT NULL, -- JSON of what re-runs the session exactly: {"cpu", "maxInstructions", "scenario"}
  first_thread INTEGER NOT NULL, -- the guest thread running when recording started (instructions before any other event ran on it)
  cpu TEXT NOT NULL, -- the CPU model: 'sysenter' or 'int2e' (no SYSENTER)
  scenario TEXT, -- the built-in scenario's name (NULL for a program file)
  ntflow_version TEXT NOT NULL, -- the ntflow version that recorded it
  program_file TEXT NOT NULL, -- the program's file name
  program_source TEXT NOT NULL, -- the program's source text ('' for a PE image)
  drivers TEXT NOT NULL, -- the drivers: a JSON array of {"file", "source"} for assembly or {"file", "image"} (base64) for a PE .sys
  program_image BLOB -- the program's PE32 image when it is a .exe (NULL for assembly)
)`,
    `CREATE TABLE code (
  -- each distinct instruction a session executed, stored once and shared by every execution of it
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  id INTEGER NOT NULL, -- the code id code_blocks.codes lists
  eip INTEGER NOT NULL, -- its linear address
  bytes BLOB NOT NULL, -- its bytes
  cpl INTEGER NOT NULL, -- the privilege level it ran at
  asm TEXT NOT NULL, -- its disassembly, WinDbg style, with symbols (mov eax,0B7h; call nt!KiSystemService (8053a2fb))
  symbol TEXT, -- module!Name+0xOffset of the address (NULL outside every module)
  PRIMARY KEY (session_id, id)
) WITHOUT ROWID`,
    `CREATE TABLE code_blocks (
  -- straight-line blocks of instructions (each at the address where the one before it ended), each distinct one stored once per session; instruction_runs.blocks lists them
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  id INTEGER NOT NULL, -- the block id instruction_runs.blocks lists
  codes TEXT NOT NULL, -- its instructions in order, a JSON array of code ids (code.id)
  length INTEGER NOT NULL, -- how many (json_array_length(codes))
  PRIMARY KEY (session_id, id)
) WITHOUT ROWID`,
    `CREATE TABLE counting (
  -- the whole numbers 0 … ${MAX_RUN - 1}: the instructions view expands a block's repeats with it (core SQLite has no series function)
  n INTEGER PRIMARY KEY -- a number
)`,
    `WITH RECURSIVE numbers(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n < ${MAX_RUN - 1}) INSERT INTO counting (n) SELECT n FROM numbers`,
    `CREATE TABLE instruction_runs (
  -- the retired instructions ('instruction' events), in runs: up to ${MAX_RUN} consecutive instructions with no other event between them (so one thread), one row; the instructions view expands them
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  seq INTEGER NOT NULL, -- the first instruction's event number: the run holds events seq … seq+count-1
  count INTEGER NOT NULL, -- instructions in the run (1 … ${MAX_RUN})
  icount INTEGER NOT NULL, -- instructions retired before the first (the k-th instruction of the run has icount + k)
  thread_id INTEGER NOT NULL, -- the guest thread that ran them
  blocks TEXT NOT NULL, -- the instructions, a JSON array of items [offset, block, times]: from the run's offset-th instruction on, block (code_blocks.id) executed times times in a row; a loop body repeated 1000 times is one item
  effects BLOB, -- what the instructions changed, encoded (ntflow query's run_effects(effects, count, k) gives the k-th instruction's, packed as exceptions.effects describes); NULL when no instruction of the run changed more than EIP
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID`,
    ...EVENT_TABLES.map(eventTableSql),
    `CREATE TABLE event_marks (
  -- every event that is not an instruction, in brief: where instruction rows get their icount and thread from
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  seq INTEGER NOT NULL, -- the event's number
  icount INTEGER NOT NULL, -- instructions retired before it
  thread_id INTEGER NOT NULL, -- the guest thread then (after a thread switch: the new one)
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID`,
    `CREATE TABLE checkpoints (
  -- the machine's state at points of the recording (the first before any event, then every slice of about 65 536 instructions): time travel starts from the nearest one and replays the effects after it
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  id INTEGER NOT NULL, -- checkpoint number within the session, from 0
  seq INTEGER NOT NULL, -- events before it: the state is the one after event seq-1
  icount INTEGER NOT NULL, -- instructions retired before it
  cpu TEXT NOT NULL, -- the CPU's registers, segments, descriptor tables, control registers and MSRs, as JSON
  thread_id INTEGER NOT NULL, -- the guest thread running
  PRIMARY KEY (session_id, id)
) WITHOUT ROWID`,
    `CREATE TABLE checkpoint_pages (
  -- physical memory at the checkpoints: checkpoint 0 holds every non-zero page, each later one the pages written since the one before; a page's content at checkpoint k is its row with the greatest checkpoint_id <= k
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  page INTEGER NOT NULL, -- physical page number (address >> 12)
  checkpoint_id INTEGER NOT NULL, -- the checkpoint (checkpoints.id)
  data BLOB NOT NULL, -- the page's 4096 bytes, raw-deflate compressed
  PRIMARY KEY (session_id, page, checkpoint_id)
) WITHOUT ROWID`,
    `CREATE TABLE guest_symbols (
  -- the guest's symbols when the session was recorded: every module!Name with its address
  session_id INTEGER NOT NULL, -- the session (sessions.id)
  address INTEGER NOT NULL, -- where it starts
  module TEXT NOT NULL, -- nt, ntdll, win32k, SharedUserData, the program's and drivers' names
  name TEXT NOT NULL, -- the symbol's name
  size INTEGER NOT NULL, -- bytes up to the next symbol
  PRIMARY KEY (session_id, module, name)
) WITHOUT ROWID`,
    `CREATE INDEX guest_symbols_by_address ON guest_symbols (session_id, address) -- which symbol holds an address`,
    `CREATE INDEX checkpoints_by_seq ON checkpoints (session_id, seq) -- the nearest checkpoint before an event`,
    `CREATE VIEW instructions AS
  -- one row per retired instruction, with its address, bytes and disassembly: instruction_runs expanded (items, repeats, each block's codes) and joined with code (plain SQLite, no extension; the effects are in instruction_effects, which needs ntflow query)
  SELECT
    r.session_id, -- the session
    r.seq + ${RUN_INDEX_SQL} AS seq, -- event number
    c.eip, -- the instruction's address
    c.cpl, -- privilege level it ran at
    c.bytes, -- its bytes
    c.asm, -- its disassembly
    c.symbol, -- module!Name+0xOffset
    r.icount + ${RUN_INDEX_SQL} AS icount, -- instructions retired before it
    r.thread_id, -- the guest thread
    ${RUN_CODE_SQL} AS code_id -- the instruction (code.id)
  FROM instruction_runs r ${expandRunsSql()}
  CROSS JOIN code c ON c.session_id = r.session_id AND c.id = ${RUN_CODE_SQL} -- CROSS JOIN keeps this order: runs by (session_id, seq), each run's items, each repeat, each code of the block, so rows come in seq order`,
    [
      'CREATE VIEW events AS',
      '  -- every event of every session in one place: its type and the common columns (the typed tables hold the rest)',
      '  -- a UNION ALL of the typed tables and the instructions view, in seq order: SQLite merges the typed tables, each read in its primary key (session_id, seq) order, with the instructions sorted per session (their seq is computed from the runs)',
      "  SELECT session_id, seq, 'instruction' AS type, icount, cpl, eip, thread_id -- session, event number, type, instructions before, privilege level, EIP, guest thread",
      '  FROM instructions',
      ...EVENT_TABLES.map((t) => `  UNION ALL SELECT session_id, seq, '${t.event}', icount, cpl, eip, thread_id FROM ${t.name}`),
      '  ORDER BY session_id, seq',
    ].join('\n'),
  ];
}
