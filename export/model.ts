// What every timeline format needs from a recorded session, read once and shared: the guest's
// processes and threads, and a time-ordered stream of balanced slice begins/ends (call frames and
// system calls), instants (MSR reads, SSDT lookups, APC checks) and flow ends.
//
// Time is the instruction count (icount): instructions retired before an event. Non-instruction
// events carry it (event_marks); an instruction's comes from the nearest mark before it, as the
// `instructions` view computes — here in one pass over a single query ordered by seq, instead of
// the view's correlated subquery per row. A slice covers its entering instruction through its
// leaving instruction, so it ends at icount(exit) + 1 (the next event's icount).
//
// Nesting is enforced here, once, with a stack per thread and lane (frames; system calls), so no
// exporter can write an END without its BEGIN: a frame opening under a parent that is not on top
// closes what is above the parent first, and a frame still open at the end closes at the end.
import type Database from 'better-sqlite3';
import { tableNames, type SyscallTableRow } from '../analyzer/index.js';
import { ExportInputError } from './types.js';

export type Ring = 0 | 3;
export type ArgValue = string | number | boolean;
export type Args = Record<string, ArgValue>;

export interface ThreadInfo {
  tid: number;
  pid: number;
  /** The image name of its process ('System' for system threads). */
  process: string;
  name: string;
}

export interface ProcessInfo {
  /**
   * The trace records thread ids, not process ids: a process is keyed by its lowest thread id
   * (the Linux convention of the main thread's tid = pid, which viewers understand).
   */
  pid: number;
  name: string;
}

/** 'calls': the call-tree frames of the thread; 'syscalls': its system calls (their own lane, as they need not nest with frames). */
export type Lane = 'calls' | 'syscalls';

export interface Slice {
  lane: Lane;
  /** calls.id or syscalls.id (unique per lane). */
  id: number;
  tid: number;
  name: string;
  /** 'ring0' / 'ring3' (the frame's first instruction's CPL; a system call's caller's), 'ring?' when unknown. */
  category: string;
  args: Args;
  /** speedscope's frame: module!symbol and the module. */
  symbol: string;
  module: string | null;
}

/** A flow arrow's role at an event: it starts here, passes through, or ends here. */
export interface FlowRef {
  id: number;
  role: 'begin' | 'step' | 'end';
}

export type TimelineEvent =
  | { type: 'begin'; ts: number; slice: Slice; flows: FlowRef[] }
  | { type: 'end'; ts: number; slice: Slice }
  | { type: 'instant'; ts: number; tid: number; name: string; category: string; args: Args; flows: FlowRef[] };

/** What a pass reads: one thread, some lanes, with or without instants (default: everything). */
export interface EventFilter {
  tid?: number;
  lanes?: Lane[];
  instants?: boolean;
}

export interface Timeline {
  sessionId: number;
  /** Session name and program, for trace metadata. */
  session: { name: string; program: string; instructions: number };
  syscallId?: number;
  processes: ProcessInfo[];
  threads: ThreadInfo[];
  /** icount of the first and last moment shown (the --syscall window, or the whole session). */
  start: number;
  end: number;
  /** Threads with system calls in the window (they get a system-call lane). */
  syscallThreads: Set<number>;
  /** Threads with call frames in the window. */
  callThreads: Set<number>;
  /** A fresh pass over the events, in time order (a cursor: nothing is held but the open stacks). */
  events(filter?: EventFilter): Generator<TimelineEvent>;
}

/** The unit statement every format writes into its metadata. */
export const TS_UNIT = 'instructions retired (ts = icount: 1 unit = 1 guest instruction, not wall time)';

const hex = (n: number | null | undefined): string => (n === null || n === undefined ? '' : '0x' + (n >>> 0).toString(16).toUpperCase().padStart(8, '0'));


/** How each entry mechanism returns: the instant the return flow ends at. */
const RETURN_BY_ENTRY: Record<string, string> = { sysenter: 'sysexit', int2e: 'iretd', 'zw-kernel': 'return to the Zw stub', 'nt-direct': 'ret' };

/** The projections the export reads must be built; the log tables must be there (an older or damaged file lacks some). */
function requireTables(db: Database.Database, projections: string[], log: string[]): void {
  const have = tableNames(db); // with the projections a reader folded for itself
  const plural = (xs: string[]) => `${xs.join(', ')} table${xs.length > 1 ? 's' : ''}`;
  const noProjection = projections.filter((n) => !have.has(n));
  if (noProjection.length) throw new ExportInputError(`the trace has no ${plural(noProjection)} yet: run 'ntflow replay FILE' first`);
  const noLog = log.filter((n) => !have.has(n));
  if (noLog.length) throw new ExportInputError(`the trace has no ${plural(noLog)}: not a complete ntflow trace (record it again with this version)`);
}

/**
 * The session's timeline. `syscallId` limits it to that call's [enter_seq, exit_seq] window: the
 * frames, calls and instants that started inside it, frames still open at its end clipped there.
 */
export function readTimeline(db: Database.Database, sessionId: number, syscallId?: number): Timeline {
  requireTables(db, ['calls', 'syscalls'], ['event_marks', 'code', 'msr_reads', 'ssdt_lookups', 'apc_checks', 'ring_transitions', 'thread_switches']);
  const session = db.prepare('SELECT name, program, instructions, events FROM sessions WHERE id = ?').get(sessionId) as
    | { name: string; program: string; instructions: number; events: number }
    | undefined;
  if (!session) throw new ExportInputError(`no session ${sessionId} in this trace`);

  let lo = 0;
  let hi = session.events - 1;
  if (syscallId !== undefined) {
    const w = db.prepare('SELECT enter_seq, exit_seq FROM syscalls WHERE session_id = ? AND id = ?').get(sessionId, syscallId) as
      | { enter_seq: number; exit_seq: number | null }
      | undefined;
    if (!w) throw new ExportInputError(`no syscall ${syscallId} in session ${sessionId}`);
    lo = w.enter_seq;
    hi = w.exit_seq ?? hi;
  }

  // Small per-session tables, held whole: system calls and their decoded arguments (thousands,
  // not millions), the distinct instructions' CPL, who runs in which process.
  const syscalls = new Map<number, SyscallTableRow>();
  for (const r of db.prepare('SELECT * FROM syscalls WHERE session_id = ? AND enter_seq BETWEEN ? AND ? ORDER BY id').iterate(sessionId, lo, hi) as Iterable<SyscallTableRow>) {
    syscalls.set(r.id, r);
  }
  const syscallArgs = new Map<number, Args>();
  const haveArgs = tableNames(db).has('syscall_args');
  if (haveArgs) {
    for (const a of db.prepare('SELECT syscall_id, name, value, decoded FROM syscall_args WHERE session_id = ? ORDER BY syscall_id, position').iterate(sessionId) as Iterable<{ syscall_id: number; name: string; value: number; decoded: string | null }>) {
      if (!syscalls.has(a.syscall_id)) continue;
      let args = syscallArgs.get(a.syscall_id);
      if (!args) syscallArgs.set(a.syscall_id, (args = {}));
      args[`arg.${a.name}`] = a.decoded ? `${hex(a.value)} (${a.decoded})` : hex(a.value);
    }
  }
  // The registers of the ring changes of each call (SYSENTER / INT 2Eh in, SYSEXIT / IRETD out):
  // where execution went and on which stack.
  const ringRegs = new Map<number, Args>();
  const transition = db.prepare('SELECT mechanism, from_eip, to_eip, from_esp, to_esp FROM ring_transitions WHERE session_id = ? AND seq BETWEEN ? AND ? AND to_cpl = ? ORDER BY seq LIMIT 1');
  const transitionBack = db.prepare('SELECT mechanism, from_eip, to_eip, from_esp, to_esp FROM ring_transitions WHERE session_id = ? AND seq BETWEEN ? AND ? AND to_cpl = ? ORDER BY seq DESC LIMIT 1');
  for (const s of syscalls.values()) {
    if (s.caller_cpl === 0) continue;
    const regs: Args = {};
    const lastSeq = s.exit_seq ?? hi;
    const into = transition.get(sessionId, s.enter_seq, lastSeq, 0) as { mechanism: string; from_eip: number; to_eip: number; from_esp: number; to_esp: number } | undefined;
    if (into) {
      regs[`${into.mechanism} EIP`] = `${hex(into.from_eip)} → ${hex(into.to_eip)}`;
      regs[`${into.mechanism} ESP`] = `${hex(into.from_esp)} → ${hex(into.to_esp)}`;
    }
    if (s.exit_seq !== null) {
      // The last change back to the caller's ring inside the call: the transition event comes
      // just before the SYSEXIT / IRETD instruction's own row.
      const back = transitionBack.get(sessionId, s.enter_seq, s.exit_seq, s.caller_cpl) as typeof into;
      if (back) {
        regs[`${back.mechanism} EIP`] = `${hex(back.from_eip)} → ${hex(back.to_eip)}`;
        regs[`${back.mechanism} ESP`] = `${hex(back.from_esp)} → ${hex(back.to_esp)}`;
      }
      if (s.status !== null) regs['EAX at return'] = hex(s.status);
    }
    ringRegs.set(s.id, regs);
  }
  const cplAt = new Map<number, number>();
  for (const c of db.prepare('SELECT eip, cpl FROM code WHERE session_id = ?').raw().iterate(sessionId) as Iterable<[number, number]>) cplAt.set(c[0] >>> 0, c[1]);

  const processOf = new Map<number, string>();
  for (const t of db.prepare('SELECT from_thread, from_process, to_thread, to_process FROM thread_switches WHERE session_id = ? ORDER BY seq').iterate(sessionId) as Iterable<{ from_thread: number; from_process: string | null; to_thread: number; to_process: string | null }>) {
    if (t.from_process) processOf.set(t.from_thread, t.from_process);
    if (t.to_process) processOf.set(t.to_thread, t.to_process);
  }
  for (const s of syscalls.values()) processOf.set(s.thread_id, s.process);

  const tids = new Set<number>();
  const threadSql = ['calls WHERE session_id = ? AND enter_seq BETWEEN ? AND ?', 'msr_reads WHERE session_id = ? AND seq BETWEEN ? AND ?', 'ssdt_lookups WHERE session_id = ? AND seq BETWEEN ? AND ?', 'apc_checks WHERE session_id = ? AND seq BETWEEN ? AND ?'];
  for (const from of threadSql) for (const t of db.prepare(`SELECT DISTINCT thread_id FROM ${from}`).pluck().all(sessionId, lo, hi) as number[]) tids.add(t);
  for (const s of syscalls.values()) tids.add(s.thread_id);

  const byProcess = new Map<string, number[]>();
  for (const tid of [...tids].sort((a, b) => a - b)) {
    const p = processOf.get(tid) ?? `process of thread ${tid}`;
    byProcess.set(p, [...(byProcess.get(p) ?? []), tid]);
  }
  const processes: ProcessInfo[] = [];
  const threads: ThreadInfo[] = [];
  for (const [name, ts] of byProcess) {
    const pid = ts[0];
    processes.push({ pid, name });
    for (const tid of ts) threads.push({ tid, pid, process: name, name: `${name} thread ${tid} (0x${tid.toString(16).toUpperCase()})` });
  }

  // The icount just before the window: the nearest mark at or before lo (the window's first
  // event may itself be an instruction).
  const before = db.prepare('SELECT seq, icount FROM event_marks WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1').get(sessionId, lo) as { seq: number; icount: number } | undefined;
  const icountBefore = (seq: number, mark: { seq: number; icount: number } | undefined): number => (mark === undefined ? seq : mark.seq === seq ? mark.icount : mark.icount + (seq - mark.seq - 1));
  const start = icountBefore(lo, before);
  const isMark = db.prepare('SELECT icount FROM event_marks WHERE session_id = ? AND seq = ?').pluck();
  let end: number;
  if (syscallId === undefined) end = session.instructions;
  else {
    const hiMark = db.prepare('SELECT seq, icount FROM event_marks WHERE session_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1').get(sessionId, hi) as { seq: number; icount: number } | undefined;
    end = icountBefore(hi, hiMark) + (isMark.get(sessionId, hi) === undefined ? 1 : 0);
  }

  // One query (of these parts), every row a step of the timeline, in (seq, k, ord) order: k 0 a mark (sets the
  // icount), 1 an instant, 2 a begin (outer frames first), 3 a system call's return, 4 an end
  // (inner frames first). The instants' columns travel as JSON built by SQLite.
  const PARTS = {
    marks: `SELECT seq, 0 AS k, 0 AS ord, icount AS a, NULL AS b, NULL AS c, NULL AS d, NULL AS e, NULL AS f, NULL AS g FROM event_marks
      WHERE session_id = :s AND seq BETWEEN :lo AND :hi`,
    frameBegin: `SELECT enter_seq, 2, depth, id, parent_id, thread_id, kind, address, symbol, module FROM calls
      WHERE session_id = :s AND enter_seq BETWEEN :lo AND :hi AND (:tid IS NULL OR thread_id = :tid)`,
    frameEnd: `SELECT exit_seq, 4, -depth, id, NULL, thread_id, NULL, NULL, NULL, NULL FROM calls
      WHERE session_id = :s AND enter_seq BETWEEN :lo AND :hi AND exit_seq <= :hi AND (:tid IS NULL OR thread_id = :tid)`,
    syscallBegin: `SELECT enter_seq, 2, 1000000, id, NULL, NULL, NULL, NULL, NULL, NULL FROM syscalls
      WHERE session_id = :s AND enter_seq BETWEEN :lo AND :hi AND (:tid IS NULL OR thread_id = :tid)`,
    syscallEnd: `SELECT exit_seq, 3, -1000000 - id, id, NULL, NULL, NULL, NULL, NULL, NULL FROM syscalls
      WHERE session_id = :s AND enter_seq BETWEEN :lo AND :hi AND exit_seq <= :hi AND (:tid IS NULL OR thread_id = :tid)`,
    msr: `SELECT seq, 1, 0, cpl, thread_id, 'msr-read', json_object('msr', printf('0x%X', msr), 'value', printf('0x%X', value), 'source', source, 'eip', printf('0x%08X', eip), 'cpl', cpl, 'seq', seq), NULL, NULL, NULL FROM msr_reads
      WHERE session_id = :s AND seq BETWEEN :lo AND :hi AND (:tid IS NULL OR thread_id = :tid)`,
    ssdt: `SELECT seq, 1, 0, cpl, thread_id, 'ssdt-lookup', json_object('service_number', printf('0x%X', service_number), 'table_index', table_index, 'service_index', printf('0x%X', service_index),
        'table_base', printf('0x%08X', table_base), 'service_limit', service_limit, 'target', CASE WHEN target IS NULL THEN NULL ELSE printf('0x%08X', target) END, 'target_symbol', target_symbol,
        'arg_bytes', arg_bytes, 'in_range', in_range, 'eip', printf('0x%08X', eip), 'cpl', cpl, 'seq', seq), NULL, NULL, NULL FROM ssdt_lookups
      WHERE session_id = :s AND seq BETWEEN :lo AND :hi AND (:tid IS NULL OR thread_id = :tid)`,
    apc: `SELECT seq, 1, 0, cpl, thread_id, 'apc-check', json_object('returning_to_cpl', returning_to_cpl, 'user_apc_pending', user_apc_pending, 'kernel_apc_pending', kernel_apc_pending,
        'delivered', delivered, 'eip', printf('0x%08X', eip), 'cpl', cpl, 'seq', seq), NULL, NULL, NULL FROM apc_checks
      WHERE session_id = :s AND seq BETWEEN :lo AND :hi AND (:tid IS NULL OR thread_id = :tid)`,
  };
  // A pass can leave out what it does not draw (speedscope: one thread and lane, no instants):
  // SQLite then sorts only those rows. The marks are always read, for the icount.
  const statements = new Map<string, Database.Statement>();
  const streamFor = (f: EventFilter): Database.Statement => {
    const lanes = f.lanes ?? ['calls', 'syscalls'];
    const parts = [PARTS.marks];
    if (lanes.includes('calls')) parts.push(PARTS.frameBegin, PARTS.frameEnd);
    if (lanes.includes('syscalls')) parts.push(PARTS.syscallBegin, PARTS.syscallEnd);
    if (f.instants !== false) parts.push(PARTS.msr, PARTS.ssdt, PARTS.apc);
    const sql = parts.join('\n    UNION ALL ') + '\n    ORDER BY 1, 2, 3';
    const key = `${lanes.join()}|${f.instants !== false}`;
    let st = statements.get(key);
    if (!st) statements.set(key, (st = db.prepare(sql).raw()));
    return st;
  };

  function syscallSlice(s: SyscallTableRow): Slice {
    const entry = s.entry ?? 'rejected';
    const name = `${s.name ?? `service ${hex(s.service_number)}`} (${entry})`;
    const args: Args = {
      syscall_id: s.id,
      service: s.name ?? '(rejected by the limit check)',
      service_number: hex(s.service_number),
      entry,
      PreviousMode: s.previous_mode ?? '',
      caller_cpl: s.caller_cpl,
      process: s.process,
      status: s.status === null ? 'never returned' : hex(s.status),
      status_name: s.status_name ?? 'never returned',
      enter_seq: s.enter_seq,
      ...(s.exit_seq === null ? {} : { exit_seq: s.exit_seq }),
      ...(s.instructions === null ? {} : { instructions: s.instructions }),
      ...(ringRegs.get(s.id) ?? {}),
      ...(syscallArgs.get(s.id) ?? {}),
    };
    return { lane: 'syscalls', id: s.id, tid: s.thread_id, name, category: `ring${s.caller_cpl === 0 ? 0 : 3}`, args, symbol: name, module: null };
  }

  function* events(filter: EventFilter = {}): Generator<TimelineEvent> {
    // Open slices per thread and lane; pending system calls per thread waiting for their service routine.
    const stacks = new Map<string, Slice[]>();
    const stackOf = (tid: number, lane: Lane): Slice[] => {
      const key = `${lane}:${tid}`;
      let st = stacks.get(key);
      if (!st) stacks.set(key, (st = []));
      return st;
    };
    const open = new Map<string, Slice>();
    const pending = new Map<number, { id: number; routine: string; stepped: boolean }[]>();
    let mark = before;
    let last = start;
    const tsOf = (seq: number): number => Math.max(last, icountBefore(seq, mark));
    // When an instruction at seq has retired: the next event's icount (a non-instruction event retires nothing).
    const tsAfter = (seq: number): number => Math.max(last, icountBefore(seq, mark) + (mark !== undefined && mark.seq === seq ? 0 : 1));

    function* closeUntil(stack: Slice[], keep: (top: Slice) => boolean, ts: number): Generator<TimelineEvent> {
      while (stack.length && !keep(stack[stack.length - 1])) {
        const top = stack.pop()!;
        open.delete(`${top.lane}:${top.id}`);
        yield { type: 'end', ts, slice: top };
      }
    }

    for (const r of streamFor(filter).iterate({ s: sessionId, lo, hi, tid: filter.tid ?? null }) as Iterable<[number, number, number, number, any, any, any, any, any, any]>) {
      const [seq, k, order, a, b, c, d, e, f, g] = r;
      if (k === 0) {
        mark = { seq, icount: a };
        continue;
      }
      if (k === 1) {
        const ts = (last = tsOf(seq));
        const args = JSON.parse(d) as Args;
        for (const key of Object.keys(args)) if (args[key] === null) delete args[key];
        yield { type: 'instant', ts, tid: b, name: instantName(c, args), category: `ring${a === 0 ? 0 : 3}`, args, flows: [] };
        continue;
      }
      if (k === 2 && order < 1000000) {
        // A frame opens: close whatever is above its parent on the thread (a frame the projection
        // closed with its caller, or a clipped one), then push it.
        const ts = (last = tsOf(seq));
        const stack = stackOf(c, 'calls');
        const parentOpen = b !== null && open.has(`calls:${b}`);
        yield* closeUntil(stack, (top) => parentOpen && top.id === b, ts);
        const address = (e as number) >>> 0;
        const cpl = cplAt.get(address);
        const symbol: string = f ?? hex(address);
        const slice: Slice = {
          lane: 'calls',
          id: a,
          tid: c,
          name: symbol,
          category: cpl === undefined ? 'ring?' : `ring${cpl === 0 ? 0 : 3}`,
          args: { frame_id: a, kind: d, address: hex(address), module: g ?? '', ring: cpl === undefined ? 'unknown' : cpl === 0 ? 0 : 3, enter_seq: seq },
          symbol,
          module: g,
        };
        stack.push(slice);
        open.set(`calls:${a}`, slice);
        const flows: FlowRef[] = [];
        const waiting = pending.get(c);
        if (waiting) {
          for (let i = waiting.length - 1; i >= 0; i--) {
            if (!waiting[i].stepped && waiting[i].routine === symbol) {
              waiting[i].stepped = true;
              flows.push({ id: waiting[i].id, role: 'step' });
              break;
            }
          }
        }
        yield { type: 'begin', ts, slice, flows };
        continue;
      }
      if (k === 2) {
        const s = syscalls.get(a)!;
        const ts = (last = tsOf(seq));
        const stack = stackOf(s.thread_id, 'syscalls');
        const parentOpen = s.parent_id !== null && open.has(`syscalls:${s.parent_id}`);
        yield* closeUntil(stack, (top) => parentOpen && top.id === s.parent_id, ts);
        const slice = syscallSlice(s);
        stack.push(slice);
        open.set(`syscalls:${s.id}`, slice);
        // A flow from the call to its service routine and back to the return, only when the
        // return is in view (so every flow that starts also ends).
        const flows: FlowRef[] = [];
        if (s.exit_seq !== null && s.exit_seq <= hi) {
          flows.push({ id: s.id, role: 'begin' });
          if (s.name) {
            const list = pending.get(s.thread_id) ?? [];
            list.push({ id: s.id, routine: `nt!${s.name}`, stepped: false });
            pending.set(s.thread_id, list);
          }
        }
        yield { type: 'begin', ts, slice, flows };
        continue;
      }
      if (k === 3) {
        // The return instruction (SYSEXIT, IRETD, the jmp back to a Zw stub, ret): an instant on
        // the thread where the flow ends, then the system call's slice ends just after it.
        const s = syscalls.get(a)!;
        const ts = (last = tsOf(seq));
        const list = pending.get(s.thread_id);
        if (list) pending.set(s.thread_id, list.filter((p) => p.id !== s.id));
        const how = RETURN_BY_ENTRY[s.entry ?? ''] ?? 'return';
        yield {
          type: 'instant',
          ts,
          tid: s.thread_id,
          name: `${s.name ?? 'rejected call'} returns (${how})`,
          category: `ring${s.caller_cpl === 0 ? 0 : 3}`,
          args: { syscall_id: s.id, status: s.status === null ? '' : hex(s.status), status_name: s.status_name ?? '', seq },
          flows: [{ id: s.id, role: 'end' }],
        };
        const endTs = (last = tsAfter(seq));
        const slice = open.get(`syscalls:${s.id}`);
        if (slice) {
          const stack = stackOf(s.thread_id, 'syscalls');
          yield* closeUntil(stack, (top) => top === slice, endTs);
          stack.pop();
          open.delete(`syscalls:${s.id}`);
          yield { type: 'end', ts: endTs, slice };
        }
        continue;
      }
      // k === 4: a frame leaves (with any frame still open above it).
      const slice = open.get(`calls:${a}`);
      const ts = (last = tsAfter(seq));
      if (slice) {
        const stack = stackOf(c, 'calls');
        yield* closeUntil(stack, (top) => top === slice, ts);
        stack.pop();
        open.delete(`calls:${a}`);
        yield { type: 'end', ts, slice };
      }
    }
    // What is still open (never returned, or past the --syscall window) closes at the end.
    const endTs = Math.max(last, end);
    for (const stack of stacks.values()) yield* closeUntil(stack, () => false, endTs);
  }

  const syscallThreads = new Set([...syscalls.values()].map((s) => s.thread_id));
  const callThreads = new Set(db.prepare('SELECT DISTINCT thread_id FROM calls WHERE session_id = ? AND enter_seq BETWEEN ? AND ?').pluck().all(sessionId, lo, hi) as number[]);
  return { sessionId, callThreads, session: { name: session.name, program: session.program, instructions: session.instructions }, syscallId, processes, threads, start, end, syscallThreads, events };
}

function instantName(type: string, args: Args): string {
  if (type === 'msr-read') return `rdmsr ${args.msr} (${args.source})`;
  if (type === 'ssdt-lookup') return args.in_range ? `SSDT[${args.table_index}][${args.service_index}] → ${args.target_symbol ?? args.target}` : `SSDT ${args.service_number} rejected (limit ${args.service_limit})`;
  return `APC check${args.delivered ? ': user APC delivered' : args.user_apc_pending ? ': user APC pending' : ''}`;
}
