// Single events by seq, read from where they are stored (an instruction's run and its code row, or
// its typed table) rather than through the events view: the view expands every instruction run,
// so a lookup by seq there reads the whole session.
import type Database from 'better-sqlite3';
import { EVENT_TABLES, InstructionRuns } from '../recorder/index.js';

export interface EventAt {
  type: string;
  eip: number;
  cpl: number;
  thread_id: number;
  /** An instruction's symbol and disassembly (null for other events). */
  symbol: string | null;
  asm: string | null;
}

interface Prepared {
  code: Database.Statement;
  others: Database.Statement;
  runs: Map<number, InstructionRuns>;
}

const statements = new WeakMap<Database.Database, Prepared>();

function prepared(db: Database.Database): Prepared {
  let s = statements.get(db);
  if (!s) {
    s = {
      code: db.prepare('SELECT eip, cpl, symbol, asm FROM code WHERE session_id = ? AND id = ?'),
      others: db.prepare(
        EVENT_TABLES.map((t) => `SELECT '${t.event}' AS type, eip, cpl, thread_id, NULL AS symbol, NULL AS asm FROM ${t.name} WHERE session_id = :s AND seq = :q`).join(' UNION ALL '),
      ),
      runs: new Map(),
    };
    statements.set(db, s);
  }
  return s;
}

/** Event `seq` of a session: its type, where, on which thread (undefined when there is none). */
export function eventAt(db: Database.Database, sessionId: number, seq: number): EventAt | undefined {
  const s = prepared(db);
  let runs = s.runs.get(sessionId);
  if (!runs) s.runs.set(sessionId, (runs = new InstructionRuns(db, sessionId)));
  const run = runs.runAt(seq);
  if (run && seq < run.seq + run.count) {
    const c = s.code.get(sessionId, runs.at(seq)!.code) as { eip: number; cpl: number; symbol: string | null; asm: string };
    return { type: 'instruction', eip: c.eip, cpl: c.cpl, thread_id: run.thread, symbol: c.symbol, asm: c.asm };
  }
  return s.others.get({ s: sessionId, q: seq }) as EventAt | undefined;
}

/** The EIP of event `seq` (an instruction's address, else where the event happened); undefined when there is none. */
export function eventEip(db: Database.Database, sessionId: number, seq: number): number | undefined {
  return eventAt(db, sessionId, seq)?.eip;
}
