// Two sessions compared: their system calls aligned (align.ts), their instruction streams walked
// side by side (streams.ts), and for each pair of calls what differs in outcome — PreviousMode,
// entry, status, the handle tables searched, the probes, the SSDT target, the findings — and the
// first place their paths part, with the registers and memory that differ there and where they
// join again. Read-only on both files; the projections must be built (ensureProjections).
import type Database from 'better-sqlite3';
import { statusName } from '../../core/index.js';
import { InstructionRuns, unpackEffects } from '../../recorder/index.js';
import { loadSession } from '../findings/index.js';
import { stateAt } from '../state.js';
import { alignCalls, type AlignCall } from './align.js';
import { compareStreams, icountAt, readStream, seqOf, type Stream, type StreamDivergence } from './streams.js';

export interface DiffSide {
  db: Database.Database;
  file: string;
  sessionId: number;
}

export interface SideInfo {
  file: string;
  sessionId: number;
  name: string;
  cpu: string | null;
  instructions: number;
  events: number;
  outcome: string | null;
}

export interface CallInfo {
  id: number;
  service: string;
  entry: string | null;
  previousMode: string | null;
  status: number | null;
  statusName: string | null;
  process: string;
  caller: string | null;
  enterSeq: number;
  exitSeq: number | null;
  /** The handle tables the call's own lookups searched, with their results ('process ok', 'kernel STATUS_INVALID_HANDLE'). */
  handles: string[];
  /** Probes made by the call itself, and how many failed. */
  probes: number;
  failedProbes: number;
  /** The routine the SSDT lookup gave (a hook shows its own name). */
  ssdtTarget: string | null;
  /** The findings about the call (their causes). */
  findings: string[];
  /** The arguments by name, decoded where the trace can (syscall_args). */
  args: [string, string][];
}

export interface PathPoint {
  seq: number;
  location: string;
  asm: string;
}

export interface Difference {
  what: string;
  a: string;
  b: string;
}

export interface Divergence {
  /** null: that side's stream ended there. */
  a: PathPoint | null;
  b: PathPoint | null;
  /** Registers (before the divergent instructions) that differ. */
  registers: Difference[];
  /** Bytes the divergent instructions write whose values differ after them. */
  memory: Difference[];
  join: { a: PathPoint; b: PathPoint } | null;
}

export interface PairInfo {
  a: CallInfo | null;
  b: CallInfo | null;
  /** Pairs: whether the instruction paths (from the call to its return) are the same. */
  samePath: boolean | null;
  /** The first place the pair's paths part (divergences[0]). */
  divergence: Divergence | null;
  /** Every place they part, in order. */
  divergences: Divergence[];
  differences: Difference[];
}

export interface DiffResult {
  a: SideInfo;
  b: SideInfo;
  identical: boolean;
  method: string;
  pairs: PairInfo[];
  divergences: Divergence[];
  /** Session-level differences: outcome, hooks on one side only. */
  differences: Difference[];
}

const SYSTEM = /^(nt|ntdll|kernel32|SharedUserData|win32k|hal)!/;
const fnOf = (loc: string | null) => (loc ? loc.replace(/\+0x[0-9a-f]+$/i, '') : null);
const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

interface Loaded {
  side: DiffSide;
  info: SideInfo;
  stream: Stream;
  calls: CallInfo[];
  align: AlignCall[];
  /** Each call's instructions: [its calling instruction, its entry, its return] (icounts). */
  spans: [number, number, number][];
  hooks: string[];
}

function load(side: DiffSide, intern: Map<string, number>): Loaded {
  const { db, sessionId } = side;
  const s = db.prepare('SELECT name, cpu, instructions, events, outcome_detail FROM sessions WHERE id = ?').get(sessionId) as { name: string; cpu: string | null; instructions: number; events: number; outcome_detail: string | null };
  const stream = readStream(db, sessionId, intern);
  // The calls and what happened inside each (own handle lookups, probes, SSDT target), attached
  // by the findings' one rule: an event belongs to the innermost call of its thread holding it.
  const session = loadSession(db, sessionId);
  const byId = session.byId;
  // The calling instruction: the last `call` outside the system modules at or before the entry,
  // after `floor` (the previous call's return on the thread, or the enclosing call's entry).
  const callerAt = (enter: number, floor: number): number | null => {
    const start = icountAt(stream, enter);
    for (let k = Math.min(start, stream.keys.length - 1); k > floor && k > start - 4096; k--) {
      const c = stream.keys[k];
      if (stream.asm[c].startsWith('call ') && !SYSTEM.test(stream.location[c])) return k;
    }
    return null;
  };
  // Where a call's path starts when no program or driver instruction called it (ntdll's own call
  // of NtTerminateProcess): the run of ntdll and SharedUserData code before the entry.
  const stubStart = (enter: number, floor: number): number => {
    let k = Math.min(icountAt(stream, enter), stream.keys.length - 1);
    while (k - 1 > floor && /^(ntdll|SharedUserData)!/.test(stream.location[stream.keys[k - 1]]) && !/^ret/.test(stream.asm[stream.keys[k - 1]])) k--;
    return k;
  };
  const lastExit = new Map<number, number>();
  const findings = new Map<number, string[]>();
  for (const [id, cause] of db.prepare("SELECT syscall_id, cause FROM findings WHERE session_id = ? AND kind = 'failure-cause' ORDER BY id").raw().all(sessionId) as [number, string][]) {
    findings.set(id, [...(findings.get(id) ?? []), cause]);
  }
  const calls: CallInfo[] = [];
  const align: AlignCall[] = [];
  const spans: [number, number, number][] = [];
  for (const r of session.calls) {
    const service = r.name ?? `service 0x${(r.serviceNumber ?? 0).toString(16).toUpperCase()}`;
    const parent = r.parentId === null ? undefined : byId.get(r.parentId);
    const before = lastExit.get(r.thread) ?? -1; // the thread's previous top-level call, when it has returned by now
    const floor = Math.max(before < icountAt(stream, r.enterSeq) ? before : -1, parent ? icountAt(stream, parent.enterSeq) : -1);
    const callerIcount = callerAt(r.enterSeq, floor);
    const caller = callerIcount === null ? null : stream.location[stream.keys[callerIcount]];
    calls.push({
      id: r.id,
      service,
      entry: r.entry,
      previousMode: r.previousMode,
      status: r.status,
      statusName: r.statusName,
      process: r.process,
      caller,
      enterSeq: r.enterSeq,
      exitSeq: r.exitSeq,
      handles: r.lookups.map((h) => `${h.table} ${h.status === 0 ? 'ok' : statusName(h.status)}`),
      probes: r.probes.length,
      failedProbes: r.probes.filter((x) => x.status !== 0).length,
      ssdtTarget: r.ssdtTarget,
      findings: findings.get(r.id) ?? [],
      args: r.args.filter(Boolean).map(([name, value, decoded]) => [name, `${hex8(value).toUpperCase()}${decoded ? ` (${decoded})` : ''}`]),
    });
    const callerKey = callerIcount === null ? null : stream.aligned[stream.keys[callerIcount]];
    align.push({ id: r.id, service, caller: fnOf(callerKey), entry: r.entry, parent: parent?.name ?? null });
    const enter = icountAt(stream, r.enterSeq);
    let exit = r.exitSeq === null ? stream.keys.length : icountAt(stream, r.exitSeq);
    // A user call's path ends back in its caller: the stub's way out (SystemCallStub's ret, the ntdll stub's ret n).
    if (r.exitSeq !== null && (r.entry === 'sysenter' || r.entry === 'int2e')) {
      while (exit + 1 < stream.keys.length && /^(SharedUserData!|ntdll!(Nt|Zw)\w+\+0x)/.test(stream.location[stream.keys[exit + 1]])) exit++;
    }
    spans.push([callerIcount ?? stubStart(r.enterSeq, floor), enter, exit]);
    if (r.parentId === null) lastExit.set(r.thread, exit);
  }
  const hooks = db.prepare("SELECT title FROM findings WHERE session_id = ? AND kind = 'hook' ORDER BY id").pluck().all(sessionId) as string[];
  return {
    side,
    info: { file: side.file, sessionId, name: s.name, cpu: s.cpu, instructions: s.instructions, events: s.events, outcome: s.outcome_detail },
    stream,
    calls,
    align,
    spans,
    hooks,
  };
}


/** What differs between two paired calls, in outcome. */
function outcomeDifferences(a: CallInfo, b: CallInfo): Difference[] {
  const out: Difference[] = [];
  const add = (what: string, x: unknown, y: unknown) => {
    const sx = x === null || x === undefined || x === '' ? '—' : String(x);
    const sy = y === null || y === undefined || y === '' ? '—' : String(y);
    if (sx !== sy) out.push({ what, a: sx, b: sy });
  };
  add('PreviousMode', a.previousMode, b.previousMode);
  add('entry', a.entry, b.entry);
  add('status', a.statusName ?? a.status, b.statusName ?? b.status);
  add('process', a.process, b.process);
  add('handle tables', a.handles.join(', '), b.handles.join(', '));
  add('probes', `${a.probes}${a.failedProbes ? ` (${a.failedProbes} failed)` : ''}`, `${b.probes}${b.failedProbes ? ` (${b.failedProbes} failed)` : ''}`);
  add('SSDT target', a.ssdtTarget, b.ssdtTarget);
  add('findings', a.findings.join(', '), b.findings.join(', '));
  // Pointers into the program's own memory differ with every layout; handles, flags and lengths say more.
  const bArgs = new Map(b.args);
  for (const [name, value] of a.args) {
    const other = bArgs.get(name);
    if (other !== undefined && other !== value && /\(/.test(value + other)) add(name, value, other);
  }
  return out;
}

function point(l: Loaded, icount: number): PathPoint | null {
  if (icount >= l.stream.keys.length) return null;
  const c = l.stream.keys[icount];
  return { seq: seqOf(l.stream, icount), location: l.stream.location[c], asm: l.stream.asm[c] };
}

const REGS = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'eflags'] as const;

/** Registers before the two divergent instructions, and the bytes they write, that differ. */
function stateDifferences(A: Loaded, B: Loaded, pa: PathPoint | null, pb: PathPoint | null): { registers: Difference[]; memory: Difference[] } {
  if (!pa || !pb) return { registers: [], memory: [] };
  const has = (l: Loaded) => l.side.db.prepare('SELECT 1 FROM checkpoints WHERE session_id = ? LIMIT 1').get(l.side.sessionId) !== undefined;
  if (!has(A) || !has(B)) return { registers: [], memory: [] };
  const sa = stateAt(A.side.db, A.side.sessionId, Math.max(0, pa.seq - 1));
  const sb = stateAt(B.side.db, B.side.sessionId, Math.max(0, pb.seq - 1));
  const registers: Difference[] = [];
  for (const r of REGS) if (sa.regs[r] !== sb.regs[r]) registers.push({ what: r, a: hex8(sa.regs[r]), b: hex8(sb.regs[r]) });
  const written = (l: Loaded, seq: number): [number, number][] => {
    const eff = new InstructionRuns(l.side.db, l.side.sessionId).at(seq)?.effects;
    return unpackEffects(eff ?? null).writes.map(([addr, size]) => [addr, size]);
  };
  const memory: Difference[] = [];
  // Only what the instructions themselves store (a memory operand): the effects of an instruction
  // also carry what the kernel's service bodies wrote just before it, which is not this difference.
  if (!pa.asm.includes('[') && !pb.asm.includes('[') && !/^(push|call)/.test(pa.asm) && !/^(push|call)/.test(pb.asm)) return { registers, memory };
  const after = [stateAt(A.side.db, A.side.sessionId, pa.seq), stateAt(B.side.db, B.side.sessionId, pb.seq)];
  const seen = new Set<number>();
  for (const [addr, size] of [...written(A, pa.seq), ...written(B, pb.seq)]) {
    if (seen.has(addr)) continue;
    seen.add(addr);
    const x = after[0].read(addr, size).map((v) => (v === null ? '??' : v.toString(16).padStart(2, '0'))).join(' ');
    const y = after[1].read(addr, size).map((v) => (v === null ? '??' : v.toString(16).padStart(2, '0'))).join(' ');
    if (x !== y) memory.push({ what: hex8(addr), a: x, b: y });
    if (memory.length === 4) break;
  }
  return { registers, memory };
}

/**
 * The instruction streams compared piece by piece: each paired top-level call (from its calling
 * instruction to its return) against its partner, and the stretches between consecutive pairs
 * against each other — so an extra call on one side (a driver's DriverEntry, a nested call) costs
 * a divergence in its own stretch and never misaligns the rest.
 */
/** Past this many places where the streams part, two sessions have little in common: stop listing. */
export const MAX_DIVERGENCES = 10_000;

function compareSegments(A: Loaded, B: Loaded, aligned: [number | null, number | null][]): StreamDivergence[] {
  const pairs = aligned.filter((p): p is [number, number] => p[0] !== null && p[1] !== null);
  // Top-level pairs: spans not inside an earlier pair's span on side A.
  const top: [number, number][] = [];
  for (const [i, j] of pairs) {
    const last = top[top.length - 1];
    if (last && A.spans[i][0] <= A.spans[last[0]][2] && B.spans[j][0] <= B.spans[last[1]][2]) continue;
    if (last && (A.spans[i][0] <= A.spans[last[0]][2] || B.spans[j][0] <= B.spans[last[1]][2])) continue;
    top.push([i, j]);
  }
  // Calls only one side made (a driver's nested ZwReadFile, its DriverEntry's ZwCreateFile) are cut
  // out of the stretch they sit in: the other side's path continues past where they were, so the
  // walk must not line them up with anything.
  const onlyA = aligned.filter(([i, j]) => i !== null && j === null).map(([i]) => A.spans[i!]);
  const onlyB = aligned.filter(([i, j]) => i === null && j !== null).map(([, j]) => B.spans[j!]);
  /** The keys of [lo, hi] less the one-sided calls inside it, with each kept key's icount. */
  const kept = (l: Loaded, cuts: [number, number, number][], lo: number, hi: number): { keys: Int32Array; at: Int32Array | null; lo: number } => {
    const inside = cuts.filter(([c0, , c2]) => c0 >= lo && c2 <= hi).sort((x, y) => x[0] - y[0]);
    if (inside.length === 0) return { keys: l.stream.keys.subarray(lo, Math.max(lo, hi + 1)), at: null, lo };
    const keys: number[] = [];
    const at: number[] = [];
    let k = lo;
    for (const [c0, , c2] of inside) {
      for (; k < c0; k++) (keys.push(l.stream.keys[k]), at.push(k));
      k = Math.max(k, c2 + 1);
    }
    for (; k <= hi; k++) (keys.push(l.stream.keys[k]), at.push(k));
    return { keys: Int32Array.from(keys), at: Int32Array.from(at), lo };
  };
  const out: StreamDivergence[] = [];
  const piece = (a0: number, a1: number, b0: number, b1: number) => {
    if ((a1 < a0 && b1 < b0) || out.length >= MAX_DIVERGENCES) return;
    const ka = kept(A, onlyA, a0, a1);
    const kb = kept(B, onlyB, b0, b1);
    // A position in the kept keys back to an icount (one past the end: the instruction after the stretch).
    const back = (k: { keys: Int32Array; at: Int32Array | null; lo: number }, x: number, end: number) => (x >= k.keys.length ? end + 1 : k.at ? k.at[x] : k.lo + x);
    for (const d of compareStreams(ka.keys, kb.keys, [], MAX_DIVERGENCES - out.length)) {
      out.push({
        a: back(ka, d.a, a1),
        b: back(kb, d.b, b1),
        joinA: d.joinA === null ? null : back(ka, d.joinA, a1),
        joinB: d.joinB === null ? null : back(kb, d.joinB, b1),
      });
    }
  };
  let a = 0;
  let b = 0;
  for (const [i, j] of top) {
    const [a0, , a2] = A.spans[i];
    const [b0, , b2] = B.spans[j];
    piece(a, a0 - 1, b, b0 - 1);
    piece(a0, Math.min(a2, A.stream.keys.length - 1), b0, Math.min(b2, B.stream.keys.length - 1));
    a = a2 + 1;
    b = b2 + 1;
  }
  piece(a, A.stream.keys.length - 1, b, B.stream.keys.length - 1);
  return out;
}

/** Compare two sessions. */
export function diffSessions(sideA: DiffSide, sideB: DiffSide): DiffResult {
  const intern = new Map<string, number>();
  const A = load(sideA, intern);
  const B = load(sideB, intern);
  const { pairs: aligned, method } = alignCalls(A.align, B.align);
  const raw = compareSegments(A, B, aligned);
  const divergences: Divergence[] = raw.map((d, n) => {
    const pa = point(A, d.a);
    const pb = point(B, d.b);
    // Registers and memory only for the first divergences: each costs two state rebuilds.
    const state = n < 32 ? stateDifferences(A, B, pa, pb) : { registers: [], memory: [] };
    const ja = d.joinA === null ? null : point(A, d.joinA);
    const jb = d.joinB === null ? null : point(B, d.joinB);
    return { a: pa, b: pb, ...state, join: ja && jb ? { a: ja, b: jb } : null };
  });
  // Each divergence belongs to the pair whose call holds it (entry to return, on either side), else
  // to the pair whose calling instruction and stub lead to it.
  const paired = aligned.filter((p): p is [number, number] => p[0] !== null && p[1] !== null);
  const owner = raw.map((d) => {
    const inside = (lo: 0 | 1) => paired.findIndex(([i, j]) => (d.a >= A.spans[i][lo] && d.a <= A.spans[i][2]) || (d.b >= B.spans[j][lo] && d.b <= B.spans[j][2]));
    const k = inside(1);
    return k >= 0 ? k : inside(0);
  });
  let n = 0;
  const pairs: PairInfo[] = aligned.map(([i, j]) => {
    const a = i === null ? null : A.calls[i];
    const b = j === null ? null : B.calls[j];
    if (!a || !b) return { a, b, samePath: null, divergence: null, divergences: [], differences: [] };
    const k = n++;
    const mine = divergences.filter((_, x) => owner[x] === k);
    return { a, b, samePath: mine.length === 0, divergence: mine[0] ?? null, divergences: mine, differences: outcomeDifferences(a, b) };
  });
  const differences: Difference[] = [];
  if ((A.info.outcome ?? '') !== (B.info.outcome ?? '')) differences.push({ what: 'outcome', a: A.info.outcome ?? '—', b: B.info.outcome ?? '—' });
  if (A.info.cpu !== B.info.cpu) differences.push({ what: 'cpu', a: A.info.cpu ?? '—', b: B.info.cpu ?? '—' });
  const onlyA = A.hooks.filter((h) => !B.hooks.includes(h));
  const onlyB = B.hooks.filter((h) => !A.hooks.includes(h));
  if (onlyA.length || onlyB.length) differences.push({ what: 'hooks', a: onlyA.join('; ') || 'none', b: onlyB.join('; ') || 'none' });
  const identical = raw.length === 0 && A.calls.length === B.calls.length && pairs.every((p) => p.a && p.b && p.differences.length === 0) && differences.length === 0;
  return { a: A.info, b: B.info, identical, method, pairs, divergences, differences };
}
