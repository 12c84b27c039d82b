// What happened in a session, in sentences generated from its rows: the syscalls projection (each
// call's entry, PreviousMode, status, parent, caller), the handle lookups, probes, APC checks and
// SSDT lookups made inside each call, and the sessions row's outcome. Nothing here knows a
// scenario: the demo page's "what happened" paragraphs come from here, so a change in the guest
// shows in the text.
//
// sessionFacts() reads the rows (the projections must be built); narrateSession() and
// describeCall() are pure: facts in, text out.
import type Database from 'better-sqlite3';
import { statusName } from '../core/index.js';
import { findNamedQuery } from './named.js';
import { registerFunctions } from './query.js';

export interface HandleFact {
  handle: number;
  /** 'process', 'kernel', 'pseudo' or 'none' (refused before any table). */
  table: string;
  status: number;
  objectType: string | null;
}

export interface ProbeFact {
  kind: 'read' | 'write';
  address: number;
  length: number;
  status: number;
}

export interface CallFact {
  id: number;
  parentId: number | null;
  /** The Nt routine; null for a number the limit check rejected. */
  name: string | null;
  serviceNumber: number | null;
  entry: string | null;
  callerCpl: number;
  process: string;
  threadId: number;
  previousMode: string | null;
  status: number | null;
  /** The calling instruction's function (module!Name), when the trace shows it. */
  caller: string | null;
  handles: HandleFact[];
  probes: ProbeFact[];
  /** SSDT lookups of this call that the limit check rejected (a win32k number before the GUI conversion). */
  rejectedLookups: number;
  apcDelivered: boolean;
  /** The dispatch went elsewhere than the service table's own routine. */
  hook: { kind: 'SSDT hook' | 'inline hook'; via: string; expected: string | null } | null;
}

export interface SessionFacts {
  /** sessions.outcome ('exited', 'exception', …) and its one-line detail. */
  outcome: string | null;
  outcomeDetail: string | null;
  calls: CallFact[];
}

const hex = (n: number) => (n >>> 0).toString(16);

/** The calls of a session and what happened inside each, from the trace's rows. */
export function sessionFacts(db: Database.Database, sessionId: number): SessionFacts {
  const s = db.prepare('SELECT outcome, outcome_detail FROM sessions WHERE id = ?').get(sessionId) as { outcome: string | null; outcome_detail: string | null } | undefined;
  if (!s) throw new RangeError(`no session ${sessionId}`);
  registerFunctions(db, sessionId);
  const rows = db
    .prepare('SELECT id, parent_id, name, service_number, entry, caller_cpl, process, thread_id, previous_mode, status, enter_seq, exit_seq FROM syscalls WHERE session_id = ? ORDER BY id')
    .all(sessionId) as {
    id: number;
    parent_id: number | null;
    name: string | null;
    service_number: number | null;
    entry: string | null;
    caller_cpl: number;
    process: string;
    thread_id: number;
    previous_mode: string | null;
    status: number | null;
    enter_seq: number;
    exit_seq: number | null;
  }[];
  const callers = new Map(
    (db.prepare(findNamedQuery('syscalls')!.sql).all({ session: sessionId }) as { id: number; caller: string | null }[]).map((r) => [r.id, r.caller]),
  );
  const calls: CallFact[] = rows.map((r) => ({
    id: r.id,
    parentId: r.parent_id,
    name: r.name,
    serviceNumber: r.service_number,
    entry: r.entry,
    callerCpl: r.caller_cpl,
    process: r.process,
    threadId: r.thread_id,
    previousMode: r.previous_mode,
    status: r.status === null ? null : r.status >>> 0,
    caller: callers.get(r.id)?.replace(/\+0x[0-9a-f]+$/i, '') ?? null,
    handles: [],
    probes: [],
    rejectedLookups: 0,
    apcDelivered: false,
    hook: null,
  }));

  // An event belongs to the innermost call of its thread whose enter..exit holds it.
  const byThread = new Map<number, (typeof rows)[number][]>();
  for (const r of rows) byThread.set(r.thread_id, [...(byThread.get(r.thread_id) ?? []), r]);
  const factOf = new Map(calls.map((c) => [c.id, c]));
  const callAt = (thread: number, seq: number): CallFact | undefined => {
    const list = byThread.get(thread) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i];
      if (r.enter_seq <= seq && (r.exit_seq === null || r.exit_seq >= seq)) return factOf.get(r.id);
    }
    return undefined;
  };
  const events = (sql: string) => db.prepare(sql).all(sessionId) as Record<string, unknown>[];
  for (const h of events('SELECT seq, thread_id, handle, handle_table, status, object_type FROM handle_lookups WHERE session_id = ? ORDER BY seq')) {
    callAt(h.thread_id as number, h.seq as number)?.handles.push({ handle: (h.handle as number) >>> 0, table: h.handle_table as string, status: (h.status as number) >>> 0, objectType: h.object_type as string | null });
  }
  for (const p of events('SELECT seq, thread_id, kind, address, length, status FROM probes WHERE session_id = ? ORDER BY seq')) {
    callAt(p.thread_id as number, p.seq as number)?.probes.push({ kind: p.kind as 'read' | 'write', address: (p.address as number) >>> 0, length: p.length as number, status: (p.status as number) >>> 0 });
  }
  for (const a of events('SELECT seq, thread_id FROM apc_checks WHERE session_id = ? AND delivered ORDER BY seq')) {
    const c = callAt(a.thread_id as number, a.seq as number);
    if (c) c.apcDelivered = true;
  }
  for (const l of events('SELECT seq, thread_id FROM ssdt_lookups WHERE session_id = ? AND NOT in_range ORDER BY seq')) {
    const c = callAt(l.thread_id as number, l.seq as number);
    if (c) c.rejectedLookups++;
  }
  const ssdt = db.prepare(findNamedQuery('ssdt')!.sql).all({ session: sessionId }) as { seq: number; thread: number; verdict: string; target_symbol: string | null; expected: string | null; detour: string | null }[];
  for (const l of ssdt) {
    if (l.verdict !== 'SSDT hook' && l.verdict !== 'inline hook') continue;
    const c = callAt(l.thread, l.seq);
    if (c) c.hook = { kind: l.verdict, via: (l.verdict === 'SSDT hook' ? l.target_symbol : l.detour)?.replace(/\+0x[0-9a-f]+$/i, '') ?? '?', expected: l.expected };
  }
  return { outcome: s.outcome, outcomeDetail: s.outcome_detail, calls };
}

// ---- sentences --------------------------------------------------------------------------------

const ENTRY: Record<string, string> = {
  sysenter: 'through SYSENTER',
  int2e: 'through INT 2Eh',
  'zw-kernel': 'through a kernel Zw stub into KiSystemService (no ring change)',
  'nt-direct': 'by a direct call of the routine (no dispatch)',
};

/** The call's name: NtReadFile, or the rejected number. */
function callName(c: CallFact): string {
  if (c.name !== null) return c.name;
  return `service 0x${hex(c.serviceNumber ?? 0).toUpperCase()} (rejected by the limit check)`;
}

function statusText(c: CallFact): string {
  return c.status === null ? 'did not return' : `→ ${statusName(c.status)}`;
}

function handleText(h: HandleFact): string | null {
  const v = `handle ${hex(h.handle)}`;
  if (h.table === 'pseudo') return null;
  if (h.table === 'none') return `${v} refused before any handle table (${statusName(h.status)})`;
  return h.status === 0 ? `${v} found in the ${h.table} table${h.objectType ? ` (${h.objectType})` : ''}` : `${v} not in the ${h.table} table (${statusName(h.status)})`;
}

function probeText(probes: ProbeFact[]): string | null {
  if (probes.length === 0) return null;
  const failed = probes.find((p) => p.status !== 0);
  const count = `${probes.length} user buffer${probes.length > 1 ? 's' : ''} probed`;
  if (!failed) return count;
  const where = failed.address >= 0x80000000 ? ', a kernel address' : '';
  return `${count}, ProbeFor${failed.kind === 'read' ? 'Read' : 'Write'}(${hex(failed.address).padStart(8, '0')}${where}) failing with ${statusName(failed.status)}`;
}

/**
 * What happened inside the call, as clauses: the dispatch, hooks, handles, probes, the APC. With
 * `notableOnly`, only what departs from the plain path (a failed lookup or probe, a hook, an APC).
 */
function clauses(c: CallFact, notableOnly = false, sayNoProbes = false): string[] {
  const out: string[] = [];
  if (c.rejectedLookups > 0 && c.name !== null) out.push(`dispatched after ${c.rejectedLookups === 1 ? 'a lookup' : `${c.rejectedLookups} lookups`} past the table's limit`);
  if (c.hook) out.push(c.hook.kind === 'SSDT hook' ? `the SSDT entry held ${c.hook.via}${c.hook.expected ? `, not ${c.hook.expected}` : ''}` : `the dispatcher detoured through ${c.hook.via} before calling the routine`);
  for (const h of c.handles) {
    const t = notableOnly && h.status === 0 ? null : handleText(h);
    if (t) out.push(t);
  }
  const p = notableOnly && c.probes.every((x) => x.status === 0) ? null : probeText(c.probes);
  if (p) out.push(p);
  else if (sayNoProbes && c.probes.length === 0) out.push('no buffer probed');
  if (c.apcDelivered) out.push('KiServiceExit delivered a user APC on the way out');
  return out;
}

/**
 * One call in a sentence: `#5 NtWriteFile, from drv!DispatchRead inside #4 NtReadFile, by a
 * direct call of the routine (no dispatch), PreviousMode UserMode: handle 8 found in the process
 * table (File), … → STATUS_ACCESS_VIOLATION.` (`all`: the session's calls, for the parent's name;
 * `sayNoProbes`: say so when the routine probed nothing.)
 */
export function describeCall(c: CallFact, all: readonly CallFact[] = [], options: { sayNoProbes?: boolean } = {}): string {
  const where: string[] = [];
  if (c.caller) where.push(`from ${c.caller}`);
  const parent = c.parentId === null ? undefined : all.find((p) => p.id === c.parentId);
  if (parent) where.push(`inside #${parent.id} ${callName(parent)}`);
  else if (c.process === 'System' && c.callerCpl === 0) where.push('on a System thread');
  const head = `#${c.id} ${callName(c)}${where.length ? `, ${where.join(' ')}` : ''}, ${ENTRY[c.entry ?? ''] ?? 'entered as the trace could not tell'}, PreviousMode ${c.previousMode ?? 'unknown'}`;
  const more = clauses(c, false, options.sayNoProbes);
  return `${head}${more.length ? `: ${more.join('; ')}` : ''} ${statusText(c)}.`;
}

/** A program's own calls in one sentence when they share entry and mode; the notable ones in detail. */
function programParagraph(process: string, calls: CallFact[]): string {
  const entries = new Set(calls.map((c) => c.entry));
  const modes = new Set(calls.map((c) => c.previousMode));
  const same = entries.size === 1 && modes.size === 1;
  const n = calls.length;
  const head = `The program, ${process}, made ${n} system call${n > 1 ? 's' : ''}${same ? `, ${n > 1 ? 'each ' : ''}${ENTRY[calls[0].entry ?? ''] ?? 'entered as the trace could not tell'} with PreviousMode ${calls[0].previousMode}` : ''}: `;
  const items = calls.map((c) => {
    const notable = clauses(c, true);
    const how = same ? '' : ` (${c.entry}, ${c.previousMode})`;
    return `#${c.id} ${callName(c)}${how}${notable.length ? ` (${notable.join('; ')})` : ''} ${statusText(c)}`;
  });
  return head + items.join(', ') + '.';
}

/**
 * The paragraphs: the program's calls; the calls made from kernel mode (drivers, work items), one
 * sentence each; then how the session ended. (Handles left open, and why each call failed, are
 * the findings' to say: analyzer/findings.)
 */
export function narrateSession(f: SessionFacts): string[] {
  const paragraphs: string[] = [];
  const top = f.calls.filter((c) => c.callerCpl === 3 && c.parentId === null);
  const byProcess = new Map<string, CallFact[]>();
  for (const c of top) byProcess.set(c.process, [...(byProcess.get(c.process) ?? []), c]);
  for (const [process, calls] of byProcess) paragraphs.push(programParagraph(process, calls));
  const kernel = f.calls.filter((c) => !top.includes(c));
  if (kernel.length) paragraphs.push(`From kernel mode: ${kernel.map((c) => describeCall(c, f.calls)).join(' ')}`);
  const end = f.outcomeDetail ? `The session ended: ${f.outcomeDetail}.` : `The session did not finish (${f.outcome ?? 'incomplete'}).`;
  paragraphs.push(end);
  return paragraphs;
}

