// Findings on the sequence diagram (the analyzer's findings projection, analyzer/findings/): where
// each finding's note goes and which bands are marked failed. A failure-cause finding is a note at
// its decisive event (findings.seq) inside the failing call's band; a hook's note sits where the
// hook first ran (hooks.first_run_seq; findings.seq is the write that installed it); a leaked
// handle's note sits at the event that created it. A band is marked failed when its call's
// NTSTATUS is not NT_SUCCESS, or when a call nested in it failed — so a collapsed band still shows
// it. Reading is one query; the rest is pure (rows in, notes and marks out) and tested exactly; the
// layout only finds the row each note landed on (layoutFindings in viz/layout.ts).
import type Database from 'better-sqlite3';
import { readFindings } from '../analyzer/index.js';
import type { BandFailure, FindingSeverity, FlowStep, SessionFinding, SyscallBand } from './types.js';

const hasTable = (db: Database.Database, name: string) => !!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name);

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

/** What bandFailures reads of each call: its id, parent and status. */
export interface CallStatus {
  id: number;
  parentId: number | null;
  /** The band's name: NtWriteFile, or 'service 0x11C (rejected)'. */
  name: string;
  status: { name: string; failed: boolean } | null;
}

/**
 * The failure mark of each band that needs one: the call's own failing status, else the first
 * (lowest id) failing call nested in it at any depth. A call that did not return has no status
 * and fails nothing.
 */
export function bandFailures(calls: readonly CallStatus[]): Map<number, BandFailure> {
  const byId = new Map(calls.map((c) => [c.id, c]));
  const out = new Map<number, BandFailure>();
  for (const c of [...calls].sort((a, b) => a.id - b.id)) {
    if (!c.status?.failed) continue;
    out.set(c.id, { syscallId: c.id, own: true, status: c.status.name, label: `✗ ${c.status.name}` });
    const seen = new Set<number>([c.id]);
    for (let p = c.parentId === null ? undefined : byId.get(c.parentId); p && !seen.has(p.id); p = p.parentId === null ? undefined : byId.get(p.parentId)) {
      seen.add(p.id);
      const mark = out.get(p.id);
      if (mark?.own || (p.status?.failed ?? false)) continue; // its own failure is marked when its turn comes
      if (!mark) out.set(p.id, { syscallId: c.id, own: false, status: c.status.name, label: `✗ inside: #${c.id} ${c.name} → ${c.status.name}` });
    }
  }
  return out;
}
