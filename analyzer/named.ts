// Named queries: the questions users ask of a trace most, as SQL over the documented tables
// (`ntflow query FILE --named NAME`, `--named list` for this list). Each is plain SQL with the
// parameters :session (the --session id) and, for `path`, :syscall (--syscall ID), using ntflow's
// functions sym(), status_name(), service_name() and hex32() (see query.ts); copy one and adapt
// it. Those over `syscalls` need the projections: run 'ntflow replay FILE' first.
import type Database from 'better-sqlite3';
import { EVENT_TABLES, expandRunsSql, MAX_RUN, RUN_CODE_SQL, RUN_INDEX_SQL } from '../recorder/index.js';
import { QueryError, chooseSession, tableNames } from './query.js';
import { parseSyscallRef } from './syscall-ref.js';

export interface NamedQuery {
  name: string;
  /** One line for `--named list`. */
  summary: string;
  /** Tables it reads that the analyzer builds (the recorder's tables are always there). */
  projections: string[];
  /** Options it needs besides --session. */
  needs: ('syscall')[];
  sql: string;
}

/**
 * The instructions of session `session` with seq from `lo` to `hi` (SQL expressions), as rows
 * (seq, thread_id, eip, cpl, bytes, asm, symbol): the instructions view's rows, read through the
 * runs that can hold them (a run starts at most MAX_RUN - 1 events before its last instruction), so
 * that a range costs what it holds, not the session.
 */
function instructionsIn(session: string, lo: string, hi: string): string {
  return `(SELECT r.seq + ${RUN_INDEX_SQL} AS seq, r.thread_id, c.eip, c.cpl, c.bytes, c.asm, c.symbol
      FROM instruction_runs r ${expandRunsSql()} CROSS JOIN code c ON c.session_id = r.session_id AND c.id = ${RUN_CODE_SQL}
      WHERE r.session_id = ${session} AND r.seq > (${lo}) - ${MAX_RUN} AND r.seq <= (${hi}) AND r.seq + ${RUN_INDEX_SQL} BETWEEN (${lo}) AND (${hi}))`;
}

/**
 * The nearest instruction at or before `at` (at most `reach` events back, and after `floor`) that
 * passes `where` (over l.seq and the code columns): its column `col`. Searched in widening windows
 * (256, 4096, then all of `reach` events) since what is looked for is nearly always close.
 */
function nearestBefore(session: string, at: string, floor: string, reach: number, where: string, col: string): string {
  const window = (near: number, far: number) =>
    `(SELECT ${col} FROM ${instructionsIn(session, `max((${at}) - ${far - 1}, (${floor}) + 1)`, `(${at}) - ${near}`)} l WHERE ${where} ORDER BY l.seq DESC LIMIT 1)`;
  return `coalesce(${window(0, 256)}, ${window(256, 4096)}, ${window(4096, reach)})`;
}

/** The first instruction after `after` and before `before` (exclusive) passing `where`: its column `col`, searched as nearestBefore does, forwards. */
function nearestAfter(session: string, after: string, before: string, where: string, col: string): string {
  const window = (near: number, far: number) =>
    `(SELECT ${col} FROM ${instructionsIn(session, `(${after}) + ${near + 1}`, `min((${after}) + ${far}, (${before}) - 1)`)} l WHERE ${where} ORDER BY l.seq LIMIT 1)`;
  return `coalesce(${window(0, 256)}, ${window(256, 4096)}, ${window(4096, 1 << 30)})`;
}

/** The module of a code.symbol (`nt!KiSystemService+0xc4` → `nt`; '' outside every module). */
const moduleOf = (symbol: string) => `coalesce(substr(${symbol}, 1, instr(${symbol}, '!') - 1), '')`;

/** Modules a call passes through on its way to the kernel: the caller is outside them (a Win32
 * program's calls come down through kernel32). */
const SYSTEM_MODULES = "('nt', 'ntdll', 'kernel32', 'SharedUserData', 'win32k')";

/**
 * The call instruction that began syscall `s` (a syscalls row): the last `call` on its thread, at
 * or before its enter_seq, made from outside the system modules — the program's `call
 * ntdll!NtReadFile`, a driver's `call nt!ZwWriteFile` or `call nt!NtWriteFile`. `what` picks the
 * column (symbol, seq, or return address).
 */
function callerOf(s: string, what: 'symbol' | 'seq' | 'ret'): string {
  const col = what === 'symbol' ? 'l.symbol' : what === 'seq' ? 'l.seq' : 'l.eip + length(l.bytes)';
  return nearestBefore(
    `${s}.session_id`,
    `${s}.enter_seq`,
    `coalesce((SELECT max(t.seq) FROM thread_switches t WHERE t.session_id = ${s}.session_id AND t.seq <= ${s}.enter_seq), -1)`,
    100000,
    `l.asm LIKE 'call %' AND ${moduleOf('l.symbol')} NOT IN ${SYSTEM_MODULES}`,
    col,
  );
}

/** The calling instruction of one call: SELECT symbol, seq for (session, syscall id). */
export function callerOfSyscallSql(): string {
  return `SELECT ${callerOf('s', 'symbol')}, ${callerOf('s', 'seq')} FROM syscalls s WHERE s.session_id = ? AND s.id = ?`;
}

/** One line about an event of each typed table, for `path` (columns of that table). */
const DESCRIBE: Record<string, string> = {
  ring_transitions: `mechanism || printf(': ring %d → %d, to %s', from_cpl, to_cpl, coalesce(sym(to_eip), hex32(to_eip))) || printf(', esp %s → %s', hex32(from_esp), hex32(to_esp)) || CASE WHEN vector IS NULL THEN '' ELSE printf(', vector 0x%X', vector) END`,
  msr_reads: `printf('%s reads MSR 0x%X = 0x%X', source, msr, value)`,
  msr_writes: `printf('wrmsr: MSR 0x%X = 0x%X', msr, value)`,
  exceptions: `printf('exception vector %d at %s', vector, hex32(fault_eip)) || CASE WHEN error_code IS NULL THEN '' ELSE printf(', error code 0x%X', error_code) END || CASE WHEN cr2 IS NULL THEN '' ELSE ', cr2 ' || hex32(cr2) END`,
  machine_stops: `'machine stopped: ' || reason || coalesce(' (' || detail || ')', '')`,
  ssdt_lookups: `CASE WHEN in_range THEN printf('SSDT lookup: service 0x%X = table %d [0x%X] → %s (%s), %d argument bytes', service_number, table_index, service_index, coalesce(target_symbol, '?'), hex32(target), arg_bytes)
      ELSE printf('SSDT lookup: service 0x%X is past table %d''s limit (%d)', service_number, table_index, service_limit) || coalesce(
        (SELECT CASE WHEN x.name IS NULL THEN ' → ' ELSE '; looked up again → ' || x.name || ' → ' END || coalesce(x.status_name, 'never returned')
         FROM syscalls x WHERE x.session_id = e.session_id AND x.thread_id = e.thread_id AND x.enter_seq <= e.seq AND (x.exit_seq IS NULL OR x.exit_seq >= e.seq)
         ORDER BY x.enter_seq DESC LIMIT 1), '') END`,
  apc_checks: `printf('APC check returning to ring %d: UserApcPending %d, KernelApcPending %d', returning_to_cpl, user_apc_pending, kernel_apc_pending) || CASE WHEN delivered THEN ' → KiDeliverApc' ELSE '' END`,
  service_enters: `service || ' starts, PreviousMode ' || previous_mode || ', args ' || args`,
  service_exits: `service || ' returns ' || coalesce(status_name, status_name(status)) || printf(' (0x%08X)', status)`,
  probes: `printf('ProbeFor%s(%s, %d, %d) → %s', CASE kind WHEN 'read' THEN 'Read' ELSE 'Write' END, hex32(address), length, alignment, status_name(status))`,
  handle_lookups: `printf('handle 0x%X %s, %s → %s', handle, CASE handle_table WHEN 'none' THEN 'refused before any table' WHEN 'pseudo' THEN 'a pseudo-handle' ELSE 'in the ' || handle_table || ' table' END, previous_mode, status_name(status)) || coalesce(', ' || object_type || ' ' || hex32(object), '')`,
  handle_entries: `printf('handle 0x%X %s in the %s table of %s: %s %s', handle, CASE op WHEN 'create' THEN 'created' ELSE 'closed' END, handle_table, process, object_type, coalesce(object_name, hex32(object)))`,
  irps: `printf('IRP %s %s %s → %s, RequestorMode %s', hex32(irp), phase, major_function_name, driver, requestor_mode) || CASE WHEN status IS NULL THEN '' ELSE ' → ' || status_name(status) END`,
  thread_switches: `printf('thread %d (%s) → thread %d (%s): %s', from_thread, from_process, to_thread, to_process, reason)`,
  console_outputs: `printf('%s writes %d bytes to the console (%s, handle 0x%X)', process, bytes, stream, handle)`,
  debug_prints: `printf('%s from %s (%s): %d characters', source, coalesce(caller_symbol, '?'), mode, length(text))`,
};

/** One line about one event of a typed table: SQL with the parameters (session, seq); null for an unknown type. */
export function describeEventSql(eventType: string): string | null {
  const t = EVENT_TABLES.find((x) => x.event === eventType);
  if (!t) return null;
  return `SELECT ${DESCRIBE[t.name] ?? `'${t.event}'`} FROM ${t.name} e WHERE e.session_id = ? AND e.seq = ?`;
}

/** Every event of the session between b.first and b.last on thread b.thread, described. */
function eventsBetween(): string {
  const arms = [
    `SELECT i.seq, 'instruction' AS event, i.cpl, hex32(i.eip) AS eip, i.symbol, i.asm AS what
       FROM ${instructionsIn(':session', '(SELECT first FROM bounds)', '(SELECT last FROM bounds)')} i WHERE i.thread_id = (SELECT thread FROM bounds)`,
    ...EVENT_TABLES.map(
      (t) => `SELECT e.seq, '${t.event}', e.cpl, hex32(e.eip), sym(e.eip), ${DESCRIBE[t.name] ?? `'${t.event}'`}
       FROM ${t.name} e, bounds b WHERE e.session_id = :session AND e.seq BETWEEN b.first AND b.last AND e.thread_id = b.thread`,
    ),
  ];
  return arms.join('\n  UNION ALL ') + '\n  ORDER BY 1';
}

const SYSCALL_COLUMNS = `s.id, s.parent_id AS parent, s.enter_seq, s.exit_seq, s.process, s.thread_id AS thread,
    printf('0x%X', s.service_number) AS number, s.name, s.entry, s.caller_cpl, s.previous_mode,
    CASE WHEN s.status IS NULL THEN NULL ELSE printf('0x%08X', s.status) END AS status, s.status_name,
    ${callerOf('s', 'symbol')} AS caller`;

export const NAMED_QUERIES: readonly NamedQuery[] = [
  {
    name: 'failures',
    summary: 'system calls whose NTSTATUS is not NT_SUCCESS (>= 0x80000000, warnings included), with PreviousMode, entry, process/thread, the calling instruction and the reason (the findings projection; ntflow explain says it in full)',
    projections: ['syscalls', 'findings'],
    needs: [],
    sql: `SELECT s.id, s.enter_seq, s.process, s.thread_id AS thread, s.name, s.entry, s.previous_mode,
    printf('0x%08X', s.status) AS status, s.status_name, ${callerOf('s', 'symbol')} AS caller, s.parent_id AS parent,
    (SELECT f.cause || ': ' || substr(f.title, instr(f.title, ': ') + 2) FROM findings f
     WHERE f.session_id = s.session_id AND f.syscall_id = s.id AND f.kind = 'failure-cause') AS reason
  FROM syscalls s
  WHERE s.session_id = :session AND s.status >= 2147483648
  ORDER BY s.enter_seq, s.id`,
  },
  {
    name: 'syscalls',
    summary: 'every system call: entry (sysenter, int2e, zw-kernel, nt-direct), PreviousMode, NTSTATUS, parent call and caller',
    projections: ['syscalls'],
    needs: [],
    sql: `SELECT ${SYSCALL_COLUMNS}
  FROM syscalls s
  WHERE s.session_id = :session
  ORDER BY s.enter_seq, s.id`,
  },
  {
    name: 'path',
    summary: "the instruction path of one call (--syscall ID), with symbols and the events between: from the caller's call through the ring transitions to the return",
    projections: ['syscalls'],
    needs: ['syscall'],
    sql: `WITH s AS (SELECT * FROM syscalls WHERE session_id = :session AND id = :syscall),
  caller AS (SELECT ${callerOf('s', 'seq')} AS seq, ${callerOf('s', 'ret')} AS ret, s.enter_seq, s.exit_seq FROM s),
  back AS (
    SELECT ${nearestAfter(':session', 'coalesce(k.exit_seq, k.enter_seq)', '1 << 40', 'l.eip = k.ret', 'l.seq')} AS seq
    FROM caller k WHERE k.ret IS NOT NULL),
  bounds AS (
    SELECT coalesce(k.seq, s.enter_seq) AS first,
           coalesce((SELECT seq - 1 FROM back), s.exit_seq, (SELECT events - 1 FROM sessions WHERE id = :session)) AS last,
           s.thread_id AS thread
    FROM s, caller k)
  ${eventsBetween()}`,
  },
  {
    name: 'ssdt',
    summary: "every SSDT lookup: the service, the table's target and the routine the table should hold, the code between the lookup and `call ebx` and what it called (shows SSDT and KiFastCallEntry hooks)",
    projections: [],
    needs: [],
    sql: `WITH k AS (
    SELECT x.*, (SELECT l.seq FROM ${instructionsIn('x.session_id', 'x.seq + 1', 'x.seq + 255')} l WHERE l.asm = 'call ebx' ORDER BY l.seq LIMIT 1) AS call_seq
    FROM ssdt_lookups x WHERE x.session_id = :session AND x.in_range),
  d AS (
    SELECT k.*,
      CASE WHEN table_index = 0 THEN 'nt!' ELSE 'win32k!' END || service_name(table_index << 12 | service_index) AS expected,
      (SELECT l.symbol FROM ${instructionsIn('k.session_id', 'k.seq + 1', 'k.call_seq - 1')} l WHERE ${moduleOf('l.symbol')} <> 'nt' ORDER BY l.seq LIMIT 1) AS detour,
      ${nearestAfter('k.session_id', 'k.call_seq', '1 << 40', '1', 'l.symbol')} AS called
    FROM k
    UNION ALL
    SELECT x.*, NULL, CASE WHEN table_index = 0 THEN 'nt!' ELSE 'win32k!' END || service_name(table_index << 12 | service_index), NULL, NULL
    FROM ssdt_lookups x WHERE x.session_id = :session AND NOT x.in_range)
  SELECT seq, thread_id AS thread, printf('0x%X', service_number) AS number, table_index AS "table", printf('0x%X', service_index) AS "index",
    in_range, hex32(target) AS target, target_symbol, expected, arg_bytes, detour, called,
    CASE WHEN NOT in_range THEN 'out of range'
         WHEN expected IS NOT NULL AND target_symbol IS NOT expected THEN 'SSDT hook'
         WHEN detour IS NOT NULL THEN 'inline hook'
         ELSE 'ok' END AS verdict
  FROM d ORDER BY seq`,
  },
  {
    name: 'apc',
    summary: "KiServiceExit's APC checks: returning to which ring, UserApcPending/KernelApcPending, delivered, after which service",
    projections: [],
    needs: [],
    sql: `SELECT a.seq, a.thread_id AS thread, a.returning_to_cpl, a.user_apc_pending, a.kernel_apc_pending, a.delivered,
    (SELECT x.service || ' ' || coalesce(x.status_name, status_name(x.status)) FROM service_exits x
     WHERE x.session_id = a.session_id AND x.thread_id = a.thread_id AND x.seq < a.seq ORDER BY x.seq DESC LIMIT 1) AS after
  FROM apc_checks a
  WHERE a.session_id = :session
  ORDER BY a.seq`,
  },
  {
    name: 'rings',
    summary: 'ring transitions: SYSENTER, SYSEXIT, INT, IRETD, exceptions, with where from and to (symbols) and the stacks',
    projections: [],
    needs: [],
    sql: `SELECT r.seq, r.thread_id AS thread, r.mechanism, r.from_cpl, r.to_cpl,
    hex32(r.from_eip) AS from_eip, sym(r.from_eip) AS from_symbol, hex32(r.to_eip) AS to_eip, sym(r.to_eip) AS to_symbol,
    hex32(r.from_esp) AS from_esp, hex32(r.to_esp) AS to_esp, r.vector
  FROM ring_transitions r
  WHERE r.session_id = :session
  ORDER BY r.seq`,
  },
  {
    name: 'msr',
    summary: 'MSR reads (RDMSR, and the SYSENTER_CS/ESP/EIP reads SYSENTER and SYSEXIT make) and writes',
    projections: [],
    needs: [],
    sql: `SELECT m.seq, m.thread_id AS thread, 'read' AS access, m.source, printf('0x%X', m.msr) AS msr, printf('0x%X', m.value) AS value, sym(m.value) AS symbol, sym(m.eip) AS at
  FROM msr_reads m WHERE m.session_id = :session
  UNION ALL
  SELECT w.seq, w.thread_id, 'write', 'wrmsr', printf('0x%X', w.msr), printf('0x%X', w.value), sym(w.value), sym(w.eip)
  FROM msr_writes w WHERE w.session_id = :session
  ORDER BY 1`,
  },
];

export function findNamedQuery(name: string): NamedQuery | undefined {
  return NAMED_QUERIES.find((q) => q.name === name);
}

/** `--named list`: each name, what it needs and what it shows. */
export function namedQueryList(): string {
  const label = (q: NamedQuery) => q.name + (q.needs.includes('syscall') ? ' --syscall ID' : '');
  const width = Math.max(...NAMED_QUERIES.map((q) => label(q).length));
  const lines = NAMED_QUERIES.map((q) => `${label(q).padEnd(width)}  ${q.summary}${q.projections.length ? ` [needs 'ntflow replay']` : ''}`);
  return lines.join('\n') + '\n';
}

/**
 * Check that the projections a query reads are there for the session; a one-line QueryError that
 * says to run 'ntflow replay FILE' otherwise.
 */
export function requireProjections(db: Database.Database, file: string, q: NamedQuery, sessionId: number): void {
  if (q.projections.length === 0) return;
  const have = tableNames(db);
  const missing = q.projections.filter((p) => !have.has(p));
  if (missing.length) {
    throw new QueryError(`--named ${q.name} reads the ${missing.join(', ')} table${missing.length > 1 ? 's' : ''}, which ${file} does not have yet: run 'ntflow replay ${file}' first`);
  }
  if (have.has('projections')) {
    for (const p of q.projections) {
      const done = db.prepare('SELECT 1 FROM projections WHERE session_id = ? AND name = ?').get(sessionId, p);
      if (!done) throw new QueryError(`session ${sessionId} has not been replayed into ${p}: run 'ntflow replay ${file} --session ${sessionId}' first`);
    }
  }
}

/** --syscall ID or SESSION:ID: a syscalls.id of the session (syscall-ref.ts). */
export function checkSyscall(db: Database.Database, sessionId: number, value: string | undefined, what = '--named path'): number {
  if (value === undefined) throw new QueryError(`${what} needs --syscall ID (the syscalls.id of the call, or SESSION:ID; see 'ntflow query FILE --named syscalls')`);
  const ref = parseSyscallRef(value);
  if (ref.session !== undefined && chooseSession(db, ref.session) !== sessionId) throw new QueryError(`--syscall ${ref.text} is not in session ${sessionId}; give the session once, as --session or as SESSION:ID`);
  const id = ref.id;
  const found = db.prepare('SELECT 1 FROM syscalls WHERE session_id = ? AND id = ?').get(sessionId, id);
  if (!found) {
    const r = db.prepare('SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM syscalls WHERE session_id = ?').get(sessionId) as { n: number; lo: number | null; hi: number | null };
    const ids = r.n === 0 ? 'it has none' : `its ids run ${r.lo} … ${r.hi}`;
    throw new QueryError(`no syscall ${id} in session ${sessionId} (${ids}; see --named syscalls)`);
  }
  return id;
}
