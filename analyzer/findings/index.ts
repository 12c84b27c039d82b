// findings/ public API: what a session's events prove — why each failed call failed, handles left
// open, hooks in the path — as the rows of the findings and hooks projections, and as sentences.
import type Database from 'better-sqlite3';
import { failureFindings } from './failures.js';
import { hookFindings } from './hooks.js';
import { leakFindings } from './leaks.js';
import { loadSession } from './session.js';
import { findingRow, hookRow, type Finding, type Hook } from './tables.js';

export { FINDINGS, FINDINGS_TABLE, HOOKS, HOOKS_TABLE, type Finding, type Hook, type FindingKind, type Severity, type FailureCause, type HookType } from './tables.js';
export { loadSession, type Call, type SessionData } from './session.js';
export { explainSession, formatExplained, readFindings, type FindingRow, type ExplainOptions, type Explained, type EvidenceEvent } from './explain.js';

/**
 * The findings of a session (its syscalls and syscall_args projections must be built): rows for
 * the findings table, then for the hooks table. Ids follow kind (failure-cause, handle-leak, hook)
 * and, within a kind, the call or the seq.
 */
export function buildFindings(db: Database.Database, sessionId: number): { findings: unknown[][]; hooks: unknown[][] } {
  const d = loadSession(db, sessionId);
  const { findings: hookList, hooks } = hookFindings(d);
  const all: Finding[] = [...failureFindings(d), ...leakFindings(d), ...hookList];
  const findingRows = all.map((f, i) => findingRow(i + 1, f));
  const firstHook = all.length - hookList.length + 1;
  const hookRows = hooks.map((h: Hook, i) => hookRow(i + 1, firstHook + i, h));
  return { findings: findingRows, hooks: hookRows };
}
