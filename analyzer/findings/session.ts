// What the rules read: a session's calls (the syscalls projection, already rebuilt) and the few
// typed events made inside them — probes, handle lookups and entries, exception dispatches,
// rejected SSDT lookups, IRPs, service exits — each attached to the innermost call of its thread
// whose enter..exit holds it. Read once per session with one statement per table: these tables
// are small next to the instruction log, so this stays fast on a 10 M-instruction trace.
import type Database from 'better-sqlite3';
import { callerOfSyscallSql } from '../named.js';
import { sessionSymbols } from '../state.js';
import type { SymbolTable } from '../../core/index.js';

export interface Call {
  id: number;
  parentId: number | null;
  enterSeq: number;
  exitSeq: number | null;
  thread: number;
  process: string;
  serviceNumber: number | null;
  name: string | null;
  callerCpl: number;
  entry: string | null;
  previousMode: string | null;
  status: number | null;
  statusName: string | null;
  /** syscall_args by position: [name, value, decoded]. */
  args: [string, number, string | null][];
  probes: ProbeRow[];
  lookups: LookupRow[];
  faults: FaultRow[];
  rejected: SsdtRow[];
  /** The routine the call's last in-range SSDT lookup gave (module!Name: a hook shows its own), null when none. */
  ssdtTarget: string | null;
  irps: IrpRow[];
  exits: ExitRow[];
  children: Call[];
}

export interface ProbeRow {
  seq: number;
  kind: 'read' | 'write';
  address: number;
  length: number;
  alignment: number;
  status: number;
  faultAddress: number | null;
  fault: string | null;
}

export interface LookupRow {
  seq: number;
  thread: number;
  handle: number;
  table: string;
  previousMode: string;
  status: number;
  wantedType: string | null;
  desiredAccess: number | null;
  grantedAccess: number | null;
  foundType: string | null;
}

export interface EntryRow {
  seq: number;
  thread: number;
  op: 'create' | 'close';
  handle: number;
  table: string;
  process: string;
  objectType: string;
  objectName: string | null;
  grantedAccess: number;
}

export interface FaultRow {
  seq: number;
  code: number;
  codeName: string;
  address: number;
  previousMode: string;
  handler: string;
  parameters: number[];
}

export interface SsdtRow {
  seq: number;
  serviceNumber: number;
  tableIndex: number;
  serviceIndex: number;
  tableBase: number;
  limit: number;
}

export interface IrpRow {
  seq: number;
  phase: string;
  majorName: string;
  driver: string;
  requestorMode: string;
  status: number | null;
}

export interface ExitRow {
  seq: number;
  service: string;
  status: number;
}

export interface SessionData {
  db: Database.Database;
  sessionId: number;
  calls: Call[];
  byId: Map<number, Call>;
  entries: EntryRow[];
  /** Thread id → its process's image name (from thread switches and calls). */
  processOf: Map<number, string>;
  /** Seq of the first event and one past the last. */
  events: number;
  outcome: string | null;
  /** Whether memory can be rebuilt (time travel needs checkpoints; a synthetic trace has none). */
  hasCheckpoints: boolean;
  symbols: SymbolTable;
  /** module!Name+0xOffset of an address, or its hex. */
  sym(address: number): string;
  /** The calling instruction of a call (module!Name+0xOffset, its seq), from outside the system modules. */
  callerOf(call: Call): { symbol: string | null; seq: number | null };
  /** The event that shows the call's entry: its SYSENTER's or INT 2Eh's ring transition, else enter_seq. */
  entrySeq(call: Call): number;
}

const u32 = (v: unknown) => (v === null || v === undefined ? null : Number(v) >>> 0);

export function loadSession(db: Database.Database, sessionId: number): SessionData {
  const s = db.prepare('SELECT events, outcome FROM sessions WHERE id = ?').get(sessionId) as { events: number; outcome: string | null };
  const rows = db
    .prepare('SELECT id, parent_id, enter_seq, exit_seq, thread_id, process, service_number, name, caller_cpl, entry, previous_mode, status, status_name FROM syscalls WHERE session_id = ? ORDER BY id')
    .raw()
    .all(sessionId) as unknown[][];
  const calls: Call[] = rows.map((r) => ({
    id: r[0] as number,
    parentId: r[1] as number | null,
    enterSeq: r[2] as number,
    exitSeq: r[3] as number | null,
    thread: r[4] as number,
    process: r[5] as string,
    serviceNumber: r[6] as number | null,
    name: r[7] as string | null,
    callerCpl: r[8] as number,
    entry: r[9] as string | null,
    previousMode: r[10] as string | null,
    status: u32(r[11]),
    statusName: r[12] as string | null,
    args: [],
    probes: [],
    lookups: [],
    faults: [],
    rejected: [],
    ssdtTarget: null,
    irps: [],
    exits: [],
    children: [],
  }));
  const byId = new Map(calls.map((c) => [c.id, c]));
  for (const c of calls) if (c.parentId !== null) byId.get(c.parentId)?.children.push(c);
  for (const [id, position, name, value, decoded] of db.prepare('SELECT syscall_id, position, name, value, decoded FROM syscall_args WHERE session_id = ? ORDER BY syscall_id, position').raw().all(sessionId) as [number, number, string, number, string | null][]) {
    const c = byId.get(id);
    if (c) c.args[position] = [name, value >>> 0, decoded];
  }

  // The innermost call of a thread holding a seq.
  const byThread = new Map<number, Call[]>();
  for (const c of calls) {
    const list = byThread.get(c.thread) ?? [];
    list.push(c);
    byThread.set(c.thread, list);
  }
  const callAt = (thread: number, seq: number): Call | undefined => {
    const list = byThread.get(thread);
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i];
      if (c.enterSeq <= seq && (c.exitSeq === null || c.exitSeq >= seq)) return c;
    }
    return undefined;
  };
  const all = (sql: string) => db.prepare(sql).raw().all(sessionId) as unknown[][];
  for (const r of all('SELECT seq, thread_id, kind, address, length, alignment, status, fault_address, fault FROM probes WHERE session_id = ? ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.probes.push({
      seq: r[0] as number,
      kind: r[2] as 'read' | 'write',
      address: u32(r[3])!,
      length: r[4] as number,
      alignment: r[5] as number,
      status: u32(r[6])!,
      faultAddress: u32(r[7]),
      fault: r[8] as string | null,
    });
  }
  for (const r of all('SELECT seq, thread_id, handle, handle_table, previous_mode, status, wanted_type, desired_access, granted_access, found_type FROM handle_lookups WHERE session_id = ? ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.lookups.push({
      seq: r[0] as number,
      thread: r[1] as number,
      handle: u32(r[2])!,
      table: r[3] as string,
      previousMode: r[4] as string,
      status: u32(r[5])!,
      wantedType: r[6] as string | null,
      desiredAccess: u32(r[7]),
      grantedAccess: u32(r[8]),
      foundType: r[9] as string | null,
    });
  }
  const entries: EntryRow[] = all('SELECT seq, thread_id, op, handle, handle_table, process, object_type, object_name, granted_access FROM handle_entries WHERE session_id = ? ORDER BY seq').map((r) => ({
    seq: r[0] as number,
    thread: r[1] as number,
    op: r[2] as 'create' | 'close',
    handle: u32(r[3])!,
    table: r[4] as string,
    process: r[5] as string,
    objectType: r[6] as string,
    objectName: r[7] as string | null,
    grantedAccess: u32(r[8])!,
  }));
  for (const r of all('SELECT seq, thread_id, code, code_name, address, previous_mode, handler, parameters FROM exception_dispatches WHERE session_id = ? ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.faults.push({
      seq: r[0] as number,
      code: u32(r[2])!,
      codeName: r[3] as string,
      address: u32(r[4])!,
      previousMode: r[5] as string,
      handler: r[6] as string,
      parameters: (JSON.parse((r[7] as string) ?? '[]') as number[]).map((v) => v >>> 0),
    });
  }
  for (const r of all('SELECT seq, thread_id, target_symbol FROM ssdt_lookups WHERE session_id = ? AND in_range ORDER BY seq')) {
    const c = callAt(r[1] as number, r[0] as number);
    if (c) c.ssdtTarget = r[2] as string | null;
  }
  for (const r of all('SELECT seq, thread_id, service_number, table_index, service_index, table_base, service_limit FROM ssdt_lookups WHERE session_id = ? AND NOT in_range ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.rejected.push({
      seq: r[0] as number,
      serviceNumber: r[2] as number,
      tableIndex: r[3] as number,
      serviceIndex: r[4] as number,
      tableBase: u32(r[5])!,
      limit: r[6] as number,
    });
  }
  for (const r of all('SELECT seq, thread_id, phase, major_function_name, driver, requestor_mode, status FROM irps WHERE session_id = ? ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.irps.push({ seq: r[0] as number, phase: r[2] as string, majorName: r[3] as string, driver: r[4] as string, requestorMode: r[5] as string, status: u32(r[6]) });
  }
  for (const r of all('SELECT seq, thread_id, service, status FROM service_exits WHERE session_id = ? ORDER BY seq')) {
    callAt(r[1] as number, r[0] as number)?.exits.push({ seq: r[0] as number, service: r[2] as string, status: u32(r[3])! });
  }

  const processOf = new Map<number, string>();
  for (const c of calls) processOf.set(c.thread, c.process);
  for (const [to, name] of all('SELECT to_thread, to_process FROM thread_switches WHERE session_id = ? ORDER BY seq') as [number, string][]) processOf.set(to, name);

  const symbols = sessionSymbols(db, sessionId);
  const callerStmt = db.prepare(callerOfSyscallSql()).raw();
  const callers = new Map<number, { symbol: string | null; seq: number | null }>();
  const ringAfter = db.prepare("SELECT min(seq) FROM ring_transitions WHERE session_id = ? AND thread_id = ? AND seq >= ? AND seq <= ? AND mechanism IN ('sysenter', 'int')").pluck();
  return {
    db,
    sessionId,
    calls,
    byId,
    entries,
    processOf,
    events: s.events,
    outcome: s.outcome,
    hasCheckpoints: db.prepare('SELECT 1 FROM checkpoints WHERE session_id = ? LIMIT 1').get(sessionId) !== undefined,
    symbols,
    sym: (address) => symbols.format(address >>> 0) ?? (address >>> 0).toString(16).toUpperCase().padStart(8, '0'),
    entrySeq(call) {
      if (call.entry !== 'sysenter' && call.entry !== 'int2e') return call.enterSeq;
      return (ringAfter.get(sessionId, call.thread, call.enterSeq, call.enterSeq + 16) as number | null) ?? call.enterSeq;
    },
    callerOf(call) {
      let c = callers.get(call.id);
      if (!c) {
        const r = callerStmt.get(sessionId, call.id) as [string | null, number | null] | undefined;
        c = { symbol: r?.[0] ?? null, seq: r?.[1] ?? null };
        callers.set(call.id, c);
      }
      return c;
    },
  };
}
