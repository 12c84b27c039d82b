// From a trace to the flame chart's frames (the calls projection over icount, a track per guest
// thread, failed system calls marked) and the aggregated call graph (how often each call ran,
// failed services marked). The sequence diagram's input is viz/data.ts.
import type Database from 'better-sqlite3';
import type { SyscallTableRow } from '../analyzer/index.js';
import { VizInputError, ensureSessionProjections, hex8 } from './data.js';
import type { FlameCall, FlameInput, FlameThread, FlowStep, GraphInput } from './types.js';

/** icount at each event: from event_marks (icount of instruction rows counts on from the mark before). */
function icountOf(db: Database.Database, sessionId: number): (seq: number) => number {
  const marks = db.prepare('SELECT seq, icount FROM event_marks WHERE session_id = ? ORDER BY seq').raw().all(sessionId) as [number, number][];
  const seqs = Float64Array.from(marks, (m) => m[0]);
  return (seq: number) => {
    let lo = 0;
    let hi = seqs.length - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] <= seq) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k < 0) return seq;
    const [mseq, micount] = marks[k];
    return mseq === seq ? micount : micount + (seq - mseq - 1);
  };
}

/** "thread 0x7CC" (ids above 9 in hex, as the kernel's tools print them), "thread 8". */
export function threadName(id: number): string {
  return `thread ${id > 9 ? `0x${id.toString(16).toUpperCase()}` : id}`;
}

interface CallRow {
  id: number;
  parent_id: number | null;
  depth: number;
  thread_id: number;
  kind: string;
  enter_seq: number;
  exit_seq: number | null;
  symbol: string | null;
  module: string | null;
  address: number;
}

/** The columns of a syscalls row the charts read. */
type SyscallRow = Pick<SyscallTableRow, 'id' | 'thread_id' | 'name' | 'enter_seq' | 'exit_seq' | 'status' | 'status_name'>;

const FAILED = 0xc0000000;

function readCalls(db: Database.Database, sessionId: number): CallRow[] {
  return db
    .prepare('SELECT id, parent_id, depth, thread_id, kind, enter_seq, exit_seq, symbol, module, address FROM calls WHERE session_id = ? ORDER BY id')
    .all(sessionId) as CallRow[];
}

function readSyscalls(db: Database.Database, sessionId: number): SyscallRow[] {
  return db
    .prepare('SELECT id, thread_id, name, enter_seq, exit_seq, status, status_name FROM syscalls WHERE session_id = ? ORDER BY id')
    .all(sessionId) as SyscallRow[];
}

/**
 * Each system call's own frame: on the call's thread, the first frame entered at or after the
 * call's enter_seq (and before its exit). For a Zw or nt-direct call that is the frame of the call
 * instruction itself; for SYSENTER the frame opens at the instruction after the MSR reads that
 * syscalls.enter_seq points at.
 */
function syscallFrames(calls: CallRow[], syscalls: SyscallRow[]): Map<number, CallRow> {
  const byThread = new Map<number, CallRow[]>();
  for (const c of calls) {
    if (!byThread.has(c.thread_id)) byThread.set(c.thread_id, []);
    byThread.get(c.thread_id)!.push(c);
  }
  for (const list of byThread.values()) list.sort((a, b) => a.enter_seq - b.enter_seq);
  const out = new Map<number, CallRow>();
  for (const s of syscalls) {
    const list = byThread.get(s.thread_id) ?? [];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].enter_seq < s.enter_seq) lo = mid + 1;
      else hi = mid;
    }
    const frame = list[lo];
    if (frame && (s.exit_seq === null || frame.enter_seq <= s.exit_seq)) out.set(s.id, frame);
  }
  return out;
}

/** Each frame's children, by the parent links. */
function childrenOf(calls: CallRow[]): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const c of calls) {
    if (c.parent_id === null) continue;
    const list = children.get(c.parent_id);
    if (list) list.push(c.id);
    else children.set(c.parent_id, [c.id]);
  }
  return children;
}

/** Every frame below `root` (the root included). */
function subtree(children: Map<number, number[]>, root: CallRow): Set<number> {
  const out = new Set<number>([root.id]);
  const stack = [root.id];
  while (stack.length) {
    for (const k of children.get(stack.pop()!) ?? []) {
      if (!out.has(k)) {
        out.add(k);
        stack.push(k);
      }
    }
  }
  return out;
}

/** Each guest thread's process image name, from the thread switches (then the system calls). */
function processes(db: Database.Database, sessionId: number): Map<number, string> {
  const out = new Map<number, string>();
  const switches = db.prepare('SELECT from_thread, from_process, to_thread, to_process FROM thread_switches WHERE session_id = ? ORDER BY seq').all(sessionId) as {
    from_thread: number | null;
    from_process: string | null;
    to_thread: number | null;
    to_process: string | null;
  }[];
  for (const s of switches) {
    if (s.from_thread !== null && s.from_process && !out.has(s.from_thread)) out.set(s.from_thread, s.from_process);
    if (s.to_thread !== null && s.to_process && !out.has(s.to_thread)) out.set(s.to_thread, s.to_process);
  }
  for (const r of db.prepare('SELECT DISTINCT thread_id, process FROM syscalls WHERE session_id = ?').all(sessionId) as { thread_id: number; process: string }[]) {
    if (!out.has(r.thread_id)) out.set(r.thread_id, r.process);
  }
  return out;
}

/**
 * --syscall for the charts: each chosen call's frames (its frame and everything below it) and what
 * ran inside it on other threads (a work item run while the caller waited in NtDelayExecution).
 */
function chosenFrames(
  sessionId: number,
  rows: CallRow[],
  syscalls: SyscallRow[],
  frames: Map<number, CallRow>,
  children: Map<number, number[]>,
  ids: number[],
): { chosen: Set<number>; roots: CallRow[]; names: string[] } {
  const chosen = new Set<number>();
  const roots: CallRow[] = [];
  const names: string[] = [];
  for (const id of ids) {
    const s = syscalls.find((x) => x.id === id);
    if (!s) {
      throw new VizInputError(
        `no syscall ${id} in session ${sessionId} (its syscalls are ${syscalls.length ? `1 to ${syscalls.length}` : 'none'}; see 'ntflow query FILE "SELECT id, name FROM syscalls"')`,
      );
    }
    const frame = frames.get(id);
    if (!frame) throw new VizInputError(`system call ${id} (${s.name ?? 'rejected'}) has no frame in the calls projection`);
    names.push(`#${id} ${s.name ?? 'rejected'}`);
    roots.push(frame);
    for (const k of subtree(children, frame)) chosen.add(k);
    const exit = frame.exit_seq ?? Infinity;
    for (const r of rows) if (r.thread_id !== frame.thread_id && r.enter_seq > frame.enter_seq && (r.exit_seq ?? Infinity) <= exit) chosen.add(r.id);
  }
  return { chosen, roots, names };
}

export interface FlameOptions {
  /** Only these system calls (syscalls.id): each one's frames, and the other threads' frames that ran inside it. */
  syscallIds?: number[];
}

export function flameInput(db: Database.Database, sessionId: number, options: FlameOptions = {}): FlameInput {
  ensureSessionProjections(db, sessionId);
  const session = db.prepare('SELECT name, instructions FROM sessions WHERE id = ?').get(sessionId) as { name: string; instructions: number } | undefined;
  if (!session) throw new VizInputError(`no session ${sessionId} in this trace`);
  const icount = icountOf(db, sessionId);
  const rows = readCalls(db, sessionId);
  const syscalls = readSyscalls(db, sessionId);
  const frames = syscallFrames(rows, syscalls);
  const children = childrenOf(rows);
  const total = session.instructions;
  const endOf = (r: CallRow) => (r.exit_seq === null ? total : icount(r.exit_seq) + 1);

  // Failures: a failed call's own frame and every frame inside it (a nested call's status wins
  // over its caller's: the innermost failed call names the frames below it).
  const failure = new Map<number, FlameCall['failure']>();
  for (const s of syscalls) {
    if (s.status === null || s.status < FAILED) continue;
    const frame = frames.get(s.id);
    if (!frame) continue;
    const status = s.status_name ?? `0x${hex8(s.status)}`;
    for (const id of subtree(children, frame)) {
      const prior = failure.get(id);
      if (prior && prior.syscallId > s.id) continue;
      failure.set(id, { syscallId: s.id, name: s.name ?? '(rejected service number)', status, own: id === frame.id });
    }
  }

  // --syscall: the chosen calls' frames, and what ran inside them on other threads (a work item
  // run while the caller waited in NtDelayExecution); x runs over their instructions only.
  let chosen: Set<number> | null = null;
  let from = 0;
  let to = total;
  let titleWhat = `calls over time (${total} instructions)`;
  if (options.syscallIds?.length) {
    const pick = chosenFrames(sessionId, rows, syscalls, frames, children, options.syscallIds);
    chosen = pick.chosen;
    from = Math.min(...pick.roots.map((f) => icount(f.enter_seq)));
    to = Math.max(...pick.roots.map(endOf));
    titleWhat = `${pick.names.join(', ')} over time (${to - from} instructions)`;
  }

  const kept = chosen ? rows.filter((r) => chosen!.has(r.id)) : rows;
  // Depths start at 0 on each thread's track (a chosen call's frame is its track's top row).
  const minDepth = new Map<number, number>();
  for (const r of kept) minDepth.set(r.thread_id, Math.min(minDepth.get(r.thread_id) ?? Infinity, r.depth));
  const calls: FlameCall[] = kept.map((r) => {
    const f = failure.get(r.id);
    return {
      id: r.id,
      parentId: r.parent_id,
      depth: r.depth - minDepth.get(r.thread_id)!,
      threadId: r.thread_id,
      startIcount: icount(r.enter_seq),
      endIcount: endOf(r),
      symbol: r.symbol ?? hex8(r.address),
      module: r.module ?? '?',
      cpl: ((r.address >>> 0) >= 0x80000000 ? 0 : 3) as 0 | 3,
      ...(f ? { failure: f } : {}),
    };
  });

  // Tracks: the chosen call's thread first; then the programs' threads before the System
  // threads (the program is what the session is about: a System worker thread's work item shows
  // under the wait it ran in), each group in order of first frame.
  const process = processes(db, sessionId);
  const lead = options.syscallIds?.length ? frames.get(options.syscallIds[0])!.thread_id : null;
  const firstStart = new Map<number, number>();
  for (const c of calls) firstStart.set(c.threadId, Math.min(firstStart.get(c.threadId) ?? Infinity, c.startIcount));
  const rank = (t: number) => (t === lead ? 0 : process.get(t) === 'System' ? 2 : 1);
  const order = [...firstStart.keys()].sort((a, b) => rank(a) - rank(b) || firstStart.get(a)! - firstStart.get(b)!);
  const threads: FlameThread[] = order.map((id) => ({ id, label: `${threadName(id)} (${process.get(id) ?? '?'})` }));
  return { title: `${session.name}: ${titleWhat}`, threads, calls, fromIcount: from, totalIcount: to };
}

export interface GraphOptions {
  /** Only these system calls (syscalls.id): the calls made inside each, and on other threads while it ran. */
  syscallIds?: number[];
}

export function graphInput(db: Database.Database, sessionId: number, options: GraphOptions = {}): GraphInput {
  ensureSessionProjections(db, sessionId);
  const session = db.prepare('SELECT name FROM sessions WHERE id = ?').get(sessionId) as { name: string } | undefined;
  if (!session) throw new VizInputError(`no session ${sessionId} in this trace`);
  const fnOf = (symbol: string | null, address: number) => (symbol ? symbol.replace(/\+0x[0-9a-f]+$/i, '') : hex8(address));
  const calls = readCalls(db, sessionId);
  const byId = new Map(calls.map((c) => [c.id, c]));
  const children = childrenOf(calls);
  const syscalls = readSyscalls(db, sessionId);
  const frames = syscallFrames(calls, syscalls);
  const pick = options.syscallIds?.length ? chosenFrames(sessionId, calls, syscalls, frames, children, options.syscallIds) : null;
  const kept = pick ? calls.filter((c) => pick.chosen.has(c.id)) : calls;

  const nodes = new Map<string, GraphInput['nodes'][number]>();
  const node = (symbol: string | null, address: number) => {
    const id = fnOf(symbol, address);
    if (!nodes.has(id)) nodes.set(id, { id, module: symbol?.includes('!') ? symbol.slice(0, symbol.indexOf('!')) : '?', ring: (address >>> 0) >= 0x80000000 ? 0 : 3 });
    return id;
  };
  const edges = new Map<string, GraphInput['edges'][number]>();
  // In frame order, so nodes and edges appear as the calls first ran; an edge joins a frame to its
  // caller when both are drawn (a chosen call's own frame is a top: a node, no edge).
  for (const c of kept) {
    const to = node(c.symbol, c.address);
    const parent = c.parent_id === null ? undefined : byId.get(c.parent_id);
    if (!parent || (pick && !pick.chosen.has(parent.id))) continue;
    const from = node(parent.symbol, parent.address);
    const kind = (c.kind === 'callback' ? 'call' : c.kind) as FlowStep['kind'];
    const key = `${from}\u0000${to}\u0000${kind}`;
    const e = edges.get(key);
    if (e) e.count++;
    else edges.set(key, { from, to, count: 1, kind });
  }

  // Failed services: the service routine (nt!<name>) run by a failed call, else the call's own
  // frame (a rejected number runs no routine); counted per status.
  for (const s of syscalls) {
    if (s.status === null || s.status < FAILED) continue;
    const frame = frames.get(s.id);
    if (!frame || (pick && !pick.chosen.has(frame.id))) continue;
    const inside = [...subtree(children, frame)].map((id) => byId.get(id)!);
    const routine = (s.name && inside.find((c) => c.symbol === `nt!${s.name}`)) || frame;
    const n = nodes.get(fnOf(routine.symbol, routine.address));
    if (!n) continue;
    const status = s.status_name ?? `0x${hex8(s.status)}`;
    const failed = (n.failed ??= []);
    const same = failed.find((f) => f.status === status);
    if (same) same.count++;
    else failed.push({ status, count: 1 });
  }
  const what = pick ? `${pick.names.join(', ')}: call graph (how often each call ran inside)` : 'call graph (how often each call ran)';
  return { title: `${session.name}: ${what}`, nodes: [...nodes.values()], edges: [...edges.values()] };
}
