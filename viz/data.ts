// From a trace to the shapes of viz/types.ts for the sequence diagram: its lanes, steps and
// syscall bands (the flame chart's and call graph's inputs are in viz/data-charts.ts). Everything
// is read from the recording (the log, the typed event tables) and the projections (syscalls,
// calls); nothing is re-executed. Registers for tooltips come from time travel (stateAt), which
// costs about 10 ms a step, so only a bounded number of steps get them.
//
// A large session (past 1,000 calls to draw) has its runs of identical calls folded and its long
// runs of steps capped (viz/elide.ts); only the calls still drawn are read step by step, and the
// input's `notice` says what was left out.
//
// Steps: one for each change of lane between consecutive instructions of a thread (a call, a
// return, a jump, SYSENTER/SYSEXIT, INT/IRETD, an exception, a kernel callback), one for a call or
// jump into another function within a lane, and a note for each event that matters (PreviousMode,
// the APC check, the NTSTATUS, an IRP, a thread switch). The events that say why an arrow went
// where it did label it: EAX on the stub's call, MSR[176] on SYSENTER, SSDT[n] on the dispatcher's
// `call ebx`.
import type Database from 'better-sqlite3';
import { ntSuccess, statusName } from '../core/index.js';
import { Flow, eventAt, flowOf, replaySession, staleSessions, stateAt, tableNames, type SyscallTableRow } from '../analyzer/index.js';
import { InstructionRuns, traceName } from '../recorder/index.js';
import { bandFailures, findingNotes, mergeNotes, sessionFindings, type EventPlace } from './findings.js';
import type { DiffMark, FlowStep, SequenceInput, SyscallBand } from './types.js';
import { aggregateDetail, aggregateLabel, capSteps, elideCalls, elisionNotice, insertBySeq, type CallAggregate, type ElisionCall, type ElisionLimits } from './elide.js';
import { FrameIndex, prepared } from './frames.js';
import { type LaneContext, splitSymbol, laneOf, laneSpec, sortLanes, laneContext } from './lanes.js';

/** A request the trace cannot answer (unknown syscall id, no such session): one line for the user. */
export class VizInputError extends Error {
  override name = 'VizInputError';
}

export interface SequenceOptions {
  /** Draw these calls (syscalls.id) step by step; the default: every call when there are at most `expandLimit`, else one row per call. */
  syscallIds?: number[];
  /** Up to this many calls the whole session is drawn step by step (default 40). */
  expandLimit?: number;
  /** Steps that get the registers from time travel in `detail` (default 120; 0 for none). */
  registerSteps?: number;
  /** Called while steps are extracted: done of total syscalls/ranges (for a progress bar). */
  onProgress?: (done: number, total: number) => void;
  /** More notes to draw at their events (a comparison's marks); each goes on the lane and thread of its event. */
  notes?: ExtraNote[];
  /** When a large session's calls are aggregated and long runs of steps elided (viz/elide.ts; defaults ELISION_DEFAULTS). */
  elision?: ElisionLimits;
}

/** A note the caller adds to the diagram at event `seq` (drawn when a drawn call holds it, or the whole session is drawn). */
export interface ExtraNote {
  seq: number;
  label: string;
  detail?: Record<string, string>;
  diff?: DiffMark;
}

// ---- formatting ---------------------------------------------------------------------------

/** WinDbg-style hex: 0B7h, 25h, 8053A270. */
export function masmHex(n: number): string {
  const h = (n >>> 0).toString(16).toUpperCase();
  return `${/^[A-F]/.test(h) ? '0' : ''}${h}h`;
}
export const hex8 = (n: number) => (n >>> 0).toString(16).toUpperCase().padStart(8, '0');
const hex0x = (n: number) => `0x${(n >>> 0).toString(16).toUpperCase()}`;
const statusOf = (code: number) => ({ code: code >>> 0, name: statusName(code), failed: !ntSuccess(code) });

// ---- sessions and the syscalls projection ------------------------------------------------

// tableNames also sees the projections a reader folded for itself (a session still recording).
const hasTable = (db: Database.Database, name: string) => tableNames(db).has(name);

/**
 * Make sure the session's projections exist and are up to date: replay them when missing or behind
 * the log (the db must then be open for writing; a read-only one gives a one-line VizInputError
 * saying to run `ntflow replay`).
 */
export function ensureSessionProjections(db: Database.Database, sessionId: number): void {
  if (!staleSessions(db).includes(sessionId)) return;
  if (db.readonly) throw new VizInputError(`session ${sessionId} has no projections yet (or they are behind its log); run 'ntflow replay ${traceName(db)} --session ${sessionId}' first`);
  replaySession(db, sessionId);
}


function bandOf(r: SyscallTableRow, firstSeq: number, lastSeq: number): SyscallBand {
  return {
    syscallId: r.id,
    name: r.name ?? `service ${hex0x(r.service_number ?? 0)} (rejected)`,
    entry: r.entry ?? 'unknown',
    previousMode: r.previous_mode ?? '',
    status: r.status === null ? null : { code: r.status >>> 0, name: r.status_name ?? statusName(r.status), failed: !ntSuccess(r.status) },
    parentId: r.parent_id,
    firstSeq,
    lastSeq,
  };
}

/**
 * The events a call's path covers: from the caller's call of its stub (ntdll!NtReadFile, a
 * kernel nt!ZwReadFile) to the stub's return — wider than syscalls.enter_seq..exit_seq, which
 * runs from the entering instruction to the returning one.
 */
function pathRange(frames: FrameIndex, r: SyscallTableRow, lastEvent: number): [number, number] {
  let first = r.enter_seq;
  let last = r.exit_seq ?? lastEvent;
  if (r.entry === 'nt-direct') return [first, last];
  // The thread's frames around the entering instruction, innermost first.
  for (const f of frames.enclosing(r.thread_id, r.enter_seq)) {
    // A frame the entry itself opens (nt!ZwXxx's `call KiSystemService`) is inside the path already.
    if (f.enter_seq >= r.enter_seq) continue;
    const stub = f.module === 'ntdll' || f.module === 'SharedUserData' || /^nt!Zw/.test(f.symbol ?? '');
    if (!stub) break;
    first = Math.min(first, f.enter_seq);
    last = Math.max(last, f.exit_seq ?? lastEvent);
  }
  return [first, last];
}

// ---- steps from the log -------------------------------------------------------------------

interface Instr {
  seq: number;
  cpl: number;
  eip: number;
  length: number;
  asm: string;
  symbol: string | null;
}

interface EventRow {
  seq: number;
  type: string;
  cpl: number;
  thread_id: number;
  [k: string]: unknown;
}

const EVENT_QUERIES: [string, string][] = [
  ['ring-transition', 'SELECT seq, cpl, thread_id, mechanism, vector, from_eip, to_eip FROM ring_transitions'],
  ['msr-read', 'SELECT seq, cpl, thread_id, msr, value, source FROM msr_reads'],
  ['ssdt-lookup', 'SELECT seq, cpl, thread_id, service_number, service_index, table_index, service_limit, target, target_symbol, in_range FROM ssdt_lookups'],
  ['apc-check', 'SELECT seq, cpl, thread_id, user_apc_pending, kernel_apc_pending, delivered FROM apc_checks'],
  ['service-enter', 'SELECT seq, cpl, thread_id, service, service_number, previous_mode, args FROM service_enters'],
  ['service-exit', 'SELECT seq, cpl, thread_id, service, status, status_name FROM service_exits'],
  ['irp', 'SELECT seq, cpl, thread_id, phase, major_function_name, driver, requestor_mode, status FROM irps'],
  ['thread-switch', 'SELECT seq, cpl, thread_id, from_thread, to_thread, from_process, to_process, reason FROM thread_switches'],
  ['exception', 'SELECT seq, cpl, thread_id, vector, error_code, cr2, fault_eip FROM exceptions'],
  ['exception-dispatch', 'SELECT seq, cpl, thread_id, code, code_name, address, previous_mode, first_chance, handler, parameters FROM exception_dispatches'],
];

/** Who an exception-dispatch event hands the exception to, as a note says it. */
const DISPATCH_TO: Record<string, string> = {
  'seh-chain': "the kernel's SEH handlers",
  'user-dispatcher': 'KiUserExceptionDispatcher (the thread\'s handlers)',
  service: "the service's own handler: its status",
  'process-end': 'second chance: the process ends',
  bugcheck: 'second chance: bug check',
};

const VECTOR_NAMES: Record<number, string> = { 0: '#DE', 1: '#DB', 3: '#BP', 6: '#UD', 8: '#DF', 13: '#GP', 14: '#PF' };

interface ThreadCursor {
  lane: string;
  fn: string | null;
  symbol: string | null;
  seq: number;
  /** Where the instruction falls through to. */
  next: number;
  asm: string;
  flow: Flow;
  exception: EventRow | null;
}

interface Band {
  row: SyscallTableRow;
  first: number;
  last: number;
}

interface CallOutcome {
  name: string | null;
  status: number | null;
}

/**
 * What became of a call whose number the limit check rejected, from its syscalls row: rejected for
 * good (no routine: the status KiSystemService returned), or looked up again after the thread's
 * conversion to a GUI thread and dispatched (the routine and what it returned).
 */
export function rejectedOutcome(call: CallOutcome | undefined): { text: string; status?: FlowStep['status'] } {
  if (!call) return { text: '' };
  const status = call.status === null ? undefined : statusOf(call.status);
  const returned = status ? status.name : 'never returned';
  if (call.name === null) return { text: ` → ${returned}`, status };
  return { text: `; looked up again → ${call.name} → ${returned}`, status };
}

/** An instruction of the code table, decoded once: where it runs (lane, function) and how it leaves. */
interface CodeInfo {
  eip: number;
  asm: string;
  symbol: string | null;
  lane: string;
  fn: string | null;
  /** Where it falls through to. */
  next: number;
  flow: Flow;
}

/** The session's code table by code id, each row decoded once (a loop runs the same few rows a million times). */
function codeInfo(db: Database.Database, sessionId: number, ctx: LaneContext): Map<number, CodeInfo> {
  const rows = db.prepare('SELECT id, cpl, eip, length(bytes) AS length, asm, symbol FROM code WHERE session_id = ?').all(sessionId) as (Instr & { id: number })[];
  return new Map(
    rows.map((r) => [
      r.id,
      { eip: r.eip, asm: r.asm, symbol: r.symbol, lane: laneOf(ctx, r.symbol, r.cpl), fn: splitSymbol(r.symbol).fn, next: (r.eip + r.length) >>> 0, flow: flowOf(r.asm) },
    ]),
  );
}

/** Steps for the events first..last (inclusive). */
function stepsInRange(db: Database.Database, sessionId: number, ctx: LaneContext, first: number, last: number, bands: Band[], code: Map<number, CodeInfo>): FlowStep[] {
  // The instructions of the range and the one after it (where the range's last instruction went):
  // their seqs and code ids from the runs (no row object per instruction), each code row decoded
  // once (`code`).
  const runs = new InstructionRuns(db, sessionId);
  const end = runs.first(last, () => true) ?? last;
  const { seqs: instrSeqs, codes: instrCodes } = runs.codes(first, end);
  const events: EventRow[] = [];
  for (const [type, sql] of EVENT_QUERIES) {
    for (const r of prepared(db, `${sql} WHERE session_id = ? AND seq BETWEEN ? AND ?`).safeIntegers(false).all(sessionId, first, last) as EventRow[]) {
      events.push({ ...r, type });
    }
  }
  events.sort((a, b) => a.seq - b.seq);
  const startThread =
    (prepared(db, 'SELECT thread_id FROM event_marks WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1').pluck().get(sessionId, first) as number | undefined) ??
    (prepared(db, 'SELECT first_thread FROM sessions WHERE id = ?').pluck().get(sessionId) as number);

  // The call a rejected lookup belongs to: the innermost syscalls row of its thread around it.
  const callStmt = prepared(db, 
    'SELECT name, status FROM syscalls WHERE session_id = ? AND thread_id = ? AND enter_seq <= ? AND (exit_seq IS NULL OR exit_seq >= ?) ORDER BY enter_seq DESC LIMIT 1',
  );
  const callAt = (thread: unknown, seq: number) => callStmt.get(sessionId, thread, seq, seq) as CallOutcome | undefined;
  const steps: FlowStep[] = [];
  const cursors = new Map<number, ThreadCursor>();
  // When each thread was last switched to: a thread's first arrow after it resumes is dated then,
  // not at its last instruction before it was switched out (steps stay in seq order, so a band's
  // steps are the steps of its events).
  const resumedAt = new Map<number, number>();
  let thread = startThread;
  let sysenterMsr: string | null = null;
  let ssdtLabel: string | null = null;
  // A jump out of a routine into another, whose next arrow (same thread) jumps straight back to
  // the instruction after the first jump: the way XP's KiSystemService checks a kernel caller's
  // arguments (jae KiSystemServiceAccessViolation; test; je back). Named by the routine it goes
  // on with, not by the stub's name, which on this successful path would read like an error.
  const detours = new Map<number, { step: FlowStep; next: number; fromFn: string | null; toFn: string | null }>();
  const bandAt = (seq: number): Band | undefined => {
    let best: Band | undefined;
    for (const b of bands) if (b.first <= seq && seq <= b.last && (!best || b.first >= best.first)) best = b;
    return best;
  };
  const add = (s: Omit<FlowStep, 'detail' | 'syscallId'> & { detail?: Record<string, string> }) => {
    const band = bandAt(s.seq);
    const step: FlowStep = { ...s, detail: { seq: String(s.seq), thread: String(thread), ...(s.detail ?? {}) } };
    if (band) step.syscallId = band.row.id;
    steps.push(step);
    return step;
  };

  let ei = 0;
  const onEvent = (e: EventRow) => {
    const lane = cursors.get(thread)?.lane ?? laneOf(ctx, null, e.cpl);
    switch (e.type) {
      case 'thread-switch':
        add({
          seq: e.seq,
          kind: 'note',
          from: lane,
          to: lane,
          label: `thread ${e.from_thread} → ${e.to_thread} (${e.to_process}): ${e.reason}`,
          detail: { from: `${e.from_thread} (${e.from_process})`, to: `${e.to_thread} (${e.to_process})`, reason: String(e.reason) },
        });
        thread = e.to_thread as number;
        resumedAt.set(thread, e.seq);
        return;
      case 'msr-read':
        if (e.msr === 0x176 && e.source === 'sysenter') sysenterMsr = `MSR[176] = ${hex8(Number(e.value))}`;
        return;
      case 'ssdt-lookup': {
        // The table slot the dispatcher used (table << 12 | index); EAX, as the caller gave it, labels the entering call.
        const slot = hex0x(((e.table_index as number) << 12) | (e.service_index as number));
        if (e.in_range) {
          ssdtLabel = `SSDT[${slot}] → ${e.target_symbol ?? hex8(e.target as number)}`;
        } else {
          const { text, status } = rejectedOutcome(callAt(e.thread_id, e.seq));
          add({
            seq: e.seq,
            kind: 'note',
            from: lane,
            to: lane,
            label: `SSDT[${slot}]: past the limit (${e.service_limit})${text}`,
            status,
            detail: { service_number: hex0x(e.service_number as number), table: String(e.table_index), limit: String(e.service_limit) },
          });
        }
        return;
      }
      case 'service-enter': {
        const args = JSON.parse(String(e.args ?? '[]')) as number[];
        add({
          seq: e.seq,
          kind: 'note',
          from: lane,
          to: lane,
          label: `PreviousMode = ${e.previous_mode}`,
          detail: { service: String(e.service), ...Object.fromEntries(args.map((a, i) => [`arg${i}`, hex8(a)])) },
        });
        return;
      }
      case 'service-exit': {
        const st = statusOf(e.status as number);
        add({ seq: e.seq, kind: 'note', from: lane, to: lane, label: `${e.service}: ${st.name}`, status: st, detail: { status: `${hex8(st.code)} ${st.name}` } });
        return;
      }
      case 'apc-check':
        add({
          seq: e.seq,
          kind: 'note',
          from: lane,
          to: lane,
          label: `APC check: user APC pending = ${e.user_apc_pending ? 'yes' : 'no'}${e.delivered ? ' → KiDeliverApc' : ''}`,
          detail: { user_apc_pending: String(e.user_apc_pending), kernel_apc_pending: String(e.kernel_apc_pending), delivered: String(e.delivered) },
        });
        return;
      case 'irp': {
        const done = e.phase === 'complete';
        const st = done && e.status !== null ? statusOf(e.status as number) : undefined;
        add({
          seq: e.seq,
          kind: 'note',
          from: lane,
          to: lane,
          label: done ? `${e.major_function_name} completed${st ? `: ${st.name}` : ''}` : `${e.major_function_name} → ${e.driver}`,
          status: st,
          detail: { driver: String(e.driver), requestor_mode: String(e.requestor_mode) },
        });
        return;
      }
      case 'exception': {
        const c = cursors.get(thread);
        if (c) c.exception = e;
        return;
      }
      case 'exception-dispatch': {
        const st = statusOf(e.code as number);
        add({
          seq: e.seq,
          kind: 'note',
          from: lane,
          to: lane,
          label: `${st.name} at ${hex8(e.address as number)} → ${DISPATCH_TO[String(e.handler)] ?? String(e.handler)}`,
          status: st,
          detail: { code: `${hex8(st.code)} ${st.name}`, mode: String(e.previous_mode), chance: e.first_chance ? 'first' : 'second', parameters: String(e.parameters) },
        });
        return;
      }
      default:
        return;
    }
  };

  for (let k = 0; k < instrSeqs.length; k++) {
    const seq = instrSeqs[k];
    const ins = code.get(instrCodes[k]);
    if (!ins) throw new Error(`instruction ${seq} refers to code ${instrCodes[k]}, which is not in the code table`);
    while (ei < events.length && events[ei].seq < seq) onEvent(events[ei++]);
    const { lane, fn } = ins;
    const prev = cursors.get(thread);
    if (prev) {
      // Most instructions stay in their routine and branch nowhere: nothing to draw, nothing to decide.
      if (!prev.exception && lane === prev.lane && (fn === prev.fn || (prev.flow !== Flow.Call && prev.flow !== Flow.Jump))) {
        prev.fn = fn;
        prev.symbol = ins.symbol;
        prev.seq = seq;
        prev.next = ins.next;
        prev.asm = ins.asm;
        prev.flow = ins.flow;
        continue;
      }
      const where = ins.symbol ?? hex8(ins.eip);
      let kind: FlowStep['kind'] | null = null;
      let label = '';
      if (prev.exception) {
        const v = prev.exception.vector as number;
        kind = 'exception';
        label = `${VECTOR_NAMES[v] ?? `exception ${v}`}${prev.exception.cr2 !== null && prev.exception.cr2 !== undefined ? ` at ${hex8(prev.exception.cr2 as number)}` : ''} → ${where}`;
        prev.exception = null;
      } else if (lane !== prev.lane || (fn !== prev.fn && (prev.flow === Flow.Call || prev.flow === Flow.Jump))) {
        switch (prev.flow) {
          case Flow.Call:
            kind = 'call';
            label = ssdtLabel && prev.lane === 'nt-entry' ? ssdtLabel : `call ${where}`;
            if (ssdtLabel && prev.lane === 'nt-entry') ssdtLabel = null;
            break;
          case Flow.Ret:
            kind = 'return';
            label = `ret → ${where}`;
            break;
          case Flow.Sysenter:
            kind = 'sysenter';
            label = `sysenter: ${sysenterMsr ?? 'MSR[176]'} → ${fn ?? where}`;
            sysenterMsr = null;
            break;
          case Flow.Sysexit:
            kind = 'sysexit';
            label = `sysexit → ${where}`;
            break;
          case Flow.Int:
            kind = 'int';
            label = `${prev.asm.replace(/\s+/g, ' ')} → ${where}`;
            break;
          case Flow.Iret:
            kind = 'iret';
            label = `iretd → ${where}`;
            break;
          case Flow.Jump: {
            const detour = detours.get(thread);
            if (detour && steps[steps.length - 1] === detour.step && detour.toFn === prev.fn && detour.fromFn === fn && ins.eip === detour.next) {
              // Straight back: the first arrow becomes the whole detour; no second arrow.
              detour.step.label = `jmp → ${where} (the next instruction, via a stub and straight back)`;
              detour.step.to = lane;
              detour.step.detail = { ...detour.step.detail, through: detour.step.detail.to ?? '', back: prev.asm, to: where };
              detours.delete(thread);
              break;
            }
            kind = 'jump';
            label = `jmp ${where}`;
            break;
          }
          default:
            // Control arrived elsewhere without a branch: the kernel's TypeScript side ran it
            // (a driver's dispatch routine, a work item, DriverEntry) — a call in all but name.
            if (lane !== prev.lane && ins.eip === prev.next) {
              kind = 'jump';
              label = `falls through to ${where}`;
            } else if (lane !== prev.lane) {
              kind = 'call';
              label = `callback → ${where}`;
            }
        }
      }
      if (kind) {
        const step = add({ seq: Math.max(prev.seq, resumedAt.get(thread) ?? -1), kind, from: prev.lane, to: lane, label, detail: { instruction: prev.asm, at: prev.symbol ?? '', to: where } });
        if (kind === 'jump' && prev.flow === Flow.Jump && fn !== prev.fn) detours.set(thread, { step, next: prev.next, fromFn: prev.fn, toFn: fn });
        else detours.delete(thread);
      }
    }
    cursors.set(thread, { lane, fn, symbol: ins.symbol, seq, next: ins.next, asm: ins.asm, flow: ins.flow, exception: prev?.exception ?? null });
  }
  while (ei < events.length) onEvent(events[ei++]);
  return steps;
}

/** Label the calls' entering steps with EAX and the return to the caller with the status. */
function annotateBands(steps: FlowStep[], bands: Band[]): void {
  // Steps come in seq order, so each band's steps are found by binary search (a scan of every
  // step per band took seconds for a thousand calls); the plain scans stay for any other order.
  const seqs = steps.map((s) => s.seq);
  const sorted = seqs.every((q, i) => i === 0 || seqs[i - 1] <= q);
  /** The first index whose seq is after `seq`. */
  const after = (seq: number) => {
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** The last step in events from..to of `kind`, searching back from `to`; -1 when none. */
  const lastOf = (kind: FlowStep['kind'], from: number, to: number) => {
    if (sorted) {
      for (let i = after(to) - 1; i >= 0 && steps[i].seq >= from; i--) if (steps[i].kind === kind) return i;
      return -1;
    }
    for (let i = steps.length - 1; i >= 0; i--) if (steps[i].seq <= to && steps[i].seq >= from && steps[i].kind === kind) return i;
    return -1;
  };
  for (const b of bands) {
    const r = b.row;
    if (r.entry === 'nt-direct' || r.service_number === null) continue;
    // The stub's call that carries the number in EAX: the last call at or before the entering instruction.
    let k = -1;
    if (sorted) k = lastOf('call', b.first, r.enter_seq);
    else {
      for (let i = 0; i < steps.length; i++) {
        const s = steps[i];
        if (s.seq > r.enter_seq) break;
        if (s.seq >= b.first && s.kind === 'call') k = i;
      }
    }
    if (k >= 0) steps[k].label += ` · EAX = ${masmHex(r.service_number)}`;
    if (r.status !== null) {
      const i = lastOf('return', b.first, b.last);
      if (i >= 0 && steps[i].seq === b.last) {
        const s = steps[i];
        s.status = statusOf(r.status);
        s.label += ` · ${s.status.name}`;
      }
    }
  }
}

/** Add the registers after each step's event (time travel) to the first `budget` steps. */
function addRegisters(db: Database.Database, sessionId: number, steps: FlowStep[], budget: number): void {
  for (const s of steps.slice(0, budget)) {
    if (s.kind === 'note') continue;
    try {
      const st = stateAt(db, sessionId, s.seq);
      for (const [r, v] of Object.entries(st.regs)) s.detail[r.toUpperCase()] = hex8(v);
      if (st.previousMode) s.detail.PreviousMode = st.previousMode;
    } catch {
      return; // no checkpoints (older trace): no registers, the rest of the diagram stands
    }
  }
}

// ---- the sequence diagram -----------------------------------------------------------------

export function sequenceInput(db: Database.Database, sessionId: number, options: SequenceOptions = {}): SequenceInput {
  ensureSessionProjections(db, sessionId);
  const session = db.prepare('SELECT name, events FROM sessions WHERE id = ?').get(sessionId) as { name: string; events: number } | undefined;
  if (!session) throw new VizInputError(`no session ${sessionId} in this trace`);
  const ctx = laneContext(db, sessionId);
  const rows = db.prepare('SELECT * FROM syscalls WHERE session_id = ? ORDER BY id').safeIntegers(false).all(sessionId) as SyscallTableRow[];
  const lastEvent = session.events - 1;
  const expandLimit = options.expandLimit ?? 40;
  const budget = options.registerSteps ?? 120;

  let chosen: SyscallTableRow[] | null;
  if (options.syscallIds && options.syscallIds.length) {
    const byId = new Map(rows.map((r) => [r.id, r]));
    const missing = options.syscallIds.filter((id) => !byId.has(id));
    if (missing.length) {
      throw new VizInputError(
        `no syscall ${missing.join(', ')} in session ${sessionId} (its syscalls are ${rows.length ? `1 to ${rows.length}` : 'none'}; see 'ntflow query FILE "SELECT id, name FROM syscalls"')`,
      );
    }
    chosen = [...new Set(options.syscallIds)].sort((a, b) => a - b).map((id) => byId.get(id)!);
  } else if (rows.length <= expandLimit) {
    chosen = null; // the whole session, step by step
  } else {
    return collapsedInput(db, sessionId, session.name, ctx, rows, options);
  }

  // Past ELISION_DEFAULTS.maxCalls calls, runs of identical ones are drawn as their first, one
  // "×N more" row, and their last (viz/elide.ts); only the calls left are read step by step.
  const file = traceName(db);
  const elision = chosen ? elideCalls(chosen.map(elisionCall), pinnedCalls(db, sessionId), options.elision) : { keep: rows.map((r) => r.id), aggregates: [] };
  const kept = new Set(elision.keep);
  const list = (chosen ?? rows).filter((r) => kept.has(r.id));
  const frames = new FrameIndex(db, sessionId);
  const bands: Band[] = list.map((r) => {
    const [first, last] = pathRange(frames, r, lastEvent);
    return { row: r, first, last };
  });
  let steps: FlowStep[] = [];
  if (chosen === null) {
    options.onProgress?.(0, 1);
    steps = stepsInRange(db, sessionId, ctx, 0, lastEvent, bands, codeInfo(db, sessionId, ctx));
    options.onProgress?.(1, 1);
  } else {
    // Merge overlapping ranges (a driver's call inside a program's call) so no event is read twice.
    const ranges: [number, number][] = [];
    for (const b of [...bands].sort((x, y) => x.first - y.first)) {
      const top = ranges[ranges.length - 1];
      if (top && b.first <= top[1]) top[1] = Math.max(top[1], b.last);
      else ranges.push([b.first, b.last]);
    }
    const code = codeInfo(db, sessionId, ctx);
    ranges.forEach(([a, z], i) => {
      for (const step of stepsInRange(db, sessionId, ctx, a, z, bands, code)) steps.push(step);
      options.onProgress?.(i + 1, ranges.length);
    });
  }
  annotateBands(steps, bands);
  addCallIds(db, sessionId, steps, frames);
  const capped = capSteps(steps, options.elision, file);
  steps = capped.steps;
  if (budget > 0) addRegisters(db, sessionId, steps, budget);
  addArgs(db, sessionId, steps, bands);
  if (elision.aggregates.length) {
    // After the registers: an aggregate row stands for many calls, no one instruction's state is its own.
    const rowById = new Map(rows.map((r) => [r.id, r]));
    const callerLane = callerLaneOf(db, sessionId, ctx);
    steps = insertBySeq(steps, elision.aggregates.map((a) => aggregateStep(a, rowById, callerLane, file)));
  }
  let what = chosen === null ? 'every call' : `call${chosen.length > 1 ? 's' : ''} ${chosen.map((r) => `#${r.id} ${r.name ?? '?'}`).join(', ')}`;
  if (chosen && elision.aggregates.length) what = `${chosen.length.toLocaleString('en')} chosen calls, ${list.length} drawn step by step, runs of identical calls aggregated`;
  const input = withFindings(db, sessionId, ctx, rows, steps, bands.map((b) => bandOf(b.row, b.first, b.last)), chosen === null, options.notes);
  const notice = elisionNotice(elision, capped.elided, chosen?.length ?? rows.length, file);
  return { title: `${session.name}: ${what}`, ...input, ...(notice.length ? { notice } : {}) };
}

// ---- what large sessions leave out (viz/elide.ts) -------------------------------------------

function elisionCall(r: SyscallTableRow): ElisionCall {
  const band = bandOf(r, 0, 0);
  return {
    id: r.id,
    parentId: r.parent_id,
    threadId: r.thread_id,
    name: band.name,
    entry: band.entry,
    previousMode: band.previousMode,
    status: band.status?.name ?? null,
    failed: band.status?.failed ?? false,
    events: r.exit_seq === null ? null : r.exit_seq - r.enter_seq,
  };
}

/** Calls that are never folded into a run: those a finding is about. */
function pinnedCalls(db: Database.Database, sessionId: number): Set<number> {
  if (!hasTable(db, 'findings')) return new Set();
  return new Set(db.prepare('SELECT DISTINCT syscall_id FROM findings WHERE session_id = ? AND syscall_id IS NOT NULL').pluck().all(sessionId) as number[]);
}

/** The lane a call is made from: the program's for a ring 3 caller, else the lane of its entering instruction. */
function callerLaneOf(db: Database.Database, sessionId: number, ctx: LaneContext): (r: SyscallTableRow) => string {
  const runs = new InstructionRuns(db, sessionId);
  const codeRow = db.prepare('SELECT symbol, cpl FROM code WHERE session_id = ? AND id = ?');
  return (r) => {
    if (r.caller_cpl === 3) return 'program';
    const seq = runs.first(r.enter_seq - 1, () => true);
    const at = seq === null ? undefined : (codeRow.get(sessionId, runs.at(seq)!.code) as { symbol: string | null; cpl: number } | undefined);
    return at ? laneOf(ctx, at.symbol, at.cpl) : 'nt';
  };
}

/** The one row that stands for folded calls: an arrow from their caller to the service, at the first one's entry. */
function aggregateStep(a: CallAggregate, rowById: Map<number, SyscallTableRow>, callerLane: (r: SyscallTableRow) => string, file: string): FlowStep {
  const first = rowById.get(a.ids[0])!;
  const like = bandOf(rowById.get(a.like)!, 0, 0);
  return {
    seq: first.enter_seq,
    kind: 'call',
    from: callerLane(first),
    to: 'nt-service',
    label: aggregateLabel(a),
    detail: { ...aggregateDetail(a, file), thread: String(first.thread_id) },
    ...(like.status ? { status: like.status } : {}),
  };
}


/** Where an event happened: the lane of the instruction at its eip, and its thread. */
function eventPlace(db: Database.Database, sessionId: number, ctx: LaneContext): EventPlace {
  const symbol = db.prepare('SELECT symbol FROM code WHERE session_id = ? AND eip = ? LIMIT 1').pluck();
  return (seq) => {
    const e = eventAt(db, sessionId, seq);
    if (!e) return { lane: laneOf(ctx, null, 0), thread: 0 };
    return { lane: laneOf(ctx, (symbol.get(sessionId, e.eip) as string | null | undefined) ?? null, e.cpl), thread: e.thread_id };
  };
}

/**
 * The findings' notes merged into the steps (viz/findings.ts), each band's failure mark (its own
 * status, or a failing call inside it, from every call of the session), the lanes the steps use.
 */
function withFindings(
  db: Database.Database,
  sessionId: number,
  ctx: LaneContext,
  rows: SyscallTableRow[],
  steps: FlowStep[],
  bands: SyscallBand[],
  wholeSession: boolean,
  extra: readonly ExtraNote[] = [],
): Omit<SequenceInput, 'title'> {
  const place = eventPlace(db, sessionId, ctx);
  const { listed, notes } = findingNotes(sessionFindings(db, sessionId), bands, place, wholeSession);
  notes.push(...extraNotes(extra, bands, place, wholeSession));
  notes.sort((a, b) => a.seq - b.seq);
  addCallIds(db, sessionId, notes);
  const all = mergeNotes(steps, notes);
  const failures = bandFailures(
    rows.map((r) => {
      const b = bandOf(r, 0, 0);
      return { id: r.id, parentId: r.parent_id, name: b.name, status: b.status, enterSeq: r.enter_seq, exitSeq: r.exit_seq };
    }),
    bands,
  );
  for (const b of bands) {
    const failure = failures.get(b.syscallId);
    if (failure) b.failure = failure;
  }
  const lanes = sortLanes(all.flatMap((s) => [s.from, s.to])).map((id) => laneSpec(ctx, id));
  return { lanes, steps: all, bands, findings: listed };
}

/** The caller's notes as steps: on their event's lane and thread, in the innermost drawn band holding them. */
function extraNotes(extra: readonly ExtraNote[], bands: readonly SyscallBand[], place: EventPlace, wholeSession: boolean): FlowStep[] {
  const out: FlowStep[] = [];
  for (const n of extra) {
    let band: SyscallBand | undefined;
    for (const b of bands) if (b.firstSeq <= n.seq && n.seq <= b.lastSeq && (!band || b.firstSeq >= band.firstSeq)) band = b;
    if (!band && !wholeSession) continue;
    const { lane, thread } = place(n.seq);
    const step: FlowStep = { seq: n.seq, kind: 'note', from: lane, to: lane, label: n.label, detail: { seq: String(n.seq), thread: String(thread), ...(n.detail ?? {}) } };
    if (n.diff) step.diff = n.diff;
    if (band) step.syscallId = band.syscallId;
    out.push(step);
  }
  return out;
}

/** The named arguments (syscall_args) on each call's PreviousMode note. */
function addArgs(db: Database.Database, sessionId: number, steps: FlowStep[], bands: Band[]): void {
  if (!hasTable(db, 'syscall_args') || bands.length === 0) return;
  const stmt = db.prepare('SELECT name, value, decoded FROM syscall_args WHERE session_id = ? AND syscall_id = ? ORDER BY position');
  const notes = new Map<number, FlowStep>();
  for (const s of steps) if (s.syscallId !== undefined && !notes.has(s.syscallId) && s.label.startsWith('PreviousMode')) notes.set(s.syscallId, s);
  for (const b of bands) {
    const note = notes.get(b.row.id);
    if (!note) continue;
    const args = stmt.all(sessionId, b.row.id) as { name: string; value: number; decoded: string | null }[];
    if (!args.length) continue;
    for (const k of Object.keys(note.detail)) if (/^arg\d+$/.test(k)) delete note.detail[k];
    for (const a of args) note.detail[a.name] = a.decoded ? `${hex8(a.value)} ${a.decoded}` : hex8(a.value);
  }
}

/** callId: the innermost calls frame on the step's thread whose events contain its seq. */
function addCallIds(db: Database.Database, sessionId: number, steps: FlowStep[], frames?: FrameIndex): void {
  if (!steps.length) return;
  const index = frames ?? new FrameIndex(db, sessionId, Math.min(...steps.map((s) => s.seq)), Math.max(...steps.map((s) => s.seq)));
  for (const s of steps) {
    const f = index.innermost(Number(s.detail.thread), s.seq);
    if (f) s.callId = f.id;
  }
}

/** Many calls: one row per call (caller → service, with its status); --syscall expands one. */
function collapsedInput(db: Database.Database, sessionId: number, name: string, ctx: LaneContext, rows: SyscallTableRow[], options: SequenceOptions): SequenceInput {
  const callerLane = callerLaneOf(db, sessionId, ctx);
  const steps: FlowStep[] = [];
  const bands: SyscallBand[] = [];
  const file = traceName(db);
  const elision = elideCalls(rows.map(elisionCall), pinnedCalls(db, sessionId), options.elision);
  const kept = new Set(elision.keep);
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const aggregateAt = new Map(elision.aggregates.map((a) => [a.ids[0], a]));
  rows.forEach((r, i) => {
    if (i % 256 === 255) options.onProgress?.(i + 1, rows.length);
    if (!kept.has(r.id)) {
      const a = aggregateAt.get(r.id);
      if (a) steps.push(aggregateStep(a, rowById, callerLane, file));
      return;
    }
    const from = callerLane(r);
    const band = bandOf(r, r.enter_seq, r.exit_seq ?? r.enter_seq);
    const status = band.status ?? undefined;
    const number = r.service_number === null ? '' : ` (${masmHex(r.service_number)})`;
    steps.push({
      seq: r.enter_seq,
      kind: 'call',
      from,
      to: 'nt-service',
      label: `${band.name}${number} via ${band.entry}${status ? ` → ${status.name}` : ''}`,
      detail: {
        syscall: String(r.id),
        thread: String(r.thread_id),
        process: r.process,
        entry: band.entry,
        PreviousMode: band.previousMode,
        status: status ? `${hex8(status.code)} ${status.name}` : 'never returned',
      },
      status,
      syscallId: r.id,
    });
    bands.push(band);
  });
  options.onProgress?.(rows.length, rows.length);
  const notice = elisionNotice(elision, [], rows.length, file);
  const title = notice.length
    ? `${name}: ${rows.length} calls in ${steps.length} rows, runs of identical calls aggregated (--syscall ID draws one step by step)`
    : `${name}: ${rows.length} calls, one row each (--syscall ID draws one step by step)`;
  return { title, ...withFindings(db, sessionId, ctx, rows, steps, bands, true, options.notes), ...(notice.length ? { notice } : {}) };
}
