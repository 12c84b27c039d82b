// `ntflow explain`: a session's findings as sentences, each with its evidence — the events named
// by seq, type, where they happened (module!symbol) and what they say — read from the findings
// table (no replay of the log: fast on a 10 M-instruction trace).
import type Database from 'better-sqlite3';
import { eventAt } from '../events.js';
import { describeEventSql } from '../named.js';
import { escapeGuestText, registerFunctions } from '../query.js';

export interface FindingRow {
  id: number;
  kind: string;
  severity: string;
  cause: string;
  syscall_id: number | null;
  seq: number;
  title: string;
  detail: string;
  evidence: number[];
  /** The hooks row of a finding of kind hook. */
  hook?: Record<string, unknown>;
}

export interface EvidenceEvent {
  seq: number;
  type: string;
  at: string | null;
  what: string;
}

export interface ExplainOptions {
  /** Only the findings about this call (syscalls.id). */
  syscall?: number;
}

/** The findings of a session (the projections must be built), with their hooks rows. */
export function readFindings(db: Database.Database, sessionId: number, options: ExplainOptions = {}): FindingRow[] {
  const rows = db
    .prepare(`SELECT id, kind, severity, cause, syscall_id, seq, title, detail, evidence FROM findings WHERE session_id = ?${options.syscall !== undefined ? ' AND syscall_id = ?' : ''} ORDER BY id`)
    .all(...(options.syscall !== undefined ? [sessionId, options.syscall] : [sessionId])) as (Omit<FindingRow, 'evidence'> & { evidence: string })[];
  const hook = db.prepare('SELECT hook_type, table_name, entry_index, function, original, current, owner, install_seq, first_run_seq, original_bytes, current_bytes FROM hooks WHERE session_id = ? AND finding_id = ?');
  return rows.map((r) => {
    const out: FindingRow = { ...r, evidence: JSON.parse(r.evidence) as number[] };
    if (r.kind === 'hook') out.hook = hook.get(sessionId, r.id) as Record<string, unknown>;
    return out;
  });
}

/** Each evidence event: its type, where, and one line about it. */
function evidenceOf(db: Database.Database, sessionId: number, seqs: number[]): EvidenceEvent[] {
  const symOf = db.prepare('SELECT sym(?)').pluck();
  const out: EvidenceEvent[] = [];
  for (const seq of seqs) {
    const t = eventAt(db, sessionId, seq);
    if (!t) continue;
    if (t.type === 'instruction') {
      out.push({ seq, type: t.type, at: t.symbol, what: t.asm! });
      continue;
    }
    const sql = describeEventSql(t.type);
    const what = sql ? ((db.prepare(sql).pluck().get(sessionId, seq) as string | null) ?? t.type) : t.type;
    out.push({ seq, type: t.type, at: symOf.get(t.eip) as string | null, what });
  }
  return out;
}

/** Words wrapped to `width` columns after `indent`. */
function wrap(text: string, indent: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export interface Explained {
  session: { id: number; name: string };
  counts: Record<string, number>;
  findings: (FindingRow & { events: EvidenceEvent[] })[];
}

/** The findings with their evidence events, for text or JSON. */
export function explainSession(db: Database.Database, sessionId: number, options: ExplainOptions = {}): Explained {
  registerFunctions(db, sessionId);
  const name = (db.prepare('SELECT name FROM sessions WHERE id = ?').pluck().get(sessionId) as string) ?? '';
  const findings = readFindings(db, sessionId, options).map((f) => ({ ...f, events: evidenceOf(db, sessionId, f.evidence) }));
  const counts: Record<string, number> = { 'failure-cause': 0, 'handle-leak': 0, hook: 0 };
  for (const f of findings) counts[f.kind] = (counts[f.kind] ?? 0) + 1;
  return { session: { id: sessionId, name }, counts, findings };
}

/** The text `ntflow explain` prints. */
export function formatExplained(e: Explained): string {
  const c = e.counts;
  // The name is the user's (a newline in it would pass escapeReport as the report's own layout).
  const head = `session ${e.session.id} '${escapeGuestText(e.session.name)}': ${plural(c['failure-cause'], 'failed call')} explained, ${plural(c['handle-leak'], 'handle')} left open, ${plural(c.hook, 'hook')}`;
  if (e.findings.length === 0) return `${head}.\n`;
  const out: string[] = [head, ''];
  for (const f of e.findings) {
    out.push(`[${f.severity}] ${f.title}`);
    out.push(wrap(f.detail, '    '));
    if (f.events.length) {
      const w = Math.max(...f.events.map((x) => String(x.seq).length));
      const tw = Math.max(...f.events.map((x) => x.type.length));
      for (const ev of f.events) out.push(`      seq ${String(ev.seq).padStart(w)}  ${ev.type.padEnd(tw)}  ${ev.at ?? ''}${ev.at ? ': ' : ''}${ev.what}`);
    }
    out.push('');
  }
  return out.join('\n');
}
