// handle-leak: every handle a session created (handle_entries) that no close destroyed by its end.
// A handle someone tried to close — an NtClose of that value that failed — is a leak proper
// (warning): the close went to the wrong table and nothing else will close it. A handle nobody
// tried to close is reported as still open (info): a driver's log file kept for its lifetime, or
// a program's handle its exit will close.
import { statusName } from '../../core/index.js';
import { callHolding, hex } from './failures.js';
import type { EntryRow, SessionData } from './session.js';
import type { Finding } from './tables.js';

const index = (h: number) => (h & ~0x80000003) >>> 0;

export function leakFindings(d: SessionData): Finding[] {
  const open = new Map<string, EntryRow>();
  const key = (e: EntryRow) => `${e.table}:${e.table === 'kernel' ? 'System' : e.process}:${index(e.handle)}`;
  for (const e of d.entries) {
    if (e.op === 'create') open.set(key(e), e);
    else open.delete(key(e));
  }
  const out: Finding[] = [];
  for (const e of [...open.values()].sort((a, b) => a.seq - b.seq)) {
    const opener = callHolding(d, e.thread, e.seq);
    const by = opener ? d.callerOf(opener).symbol : null;
    const opened = opener ? `#${opener.id} ${opener.entry === 'zw-kernel' ? `Zw${opener.name!.slice(2)}` : opener.name}${by ? ` from ${by}` : ''}` : 'outside any system call';
    const what = `${e.objectType}${e.objectName ? ` ${e.objectName}` : ''}`;
    const h = hex(e.handle);
    const table = e.table === 'kernel' ? 'the kernel handle table' : `${e.process}'s handle table`;
    const attempts = d.calls.filter((c) => c.name === 'NtClose' && c.enterSeq > e.seq && c.args[0]?.[1] === e.handle && c.status !== null && c.status !== 0);
    const evidence = [e.seq, ...attempts.map((c) => d.entrySeq(c))];
    if (attempts.length) {
      const a = attempts[0];
      const aBy = d.callerOf(a).symbol;
      const lookup = a.lookups[0];
      const where = lookup ? (lookup.table === 'none' ? 'no table' : lookup.table === 'kernel' ? 'the kernel handle table' : `${d.processOf.get(lookup.thread) ?? a.process}'s handle table`) : 'a table';
      out.push({
        kind: 'handle-leak',
        severity: 'warning',
        cause: 'close-failed',
        syscallId: opener?.id ?? null,
        seq: e.seq,
        title: `handle ${h} (${what}) leaks: #${a.id} NtClose failed and nothing closed it`,
        detail: `Handle ${h} (${what}, ${table}) was opened by ${opened} at seq ${e.seq}. #${a.id} NtClose${aBy ? ` from ${aBy}` : ''} ran with PreviousMode ${a.previousMode} and searched ${where}: ${statusName(a.status!)} (seq ${a.enterSeq}). Nothing closed it later, so the handle and its object stay until the system stops.`,
        evidence,
      });
    } else {
      const exited = e.table === 'process' && d.outcome === 'exited';
      out.push({
        kind: 'handle-leak',
        severity: 'info',
        cause: 'open-at-end',
        syscallId: opener?.id ?? null,
        seq: e.seq,
        title: `handle ${h} (${what}) is still open when the session ends`,
        detail: `Handle ${h} (${what}, ${table}) was opened by ${opened} at seq ${e.seq} and never closed${exited ? `; ${e.process}'s exit closes it` : e.table === 'kernel' ? '; a kernel handle stays open until its driver closes it' : ''}.`,
        evidence,
      });
    }
  }
  return out;
}
