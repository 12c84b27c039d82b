// Findings on the sequence diagram (the analyzer's findings projection, analyzer/findings/): where
// each finding's note goes and which bands are marked failed. A failure-cause finding is a note at
// its decisive event (findings.seq) inside the failing call's band; a hook's note sits where the
// hook first ran (hooks.first_run_seq; findings.seq is the write that installed it); a leaked
// handle's note sits at the event that created it. A band is marked failed when its call's
// NTSTATUS is not NT_SUCCESS, or when a call inside it (nested in it, or run within its events)
// failed — so a collapsed band still shows it. Reading is one query; the rest is pure (rows in, notes and marks out) and tested exactly; the
// layout only finds the row each note landed on (layoutFindings in viz/layout.ts).
import type Database from 'better-sqlite3';
import { readFindings, tableNames } from '../analyzer/index.js';
import type { BandFailure, FindingSeverity, FlowStep, SessionFinding, SyscallBand } from './types.js';

// tableNames also sees the projections a reader folded for itself (a session still recording).
const hasTable = (db: Database.Database, name: string) => tableNames(db).has(name);

/** The session's findings, ordered by id, each with where its note goes (none in a trace recorded before findings existed). */
export function sessionFindings(db: Database.Database, sessionId: number): SessionFinding[] {
  if (!hasTable(db, 'findings') || !hasTable(db, 'hooks')) return [];
  return readFindings(db, sessionId).map((f) => {
    const firstRun = f.hook?.first_run_seq;
    return {
      id: f.id,
      kind: f.kind,
      severity: f.severity as FindingSeverity,
      cause: f.cause,
      title: f.title,
      detail: f.detail,
      syscallId: f.syscall_id,
      seq: f.seq,
      noteSeq: f.kind === 'hook' ? (typeof firstRun === 'number' ? firstRun : null) : f.seq,
      evidence: f.evidence,
    };
  });
}

/** Where an event happened on the diagram: its lane and thread. */
export type EventPlace = (seq: number) => { lane: string; thread: number };

/** The mark before a finding's title: ✗ an error, ⚠ a warning, ℹ information. */
export const SEVERITY_MARKS: Record<FindingSeverity, string> = { error: '✗', warning: '⚠', info: 'ℹ' };

/**
 * The findings a diagram lists and the notes it draws. With `wholeSession` every finding is
 * listed; otherwise (chosen calls) those about a drawn call, or about none. A finding about a call
 * gets its note only when that call's band is drawn and holds the note's event; one about no call
 * gets it when some drawn band holds the event (or the whole session is drawn).
 */
export function findingNotes(
  findings: readonly SessionFinding[],
  bands: readonly Pick<SyscallBand, 'syscallId' | 'firstSeq' | 'lastSeq'>[],
  place: EventPlace,
  wholeSession: boolean,
): { listed: SessionFinding[]; notes: FlowStep[] } {
  const byId = new Map(bands.map((b) => [b.syscallId, b]));
  const innermost = (seq: number) => {
    let best: (typeof bands)[number] | undefined;
    for (const b of bands) if (b.firstSeq <= seq && seq <= b.lastSeq && (!best || b.firstSeq >= best.firstSeq)) best = b;
    return best;
  };
  const listed = wholeSession ? [...findings] : findings.filter((f) => f.syscallId === null || byId.has(f.syscallId));
  const notes: FlowStep[] = [];
  for (const f of listed) {
    if (f.noteSeq === null) continue;
    const seq = f.noteSeq;
    let band = f.syscallId === null ? undefined : byId.get(f.syscallId);
    if (band && !(band.firstSeq <= seq && seq <= band.lastSeq)) band = undefined;
    if (!band && f.syscallId === null) band = innermost(seq);
    if (!band && !wholeSession) continue;
    const { lane, thread } = place(seq);
    const step: FlowStep = {
      seq,
      kind: 'note',
      from: lane,
      to: lane,
      label: `${SEVERITY_MARKS[f.severity] ?? '•'} ${f.title}`,
      detail: { seq: String(seq), thread: String(thread), finding: `#${f.id} ${f.kind}: ${f.cause}`, evidence: f.evidence.map((s) => `seq ${s}`).join(', ') },
      finding: { id: f.id, kind: f.kind, severity: f.severity, title: f.title, detail: f.detail },
    };
    const owner = band ?? innermost(seq);
    if (owner) step.syscallId = owner.syscallId;
    notes.push(step);
  }
  return { listed, notes };
}

/**
 * Steps and notes (each in seq order) as one list in seq order: a note goes before the steps of its
 * own seq (the decisive event comes before the arrow its instruction draws), notes of one seq in
 * their given order.
 */
export function mergeNotes(steps: readonly FlowStep[], notes: readonly FlowStep[]): FlowStep[] {
  if (notes.length === 0) return [...steps];
  const sorted = [...notes].sort((a, b) => a.seq - b.seq);
  const out: FlowStep[] = [];
  let n = 0;
  for (const s of steps) {
    while (n < sorted.length && sorted[n].seq <= s.seq) out.push(sorted[n++]);
    out.push(s);
  }
  while (n < sorted.length) out.push(sorted[n++]);
  return out;
}

/** What bandFailures reads of each call of the session: its id, parent, events and status. */
export interface CallStatus {
  id: number;
  parentId: number | null;
  /** The band's name: NtWriteFile, or 'service 0x11C (rejected)'. */
  name: string;
  status: { name: string; failed: boolean } | null;
  enterSeq: number;
  exitSeq: number | null;
}

/**
 * The failure mark of each band that needs one: the call's own failing status; else the first
 * (lowest id) failing call inside it — nested in it (a driver's call made while serving it, at any
 * depth, drawn or not) or run within its events (a work item's call on a System thread while the
 * program waits in NtDelayExecution): whatever a collapsed band would hide. A call that did not
 * return has no status and fails nothing.
 */
export function bandFailures(calls: readonly CallStatus[], bands: readonly Pick<SyscallBand, 'syscallId' | 'firstSeq' | 'lastSeq'>[]): Map<number, BandFailure> {
  const byId = new Map(calls.map((c) => [c.id, c]));
  const failing = calls.filter((c) => c.status?.failed).sort((a, b) => a.enterSeq - b.enterSeq || a.id - b.id);
  // The first failing descendant of each call: walk up from each failing call, lowest id first.
  const descendant = new Map<number, CallStatus>();
  for (const c of [...failing].sort((a, b) => a.id - b.id)) {
    const seen = new Set<number>([c.id]);
    for (let p = c.parentId === null ? undefined : byId.get(c.parentId); p && !seen.has(p.id); p = p.parentId === null ? undefined : byId.get(p.parentId)) {
      seen.add(p.id);
      if (!descendant.has(p.id)) descendant.set(p.id, c);
    }
  }
  const out = new Map<number, BandFailure>();
  for (const b of bands) {
    const own = byId.get(b.syscallId);
    if (own?.status?.failed) {
      out.set(b.syscallId, { syscallId: own.id, own: true, status: own.status.name, label: `✗ ${own.status.name}` });
      continue;
    }
    let inside = descendant.get(b.syscallId);
    // Calls whose events lie within the band's (failing is in enterSeq order: binary search, then scan).
    let lo = 0;
    let hi = failing.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (failing[mid].enterSeq < b.firstSeq) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < failing.length && failing[k].enterSeq <= b.lastSeq; k++) {
      const c = failing[k];
      if (c.id !== b.syscallId && c.exitSeq !== null && c.exitSeq <= b.lastSeq && (!inside || c.id < inside.id)) inside = c;
    }
    if (inside) out.set(b.syscallId, { syscallId: inside.id, own: false, status: inside.status!.name, label: `✗ inside: #${inside.id} ${inside.name} → ${inside.status!.name}` });
  }
  return out;
}
